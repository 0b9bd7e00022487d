"""Run every benchmark script in bench/ (or the ones named) and print their tables.

    .venv/bin/python bench/run.py              # all of them (`make bench`)
    .venv/bin/python bench/run.py list_poll    # one of them; extra args after `--` go to it

Each script runs in its own process with the interpreter running this one: its progress streams
to stderr as it goes, its table (stdout) is printed when it finishes, and every table again at the
end. A failing script is reported and makes the exit status non-zero; the others still run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"run.py", "common.py"}
SCRIPT_TIMEOUT_S = 600  # each script bounds itself well below this; this is the backstop
# ... except those that need longer: scale.py skips a scale that would end it after 13 minutes;
# availability.py takes ~5 minutes for its two sizes, more on a machine doing other work.
SCRIPT_TIMEOUTS_S = {"scale": 1200, "availability": 900, "quality": 900}
# (availability: 3,308 and 100,000; quality: a measured round of 3,308 bounds itself to 12 min)


def scripts() -> list[Path]:
    return sorted(
        p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS and not p.name.startswith("_")
    )


def run_one(script: Path, extra: list[str]) -> tuple[int, str]:
    timeout = SCRIPT_TIMEOUTS_S.get(script.stem, SCRIPT_TIMEOUT_S)
    proc = subprocess.Popen(
        [sys.executable, str(script), *extra],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        print(f"bench: {script.name} exceeded {timeout}s; stopping it", file=sys.stderr)
        return 124, ""
    finally:
        if proc.poll() is None:  # timeout, Ctrl-C or SIGTERM: let it stop what it started
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    available = {p.stem: p for p in scripts()}
    unknown = [n for n in argv if n not in available]
    if unknown:
        print(f"bench: unknown {unknown}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    chosen = [available[n] for n in argv] if argv else list(available.values())

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    tables: list[str] = []
    failed: list[str] = []
    for script in chosen:
        started = time.monotonic()
        print(f"bench: running {script.name}", file=sys.stderr, flush=True)
        rc, out = run_one(script, extra)
        took = time.monotonic() - started
        if rc != 0:
            failed.append(script.stem)
            print(f"bench: {script.name} FAILED (exit {rc}) after {took:.0f}s", file=sys.stderr)
        else:
            print(f"bench: {script.name} done in {took:.0f}s", file=sys.stderr, flush=True)
        if out.strip():
            tables.append(out.rstrip())
            print(out.rstrip(), flush=True)
    if len(tables) > 1:
        print("\n# all benchmark tables\n" + "\n\n".join(tables), flush=True)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
