// Pieces several views draw: status badges, names of networks and categories, error notes.
import { h } from "../dom.js";
import { getLang, named, t } from "../i18n.js";
import { context, network } from "../state.js";

export const STATUSES = ["online", "degraded", "offline", "unknown"];
export const LIFECYCLES = ["planned", "under-construction", "in-service", "under-repair", "decommissioned"];
export const STATUS_COLOURS = {
  online: "#15803d",
  degraded: "#d97706",
  offline: "#b91c1c",
  unknown: "#6b7280",
};

export function badge(status) {
  return h(`span.badge.s-${status || "unknown"}`, { "data-status": status || "unknown" }, t(`status.${status || "unknown"}`));
}

// The quality diagnosis's verdict on the picture (docs/quality.md): a badge where the record
// holds one (admins; others where the network shares `image`), with its failing checks.
export const IMAGES = ["ok", "suspect", "faulty"];
export const IMAGE_BADGE = { ok: "s-online", suspect: "s-degraded", faulty: "s-offline" };

export function checkNames(failing) {
  return (failing || []).map((f) => t(`check.${typeof f === "string" ? f : f.check}`)).join(", ");
}

export function imageBadge(image, { compact = false } = {}) {
  if (!image || !image.status) return null;
  const checks = checkNames(image.failing);
  return h(
    `span.badge.img.${IMAGE_BADGE[image.status] || "s-unknown"}`,
    { "data-image": image.status, title: checks ? `${t("field.image")}: ${checks}` : t("field.image") },
    compact ? t(`image.short.${image.status}`) : t(`image.${image.status}`),
  );
}

export function networkName(id) {
  return named(network(id)) || id || "—";
}

// Category names come with the summary's inventory rows (both languages).
export const categories = new Map();
export function rememberCategories(inventory) {
  for (const row of inventory || []) categories.set(row.category, row);
}
export function categoryName(id) {
  const row = categories.get(id);
  if (!row) return id || "—";
  return (getLang() === "zh" && row.category_name_zh) || row.category_name || id;
}

export function errorNote(exc) {
  return h("p.error", { role: "alert" }, exc && exc.plain ? exc.plain : String(exc));
}

export function heading(key, ...extra) {
  return h("h2", {}, t(key), ...extra);
}

// The incident or ticket reference given for a network this session (asked once, then reused).
export const reasons = new Map();

export function reasonRequired(networkId) {
  const n = network(networkId);
  return Boolean(n && n.reason_required);
}

export function visibleNetworks() {
  return context.networks;
}

// Ask for an incident or ticket reference (a <dialog>): resolves to the text, or null.
export function askReason(networkId) {
  return new Promise((resolve) => {
    const input = h("input#reason-input", { required: true, maxlength: 200, "aria-label": t("snap.reason") });
    const dialog = h(
      "dialog#reason-dialog",
      {},
      h(
        "form",
        {
          method: "dialog",
          onsubmit: (ev) => {
            ev.preventDefault();
            const value = input.value.trim();
            if (!value) return;
            dialog.close();
            dialog.remove();
            resolve(value);
          },
        },
        h("p", {}, t("snap.reasonPrompt", { network: networkName(networkId) })),
        input,
        h(
          "div.row",
          {},
          h("button", { type: "submit", id: "reason-ok" }, t("ok")),
          h(
            "button",
            {
              type: "button",
              onclick: () => {
                dialog.close();
                dialog.remove();
                resolve(null);
              },
            },
            t("cancel"),
          ),
        ),
      ),
    );
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

export function loading() {
  return h("p.muted", {}, t("loading"));
}
