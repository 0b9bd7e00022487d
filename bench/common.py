"""Shared benchmark plumbing: child processes (started pinned, always stopped), the gateway stack
(private redis-server + key file + `camgw serve`), a static nginx, wrk runs and their parsing,
min/median/max formatting and the machine/version header every table starts with.

Conventions (see PERF-NOTES.md): everything on 127.0.0.1; the server under test on core 0 and the
load generator on core 1; each figure min / median / max over at least 3 runs; ratios computed
from runs of the same invocation, never across invocations.
"""

from __future__ import annotations

import asyncio
import ctypes
import http.client
import json
import os
import platform
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from gateway.app import redis_client
from gateway.auth import TokenStore
from gateway.models import Role
from gateway.redis_server import RedisServer
from gateway.redis_server import free_port as _free_port
from gateway.settings import Settings, load_settings
from gateway.vault import create_key_file

ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"
SERVER_CORE = 0  # the server under test
LOAD_CORE = 1  # the load generator


class BenchError(RuntimeError):
    """A benchmark precondition or check failed; the run's figures must not be trusted."""


_STEP = ["start"]  # the last progress line (PeakWatch names the step a peak came in)


def progress(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the tables."""
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    _STEP[0] = line
    print(line, file=sys.stderr, flush=True)


class PeakWatch:
    """The step of a run in which a process's RSS peaked: VmHWM polled beside the run, the step
    named by the progress line printed last (RSS sampled between steps did not place a peak
    of 1.4-1.6 GiB that came in two of nine 100,000-camera runs)."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid, self.every_s = pid, every_s
        self.kib, self.step = 0, ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="peak-watch", daemon=True)

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                kib = proc_status_kib(self.pid, "VmHWM")
            except (OSError, BenchError):
                return  # (the process ended)
            if kib > self.kib:
                self.kib, self.step = kib, _STEP[0]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks stop what the benchmark started."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# -- CPU pinning and child processes -----------------------------------------------------------


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(core: int | None, argv: Sequence[str]) -> list[str]:
    """`argv` run on one core (taskset execs, so the pid is the program's own)."""
    if core is None or not can_pin():
        return list(argv)
    return ["taskset", "-c", str(core), *argv]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """If the benchmark itself is killed (SIGKILL), the child gets SIGTERM instead of leaking."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_process(
    argv: Sequence[str],
    *,
    core: int | None,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            pinned(core, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded at this point
        )


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; safe to call twice."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    return _free_port(LOCALHOST)


# -- CPU accounting ------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of one process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by `pid` and its live descendants (nginx: master + workers)."""
    parents: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents.setdefault(st[0], []).append(int(entry.name))
                cpu[int(entry.name)] = st[1]
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(parents.get(p, []))
    return total


# -- plain HTTP for setup and checks ------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


