// The outage report: cameras down longer than a threshold, who fixes them; CSV and XLSX files.
import * as api from "../api.js";
import { clear, h } from "../dom.js";
import { fmtDuration, fmtTime, t } from "../i18n.js";
import { IMAGE_BADGE, badge, checkNames, errorNote, networkName } from "./common.js";

// A row is a camera down, or online with a picture the quality diagnosis judged faulty (the
// report's `image`, `failing`): "online but faulty", counted apart from outages.
function problem(o) {
  if (o.status === "online" && o.image === "faulty") {
    return h("span.badge.s-offline", { "data-status": "online-faulty" }, t("outages.onlineFaulty"));
  }
  return badge(o.status);
}

function verdict(o) {
  if (!o.image) return "—";
  const checks = o.failing ? checkNames(o.failing.split(",")) : "";
  return [h(`span.badge.${IMAGE_BADGE[o.image] || "s-unknown"}`, { "data-image": o.image }, t(`image.${o.image}`)), checks ? ` ${checks}` : ""];
}

export default function outagesView(root) {
  const minutes = h("input#out-min", { type: "number", min: 0, max: 525600, value: 60 });
  const body = h("section#outage-report");
  const error = h("div");
  const download = async (format) => {
    try {
      const { blob, headers } = await api.blob(`/api/v1/reports/outages${api.qs({ min_minutes: minutes.value, format })}`);
      const name = /filename="([^"]+)"/.exec(headers.get("Content-Disposition") || "")?.[1] || `outages.${format}`;
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  };
  async function load() {
    error.replaceChildren();
    try {
      const r = await api.get(`/api/v1/reports/outages${api.qs({ min_minutes: minutes.value })}`);
      clear(
        body,
        h(
          "p#outage-total",
          { "data-total": r.total },
          t("outages.total", { n: r.total, time: fmtTime(r.generated_at) }),
          " ",
          h("span#outage-faulty", {}, t("outages.faultyCount", { n: r.items.filter((o) => o.status === "online").length })),
        ),
        h(
          "table.grid#outage-table",
          {},
          h("thead", {}, h("tr", {}, ["cameras.status", "field.image", "cameras.name", "summary.network", "outages.since", "outages.down", "summary.department", "summary.carrier", "field.maintenance", "field.lastError"].map((k) => h("th", {}, t(k))))),
          h(
            "tbody",
            {},
            r.items.map((o) =>
              h(
                "tr",
                { "data-id": o.id, "data-image": o.image || "" },
                h("td", {}, problem(o)),
                h("td", {}, verdict(o)),
                h("td", {}, h("a", { href: `#/camera/${encodeURIComponent(o.id)}` }, o.name || o.id)),
                h("td", {}, networkName(o.network)),
                h("td", {}, fmtTime(o.since), o.since_exact ? "" : " *"),
                h("td", {}, fmtDuration(o.down_s)),
                h("td", {}, o.department || "—"),
                h("td", {}, o.carrier || "—"),
                h("td", {}, o.maintenance ? [o.maintenance.organisation, o.maintenance.contact, o.maintenance.phone].filter(Boolean).join(" · ") : "—"),
                h("td", {}, o.last_error || ""),
              ),
            ),
          ),
        ),
        r.items.length ? null : h("p.muted", {}, t("outages.none")),
      );
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  }
  clear(
    root,
    h("h2", {}, t("outages.title")),
    h(
      "div.row",
      {},
      h("label", {}, t("outages.min"), minutes),
      h("button#outage-load", { type: "button", onclick: load }, t("outages.load")),
      h("button#outage-csv", { type: "button", onclick: () => download("csv") }, t("outages.csv")),
      h("button#outage-xlsx", { type: "button", onclick: () => download("xlsx") }, t("outages.xlsx")),
    ),
    error,
    body,
  );
  load();
}
