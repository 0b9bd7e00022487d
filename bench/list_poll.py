"""Dashboard polling of the full camera list: GET /api/v1/cameras?limit=10000 on the gateway
versus nginx serving the very same bytes as a static file, each as a full 200 and as a 304.

Setup: a private redis-server, the inventory's 3,308 cameras imported through the real API,
a viewer token granted every network ('*'). The list is fetched once and written to nginx's root.
Cases run interleaved (round 1: every case, round 2: every case, ...), so drift hits all alike.
The p99 aim is judged with 4 pollers: closed-loop wrk at saturation has mean latency
connections / throughput by construction, which says nothing about a dashboard's wait.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import orjson
from common import (
    LOAD_CORE,
    SERVER_CORE,
    BenchError,
    GatewayStack,
    StaticNginx,
    WrkLoad,
    WrkResult,
    exit_on_sigterm,
    fmt_spread,
    header_lines,
    http_request,
    markdown_table,
    progress,
    run_wrk,
    spread,
    write_wrk_script,
)

from gateway.demo import fleet_for, fleet_rows

EXPECTED_CAMERAS = 3_308
LIST_PATH = "/api/v1/cameras?limit=10000"
STATIC_NAME = "cameras.json"
P99_AIM_MS = 20.0  # gateway full-list p99
RATIO_304_AIM = 0.25  # gateway 304 req/s as a share of nginx's

CASES: list[tuple[str, str, int]] = [  # (key, label, expected status)
    ("gw200", "gateway 200 full list", 200),
    ("gw304", "gateway 304", 304),
    ("ng200", "nginx 200 (same bytes)", 200),
    ("ng304", "nginx 304", 304),
    ("gw200q", "gateway 200, 4 dashboards", 200),
    ("ng200q", "nginx 200, 4 dashboards", 200),
]
BASELINE = {"gw200": "ng200", "gw304": "ng304", "gw200q": "ng200q"}
# The p99 aim is a dashboard's view: a few pollers, not a server saturated by 64 connections
# (closed-loop wrk at saturation has mean latency = connections / throughput by construction).
QUIET_CONNECTIONS = 4
P99_AIM_CASE = "gw200q"


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise BenchError(msg)


def register_fleet(gw: GatewayStack, admin: str) -> int:
    settings = gw.settings()
    fleet = fleet_for(settings, scale=1.0)
    _check(len(fleet) == EXPECTED_CAMERAS, f"fleet_for gave {len(fleet)} cameras")
    rows = [r.model_dump(mode="json", exclude_none=True) for r in fleet_rows(fleet)]
    body = orjson.dumps(rows)
    reply = http_request(
        "POST",
        f"{gw.base}/api/v1/cameras/import",
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        body=body,
        timeout=120,
    )
    _check(reply.status == 200, f"import answered {reply.status}: {reply.body[:500]!r}")
    result = orjson.loads(reply.body)
    _check(
        result["created"] == EXPECTED_CAMERAS and result["failed"] == 0,
        f"import created {result['created']}, failed {result['failed']}: {result['errors'][:3]}",
    )
    return len(body)


def fetch_list(gw: GatewayStack, viewer: str) -> tuple[bytes, str]:
    """The full list as the viewer sees it (identity encoding, as wrk asks), and its ETag."""
    auth = {"Authorization": f"Bearer {viewer}"}
    reply = http_request("GET", gw.base + LIST_PATH, headers=auth)
    _check(reply.status == 200, f"list answered {reply.status}: {reply.body[:500]!r}")
    _check("content-encoding" not in reply.headers, "list came encoded without Accept-Encoding")
    page = orjson.loads(reply.body)
    _check(
        len(page["items"]) == EXPECTED_CAMERAS and page["total"] == EXPECTED_CAMERAS,
        f"list holds {len(page['items'])} items (total {page['total']}), "
        f"expected {EXPECTED_CAMERAS}",
    )
    _check(page["next_cursor"] is None, "list is paged although limit=10000")
    etag = reply.headers.get("etag", "")
    _check(bool(etag), "list has no ETag")
    again = http_request("GET", gw.base + LIST_PATH, headers=auth | {"If-None-Match": etag})
    _check(again.status == 304, f"gateway If-None-Match answered {again.status}, not 304")
    return reply.body, etag


def check_nginx(nginx: StaticNginx, body: bytes) -> str:
    url = f"{nginx.base}/{STATIC_NAME}"
    reply = http_request("GET", url)
    _check(reply.status == 200, f"nginx answered {reply.status}")
    _check(reply.body == body, "nginx serves different bytes than the gateway")
    etag = reply.headers.get("etag", "")
    _check(bool(etag), "nginx sent no ETag")
    again = http_request("GET", url, headers={"If-None-Match": etag})
    _check(again.status == 304, f"nginx If-None-Match answered {again.status}, not 304")
    return etag


def verify(key: str, status: int, result: WrkResult, body_len: int) -> None:
    """wrk counts a 200 where a 304 was meant as a success; the bytes per response tell them
    apart (a 304 carries headers only, a 200 the whole list). wrk prints bytes read with two
    decimals (e.g. "9.63GB"), hence the 1% allowance."""
    per = result.bytes_per_response
    if status == 200:
        _check(per >= 0.99 * body_len, f"{key}: {per:.0f} bytes per response, body {body_len}")
    else:
        _check(per < 1024, f"{key}: {per:.0f} bytes per response: not 304s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="runs per case (>= 3)")
    p.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    p.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds per server")
    p.add_argument("--log-level", default="WARNING", help="CAMGW_LOG_LEVEL of the gateway")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3 (min / median / max)")
    exit_on_sigterm()
    load = WrkLoad(threads=2, connections=64, seconds=args.seconds)

    with (
        tempfile.TemporaryDirectory(prefix="camgw-bench-list-") as tmp_name,
        ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        progress("starting redis-server and camgw serve")
        gw = GatewayStack(tmp / "gateway", log_level=args.log_level)
        stack.callback(gw.stop)
        gw.start()
        admin = gw.token("bench-admin", "admin", ["*"])
        viewer = gw.token("bench-viewer", "viewer", ["*"])

        progress(f"importing {EXPECTED_CAMERAS} cameras through POST /api/v1/cameras/import")
        import_bytes = register_fleet(gw, admin)
        body, gw_etag = fetch_list(gw, viewer)

        www = tmp / "www"
        www.mkdir()
        (www / STATIC_NAME).write_bytes(body)
        progress("starting nginx")
        nginx = StaticNginx(tmp / "nginx", www)
        stack.callback(nginx.stop)
        nginx.start()
        ng_etag = check_nginx(nginx, body)

        auth = {"Authorization": f"Bearer {viewer}"}
        targets = {  # key -> (url, request headers)
            "gw200": (gw.base + LIST_PATH, auth),
            "gw304": (gw.base + LIST_PATH, auth | {"If-None-Match": gw_etag}),
            "ng200": (f"{nginx.base}/{STATIC_NAME}", auth),
            "ng304": (f"{nginx.base}/{STATIC_NAME}", auth | {"If-None-Match": ng_etag}),
        }
        targets["gw200q"], targets["ng200q"] = targets["gw200"], targets["ng200"]
        quiet = WrkLoad(threads=2, connections=QUIET_CONNECTIONS, seconds=args.seconds)
        pids = {
            "gw": gw.proc.pid if gw.proc else None,
            "ng": nginx.proc.pid if nginx.proc else None,
        }
        scripts = {k: write_wrk_script(tmp / f"{k}.lua", h) for k, (_, h) in targets.items()}

        if args.warmup > 0:
            warm = WrkLoad(load.threads, load.connections, args.warmup)
            for key in ("gw200", "ng200"):
                progress(f"warm-up {key} {args.warmup}s")
                run_wrk(targets[key][0], scripts[key], warm)

        results: dict[str, list[WrkResult]] = {k: [] for k, _, _ in CASES}
        for rnd in range(1, args.runs + 1):
            for key, label, status in CASES:
                progress(f"round {rnd}/{args.runs}: {label} ({load.seconds}s)")
                case_load = quiet if key.endswith("q") else load
                r = run_wrk(targets[key][0], scripts[key], case_load, server_pid=pids[key[:2]])
                verify(key, status, r, len(body))
                results[key].append(r)
            _check(gw.alive(), "the gateway died:\n" + "\n".join(gw.problem_lines()[-20:]))
            _check(nginx.alive(), "nginx died")

        problems = gw.problem_lines()
        print(
            report(
                results,
                load,
                body_len=len(body),
                import_bytes=import_bytes,
                log_level=args.log_level,
                problems=problems,
            ),
            flush=True,
        )
    return 0


def report(
    results: dict[str, list[WrkResult]],
    load: WrkLoad,
    *,
    body_len: int,
    import_bytes: int,
    log_level: str,
    problems: list[str],
) -> str:
    def ratios(key: str) -> list[float]:
        base = results[BASELINE[key]]
        return [r.rps / b.rps for r, b in zip(results[key], base, strict=True)]

    rows = []
    for key, label, _ in CASES:
        rs = results[key]
        cpu = [r.server_us_per_request for r in rs]
        rows.append(
            [
                label,
                fmt_spread((r.rps for r in rs), ",.0f"),
                fmt_spread((r.latency_ms[50] for r in rs), ".2f"),
                fmt_spread((r.latency_ms[99] for r in rs), ".2f"),
                fmt_spread((c for c in cpu if c is not None), ".1f") if all(cpu) else "n/a",
                fmt_spread(ratios(key), ".0%") if key in BASELINE else "baseline",
            ]
        )
    runs = len(results["gw200"])
    table = markdown_table(
        [
            "case",
            "req/s",
            "p50 ms",
            "p99 ms",
            "server CPU us/req",
            "gateway/nginx req/s",
        ],
        rows,
    )
    p99 = spread(r.latency_ms[99] for r in results[P99_AIM_CASE])[1]
    ratio304 = spread(ratios("gw304"))[1]
    rps200 = spread(r.rps for r in results["gw200"])[1]
    ng_p99 = spread(r.latency_ms[99] for r in results["ng200"])[1]
    out = [
        "",
        f"## list_poll: dashboard polling of the full camera list (GET {LIST_PATH})",
        "",
        *header_lines(),
        f"fleet: {EXPECTED_CAMERAS:,} cameras (inventory mix, demo.fleet_for scale=1.0), "
        f"registered via POST /api/v1/cameras/import ({import_bytes:,}-byte JSON array)",
        f"list: viewer token granted '*', identity encoding (wrk sends no Accept-Encoding), "
        f"body {body_len:,} bytes; nginx serves the same bytes as a static file",
        f"gateway: `camgw serve`, shipped config (access_log = true), "
        f"CAMGW_LOG_LEVEL={log_level}"
        + (" (access lines not emitted)" if log_level.upper() != "INFO" else ""),
        "nginx: worker_processes 1, access_log off, sendfile on, own ETag for the 304 case",
        f"load: {load.describe()} (the '4 dashboards' rows: -c{QUIET_CONNECTIONS}); "
        f"server on core {SERVER_CORE}, wrk on core {LOAD_CORE}; "
        f"{runs} runs per case, interleaved; cells are min / median / max",
        "",
        table,
        "",
        f"aim: gateway 200 p99 with {QUIET_CONNECTIONS} pollers (median) {p99:.1f} ms vs "
        f"{P99_AIM_MS:.0f} ms: " + ("aim met" if p99 <= P99_AIM_MS else "aim missed"),
        f"aim: gateway/nginx 304 req/s (median) {ratio304:.0%} vs {RATIO_304_AIM:.0%}: "
        + ("aim met" if ratio304 >= RATIO_304_AIM else "aim missed"),
        f"note: closed-loop load; at saturation mean latency ~ connections / req/s "
        f"({load.connections} / {rps200:,.0f} = {load.connections / rps200 * 1000:.1f} ms for "
        f"gateway 200); nginx 200 p99 on the same bytes: {ng_p99:.1f} ms",
        f"errors: no non-2xx/3xx responses, no socket errors; gateway warnings/errors "
        f"logged: {len(problems)}",
    ]
    out += [f"  {ln[:300]}" for ln in problems[:10]]
    return "\n".join(out)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"list_poll: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
