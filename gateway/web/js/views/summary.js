// The town's inventory table rebuilt live from GET /api/v1/summary, the totals, and each
// network's adapter health from GET /api/v1/networks (the adapter's state for admins).
import * as api from "../api.js";
import { clear, h } from "../dom.js";
import { fmtDuration, fmtNumber, fmtTime, named, t } from "../i18n.js";
import { every } from "../poll.js";
import { can, context } from "../state.js";
import { LIFECYCLES, STATUSES, badge, categoryName, errorNote, networkName, rememberCategories } from "./common.js";

export const SUMMARY_POLL_MS = 15_000;
export const NETWORKS_POLL_MS = 60_000;

export default function summaryView(root, _args, { poll = true } = {}) {
  const totals = h("section.tiles#totals");
  const table = h("section#inventory");
  const health = h("section#health");
  const extra = h("section.pair");
  const error = h("div");
  clear(root, h("h2", {}, t("summary.title")), error, totals, table, extra, health);
  // Non-admins' network rows hold counts only, which change with the summary: fetched again
  // when it changes. Admins' hold the adapters' health (heartbeats): fetched every minute.
  const adapters = can("discover");
  const drawSummary = async () => {
    try {
      const { data, changed } = await api.poll("/api/v1/summary");
      error.replaceChildren();
      if (changed || !totals.childElementCount) {
        rememberCategories(data.inventory);
        drawTotals(totals, data);
        drawTable(table, data);
        drawExtra(extra, data);
        if (changed && !(adapters && poll)) await drawNetworks();
        else drawHealth(health, context.networks);
      }
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  };
  const drawNetworks = async () => {
    try {
      context.networks = await api.get("/api/v1/networks");
      drawHealth(health, context.networks);
    } catch (exc) {
      clear(health, errorNote(exc));
    }
  };
  if (poll) {
    every(SUMMARY_POLL_MS, drawSummary);
    if (adapters) every(NETWORKS_POLL_MS, drawNetworks);
  } else {
    drawSummary();
  }
}

function drawTotals(root, data) {
  const tile = (key, value, cls = "") =>
    h(`div.tile${cls}`, { "data-testid": `total-${key}` }, h("span.label", {}, t(key === "all" ? "summary.total" : `status.${key}`)), h("span.value", {}, fmtNumber(value)));
  clear(
    root,
    tile("all", data.total),
    STATUSES.map((s) => tile(s, data.by_status[s] || 0, `.s-${s}`)),
  );
}

function drawTable(root, data) {
  const cells = new Map();
  for (const c of data.by_network_category_status) cells.set(`${c.network}|${c.category}|${c.status}`, c.count);
  const rows = data.inventory.filter((r) => r.planned || r.registered);
  const sum = (fn) => rows.reduce((acc, r) => acc + fn(r), 0);
  const statusOf = (r, s) => cells.get(`${r.network}|${r.category}|${s}`) || 0;
  const head = h(
    "tr",
    {},
    [
      "summary.network",
      "summary.category",
      "summary.department",
      "summary.carrier",
      "summary.funding",
      "summary.planned",
      "summary.registered",
    ].map((k) => h("th", {}, t(k))),
    LIFECYCLES.map((l) => h("th.lc", {}, t(`lifecycle.${l}`))),
    STATUSES.map((s) => h("th", {}, badge(s))),
  );
  const body = rows.map((r) =>
    h(
      "tr",
      { "data-category": r.category },
      h("td", {}, networkName(r.network)),
      h("td", {}, categoryName(r.category)),
      h("td", {}, r.department || "—"),
      h("td", {}, r.carrier || "—"),
      h("td.num", {}, fmtNumber(r.funding_10k_cny)),
      h("td.num", { "data-col": "planned" }, fmtNumber(r.planned)),
      h("td.num", { "data-col": "registered" }, fmtNumber(r.registered)),
      LIFECYCLES.map((l) => h("td.num", { "data-col": `lc-${l}` }, fmtNumber(r.by_lifecycle[l] || 0))),
      STATUSES.map((s) => h("td.num", { "data-col": s }, fmtNumber(statusOf(r, s)))),
    ),
  );
  const foot = h(
    "tr.total",
    { "data-category": "_total" },
    h("th", { colspan: 4 }, t("summary.total")),
    h("td.num", {}, fmtNumber(sum((r) => r.funding_10k_cny))),
    h("td.num", { "data-col": "planned" }, fmtNumber(sum((r) => r.planned))),
    h("td.num", { "data-col": "registered" }, fmtNumber(sum((r) => r.registered))),
    LIFECYCLES.map((l) => h("td.num", { "data-col": `lc-${l}` }, fmtNumber(sum((r) => r.by_lifecycle[l] || 0)))),
    STATUSES.map((s) => h("td.num", { "data-col": s }, fmtNumber(sum((r) => statusOf(r, s))))),
  );
  clear(root, h("div.scroll", {}, h("table.grid#inventory-table", {}, h("thead", {}, head), h("tbody", {}, body), h("tfoot", {}, foot))));
}

function drawExtra(root, data) {
  const small = (title, obj, id) =>
    h(
      "div",
      {},
      h("h3", {}, t(title)),
      h(
        "table.grid",
        { id },
        h("tbody", {}, Object.entries(obj).map(([k, v]) => h("tr", {}, h("td", {}, k || "—"), h("td.num", {}, fmtNumber(v))))),
      ),
    );
  clear(root, small("summary.byDepartment", data.by_department, "by-department"), small("summary.byCarrier", data.by_carrier, "by-carrier"));
}

function drawHealth(root, networks) {
  const rows = networks.map((n) => {
    const a = n.adapter;
    const edge = a && a.edge;
    const lastDiscovery = edge?.last_discovery?.at || a?.last_job?.finished_at || a?.last_job?.started_at;
    const state = a ? a.state : "";
    return h(
      "tr",
      { "data-network": n.id, class: state === "unreachable" ? "bad" : "" },
      h("td", {}, named(n)),
      h("td.num", {}, fmtNumber(n.cameras)),
      h("td", {}, STATUSES.filter((s) => n.by_status[s]).map((s) => [badge(s), " ", fmtNumber(n.by_status[s]), " "])),
      h("td", {}, n.reason_required ? t("yes") : t("no")),
      h("td", {}, a ? t(`adapter.${state}`) : t("adapter.hidden")),
      h("td", {}, a ? t(`mode.${a.mode}`) : "—"),
      h("td", {}, edge ? fmtDuration(edge.heartbeat_age_s) : a ? t("adapter.inprocess") : "—"),
      h("td", {}, lastDiscovery ? fmtTime(lastDiscovery) : "—"),
      h("td", {}, a?.last_error || ""),
    );
  });
  clear(
    root,
    h("h3", {}, t("summary.health")),
    h(
      "table.grid#health-table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["summary.network", "summary.cameras", "summary.status", "summary.reason", "summary.adapter", "summary.mode", "summary.heartbeat", "summary.lastDiscovery", "summary.lastError"].map((k) => h("th", {}, t(k))),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}
