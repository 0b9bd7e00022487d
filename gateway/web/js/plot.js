// A small map: cameras placed by latitude and longitude (Web Mercator, which at a town's size is
// as good as any), coloured by status, with a scale bar, zoom and drag. Tiles are drawn from the
// configured tile URL only (<meta name="camgw-tile-url">); without one the background is plain
// and the page loads nothing from anywhere.
import { h, svg } from "./dom.js";
import { t } from "./i18n.js";
import { STATUS_COLOURS } from "./views/common.js";

const TILE = 256;
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
export const TILE_URL = meta("camgw-tile-url");
const MAX_ZOOM = Number(meta("camgw-tile-max-zoom")) || 18;

function project(lat, lon, z) {
  const size = TILE * 2 ** z;
  const s = Math.sin((Math.max(-85.05, Math.min(85.05, lat)) * Math.PI) / 180);
  return [((lon + 180) / 360) * size, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * size];
}

function unproject(x, y, z) {
  const size = TILE * 2 ** z;
  const lon = (x / size) * 360 - 180;
  const n = Math.PI - (2 * Math.PI * y) / size;
  return [(180 / Math.PI) * Math.atan(Math.sinh(n)), lon];
}

export function metresPerPixel(lat, z) {
  return (156543.03392 * Math.cos((lat * Math.PI) / 180)) / 2 ** z;
}

const NICE = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

