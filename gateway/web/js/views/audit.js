// For auditors: the audit trail, filterable, newest first; and whether its hash chain is intact.
import * as api from "../api.js";
import { clear, h } from "../dom.js";
import { fmtTime, t } from "../i18n.js";
import { errorNote } from "./common.js";

const FILTERS = ["actor", "camera", "network", "reason", "since"];

export default function auditView(root) {
  const inputs = Object.fromEntries(FILTERS.map((f) => [f, h(`input#a-${f}`, { name: f, placeholder: f === "since" ? "2026-11-01T00:00:00Z" : "" })]));
  const table = h("div.scroll");
  const more = h("div.pager");
  const error = h("div");
  const chain = h("p#chain-status", { "data-state": "unknown" });
  let rows = [];
  async function load(cursor = null) {
    error.replaceChildren();
    const params = { limit: 100, cursor };
    for (const f of FILTERS) params[f] = inputs[f].value.trim();
    try {
      const page = await api.get(`/api/v1/audit${api.qs(params)}`);
      rows = cursor ? rows.concat(page.items) : page.items;
      draw();
      clear(more, page.next_cursor ? h("button#audit-more", { type: "button", onclick: () => load(page.next_cursor) }, t("page.more")) : null);
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  }
  function draw() {
    clear(
      table,
      h(
        "table.grid#audit-table",
        {},
        h("thead", {}, h("tr", {}, ["audit.time", "audit.actor", "audit.action", "audit.target", "summary.network", "audit.outcome", "audit.detail"].map((k) => h("th", {}, t(k))))),
        h(
          "tbody",
          {},
          rows.map((e) =>
            h(
              `tr.o-${e.outcome}`,
              { "data-seq": e.seq ?? "" },
              h("td", {}, fmtTime(e.time)),
              h("td", {}, e.actor, h("span.muted", {}, ` (${e.role})`)),
              h("td.mono", {}, e.action),
              h("td.mono", {}, e.target),
              h("td", {}, e.network),
              h("td", {}, `${e.outcome} ${e.status}`),
              h("td", {}, [e.detail, e.extra?.reason ? `${t("snap.reason")}: ${e.extra.reason}` : ""].filter(Boolean).join(" · ")),
            ),
          ),
        ),
      ),
    );
  }
  async function verify() {
    chain.dataset.state = "checking";
    chain.textContent = t("audit.checking");
    try {
      const res = await api.get("/api/v1/audit-chain");
      chain.dataset.state = res.intact ? "intact" : "broken";
      const vars = { detail: res.detail, time: fmtTime(res.checked_at) };
      chain.textContent = res.intact ? t("audit.intact", vars) : t("audit.broken", vars);
    } catch (exc) {
      chain.dataset.state = "error";
      clear(chain, errorNote(exc));
    }
  }
  clear(
    root,
    h("h2", {}, t("audit.title")),
    h("div.row", {}, h("button#chain-verify", { type: "button", onclick: verify }, t("audit.verify")), chain),
    h(
      "form.filters#audit-filters",
      {
        onsubmit: (ev) => {
          ev.preventDefault();
          load();
        },
      },
      FILTERS.map((f) => h("label", {}, t(`audit.f.${f}`), inputs[f])),
      h("button", { type: "submit", id: "audit-search" }, t("audit.search")),
    ),
    error,
    table,
    more,
  );
  load();
  verify();
}
