"""Video quality diagnosis (issue 15): CPU per diagnosis of one camera's picture, 720p and 1080p.

In process, one thread (OpenCV told to use one), no network: what the diagnosis worker does for
each camera of a round once the snapshot has arrived. Pictures: the simulator's streets
(adapters/simulator/scene.py), day and night, clean and with a fault (blur, noise, occlusion,
displacement), JPEG at quality 85 as cameras send them. Each diagnosis runs with the camera's
reference frame and previous signature, so every check runs (nothing skipped for want of a
reference). CPU is `time.process_time()` around the call.

Columns, each min / median / max over `--runs` runs of the per-picture median of one run:
- **decode ms**: `cv2.imdecode` of the JPEG (the full picture);
- **diagnose ms**: `adapters.quality.diagnose` on the decoded picture (all eleven checks);
- **total ms**: both, per camera;
- **round of 3,308 s**: total x 3,308: the CPU of diagnosing the whole town once, on one core
  (derived from the median, not the wall time of a round with the simulator: not measured here).

    .venv/bin/python bench/quality.py             # ~20 s
    .venv/bin/python bench/quality.py --runs 5 --pictures 60
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
from common import exit_on_sigterm, fmt_spread, header_lines, markdown_table, progress

from adapters.quality import checks
from adapters.quality.checks import Reference, Signature, make_reference
from adapters.quality.diagnose import diagnose
from adapters.quality.frame import Prepared, prepare
from adapters.quality.thresholds import QualityConfig, Thresholds
from adapters.simulator.faults import Fault, PictureFault, picture
from adapters.simulator.scene import Period, SceneSpec

AIM_1080P_MS = 15.0
TOWN = 3_308
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FAULTS = (None, Fault.blur, Fault.noise, Fault.occlusion, Fault.displacement)


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def _decode(body: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(img, np.uint8)


def pictures(width: int, height: int, count: int) -> list[tuple[bytes, bytes, Period]]:
    """(picture, reference, period) triples: streets by day and night, clean and faulty."""
    out = []
    for k in range(count):
        period = Period.day if k % 2 == 0 else Period.night
        spec = SceneSpec(seed=500 + k % 4, period=period, width=width, height=height)
        fault = FAULTS[k % len(FAULTS)]
        injected = PictureFault(fault, 0.65, seed=k) if fault is not None else None
        frame = _jpeg(picture(spec, injected, frame_seed=k + 1))
        reference = _jpeg(picture(spec, None, frame_seed=10_000 + k))
        out.append((frame, reference, period))
    return out


def one_run(
    items: list[tuple[bytes, bytes, Period]], config: QualityConfig
) -> tuple[float, float, float]:
    """Per-picture medians (ms) of decode, diagnose and their sum over one pass."""
    decode_ms, diagnose_ms, total_ms = [], [], []
    for body, ref_body, period in items:
        reference = make_reference(prepare(_decode(ref_body)))  # cached per camera in a round
        thresholds = config.night if period is Period.night else config.day
        _, previous = diagnose(_decode(ref_body), thresholds, taken_at=0.0)
        t0 = time.process_time()
        frame = _decode(body)
        t1 = time.process_time()
        diagnose(frame, thresholds, reference=reference, previous=previous, taken_at=60.0)
        t2 = time.process_time()
        decode_ms.append((t1 - t0) * 1000)
        diagnose_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)
    return (
        statistics.median(decode_ms),
        statistics.median(diagnose_ms),
        statistics.median(total_ms),
    )


def _steps(p: Prepared, reference: Reference, t: Thresholds) -> dict[str, Callable[[], object]]:
    previous = Signature(b"", 0.0)
    return {
        "signal_loss": lambda: checks.signal_loss(p, t),
        "too_dark + too_bright": lambda: (checks.too_dark(p, t), checks.too_bright(p, t)),
        "low_contrast": lambda: checks.low_contrast(p, t),
        "colour_cast": lambda: checks.colour_cast(p, t),
        "noise": lambda: checks.noise(p, t),
        "stripes": lambda: checks.stripes(p, t),
        "blur": lambda: checks.blur(p, reference, t),
        "frozen": lambda: checks.frozen(p, 60.0, previous, 1.0),
        "occlusion": lambda: checks.occlusion(p, reference, t),
        "displacement": lambda: checks.displacement(p, reference, t),
    }


def breakdown(items: list[tuple[bytes, bytes, Period]], config: QualityConfig) -> list[list[str]]:
    """Where a 1080p diagnosis's CPU goes: the shared preparation, then each check (median ms
    over the pictures)."""
    parts: dict[str, list[float]] = {}
    for body, ref_body, _ in items:
        frame = _decode(body)
        reference: Reference = make_reference(prepare(_decode(ref_body)))
        t0 = time.process_time()
        p = prepare(frame)
        parts.setdefault("prepare (downscale, noise, tiles)", []).append(time.process_time() - t0)
        steps = _steps(p, reference, config.day)
        for name, step in steps.items():
            t0 = time.process_time()
            step()
            parts.setdefault(name, []).append(time.process_time() - t0)
    return [[name, f"{statistics.median(v) * 1000:.2f}"] for name, v in parts.items()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pictures", type=int, default=40, help="per size and run")
    args = parser.parse_args(argv)
    if args.runs < 1 or not 1 <= args.pictures <= 500:
        parser.error("--runs >= 1 and 1 <= --pictures <= 500")
    exit_on_sigterm()
    cv2.setNumThreads(1)  # the diagnosis worker's setting: one core
    config = QualityConfig()
    rows, medians = [], {}
    for label, (width, height) in SIZES.items():
        progress(f"quality: drawing {args.pictures} {label} pictures")
        items = pictures(width, height, args.pictures)
        one_run(items[:3], config)  # warm-up: imports, allocations
        runs = []
        for run in range(args.runs):
            progress(f"quality: {label} run {run + 1}/{args.runs}")
            runs.append(one_run(items, config))
        decode, diag, total = (list(column) for column in zip(*runs, strict=True))
        medians[label] = statistics.median(diag)
        rows.append(
            [
                label,
                fmt_spread(decode, ".1f"),
                fmt_spread(diag, ".1f"),
                fmt_spread(total, ".1f"),
                fmt_spread((t * TOWN / 1000 for t in total), ".0f"),
            ]
        )
    print("\n".join(header_lines()))
    print(
        f"quality diagnosis: CPU per camera, one thread, {args.pictures} pictures per size "
        f"(day/night, clean and faulty), min / median / max over {args.runs} runs"
    )
    columns = ["picture", "decode ms", "diagnose ms", "total ms", "round of 3,308 s"]
    print(markdown_table(columns, rows))
    met = "aim met" if medians["1080p"] < AIM_1080P_MS else "aim missed"
    print(f"1080p diagnose median {medians['1080p']:.1f} ms against {AIM_1080P_MS:.0f} ms: {met}")
    print()
    print("where a 1080p diagnosis's CPU goes (median ms over the pictures)")
    width, height = SIZES["1080p"]
    print(markdown_table(["step", "ms"], breakdown(pictures(width, height, 10), config)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