def http_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> Reply:
    m = re.match(r"^http://([^/:]+):(\d+)(/.*)$", url)
    if m is None:
        raise ValueError(f"not an http://host:port/path URL: {url}")
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    try:
        conn.request(method, m.group(3), body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            if http_request("GET", url, timeout=1.0).status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not ready at {url} in {timeout}s:\n{log_tail(log)}")
        time.sleep(0.05)


def loop_delay_counts(base: str, headers: dict[str, str]) -> list[int]:
    """The gateway's event-loop delay histogram (camgw_event_loop_delay_seconds), per bucket
    (gateway.loop_monitor.BUCKETS, then +Inf): two readings' difference is one run's."""
    # (the first reading after a 100,000-camera import waits for the catalog's full load)
    reply = http_request("GET", f"{base}/metrics", headers=headers, timeout=120)
    if reply.status != 200:
        raise BenchError(f"/metrics answered {reply.status}")
    cumulative = [
        int(float(m.group(1)))
        for m in re.finditer(
            r'^camgw_event_loop_delay_seconds_bucket\{le="[^"]+"\} (\S+)$',
            reply.body.decode(),
            re.MULTILINE,
        )
    ]
    if not cumulative:
        raise BenchError("/metrics has no camgw_event_loop_delay_seconds")
    return [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]


def metric_value(text: str, sample: str) -> float | None:
    """One sample's value from a /metrics text (`sample` as printed, labels included, e.g.
    'camgw_catalog_rebuild_seconds_count'); None when absent."""
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def metrics_text(base: str, headers: dict[str, str]) -> str:
    reply = http_request("GET", f"{base}/metrics", headers=headers)
    if reply.status != 200:
        raise BenchError(f"/metrics answered {reply.status}")
    return reply.body.decode()


def api_object(body: bytes) -> dict:  # type: ignore[type-arg]
    """An API answer that must be a JSON object."""
    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise BenchError("API answered something else than an object")
    return data


# -- the gateway stack ---------------------------------------------------------------------------


def camgw_binary() -> str:
    """The console script of the venv running the benchmark (`.venv/bin/camgw`)."""
    here = Path(sys.executable).parent / "camgw"
    found = str(here) if here.exists() else shutil.which("camgw")
    if found is None:
        raise BenchError("camgw not installed in this environment (run `make bench`)")
    return found


@dataclass
class GatewayStack:
    """A private redis-server, a fresh credential key, and `camgw serve` pinned to `core`.

    The gateway runs the shipped config (config/camgw.toml, access_log = true); `log_level` is
    CAMGW_LOG_LEVEL. At WARNING the access logger is disabled by level, so no line is emitted.
    """

    workdir: Path
    core: int | None = SERVER_CORE
    log_level: str = "WARNING"
    config: Path = ROOT / "config" / "camgw.toml"
    # Extra environment for `camgw serve` (e.g. the camera passwords the config's
    # `password_env` names); applied after CAMGW_*/REDIS_* are cleared from the inherited one.
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    redis: RedisServer | None = field(default=None, repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "gateway.log"

    shares: GatewayStack | None = field(default=None, repr=False)  # a replica: its Redis, key

    @property
    def key_file(self) -> Path:
        """The credential key `camgw serve` was started with (it also keys the audit chain)."""
        return self.shares.key_file if self.shares is not None else self.workdir / "camgw.key"

    @property
    def redis_url(self) -> str:
        if self.redis is None:
            raise BenchError("redis-server not started")
        return self.redis.url

    def settings(self) -> Settings:
        return load_settings(self.config, use_env=False)

    def start(self) -> GatewayStack:
        if not self.settings().server.access_log:
            raise BenchError(f"{self.config} has access_log off; benchmarks keep it on")
        self.workdir.mkdir(parents=True, exist_ok=True)
        key_file = self.key_file
        if self.shares is not None:  # another replica of the same registry
            self.redis = self.shares.redis
        else:
            self.redis = RedisServer(self.workdir / "redis", appendonly=False).start()
            create_key_file(key_file)
        self.port = free_port()
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))}
            | {
                "REDIS_URL": self.redis_url,
                "CAMGW_KEY_FILE": str(key_file),
                "CAMGW_CONFIG": str(self.config),
                "CAMGW_LOG_LEVEL": self.log_level,
            }
            | self.extra_env
        )
        self.proc = start_process(
            [camgw_binary(), "serve", "--host", LOCALHOST, "--port", str(self.port)],
            core=self.core,
            log=self.log,
            env=env,
            cwd=self.workdir,
        )
        wait_http(f"{self.base}/readyz", self.proc, self.log, "camgw serve")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def token(self, name: str, role: str, networks: list[str]) -> str:
        """A new API token, created straight in the registry Redis (as `camgw token create`)."""
        prefix = self.settings().redis.prefix

        async def create() -> str:
            client = redis_client(self.redis_url)
            try:
                token, _ = await TokenStore(client, prefix).create(
                    name, Role(role), networks, "bench"
                )
                return token
            finally:
                await client.aclose()

        return asyncio.run(create())

    def problem_lines(self) -> list[str]:
        """What the gateway logged at WARNING or above (and anything that is not a JSON line,
        such as a traceback printed outside the logging setup)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        out = []
        for ln in text.splitlines():
            if not ln.strip():
                continue
            try:
                level = str(orjson.loads(ln).get("level", ""))
            except (orjson.JSONDecodeError, AttributeError):
                level = "?"
            if level not in ("debug", "info"):
                out.append(ln)
        return out

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self.redis is not None and self.shares is None:  # (the first replica stops it)
            self.redis.stop()
        self.redis = None


# -- discovery through the API -------------------------------------------------------------------


def adapter_states(gw: GatewayStack, auth: dict[str, str]) -> str:
    """What GET /api/v1/networks says each adapter is doing (for failure messages)."""
    try:
        reply = http_request("GET", f"{gw.base}/api/v1/networks", headers=auth)
        nets = orjson.loads(reply.body)
        items = nets.get("items", nets) if isinstance(nets, dict) else nets
        out = []
        for n in items:
            a = n.get("adapter") or {}
            last = a.get("last_job") or {}
            out.append(
                f"{n.get('id')}: {a.get('state')} (last job {last.get('id')} "
                f"{last.get('state')}, {last.get('progress')})"
            )
        return "; ".join(out)
    except (OSError, ValueError, AttributeError) as exc:
        return f"unavailable ({exc!r})"


def discover_all(
    gw: GatewayStack,
    auth: dict[str, str],
    networks: Sequence[str],
    *,
    timeout_s: float,
    poll_s: float = 0.1,
    check: Callable[[], None] | None = None,
) -> tuple[float, dict[str, dict]]:  # type: ignore[type-arg]
    """POST /api/v1/networks/{id}/discover for every network (an admin's `auth`), then
    GET /api/v1/jobs/{id} every `poll_s` until every job is over; `check` runs at each poll
    (raise to stop: another process died). Returns the wall-clock time of the first POST and
    each network's job as last read."""
    t0 = time.time()
    jobs: dict[str, dict] = {}  # type: ignore[type-arg]
    for net in networks:
        reply = http_request("POST", f"{gw.base}/api/v1/networks/{net}/discover", headers=auth)
        if reply.status != 202:
            raise BenchError(f"discover {net} answered {reply.status}: {reply.body!r}")
        jobs[net] = api_object(reply.body)
        if jobs[net]["state"] != "running":
            raise BenchError(f"{net}: new job is {jobs[net]['state']}")
    deadline = time.monotonic() + timeout_s
    pending = set(networks)
    while pending:
        time.sleep(poll_s)
        for net in sorted(pending):
            reply = http_request("GET", f"{gw.base}/api/v1/jobs/{jobs[net]['id']}", headers=auth)
            if reply.status != 200:
                raise BenchError(f"job {net} answered {reply.status}: {reply.body!r}")
            jobs[net] = api_object(reply.body)
            # Over once it has left `running` *and* says when: the gateway answers from the
            # running job, which is `done` a moment before its end is recorded.
            if jobs[net]["state"] != "running" and jobs[net].get("finished_at"):
                pending.discard(net)
        if not gw.alive():
            raise BenchError("the gateway died:\n" + "\n".join(gw.problem_lines()[-20:]))
        if check is not None:
            check()
        if time.monotonic() > deadline:
            prog = {n: jobs[n]["progress"] for n in pending}
            raise BenchError(
                f"discovery not done in {timeout_s:.0f}s per GET /api/v1/jobs: {prog}; "
                f"adapter states per GET /api/v1/networks: {adapter_states(gw, auth)}"
            )
    return t0, jobs


# -- a static nginx ------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        raise BenchError("nginx not found (Debian: apt-get install nginx-light; or `make bench`)")
    return found


@dataclass
class StaticNginx:
    """nginx serving `root` as static files: one worker, no access log, everything in `workdir`.

    Its own ETag ("mtime-size") and If-None-Match handling give the 304 case. Keep-alive
    requests per connection are unbounded-ish (aiohttp never closes a keep-alive connection).
    """

    workdir: Path
    root: Path
    core: int | None = SERVER_CORE
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "nginx-error.log"

    def config_text(self) -> str:
        w = self.workdir
        user = ""
        if os.geteuid() == 0:  # workers would run as nobody; the temp dirs are private
            user = f"user {pwd.getpwuid(0).pw_name};\n"
        temps = "\n".join(
            f"    {name}_temp_path {w / ('tmp-' + name)};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""# camgw benchmark: static files on {LOCALHOST}:{self.port}
{user}worker_processes 1;
daemon off;
pid {w / "nginx.pid"};
error_log {self.log} warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
{temps}
    types {{
        application/json json;
        image/jpeg jpg jpeg;
    }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server {{
        listen {LOCALHOST}:{self.port};
        root {self.root};
    }}
}}
"""

    def start(self) -> StaticNginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config_text())
        argv = [nginx_binary(), "-p", str(self.workdir), "-c", str(conf), "-e", str(self.log)]
        check = subprocess.run(
            [*argv, "-t", "-q"], capture_output=True, text=True, timeout=10, check=False
        )
        if check.returncode != 0:
            raise BenchError(f"nginx config test failed:\n{check.stderr}")
        self.proc = start_process(argv, core=self.core, log=self.workdir / "nginx.out", env=None)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"nginx exited with {self.proc.returncode}:\n{log_tail(self.log)}")
            try:
                http_request("GET", f"{self.base}/", timeout=1.0)  # any status: it answers
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"nginx not answering in {timeout}s:\n{log_tail(self.log)}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)  # SIGTERM: fast shutdown of master and worker
        self.proc = None


# -- wrk -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    bytes_read: float
    rps: float
    latency_ms: dict[int, float]  # percentile -> ms (50, 75, 90, 99)
    non_2xx_3xx: int
    socket_errors: dict[str, int]  # connect, read, write, timeout
    server_cpu_s: float | None = None  # CPU the server process tree used during the run
    output: str = ""

    @property
    def bytes_per_response(self) -> float:
        return self.bytes_read / self.requests if self.requests else 0.0

    @property
    def server_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6


_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if m is None:
        raise BenchError(f"wrk: unreadable time {text!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMGTP]?B)", text)
    if m is None:
        raise BenchError(f"wrk: unreadable size {text!r}")
    return float(m.group(1)) * _BYTE_UNITS[m.group(2)]


def parse_wrk(text: str) -> WrkResult:
    """Parse `wrk --latency` output (wrk 4.x)."""
    done = re.search(r"^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+[KMGTP]?B) read", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if done is None or rps is None:
        raise BenchError(f"wrk output not understood:\n{text}")
    latency = {
        int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", text, re.M)
    }
    if set(latency) != {50, 75, 90, 99}:
        raise BenchError(f"wrk latency distribution missing (use --latency):\n{text}")
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if sock is not None:
        errors = dict(zip(errors, map(int, sock.groups()), strict=True))
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2)) / 1e3,
        bytes_read=_bytes(done.group(3)),
        rps=float(rps.group(1)),
        latency_ms=latency,
        non_2xx_3xx=int(non.group(1)) if non else 0,
        socket_errors=errors,
        output=text,
    )


def lua_string(value: str) -> str:
    """A double-quoted Lua string literal holding `value` (bytes outside printable ASCII, quotes
    and backslashes as decimal escapes)."""
    out = []
    for b in value.encode():
        ch = chr(b)
        out.append(ch if 32 <= b < 127 and ch not in '"\\' else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def write_wrk_script(
    path: Path, headers: dict[str, str], paths: Sequence[str] | None = None
) -> Path:
    """A wrk Lua script that sets request headers (no per-response Lua: wrk stays fast) and,
    with `paths`, sends them in turn, each wrk thread from the first (the URL's path unused)."""
    lines = ['wrk.method = "GET"']
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    if paths:
        lines += [
            "local paths = {" + ", ".join(lua_string(x) for x in paths) + "}",
            "local at = 0",
            "request = function()",
            "  at = at % #paths + 1",
            "  return wrk.format(nil, paths[at])",
            "end",
        ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # it may hold a token
    return path


@dataclass(frozen=True)
class WrkLoad:
    threads: int = 2
    connections: int = 64
    seconds: int = 10
    timeout_s: int | None = None  # wrk's --timeout (its own default: 2 s, then a socket error)

    def describe(self) -> str:
        timeout = f" --timeout {self.timeout_s}s" if self.timeout_s else ""
        return f"wrk -t{self.threads} -c{self.connections} -d{self.seconds}s{timeout} --latency"


def run_wrk(
    url: str,
    script: Path,
    load: WrkLoad,
    *,
    server_pid: int | None = None,
    core: int | None = LOAD_CORE,
) -> WrkResult:
    """One wrk run; fails loudly on any non-2xx/3xx response or socket error."""
    argv = pinned(
        core,
        [
            "wrk",
            f"-t{load.threads}",
            f"-c{load.connections}",
            f"-d{load.seconds}s",
            *([f"--timeout={load.timeout_s}s"] if load.timeout_s else []),
            "--latency",
            "-s",
            str(script),
            url,
        ],
    )
    limit = load.seconds + (load.timeout_s or 0) + 30
    cpu0 = tree_cpu_seconds(server_pid) if server_pid else None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish in {limit}s") from exc
    cpu1 = tree_cpu_seconds(server_pid) if server_pid else None
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result = parse_wrk(done.stdout)
    if result.non_2xx_3xx:
        raise BenchError(
            f"{url}: {result.non_2xx_3xx} non-2xx/3xx responses of {result.requests} "
            f"during wrk:\n{done.stdout}"
        )
    if any(result.socket_errors.values()):
        raise BenchError(f"{url}: socket errors {result.socket_errors} during wrk:\n{done.stdout}")
    if cpu0 is not None and cpu1 is not None:
        result = WrkResult(**{**result.__dict__, "server_cpu_s": cpu1 - cpu0})
    return result


# -- figures -------------------------------------------------------------------------------------


def spread(values: Iterable[float]) -> tuple[float, float, float]:
    vals = list(values)
    return min(vals), statistics.median(vals), max(vals)


def fmt_spread(values: Iterable[float], fmt: str = ",.0f") -> str:
    """'min / median / max', each formatted with `fmt` (a format spec such as ',.0f' or '.0%')."""
    lo, mid, hi = spread(values)
    return f"{lo:{fmt}} / {mid:{fmt}} / {hi:{fmt}}"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), sep, *(line(r) for r in rows)])


