// The public API, as any client uses it: a bearer token (kept in sessionStorage, never in a
// URL), conditional GETs with If-None-Match for everything polled, problem+json errors turned
// into plain words, and one connection state the header shows (live, stale, unreachable).
import { t } from "./i18n.js";

const TOKEN_KEY = "camgw.token";
const etags = new Map(); // url -> {etag, data}
const listeners = new Set();
export const conn = { state: "idle", lastOk: 0, lastError: "" };

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  etags.clear();
}
export function onConn(fn) {
  listeners.add(fn);
}
function setConn(state, error = "") {
  if (state === "live") conn.lastOk = Date.now();
  const changed = conn.state !== state || conn.lastError !== error;
  conn.state = state;
  conn.lastError = error;
  if (changed || state === "live") for (const fn of listeners) fn(conn);
}
export function markStale() {
  if (conn.state === "live") setConn("stale");
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.fields = {};
    for (const e of this.problem.errors || []) {
      if (e.field && !(e.field in this.fields)) this.fields[e.field] = e.message;
    }
  }
  // In plain words: what happened and what to do, by status; the API's detail beside it.
  get plain() {
    const key = `err.${this.status}`;
    const general = t(key) === key ? t("err.other", { status: this.status }) : t(key);
    const detail = this.problem.detail;
    return detail && this.status !== 0 ? `${general} (${detail})` : general;
  }
}

async function request(method, path, { body, type, headers = {}, accept } = {}) {
  const h = { ...headers };
  const tok = token();
  if (tok) h.Authorization = `Bearer ${tok}`;
  if (accept) h.Accept = accept;
  let payload = body;
  if (body !== undefined && type === undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (type) {
    h["Content-Type"] = type;
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers: h, body: payload, cache: "no-store" });
  } catch (exc) {
    setConn("down", String(exc));
    throw new ApiError(0, { detail: "" });
  }
  if (resp.status >= 500 && resp.status !== 501) {
    // the gateway answers but cannot serve: the registry, or a camera's network (snapshots)
    if (resp.status === 503 && !path.includes("/snapshot")) setConn("down", `HTTP ${resp.status}`);
  } else {
    setConn("live");
  }
  return resp;
}

async function problemOf(resp) {
  try {
    return await resp.json();
  } catch {
    return { title: resp.statusText };
  }
}

// GET, conditional: the first answer's ETag is sent back; a 304 returns the data held.
// Returns {data, changed}.
export async function poll(path) {
  const held = etags.get(path);
  const resp = await request("GET", path, {
    headers: held ? { "If-None-Match": held.etag } : {},
  });
  if (resp.status === 304 && held) return { data: held.data, changed: false };
  if (!resp.ok) throw new ApiError(resp.status, await problemOf(resp));
  const data = await resp.json();
  const etag = resp.headers.get("ETag");
  if (etag) etags.set(path, { etag, data });
  return { data, changed: true };
}

export async function get(path) {
  const resp = await request("GET", path);
  if (!resp.ok) throw new ApiError(resp.status, await problemOf(resp));
  return resp.json();
}

export async function send(method, path, body, type) {
  const resp = await request(method, path, { body, type });
  if (!resp.ok) throw new ApiError(resp.status, await problemOf(resp));
  return resp.status === 204 ? null : resp.json();
}

// A binary answer (a JPEG, a report file): {blob, headers}.
export async function blob(path) {
  const resp = await request("GET", path);
  if (!resp.ok) throw new ApiError(resp.status, await problemOf(resp));
  return { blob: await resp.blob(), headers: resp.headers };
}

export function qs(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}
