// A wall of live thumbnails (downscaled snapshots) for a chosen set of cameras, paced so that it
// stays within every network's per-operator rate limit; and the big-screen mode, which rotates
// through the summary, the map and the walls without anyone touching it.
import * as api from "../api.js";
import { clear, h } from "../dom.js";
import { fmtTime, t } from "../i18n.js";
import { every, stopAll } from "../poll.js";
import { can } from "../state.js";
import { LIST_POLL_MS } from "./cameras.js";
import { askReason, badge, errorNote, imageBadge, reasonRequired, reasons } from "./common.js";
import mapView from "./map.js";
import summaryView from "./summary.js";

// One snapshot at a time, one every PACE_MS: 50 a minute at most, under the default limit of 60
// per operator and network (each network's sharing.rate_limit_per_minute).
export const PACE_MS = 1200;
const WALL_SIZE = 9;
const THUMB_WIDTH = 320;
const SLIDE_MS = 20_000;
const KEY = "camgw.wall";

let pacer = null; // the running wall's loop: {stop()}

function stopPacer() {
  if (pacer) pacer.stop();
  pacer = null;
}
window.addEventListener("hashchange", stopPacer);

function chosen() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "[]");
  } catch {
    return [];
  }
}

async function reasonsFor(cams) {
  for (const c of cams) {
    if (reasonRequired(c.network) && !reasons.get(c.network)) {
      const r = await askReason(c.network);
      if (!r) return false;
      reasons.set(c.network, r);
    }
  }
  return true;
}

// A tile's caption: the camera's status and picture verdict as the list gives them (a wall is
// not the place to judge a picture again), and its name.
function caption(c) {
  const verdict = imageBadge(c.image, { compact: true });
  return h("figcaption", {}, badge(c.status), verdict ? [" ", verdict] : "", " ", c.name || c.id);
}

// Each tile's caption again from the list's records (a poll found it changed).
function recaption(tiles, items) {
  for (const c of items) {
    const tile = tiles.get(c.id);
    if (!tile) continue;
    const note = caption(c);
    tile.note.replaceWith(note);
    tile.note = note;
    tile.fig.dataset.image = (c.image && c.image.status) || "";
  }
}

// Thumbnails for `cams` in `grid`, refreshed round-robin at the pace, until stopped; their
// captions follow the camera list (polled like the list view) unless `once`.
function runWall(grid, cams, { once = false } = {}) {
  stopPacer();
  const tiles = new Map();
  clear(
    grid,
    cams.map((c) => {
      const img = h("img", { alt: c.name || c.id, hidden: true });
      const note = caption(c);
      const err = h("div.nopic", {}, t("wall.waiting"));
      const fig = h("figure.thumb", { "data-id": c.id, "data-image": (c.image && c.image.status) || "" }, img, err, note);
      tiles.set(c.id, { img, err, fig, note, url: "" });
      return fig;
    }),
  );
  const captions = once
    ? null
    : every(
        LIST_POLL_MS,
        async () => {
          const { data, changed } = await api.poll(LIST_PATH);
          if (changed) recaption(tiles, data.items);
        },
        { now: false },
      );
  let i = 0;
  let stopped = false;
  let timer = 0;
  const tick = async () => {
    if (stopped || !cams.length) return;
    const cam = cams[i % cams.length];
    i += 1;
    const tile = tiles.get(cam.id);
    if (!document.hidden) {
      try {
        const reason = reasons.get(cam.network) || "";
        const { blob, headers } = await api.blob(`/api/v1/cameras/${encodeURIComponent(cam.id)}/snapshot${api.qs({ width: THUMB_WIDTH, reason })}`);
        if (tile.url) URL.revokeObjectURL(tile.url);
        tile.url = URL.createObjectURL(blob);
        tile.img.src = tile.url;
        tile.img.hidden = false;
        tile.err.hidden = true;
        tile.fig.dataset.loaded = "yes";
        tile.img.title = fmtTime(headers.get("X-Snapshot-Taken-At"));
      } catch (exc) {
        tile.err.hidden = false;
        tile.err.textContent = exc.plain || String(exc);
        tile.fig.dataset.loaded = "error";
      }
    }
    if (once && i >= cams.length) return;
    if (!stopped) timer = setTimeout(tick, PACE_MS);
  };
  pacer = {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (captions) captions.stop();
      for (const tile of tiles.values()) if (tile.url) URL.revokeObjectURL(tile.url);
    },
  };
  tick();
}

