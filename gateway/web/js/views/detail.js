// One camera: its metadata (the API never sends a credential; neither does this page), who is
// responsible, lifecycle and status histories, availability as a chart; for operators a
// snapshot with refresh and auto-refresh, after a prompt for a reason where the network asks.
import * as api from "../api.js";
import { clear, h, svg } from "../dom.js";
import { fmtDuration, fmtTime, t } from "../i18n.js";
import { every } from "../poll.js";
import { can } from "../state.js";
import { IMAGE_BADGE, STATUS_COLOURS, askReason, badge, categoryName, errorNote, networkName, reasonRequired, reasons } from "./common.js";
import { editForm } from "./admin.js";

export const AUTO_REFRESH_MS = 10_000;

export default async function detailView(root, id) {
  clear(root, h("p.muted", {}, t("loading")));
  let cam;
  try {
    cam = await api.get(`/api/v1/cameras/${encodeURIComponent(id)}`);
  } catch (exc) {
    clear(root, h("p", {}, h("a", { href: "#/cameras" }, "← ", t("nav.cameras"))), errorNote(exc));
    return;
  }
  const snap = h("section.snapshot#snapshot");
  const history = h("section#status-history");
  const lifecycle = h("section#lifecycle-history");
  const edit = h("section#edit");
  clear(
    root,
    h("p", {}, h("a", { href: "#/cameras" }, "← ", t("nav.cameras"))),
    h("h2#camera-title", {}, cam.name || cam.id, " ", badge(cam.status)),
    h("div.detail", {}, h("section", {}, metadata(cam)), snap),
    history,
    lifecycle,
    edit,
  );
  if (can("snapshot")) snapshotPanel(snap, cam);
  else snap.remove();
  if (can("snapshot") && cam.image && cam.image.status !== "ok") evidencePanel(snap, cam);
  drawHistory(history, cam);
  if (can("read_history")) drawLifecycle(lifecycle, cam);
  if (can("write_cameras")) editForm(edit, cam);
}

// The last video quality diagnosis (docs/quality.md): its verdict, the failing checks, since when.
function imageQuality(image) {
  if (!image) return null;
  const checks = image.failing.map((f) => t(`check.${f.check}`)).join(", ");
  return h(
    "span#image-quality",
    { "data-image": image.status },
    h(`span.badge.${IMAGE_BADGE[image.status] || "s-unknown"}`, {}, t(`image.${image.status}`)),
    checks ? ` ${checks}` : "",
    ` (${t("image.since")} ${fmtTime(image.since)})`,
  );
}

function metadata(cam) {
  const m = cam.maintenance || {};
  const loc = cam.location;
  const rows = [
    ["field.id", cam.id],
    ["summary.network", networkName(cam.network)],
    ["summary.category", categoryName(cam.category)],
    ["summary.department", cam.department],
    ["summary.carrier", cam.carrier],
    ["field.project", cam.project],
    ["cameras.lifecycle", cam.lifecycle && `${t(`lifecycle.${cam.lifecycle}`)}${cam.lifecycle_since ? ` (${fmtTime(cam.lifecycle_since)})` : ""}`],
    ["field.maintenance", [m.organisation, m.contact, m.phone].filter(Boolean).join(" · ") || null],
    ["field.location", loc && `${loc.lat.toFixed(6)}, ${loc.lon.toFixed(6)}${loc.address ? ` — ${loc.address}` : ""}`],
    ["field.address", cam.address],
    ["field.vendor", [cam.vendor, cam.model, cam.firmware].filter(Boolean).join(" · ") || null],
    ["field.serial", cam.serial],
    ["field.mac", cam.mac],
    ["field.profiles", (cam.profiles || []).map((p) => `${p.name || p.token}: ${p.codec || "?"} ${p.width || "?"}×${p.height || "?"}${p.fps ? ` @${p.fps}` : ""}`).join("; ") || null],
    ["cameras.lastSeen", cam.last_seen && fmtTime(cam.last_seen)],
    ["field.lastError", cam.last_error],
    ["field.snapshotNote", cam.snapshot_note],
    ["field.image", imageQuality(cam.image)],
    ["field.source", cam.source && t(`source.${cam.source}`)],
    ["field.credentials", cam.has_credentials === undefined ? null : cam.has_credentials ? t("field.credentialsOnFile") : t("no")],
    ["field.tags", (cam.tags || []).join(", ")],
    ["field.updated", cam.updated_at && fmtTime(cam.updated_at)],
  ];
  return h(
    "dl.meta#camera-meta",
    {},
    rows.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [h("dt", {}, t(k)), h("dd", { "data-field": k }, v)]),
  );
}

