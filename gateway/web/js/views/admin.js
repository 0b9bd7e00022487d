// For admins: register a camera (field errors shown beside their fields), edit one (a JSON merge
// patch), import a CSV (the per-row report), start a discovery and follow it to 100%.
import * as api from "../api.js";
import { clear, h, option } from "../dom.js";
import { fmtNumber, named, t } from "../i18n.js";
import { every } from "../poll.js";
import { context } from "../state.js";
import { LIFECYCLES, categories, categoryName, errorNote, rememberCategories } from "./common.js";

export const JOB_POLL_MS = 1000;

export default async function adminView(root) {
  const register = h("section#register");
  const importer = h("section#import");
  const discovery = h("section#discovery");
  clear(root, h("h2", {}, t("admin.title")), register, importer, discovery);
  if (!categories.size) {
    try {
      rememberCategories((await api.poll("/api/v1/summary")).data.inventory);
    } catch {
      /* the form still works with typed ids */
    }
  }
  cameraForm(register, null);
  importForm(importer);
  discoveryForm(discovery);
}

// The fields of the form, in order: [name, API path, kind].
const FIELDS = [
  ["network", "network", "network"],
  ["name", "name", "text"],
  ["category", "category", "category"],
  ["address", "address", "text"],
  ["lat", "location.lat", "number"],
  ["lon", "location.lon", "number"],
  ["location", "location.address", "text"],
  ["department", "department", "text"],
  ["carrier", "carrier", "text"],
  ["project", "project", "text"],
  ["lifecycle", "lifecycle", "lifecycle"],
  ["contact", "maintenance.contact", "text"],
  ["phone", "maintenance.phone", "text"],
  ["tags", "tags", "text"],
];

function input(name, kind, value) {
  const id = `cf-${name}`;
  if (kind === "network") return h(`select#${id}`, { name }, context.networks.map((n) => option(n.id, named(n), value)));
  if (kind === "category") return h(`select#${id}`, { name }, [...categories.keys()].map((c) => option(c, categoryName(c), value)));
  if (kind === "lifecycle") return h(`select#${id}`, { name }, LIFECYCLES.map((l) => option(l, t(`lifecycle.${l}`), value || "in-service")));
  return h(`input#${id}`, { name, type: kind === "number" ? "text" : "text", inputmode: kind === "number" ? "decimal" : null, value: value ?? "" });
}

function valuesOf(cam) {
  if (!cam) return {};
  return {
    network: cam.network,
    name: cam.name,
    category: cam.category,
    address: cam.address,
    lat: cam.location?.lat,
    lon: cam.location?.lon,
    location: cam.location?.address,
    department: cam.department,
    carrier: cam.carrier,
    project: cam.project,
    lifecycle: cam.lifecycle,
    contact: cam.maintenance?.contact,
    phone: cam.maintenance?.phone,
    tags: (cam.tags || []).join(", "),
  };
}

// The request body from the form: only what was filled in (a patch: only what changed).
function bodyOf(form, before) {
  const v = (name) => form.elements[name].value.trim();
  const num = (name) => (v(name) === "" ? null : Number(v(name)));
  const body = {};
  for (const name of ["network", "name", "category", "address", "department", "carrier", "project", "lifecycle"]) {
    if (before && (name === "network" || v(name) === (before[name] ?? ""))) continue;
    if (v(name) !== "" || before) body[name] = v(name) === "" ? null : v(name);
  }
  if (v("lat") !== "" || v("lon") !== "") {
    const loc = { lat: num("lat"), lon: num("lon") };
    if (v("location")) loc.address = v("location");
    const old = before || {};
    if (!before || loc.lat !== old.lat || loc.lon !== old.lon || (loc.address || "") !== (old.location || "")) body.location = loc;
  }
  if (v("contact") || v("phone")) {
    const m = { contact: v("contact") };
    if (v("phone")) m.phone = v("phone");
    if (!before || v("contact") !== (before.contact || "") || v("phone") !== (before.phone || "")) body.maintenance = m;
  }
  const tags = v("tags") ? v("tags").split(/[,;，；]\s*/).filter(Boolean) : [];
  if (!before || tags.join(",") !== (before.tags || "").split(/,\s*/).filter(Boolean).join(",")) {
    if (tags.length || before) body.tags = tags;
  }
  return body;
}

export function editForm(root, cam) {
  cameraForm(root, cam);
}