const LIST_PATH = "/api/v1/cameras?limit=10000";

async function candidates() {
  const { data } = await api.poll(LIST_PATH);
  return data.items;
}

export async function wallView(root) {
  const grid = h("div.wall#wall");
  const picker = h("details.picker#wall-picker");
  const error = h("div");
  clear(root, h("h2", {}, t("wall.title")), h("p.muted", {}, t("wall.hint", { s: PACE_MS / 1000 })), picker, error, grid);
  let all = [];
  try {
    all = await candidates();
  } catch (exc) {
    clear(error, errorNote(exc));
    return;
  }
  const start = async () => {
    const ids = chosen();
    const cams = (ids.length ? all.filter((c) => ids.includes(c.id)) : all.filter((c) => c.status === "online").slice(0, WALL_SIZE));
    if (!(await reasonsFor(cams))) return;
    runWall(grid, cams);
  };
  const boxes = all.map((c) =>
    h("label", {}, h("input", { type: "checkbox", value: c.id, checked: chosen().includes(c.id) }), " ", c.name || c.id),
  );
  clear(
    picker,
    h("summary", {}, t("wall.choose")),
    h("div.choices", {}, boxes),
    h(
      "button#wall-apply",
      {
        type: "button",
        onclick: () => {
          const ids = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
          localStorage.setItem(KEY, JSON.stringify(ids.slice(0, 24)));
          picker.open = false;
          start();
        },
      },
      t("wall.apply"),
    ),
  );
  start();
}

// Big screen: full screen, no header; slides rotate every SLIDE_MS: the summary, the map, then
// one wall of WALL_SIZE cameras per slide (operators); Escape or the corner button leaves it.
export async function bigScreenView(root) {
  document.body.classList.add("bigscreen");
  const stage = h("div.stage#stage");
  const exit = h("button.exit#bigscreen-exit", { type: "button", onclick: () => (location.hash = "#/summary") }, t("bigscreen.exit"));
  clear(root, exit, stage);
  const onKey = (ev) => {
    if (ev.key === "Escape") location.hash = "#/summary";
  };
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", () => document.removeEventListener("keydown", onKey), { once: true });
  const slides = [(el) => summaryView(el, [], { poll: false }), (el) => mapView(el)];
  if (can("snapshot")) {
    try {
      const all = await candidates();
      const ids = chosen();
      const cams = ids.length ? all.filter((c) => ids.includes(c.id)) : all.filter((c) => c.status === "online");
      const usable = [];
      for (const c of cams) if (!reasonRequired(c.network) || reasons.get(c.network)) usable.push(c);
      for (let i = 0; i < Math.min(usable.length, WALL_SIZE * 4); i += WALL_SIZE) {
        const group = usable.slice(i, i + WALL_SIZE);
        slides.push((el) => {
          const grid = h("div.wall");
          clear(el, h("h2", {}, t("wall.title")), grid);
          runWall(grid, group, { once: true });
        });
      }
    } catch {
      /* the summary and the map still rotate */
    }
  }
  let n = 0;
  let timer = 0;
  const show = () => {
    if (!document.body.classList.contains("bigscreen")) return clearTimeout(timer);
    stopPacer();
    stopAll(); // the previous slide's polls
    const el = h("div.slide", { "data-slide": String(n % slides.length) });
    clear(stage, el);
    slides[n % slides.length](el);
    n += 1;
    timer = setTimeout(show, SLIDE_MS);
  };
  window.addEventListener("hashchange", () => clearTimeout(timer), { once: true });
  show();
}