// The small picture that made the verdict suspect or faulty (GET .../quality/evidence), on the
// snapshot's terms: asked for by a click, with the network's reason where it requires one.
function evidencePanel(root, cam) {
  const img = h("img#evidence-img", { alt: t("image.evidence"), hidden: true });
  const note = h("p.muted#evidence-note");
  const load = async () => {
    let reason = reasons.get(cam.network) || "";
    if (reasonRequired(cam.network) && !reason) {
      reason = await askReason(cam.network);
      if (!reason) return;
      reasons.set(cam.network, reason);
    }
    try {
      const { blob, headers } = await api.blob(`/api/v1/cameras/${encodeURIComponent(cam.id)}/quality/evidence${api.qs({ reason })}`);
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
      img.hidden = false;
      img.dataset.loaded = "yes";
      note.textContent = t("image.evidenceTaken", { time: fmtTime(headers.get("X-Snapshot-Taken-At")) });
    } catch (exc) {
      img.hidden = true;
      clear(note, errorNote(exc));
    }
  };
  root.append(
    h(
      "section.evidence#evidence",
      {},
      h("h3", {}, t("image.evidence")),
      h("button#evidence-load", { type: "button", onclick: load }, t("image.evidenceShow")),
      img,
      note,
    ),
  );
}

function snapshotPanel(root, cam) {
  const img = h("img#snapshot-img", {
    alt: t("snap.alt", { name: cam.name || cam.id }),
    hidden: true,
    onload: () => (img.dataset.loaded = img.naturalWidth > 0 ? "yes" : "empty"),
  });
  const note = h("p.muted#snapshot-note");
  const error = h("div#snapshot-error");
  let url = "";
  let auto = null;
  async function take() {
    let reason = reasons.get(cam.network) || "";
    if (reasonRequired(cam.network) && !reason) {
      reason = await askReason(cam.network);
      if (!reason) return false;
      reasons.set(cam.network, reason);
    }
    error.replaceChildren();
    note.textContent = t("snap.taking");
    try {
      const { blob, headers } = await api.blob(`/api/v1/cameras/${encodeURIComponent(cam.id)}/snapshot${api.qs({ reason, width: 960 })}`);
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      delete img.dataset.loaded;
      img.src = url;
      img.hidden = false;
      note.textContent = t("snap.taken", { time: fmtTime(headers.get("X-Snapshot-Taken-At")), source: headers.get("X-Snapshot-Source") || "" });
      return true;
    } catch (exc) {
      if (exc.status === 422 && exc.fields.reason) reasons.delete(cam.network);
      note.textContent = "";
      clear(error, errorNote(exc));
      return false;
    }
  }
  const autoBox = h("input#snapshot-auto", {
    type: "checkbox",
    onchange: async () => {
      if (auto) auto.stop();
      auto = null;
      if (autoBox.checked) auto = every(AUTO_REFRESH_MS, take);
    },
  });
  clear(
    root,
    h("h3", {}, t("snap.title")),
    h(
      "div.row",
      {},
      h("button#snapshot-take", { type: "button", onclick: take }, t("snap.take")),
      h("label", {}, autoBox, t("snap.auto", { s: AUTO_REFRESH_MS / 1000 })),
      reasonRequired(cam.network) ? h("span.muted", {}, t("snap.reasonNeeded")) : null,
    ),
    error,
    img,
    note,
  );
}

