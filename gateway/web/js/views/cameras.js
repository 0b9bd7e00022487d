// The camera list: filters (network, category, status, lifecycle, department, carrier) and
// search, cursor pages, status colours, polled with If-None-Match (a 304 when nothing changed).
import * as api from "../api.js";
import { clear, debounce, h, option } from "../dom.js";
import { fmtTime, named, t } from "../i18n.js";
import { every } from "../poll.js";
import { context } from "../state.js";
import { IMAGES, LIFECYCLES, STATUSES, badge, categories, categoryName, errorNote, imageBadge, networkName, rememberCategories } from "./common.js";

// Health rounds run every 30 s (health_interval_s): a status change shows within one of them.
export const LIST_POLL_MS = 15_000;
const SIZES = [25, 50, 100, 200];
const FILTERS = ["network", "category", "status", "image", "lifecycle", "department", "carrier", "q"];

// Filters survive a visit to a camera's detail and back (this tab only).
const state = { filters: {}, cursors: [null], page: 0, size: 50 };

export default async function camerasView(root) {
  const form = h("form.filters#filters", { onsubmit: (ev) => ev.preventDefault() });
  const info = h("p.muted#list-info");
  const table = h("div.scroll");
  const pager = h("div.pager");
  const error = h("div");
  clear(root, h("h2", {}, t("cameras.title")), form, error, info, table, pager);
  let summary = { by_department: {}, by_carrier: {}, inventory: [] };
  try {
    summary = (await api.poll("/api/v1/summary")).data;
    rememberCategories(summary.inventory);
  } catch (exc) {
    error.append(errorNote(exc));
  }
  const select = (name, values, label) =>
    h(
      "label",
      {},
      t(`filter.${name}`),
      h(
        `select#f-${name}`,
        { name, onchange: changed },
        option("", t("filter.all"), state.filters[name] || ""),
        values.map(([v, l]) => option(v, l, state.filters[name] || "")),
      ),
    );
  function changed() {
    for (const name of FILTERS) {
      const el = form.elements[name];
      if (el) state.filters[name] = el.value.trim();
    }
    state.size = Number(form.elements.namedItem("size").value) || 50;
    state.cursors = [null];
    state.page = 0;
    refresh(true);
  }
  clear(
    form,
    select("network", context.networks.map((n) => [n.id, named(n)])),
    select("category", [...categories.keys()].map((c) => [c, categoryName(c)])),
    select("status", STATUSES.map((s) => [s, t(`status.${s}`)])),
    select("image", IMAGES.map((s) => [s, t(`image.${s}`)])),
    select("lifecycle", LIFECYCLES.map((l) => [l, t(`lifecycle.${l}`)])),
    select("department", Object.keys(summary.by_department).filter(Boolean).map((d) => [d, d])),
    select("carrier", Object.keys(summary.by_carrier).filter(Boolean).map((c) => [c, c])),
    h(
      "label",
      {},
      t("filter.q"),
      h("input#f-q", { name: "q", type: "search", value: state.filters.q || "", placeholder: t("filter.qHint"), oninput: debounce(changed, 300) }),
    ),
    h("label", {}, t("filter.size"), h("select#f-size", { name: "size", onchange: changed }, SIZES.map((n) => option(String(n), String(n), String(state.size))))),
  );

  async function refresh(redraw = false) {
    const f = state.filters;
    const params = {
      network: f.network,
      category: f.category,
      status: f.status,
      image: f.image,
      lifecycle: f.lifecycle,
      department: f.department,
      carrier: f.carrier,
      q: f.q,
      limit: state.size,
      cursor: state.cursors[state.page],
    };
    try {
      const { data, changed: fresh } = await api.poll(`/api/v1/cameras${api.qs(params)}`);
      error.replaceChildren();
      if (!fresh && !redraw) return;
      const items = data.items;
      const total = data.total;
      const next = data.next_cursor;
      drawTable(table, items);
      const first = state.page * state.size;
      info.textContent = t("cameras.count", { total, from: total ? first + 1 : 0, to: first + items.length });
      info.dataset.total = String(total);
      drawPager(next);
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  }

  function drawPager(next) {
    clear(
      pager,
      h("button#prev", { type: "button", disabled: state.page === 0, onclick: () => { state.page -= 1; refresh(true); } }, t("page.prev")),
      h("span", {}, t("page.n", { n: state.page + 1 })),
      h(
        "button#next",
        {
          type: "button",
          disabled: !next,
          onclick: () => {
            state.cursors[state.page + 1] = next;
            state.page += 1;
            refresh(true);
          },
        },
        t("page.next"),
      ),
    );
  }

  every(LIST_POLL_MS, () => refresh(false), { now: false });
  await refresh(true);
}

function drawTable(root, items) {
  const cols = ["cameras.status", "field.image", "cameras.name", "cameras.id", "summary.network", "summary.category", "summary.department", "summary.carrier", "cameras.lifecycle", "cameras.lastSeen"];
  clear(
    root,
    h(
      "table.grid.list#camera-table",
      {},
      h("thead", {}, h("tr", {}, cols.map((k) => h("th", {}, t(k))))),
      h(
        "tbody",
        {},
        items.map((c) =>
          h(
            `tr.s-${c.status || "unknown"}`,
            { "data-id": c.id, "data-status": c.status || "unknown", "data-image": (c.image && c.image.status) || "", onclick: () => (location.hash = `#/camera/${encodeURIComponent(c.id)}`) },
            h("td", {}, badge(c.status)),
            h("td", {}, imageBadge(c.image) || "—"),
            h("td", {}, h("a", { href: `#/camera/${encodeURIComponent(c.id)}` }, c.name || c.id)),
            h("td.mono", {}, c.id),
            h("td", {}, networkName(c.network)),
            h("td", {}, categoryName(c.category)),
            h("td", {}, c.department || "—"),
            h("td", {}, c.carrier || "—"),
            h("td", {}, c.lifecycle ? t(`lifecycle.${c.lifecycle}`) : "—"),
            h("td", {}, fmtTime(c.last_seen)),
          ),
        ),
      ),
    ),
    items.length ? null : h("p.muted", {}, t("cameras.none")),
  );
}
