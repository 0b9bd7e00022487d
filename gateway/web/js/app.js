// The dashboard's shell: sign-in, the navigation each role may use, the router (the part of
// the URL after '#'; never a token), the connection sign and the language switch.
import * as api from "./api.js";
import { clear, h } from "./dom.js";
import { applyStatic, getLang, onLang, setLang, t } from "./i18n.js";
import { stopAll, watchStale } from "./poll.js";
import { context } from "./state.js";
import adminView from "./views/admin.js";
import auditView from "./views/audit.js";
import camerasView from "./views/cameras.js";
import detailView from "./views/detail.js";
import incidentView from "./views/incident.js";
import mapView from "./views/map.js";
import outagesView from "./views/outages.js";
import summaryView from "./views/summary.js";
import { bigScreenView, wallView } from "./views/wall.js";

// Each view: the permission it needs (from GET /api/v1/me) and how it is drawn.
const VIEWS = [
  { id: "summary", need: "read_cameras", draw: summaryView },
  { id: "cameras", need: "read_cameras", draw: camerasView },
  { id: "map", need: "read_cameras", draw: mapView },
  { id: "incident", need: "read_cameras", draw: incidentView },
  { id: "wall", need: "snapshot", draw: wallView },
  { id: "outages", need: "read_cameras", draw: outagesView },
  { id: "admin", need: "write_cameras", draw: adminView },
  { id: "audit", need: "read_audit", draw: auditView },
  { id: "bigscreen", need: "read_cameras", draw: bigScreenView },
];

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const connEl = document.getElementById("conn");

function allowed(v) {
  return context.me && context.me.permissions.includes(v.need);
}

function drawNav() {
  const current = location.hash.slice(2).split("/")[0];
  clear(
    nav,
    VIEWS.filter(allowed).map((v) =>
      h(
        "a",
        { href: `#/${v.id}`, class: v.id === current ? "active" : "", "data-view": v.id },
        t(`nav.${v.id}`),
      ),
    ),
  );
}

function drawConn(c) {
  connEl.dataset.state = c.state;
  const since = c.lastOk ? new Date(c.lastOk).toLocaleTimeString(getLang() === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : "";
  connEl.textContent = t(`conn.${c.state}`, { time: since });
  connEl.title = c.lastError || "";
}

function route() {
  stopAll();
  document.body.classList.remove("bigscreen");
  if (!context.me) return signIn();
  const [name, ...rest] = location.hash.slice(2).split("/");
  drawNav();
  if (name === "camera" && rest.length && context.me.permissions.includes("read_cameras")) {
    return detailView(view, decodeURIComponent(rest.join("/")));
  }
  const found = VIEWS.find((v) => v.id === name && allowed(v));
  const first = VIEWS.find(allowed);
  if (!found) {
    if (first) location.replace(`#/${first.id}`);
    else clear(view, h("p.notice", {}, t("auth.nothing")));
    return;
  }
  found.draw(view, rest);
}

function signIn(message = "") {
  nav.replaceChildren();
  document.getElementById("who").textContent = "";
  document.getElementById("signout").hidden = true;
  const input = h("input#token", {
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "cgw_…",
    "aria-label": t("auth.token"),
  });
  const error = h("p.error#signin-error", { role: "alert" }, message);
  const form = h(
    "form.signin#signin",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        api.setToken(input.value.trim());
        try {
          await start();
        } catch (exc) {
          api.setToken("");
          error.textContent = exc.status === 401 ? t("auth.bad") : exc.plain || String(exc);
        }
      },
    },
    h("h1", {}, t("auth.title")),
    h("p", {}, t("auth.hint")),
    h("label", {}, t("auth.token"), input),
    h("button", { type: "submit" }, t("auth.signin")),
    error,
  );
  clear(view, form);
  input.focus();
}

async function start() {
  const me = await api.get("/api/v1/me");
  context.me = me;
  context.networks = await api.get("/api/v1/networks");
  document.getElementById("who").textContent = t("auth.as", { name: me.name, role: t(`role.${me.role}`) });
  document.getElementById("signout").hidden = false;
  route();
}

document.getElementById("signout").addEventListener("click", () => {
  api.setToken("");
  context.me = null;
  stopAll();
  location.hash = "";
  signIn();
});

const langSelect = document.getElementById("lang");
langSelect.value = getLang();
langSelect.addEventListener("change", () => setLang(langSelect.value));
onLang(() => {
  document.getElementById("who").textContent = context.me
    ? t("auth.as", { name: context.me.name, role: t(`role.${context.me.role}`) })
    : "";
  drawConn(api.conn);
  route();
});

api.onConn(drawConn);
watchStale(api.conn, 30_000);
window.addEventListener("hashchange", route);
applyStatic();
drawConn(api.conn);
if (api.token()) {
  start().catch((exc) => {
    api.setToken("");
    signIn(exc.status === 401 ? t("auth.bad") : exc.plain);
  });
} else {
  signIn();
}
