// An incident: a point picked on the map (or typed), a radius and a reference; the cameras
// within the radius across every network the token sees, nearest first; for operators their
// snapshots in one go (POST /api/v1/snapshots), each audited under the reference.
import * as api from "../api.js";
import { clear, h } from "../dom.js";
import { t } from "../i18n.js";
import { createMap } from "../plot.js";
import { can } from "../state.js";
import { badge, errorNote, networkName } from "./common.js";
import { loadAll } from "./map.js";

export default function incidentView(root) {
  const lat = h("input#inc-lat", { name: "lat", inputmode: "decimal", required: true });
  const lon = h("input#inc-lon", { name: "lon", inputmode: "decimal", required: true });
  const radius = h("input#inc-radius", { name: "radius", type: "number", min: 1, max: 5000, value: 300 });
  const reason = h("input#inc-reason", { name: "reason", maxlength: 200, placeholder: t("incident.reasonHint") });
  const found = h("section#incident-cameras");
  const pictures = h("section.pictures#incident-pictures");
  const error = h("div");
  const host = h("div");
  const map = createMap(host, {
    onPick: (la, lo) => {
      lat.value = la.toFixed(6);
      lon.value = lo.toFixed(6);
      mark();
    },
    onSelect: (cam) => {
      if (!cam.location) return;
      lat.value = cam.location.lat.toFixed(6);
      lon.value = cam.location.lon.toFixed(6);
      mark();
    },
  });
  const point = () => [Number(lat.value), Number(lon.value), Number(radius.value) || 300];
  function mark() {
    const [la, lo, r] = point();
    if (Number.isFinite(la) && Number.isFinite(lo) && lat.value && lon.value) map.setMarker({ lat: la, lon: lo, radius: r });
  }
  async function find() {
    error.replaceChildren();
    const [la, lo, r] = point();
    try {
      const page = await api.get(`/api/v1/cameras${api.qs({ near: `${la},${lo}`, radius: r, limit: 24 })}`);
      map.setHighlight(page.items.map((c) => c.id));
      clear(
        found,
        h("p#incident-count", { "data-count": page.total }, t("incident.found", { n: page.total, r })),
        h(
          "table.grid#incident-table",
          {},
          h("thead", {}, h("tr", {}, ["cameras.status", "cameras.name", "summary.network", "incident.distance"].map((k) => h("th", {}, t(k))))),
          h(
            "tbody",
            {},
            page.items.map((c) =>
              h(
                "tr",
                { "data-id": c.id },
                h("td", {}, badge(c.status)),
                h("td", {}, h("a", { href: `#/camera/${encodeURIComponent(c.id)}` }, c.name || c.id)),
                h("td", {}, networkName(c.network)),
                h("td.num", {}, `${Math.round(page.near.distance_m[c.id])} m`),
              ),
            ),
          ),
        ),
      );
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  }
  async function snapshots() {
    error.replaceChildren();
    const [la, lo, r] = point();
    if (!reason.value.trim()) {
      clear(error, h("p.error", { role: "alert" }, t("incident.needReason")));
      reason.focus();
      return;
    }
    clear(pictures, h("p.muted", {}, t("snap.taking")));
    try {
      const res = await api.send("POST", "/api/v1/snapshots", {
        reason: reason.value.trim(),
        near: { lat: la, lon: lo, radius_m: Math.min(5000, r) },
        max_cameras: 12,
        width: 480,
      });
      clear(
        pictures,
        h("p#incident-taken", {}, t("incident.taken", { taken: res.taken, refused: res.refused, reason: res.reason })),
        h(
          "div.grid-pictures",
          {},
          res.items.map((p) =>
            h(
              "figure",
              { "data-id": p.camera, "data-status": p.status },
              p.jpeg_base64 ? h("img", { src: `data:image/jpeg;base64,${p.jpeg_base64}`, alt: p.camera }) : h("div.nopic", {}, p.error || `HTTP ${p.status}`),
              h("figcaption", {}, p.camera, p.distance_m !== null ? ` · ${Math.round(p.distance_m)} m` : ""),
            ),
          ),
        ),
      );
    } catch (exc) {
      clear(pictures, errorNote(exc));
    }
  }
  const form = h(
    "form.incident#incident-form",
    {
      onsubmit: (ev) => {
        ev.preventDefault();
        mark();
        find();
      },
    },
    h("label", {}, t("incident.lat"), lat),
    h("label", {}, t("incident.lon"), lon),
    h("label", {}, t("incident.radius"), radius),
    h("label", {}, t("incident.reason"), reason),
    h("button#incident-find", { type: "submit" }, t("incident.find")),
    can("snapshot") ? h("button#incident-snap", { type: "button", onclick: snapshots }, t("incident.snapshots")) : null,
  );
  clear(root, h("h2", {}, t("incident.title")), h("p.muted", {}, t("incident.hint")), form, error, host, found, pictures);
  loadAll("")
    .then(({ data }) => map.setPoints(data.items, { refit: true }))
    .catch((exc) => clear(error, errorNote(exc)));
}