async function drawHistory(root, cam) {
  clear(root, h("h3", {}, t("history.title")), h("p.muted", {}, t("loading")));
  try {
    const [page, avail] = await Promise.all([
      api.get(`/api/v1/cameras/${encodeURIComponent(cam.id)}/history?limit=200`),
      api.get(`/api/v1/availability${api.qs({ by: "camera", network: cam.network, period: "week", limit: 100000 })}`).catch(() => null),
    ]);
    const row = avail && avail.rows.find((r) => r.key === cam.id);
    const share = row && row.share_online !== null ? `${(row.share_online * 100).toFixed(1)}%` : "—";
    clear(
      root,
      h("h3", {}, t("history.title")),
      h(
        "p#availability",
        {},
        t("history.availability", {
          share,
          outages: row ? row.outages : "—",
          longest: row ? fmtDuration(row.outage_longest_s) : "—",
        }),
        row && row.online_faulty_s > 0 ? h("span#availability-faulty", {}, " · ", t("history.faulty", { time: fmtDuration(row.online_faulty_s) })) : null,
      ),
      timeline(page, 7 * 86400),
      h(
        "table.grid#history-table",
        {},
        h("thead", {}, h("tr", {}, ["history.at", "history.from", "history.to", "field.lastError"].map((k) => h("th", {}, t(k))))),
        h(
          "tbody",
          {},
          page.items.map((c) => h("tr", {}, h("td", {}, fmtTime(c.at)), h("td", {}, c.previous ? badge(c.previous) : "—"), h("td", {}, badge(c.status)), h("td", {}, c.error || ""))),
        ),
      ),
      page.items.length ? null : h("p.muted", {}, t("history.none")),
    );
  } catch (exc) {
    clear(root, h("h3", {}, t("history.title")), errorNote(exc));
  }
}

// The last `window_s` as coloured spans, one per status, oldest on the left.
function timeline(page, windowS) {
  const W = 700;
  const H = 34;
  const now = Date.now();
  const start = now - windowS * 1000;
  const changes = [...page.items].reverse().map((c) => ({ at: Date.parse(c.at), prev: c.previous, status: c.status }));
  const inWindow = changes.filter((c) => c.at >= start);
  const before = changes.filter((c) => c.at < start).pop();
  // Before the change that created the camera (previous: null) there is nothing to draw.
  let status = before ? before.status : inWindow.length ? inWindow[0].prev : page.status || "unknown";
  let from = start;
  const spans = [];
  for (const c of inWindow) {
    if (status) spans.push([from, c.at, status]);
    from = c.at;
    status = c.status;
  }
  spans.push([from, now, status || "unknown"]);
  const x = (ms) => ((ms - start) / (now - start)) * W;
  const ticks = [];
  for (let d = 0; d <= windowS / 86400; d += 1) {
    const ms = start + d * 86400 * 1000;
    ticks.push(svg("line", { x1: x(ms), x2: x(ms), y1: 0, y2: H - 12, stroke: "#fff", "stroke-width": 1 }));
    ticks.push(svg("text", { x: x(ms), y: H - 1, "font-size": 9, "text-anchor": d === 0 ? "start" : d === windowS / 86400 ? "end" : "middle", fill: "#555" }, d === windowS / 86400 ? t("history.now") : `-${windowS / 86400 - d}d`));
  }
  return svg(
    "svg",
    { id: "availability-chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": t("history.chart") },
    spans.map(([a, b, s]) => svg("rect", { x: x(a), y: 0, width: Math.max(2, x(b) - x(a)), height: H - 12, fill: STATUS_COLOURS[s] || STATUS_COLOURS.unknown, "data-status": s }, svg("title", {}, `${t(`status.${s}`)}: ${fmtTime(new Date(a).toISOString())} – ${fmtTime(new Date(b).toISOString())}`))),
    ticks,
  );
}

async function drawLifecycle(root, cam) {
  try {
    const life = await api.get(`/api/v1/cameras/${encodeURIComponent(cam.id)}/lifecycle`);
    clear(
      root,
      h("h3", {}, t("lifecycle.title")),
      h(
        "table.grid#lifecycle-table",
        {},
        h("thead", {}, h("tr", {}, ["history.at", "history.from", "history.to", "lifecycle.actor"].map((k) => h("th", {}, t(k))))),
        h(
          "tbody",
          {},
          life.changes.map((c) => h("tr", {}, h("td", {}, fmtTime(c.at)), h("td", {}, c.previous ? t(`lifecycle.${c.previous}`) : "—"), h("td", {}, t(`lifecycle.${c.state}`)), h("td", {}, c.actor))),
        ),
      ),
    );
  } catch (exc) {
    clear(root, h("h3", {}, t("lifecycle.title")), errorNote(exc));
  }
}
