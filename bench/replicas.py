"""Two gateway replicas sharing one registry (issue 11): who probes what, and what it costs each.

Setup: the simulated fleet (`camgw simulate --scale 1.0`, 3,308 ONVIF cameras, 50 ms before every
answer) on the load core; one private redis-server; two `camgw serve` replicas of the shipped
config, both on the server core (the machine has two cores: wall time cannot show a split, CPU
seconds can), sharing the Redis and the credential key as replicas behind a load balancer do.
Replica A runs one discovery of every network through the API; then both are left alone for
`--rounds` health intervals (30 s as shipped). Each network's health rounds are owned by one
replica at a time (a lease in Redis); the table shows per replica and network the rounds run and
cameras probed (`camgw_health_rounds_total`, `camgw_health_probes_total`), and per replica the CPU
seconds of its process tree (the API process and its adapter process) during the window.
"No camera probed twice in a round" holds when the rounds the two ran together are the rounds
the schedule allowed (one per interval per network) and every probe total is rounds x cameras.
Everything on 127.0.0.1; every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from common import (
    SERVER_CORE,
    BenchError,
    GatewayStack,
    discover_all,
    exit_on_sigterm,
    header_lines,
    markdown_table,
    metric_value,
    metrics_text,
    progress,
    tree_cpu_seconds,
)
from discovery import CONFIG, EXPECTED_CAMERAS, SimProcess

from gateway.settings import load_settings

DISCOVERY_TIMEOUT_S = 300.0


def _counts(
    gw: GatewayStack, auth: dict[str, str], networks: list[str]
) -> dict[str, tuple[int, int]]:
    text = metrics_text(gw.base, auth)
    out = {}
    for n in networks:
        rounds = metric_value(text, f'camgw_health_rounds_total{{network="{n}"}}') or 0.0
        probes = metric_value(text, f'camgw_health_probes_total{{network="{n}"}}') or 0.0
        out[n] = (int(rounds), int(probes))
    return out


@dataclass
class Window:
    """What each replica did while both were left alone."""

    seconds: float
    found: dict[str, int]  # cameras per network (discovery)
    rounds: dict[str, dict[str, int]]  # replica -> network -> health rounds
    probes: dict[str, dict[str, int]]  # replica -> network -> cameras probed
    cpu_s: dict[str, float]  # replica -> CPU seconds of its process tree
    problems: list[str]


def measure(rounds: int, log_level: str) -> Window:
    settings = load_settings(CONFIG, use_env=False)
    networks = [n.id for n in settings.networks]
    passwords = {
        n.credentials.password_env: secrets.token_urlsafe(12)
        for n in settings.networks
        if n.credentials is not None and n.credentials.password_env
    }
    sim_env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))} | {
        **passwords,
        "CAMGW_LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory(prefix="camgw-bench-replicas-") as tmp_name, ExitStack() as st:
        tmp = Path(tmp_name)
        progress(f"starting the simulator ({EXPECTED_CAMERAS} ONVIF cameras)")
        sim = SimProcess(tmp / "sim", sim_env, 0.05)
        st.callback(sim.stop)
        sim.start()
        a = GatewayStack(tmp / "a", SERVER_CORE, log_level, CONFIG, passwords)
        st.callback(a.stop)
        a.start()
        b = GatewayStack(tmp / "b", SERVER_CORE, log_level, CONFIG, passwords, shares=a)
        st.callback(b.stop)  # (stopped before a: a's Redis outlives it)
        b.start()
        replicas = {"A": a, "B": b}
        admin = {"Authorization": "Bearer " + a.token("bench-admin", "admin", ["*"])}
        progress("discovery of every network through replica A")
        _, jobs = discover_all(a, admin, networks, timeout_s=DISCOVERY_TIMEOUT_S)
        found = {n: int(jobs[n]["progress"]["enriched"]) for n in networks}
        if sum(found.values()) != EXPECTED_CAMERAS:
            why = {n: (j["state"], j.get("error"), j["failures"][:3]) for n, j in jobs.items()}
            raise BenchError(f"discovery enriched {found}, expected {EXPECTED_CAMERAS}: {why}")
        before = {k: _counts(gw, admin, networks) for k, gw in replicas.items()}
        cpu0 = {k: tree_cpu_seconds(_pid(gw)) for k, gw in replicas.items()}
        window = rounds * max(n.discovery.health_interval_s for n in settings.networks)
        progress(f"watching {rounds} health intervals ({window:.0f} s)")
        t0 = time.monotonic()
        while time.monotonic() - t0 < window:
            time.sleep(1.0)
            for gw in replicas.values():
                if not gw.alive():
                    raise BenchError("a replica died:\n" + "\n".join(gw.problem_lines()[-20:]))
        after = {k: _counts(gw, admin, networks) for k, gw in replicas.items()}
        return Window(
            window,
            found,
            {k: {n: after[k][n][0] - before[k][n][0] for n in networks} for k in replicas},
            {k: {n: after[k][n][1] - before[k][n][1] for n in networks} for k in replicas},
            {k: tree_cpu_seconds(_pid(gw)) - cpu0[k] for k, gw in replicas.items()},
            a.problem_lines() + b.problem_lines(),
        )


def _pid(gw: GatewayStack) -> int:
    assert gw.proc is not None
    return gw.proc.pid


def report(w: Window, interval: dict[str, float]) -> tuple[str, bool]:
    rows, ok = [], True
    for n, cameras in w.found.items():
        rounds = sum(w.rounds[k][n] for k in w.rounds)
        probes = sum(w.probes[k][n] for k in w.probes)
        allowed = math.ceil(w.seconds / interval[n]) + 1  # (a round may end on each edge)
        once = rounds <= allowed and probes == rounds * cameras
        ok = ok and once
        rows.append(
            [
                n,
                f"{cameras:,}",
                " / ".join(str(w.rounds[k][n]) for k in w.rounds),
                " / ".join(f"{w.probes[k][n]:,}" for k in w.probes),
                f"{rounds} (at most {allowed})",
                "yes" if once else "NO",
            ]
        )
    every = sum(sum(p.values()) for p in w.probes.values()) or 1
    columns = ["network", "cameras", "rounds A / B", "probes A / B", "rounds in all"]
    lines = [
        *header_lines(),
        f"\nTwo replicas, one Redis, {EXPECTED_CAMERAS:,} simulated cameras, {w.seconds:.0f} s",
        markdown_table([*columns, "each camera once per round"], rows),
        "",
        markdown_table(
            ["replica", "share of probes", "CPU seconds in the window (API + adapter process)"],
            [
                [k, f"{sum(w.probes[k].values()) / every:.0%}", f"{w.cpu_s[k]:.1f}"]
                for k in w.probes
            ],
        ),
    ]
    if w.problems:
        lines.append("\nlogged at WARNING or above:\n" + "\n".join(w.problems[-20:]))
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=4, help="health intervals watched (>= 2)")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    if args.rounds < 2:
        p.error("--rounds must be at least 2")
    exit_on_sigterm()
    settings = load_settings(CONFIG, use_env=False)
    text, ok = report(
        measure(args.rounds, args.log_level),
        {n.id: n.discovery.health_interval_s for n in settings.networks},
    )
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(2)
