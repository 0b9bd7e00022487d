// Timers that belong to the view on screen: a view's polls stop when another view replaces it.
// While the tab is hidden, polls wait (nothing is drawn, nothing needs fetching).
import { markStale } from "./api.js";

let timers = [];

export function every(ms, fn, { now = true } = {}) {
  let stopped = false;
  let timer = 0;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (exc) {
        console.warn("poll failed", exc);
      }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  const handle = {
    ms,
    stop() {
      stopped = true;
      clearTimeout(timer);
      timers = timers.filter((other) => other !== handle);
    },
  };
  timers.push(handle);
  if (now) run();
  else timer = setTimeout(run, ms);
  return handle;
}

export function stopAll() {
  for (const handle of [...timers]) handle.stop();
  timers = [];
}

// The header's "stale" sign: while the view on screen polls, no successful answer for three
// of its polling periods (at least `floorMs`). A view that does not poll is never stale.
let staleTimer = 0;
export function watchStale(conn, floorMs) {
  clearInterval(staleTimer);
  staleTimer = setInterval(() => {
    if (!timers.length || !conn.lastOk) return;
    const limit = Math.max(floorMs, 3 * Math.min(...timers.map((handle) => handle.ms)));
    if (Date.now() - conn.lastOk > limit) markStale();
  }, 5000);
}