# -- config files --------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {type(v).__name__}")


def toml_lines(d: dict[str, Any], path: list[str], out: list[str]) -> None:
    """`d` (as tomllib reads a config: tables, arrays of tables, plain values) appended to
    `out` as TOML lines; `path` is the table `d` is (empty at the top)."""

    def is_table_array(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    for k, v in d.items():
        if not isinstance(v, dict) and not is_table_array(v):
            out.append(f"{k} = {_toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"\n[{'.'.join([*path, k])}]")
            toml_lines(v, [*path, k], out)
    for k, v in d.items():
        if is_table_array(v):
            for item in v:
                out.append(f"\n[[{'.'.join([*path, k])}]]")
                toml_lines(item, [*path, k], out)


# -- machine and versions ------------------------------------------------------------------------


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def tool_versions() -> dict[str, str]:
    redis = _first_line(["redis-server", "--version"])
    nginx = _first_line([nginx_binary(), "-v"])
    wrk = _first_line(["wrk", "-v"])
    m_redis = re.search(r"v=(\S+)", redis)
    m_nginx = re.search(r"nginx/(\S+)", nginx)
    m_wrk = re.match(r"wrk (\S+)", wrk)
    return {
        "Python": platform.python_version(),
        "aiohttp": _pkg("aiohttp"),
        "redis-py": _pkg("redis"),
        "redis-server": m_redis.group(1) if m_redis else redis,
        "nginx": m_nginx.group(1) if m_nginx else nginx,
        "wrk": m_wrk.group(1) if m_wrk else wrk,
        "camgw": _pkg("camgw"),
    }


def machine() -> str:
    model = "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0))
    return (
        f"{os.cpu_count()} cores ({usable} usable), {model}; "
        f"{platform.system()} {platform.release()}"
    )


def header_lines() -> list[str]:
    v = tool_versions()
    lines = [f"machine: {machine()}", "versions: " + ", ".join(f"{k} {x}" for k, x in v.items())]
    if not can_pin():
        lines.append("WARNING: fewer than 2 usable cores or no taskset: processes NOT pinned")
    return lines


# -- additions for bench/snapshots.py (generic; any benchmark may use them) ----------------------


def run_pinned(
    argv: Sequence[str], *, core: int | None, stdin: bytes | None, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` pinned to `core`, feeding `stdin` (secrets go there, never on the command
    line), and wait at most `timeout` seconds; the child dies with the benchmark (SIGKILL too)."""
    with subprocess.Popen(
        pinned(core, argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded at this point
    ) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise BenchError(f"{argv[0]} did not finish in {timeout:.0f}s") from exc
        return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def proc_status_kib(pid: int, key: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    if m is None:
        raise BenchError(f"/proc/{pid}/status has no {key}")
    return int(m.group(1))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    if not ordered:
        raise BenchError("percentile of an empty sample")
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100)
    return ordered[int(rank) - 1]