function cameraForm(root, cam) {
  const before = cam ? valuesOf(cam) : null;
  const result = h("div.result#camera-form-result", { role: "status" });
  const rows = FIELDS.map(([name, path, kind]) =>
    h(
      "label",
      { "data-field": path },
      h("span", {}, t(`form.${name}`)),
      input(name, kind, before ? before[name] : ""),
      h("span.field-error", { "data-error-for": path }),
    ),
  );
  const form = h(
    "form.camera-form#camera-form",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
        for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
        result.replaceChildren();
        const body = bodyOf(form, before);
        try {
          const saved = cam
            ? await api.send("PATCH", `/api/v1/cameras/${encodeURIComponent(cam.id)}`, JSON.stringify(body), "application/merge-patch+json")
            : await api.send("POST", "/api/v1/cameras", body);
          clear(result, h("p.ok", {}, t(cam ? "form.saved" : "form.created", { id: saved.id }), " ", h("a", { href: `#/camera/${encodeURIComponent(saved.id)}` }, t("form.open"))));
          if (!cam) form.reset();
        } catch (exc) {
          showFieldErrors(form, exc);
          clear(result, errorNote(exc));
        }
      },
    },
    h("div.form-grid", {}, cam ? rows.slice(1) : rows),
    h("button", { type: "submit", id: "camera-submit" }, t(cam ? "form.save" : "form.register")),
    result,
  );
  clear(root, h("h3", {}, t(cam ? "form.editTitle" : "form.registerTitle")), form);
}

function showFieldErrors(form, exc) {
  for (const [field, message] of Object.entries(exc.fields || {})) {
    // `location.lat`, `tags.2`, `maintenance.phone`: the closest field the form has
    let path = field;
    while (path && !form.querySelector(`[data-error-for="${CSS.escape(path)}"]`)) path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
    if (path === "location") path = "location.lat";
    if (path === "maintenance") path = "maintenance.contact";
    const slot = path && form.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
    if (slot) {
      slot.textContent = message;
      slot.parentElement.classList.add("invalid");
    }
  }
}

function importForm(root) {
  const file = h("input#import-file", { type: "file", accept: ".csv,text/csv,application/json" });
  const report = h("div#import-report");
  const form = h(
    "form#import-form",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        const f = file.files[0];
        if (!f) return;
        report.replaceChildren(h("p.muted", {}, t("loading")));
        const type = f.name.toLowerCase().endsWith(".json") ? "application/json" : "text/csv";
        try {
          const res = await api.send("POST", "/api/v1/cameras/import", await f.arrayBuffer(), type);
          drawReport(report, res);
        } catch (exc) {
          clear(report, errorNote(exc));
        }
      },
    },
    h("label", {}, t("import.file"), file),
    h("button", { type: "submit", id: "import-submit" }, t("import.go")),
  );
  clear(root, h("h3", {}, t("import.title")), h("p.muted", {}, t("import.hint")), form, report);
}

function drawReport(root, res) {
  clear(
    root,
    h("p#import-summary", {}, t("import.result", { created: res.created, failed: res.failed })),
    res.errors.length
      ? h(
          "table.grid#import-errors",
          {},
          h("thead", {}, h("tr", {}, ["import.row", "import.line", "import.field", "import.reason"].map((k) => h("th", {}, t(k))))),
          h("tbody", {}, res.errors.map((e) => h("tr", {}, h("td", {}, e.row), h("td", {}, e.line ?? ""), h("td", {}, e.field ?? ""), h("td", {}, e.reason)))),
        )
      : null,
  );
}

function discoveryForm(root) {
  const select = h("select#discover-network", {}, context.networks.map((n) => option(n.id, named(n), "")));
  const bar = h("progress#discover-progress", { max: 100, value: 0 });
  const pct = h("span#discover-percent", {}, "");
  const status = h("p#discover-status", { role: "status" });
  let poller = null;
  const button = h(
    "button#discover-start",
    {
      type: "button",
      onclick: async () => {
        if (poller) poller.stop();
        status.textContent = "";
        bar.value = 0;
        pct.textContent = "0%";
        try {
          const job = await api.send("POST", `/api/v1/networks/${encodeURIComponent(select.value)}/discover`, {});
          show(job);
          poller = every(JOB_POLL_MS, async () => {
            const now = await api.get(`/api/v1/jobs/${encodeURIComponent(job.id)}`);
            show(now);
            if (now.state !== "running") poller.stop();
          }, { now: false });
        } catch (exc) {
          clear(status, errorNote(exc));
        }
      },
    },
    t("discover.start"),
  );
  function show(job) {
    const p = job.progress;
    const done = p.enriched + p.failed;
    const value = job.state === "running" ? (p.found ? Math.min(99, Math.floor((done / p.found) * 100)) : 0) : 100;
    bar.value = value;
    pct.textContent = `${value}%`;
    status.textContent = t(`discover.${job.state}`, {
      found: fmtNumber(p.found),
      enriched: fmtNumber(p.enriched),
      failed: fmtNumber(p.failed),
      s: job.elapsed_s.toFixed(1),
      error: job.error || "",
    });
    status.dataset.state = job.state;
  }
  clear(root, h("h3", {}, t("discover.title")), h("div.row", {}, h("label", {}, t("filter.network"), select), button), h("div.row", {}, bar, pct), status);
}