export function createMap(container, { onPick, onSelect } = {}) {
  const tiles = h("div.tiles");
  const overlay = svg("svg", { class: "overlay" });
  const scale = h("div.scale#map-scale");
  const zoomIn = h("button.zoom", { type: "button", title: t("map.zoomIn"), onclick: () => zoomBy(1) }, "+");
  const zoomOut = h("button.zoom", { type: "button", title: t("map.zoomOut"), onclick: () => zoomBy(-1) }, "−");
  const box = h("div.map#map", { "data-tiles": TILE_URL ? "yes" : "no" }, tiles, overlay, h("div.zooms", {}, zoomIn, zoomOut), scale);
  container.append(box);
  const st = { lat: 31.1, lon: 121.28, z: 13, points: [], marker: null, highlight: new Set() };

  const size = () => [box.clientWidth || 800, box.clientHeight || 480];
  const toScreen = (lat, lon) => {
    const [w, hgt] = size();
    const [cx, cy] = project(st.lat, st.lon, st.z);
    const [x, y] = project(lat, lon, st.z);
    return [x - cx + w / 2, y - cy + hgt / 2];
  };
  const toLatLon = (sx, sy) => {
    const [w, hgt] = size();
    const [cx, cy] = project(st.lat, st.lon, st.z);
    return unproject(cx + sx - w / 2, cy + sy - hgt / 2, st.z);
  };

  function zoomBy(dz) {
    st.z = Math.max(1, Math.min(MAX_ZOOM, Math.round(st.z + dz)));
    draw();
  }

  function fit(points) {
    const placed = points.filter((p) => p.location);
    if (!placed.length) return;
    const lats = placed.map((p) => p.location.lat);
    const lons = placed.map((p) => p.location.lon);
    const [s, n, w, e] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
    st.lat = (s + n) / 2;
    st.lon = (w + e) / 2;
    const [bw, bh] = size();
    const [x0, y0] = project(n, w, 0);
    const [x1, y1] = project(s, e, 0);
    const dz = Math.min(Math.log2((bw * 0.85) / Math.max(x1 - x0, 1e-9)), Math.log2((bh * 0.85) / Math.max(y1 - y0, 1e-9)));
    st.z = Math.max(1, Math.min(MAX_ZOOM, TILE_URL ? Math.floor(dz) : dz));
  }

  function drawTiles() {
    tiles.replaceChildren();
    if (!TILE_URL) return;
    const [w, hgt] = size();
    const tz = Math.floor(st.z);
    const k = 2 ** (st.z - tz);
    const [cx, cy] = project(st.lat, st.lon, tz);
    const px = TILE * k;
    const left = cx * k - w / 2;
    const top = cy * k - hgt / 2;
    const n = 2 ** tz;
    for (let tx = Math.floor(left / px); tx <= Math.floor((left + w) / px); tx += 1) {
      for (let ty = Math.max(0, Math.floor(top / px)); ty <= Math.min(n - 1, Math.floor((top + hgt) / px)); ty += 1) {
        const wrapped = ((tx % n) + n) % n;
        const src = TILE_URL.replace("{z}", tz).replace("{x}", wrapped).replace("{y}", ty);
        tiles.append(h("img.maptile", { src, alt: "", draggable: "false", style: `left:${tx * px - left}px;top:${ty * px - top}px;width:${px}px;height:${px}px` }));
      }
    }
  }

  function draw() {
    const [w, hgt] = size();
    overlay.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
    overlay.setAttribute("width", w);
    overlay.setAttribute("height", hgt);
    drawTiles();
    const parts = [];
    if (st.marker) {
      const [mx, my] = toScreen(st.marker.lat, st.marker.lon);
      const r = st.marker.radius / metresPerPixel(st.marker.lat, st.z);
      parts.push(svg("circle", { cx: mx, cy: my, r, class: "radius" }));
      parts.push(svg("path", { d: `M${mx - 8},${my} h16 M${mx},${my - 8} v16`, class: "cross", id: "incident-marker" }));
    }
    for (const p of st.points) {
      if (!p.location) continue;
      const [x, y] = toScreen(p.location.lat, p.location.lon);
      if (x < -10 || y < -10 || x > w + 10 || y > hgt + 10) continue;
      const hot = st.highlight.has(p.id);
      parts.push(
        svg(
          "circle",
          {
            cx: x,
            cy: y,
            r: hot ? 8 : 5,
            fill: STATUS_COLOURS[p.status] || STATUS_COLOURS.unknown,
            class: hot ? "cam hot" : "cam",
            "data-id": p.id,
            "data-status": p.status || "unknown",
            onclick: (ev) => {
              ev.stopPropagation();
              if (onSelect) onSelect(p);
            },
          },
          svg("title", {}, `${p.name || p.id} (${t(`status.${p.status || "unknown"}`)})`),
        ),
      );
    }
    overlay.replaceChildren(...parts);
    drawScale();
  }

  function drawScale() {
    const mpp = metresPerPixel(st.lat, st.z);
    const metres = NICE.filter((m) => m / mpp <= 120).pop() || NICE[0];
    const label = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
    scale.replaceChildren(h("span.bar", { style: `width:${Math.round(metres / mpp)}px` }), h("span", {}, label));
    scale.dataset.metres = String(metres);
  }

  // Drag pans; a click (no drag) picks a place.
  let drag = null;
  box.addEventListener("pointerdown", (ev) => {
    if (ev.target.closest("button") || ev.target.classList?.contains("cam")) return;
    drag = { x: ev.clientX, y: ev.clientY, lat: st.lat, lon: st.lon, moved: false };
    box.setPointerCapture(ev.pointerId);
  });
  box.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    const [cx, cy] = project(drag.lat, drag.lon, st.z);
    [st.lat, st.lon] = unproject(cx - dx, cy - dy, st.z);
    draw();
  });
  box.addEventListener("pointerup", (ev) => {
    const d = drag;
    drag = null;
    if (!d || d.moved || !onPick) return;
    const rect = box.getBoundingClientRect();
    const [lat, lon] = toLatLon(ev.clientX - rect.left, ev.clientY - rect.top);
    onPick(lat, lon);
  });
  box.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoomBy(ev.deltaY < 0 ? 1 : -1);
  }, { passive: false });
  new ResizeObserver(() => draw()).observe(box);

  return {
    setPoints(points, { refit = false } = {}) {
      const first = !st.points.length;
      st.points = points;
      if (first || refit) fit(points);
      draw();
    },
    setMarker(marker) {
      st.marker = marker;
      draw();
    },
    setHighlight(ids) {
      st.highlight = new Set(ids);
      draw();
    },
    get view() {
      return { ...st };
    },
  };
}
