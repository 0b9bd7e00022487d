// Strings live in one file per language (i18n/zh.js, i18n/en.js); Chinese is the default.
import en from "../i18n/en.js";
import zh from "../i18n/zh.js";

const TABLES = { zh, en };
const KEY = "camgw.lang";
let lang = TABLES[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : "zh";
const listeners = new Set();

export function t(key, vars = {}) {
  const text = TABLES[lang][key] ?? TABLES.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

export function getLang() {
  return lang;
}

export function setLang(next) {
  if (!TABLES[next] || next === lang) return;
  lang = next;
  localStorage.setItem(KEY, next);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLang(fn) {
  listeners.add(fn);
}

// Elements of index.html marked data-i18n="key" get their text from the table.
export function applyStatic(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

// Names the API gives in both languages (networks, categories): the page's language's.
export function named(obj) {
  if (!obj) return "";
  return (lang === "zh" && obj.name_zh) || obj.name || obj.id || "";
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return t("dur.s", { n: s });
  if (s < 3600) return t("dur.m", { n: Math.round(s / 60) });
  if (s < 86400) return t("dur.h", { n: (s / 3600).toFixed(1) });
  return t("dur.d", { n: (s / 86400).toFixed(1) });
}

export function fmtNumber(n) {
  return Number(n ?? 0).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
}
