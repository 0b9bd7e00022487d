// A tiny DOM helper: h("tag.class", {attrs}, ...children). Text is always set as text, never
// as HTML, so nothing the API returns can inject markup.

// `spec` is "tag", "tag.class", "tag#id" or "tag.class#id" (CSS's shorthand).
export function h(spec, attrs = {}, ...children) {
  const [head, id] = spec.split("#");
  const [tag, ...classes] = head.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (id) el.id = id;
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "style") {
      // through the CSSOM: the CSP (style-src 'self') refuses style attributes
      el.style.cssText = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value") {
      el.value = value;
    } else if (key === "selected") {
      el.defaultSelected = el.selected = true; // form.reset() comes back to it
    } else if (key === "checked") {
      el.defaultChecked = el.checked = true;
    } else if (key === "disabled") {
      el.disabled = true;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function option(value, label, selected) {
  return h("option", { value, selected: selected === value }, label);
}
