// The cameras on a map, coloured by status; a camera's name and a link to its detail on click.
import * as api from "../api.js";
import { clear, h, option } from "../dom.js";
import { fmtNumber, named, t } from "../i18n.js";
import { every } from "../poll.js";
import { createMap } from "../plot.js";
import { context } from "../state.js";
import { STATUSES, badge, errorNote } from "./common.js";

export const MAP_POLL_MS = 30_000;

export async function loadAll(network) {
  return api.poll(`/api/v1/cameras${api.qs({ network, limit: 10000 })}`);
}

export default function mapView(root) {
  const error = h("div");
  const legend = h("div.legend#map-legend");
  const picked = h("div.picked#map-picked");
  const host = h("div");
  let network = "";
  const select = h(
    "select#map-network",
    {
      onchange: () => {
        network = select.value;
        refresh(true);
      },
    },
    option("", t("filter.all"), ""),
    context.networks.map((n) => option(n.id, named(n), "")),
  );
  clear(root, h("h2", {}, t("map.title")), h("div.row", {}, h("label", {}, t("filter.network"), select), legend), error, host, picked);
  const map = createMap(host, {
    onSelect: (cam) =>
      clear(picked, badge(cam.status), " ", h("a", { href: `#/camera/${encodeURIComponent(cam.id)}` }, cam.name || cam.id), " ", h("span.muted", {}, cam.location?.address || "")),
  });
  async function refresh(refit = false) {
    try {
      const { data, changed } = await loadAll(network);
      error.replaceChildren();
      if (!changed && !refit) return;
      map.setPoints(data.items, { refit });
      const counts = {};
      for (const c of data.items) counts[c.status || "unknown"] = (counts[c.status || "unknown"] || 0) + 1;
      const unplaced = data.items.filter((c) => !c.location).length;
      clear(legend, STATUSES.map((s) => [badge(s), " ", fmtNumber(counts[s] || 0), " "]), unplaced ? h("span.muted", {}, t("map.unplaced", { n: unplaced })) : null);
    } catch (exc) {
      clear(error, errorNote(exc));
    }
  }
  every(MAP_POLL_MS, () => refresh(false), { now: false });
  refresh(true);
}
