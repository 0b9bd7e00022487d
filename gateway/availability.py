"""Availability: how much of a window a camera was online, and its outages. Pure functions over
one camera's ordered status changes (gateway/history.py reads them from the registry's status
stream); no I/O, no clock. docs/accountability.md says what is counted and why.

What counts, for one camera over a window [start, end):

- **observed** time is time in a known state: `online`, `degraded` or `offline`. Time before
  the camera existed (before the change that created it) is not observed, and neither is time
  in `unknown` (registered but never probed: nobody knew); `unknown` time is reported apart.
- **share online** = online / observed (None when nothing was observed). `degraded` (it answers,
  but not whole: a refused login, an unusable stream) is not online, and not an outage either.
- an **outage** is a continuous span `offline`. One that began before the window counts from
  the window's start, one still open at the window's end counts up to the end: the figures of
  a window are what happened inside it. Their number, total and longest length are reported.

- **online but faulty**: online while the quality diagnosis's verdict on its picture was
  `faulty` (docs/quality.md): it answers, but shows nothing useful. Counted apart
  (`online_faulty_s`): observed, neither online nor an outage. `suspect` (not confirmed) counts
  as online.

Statuses are small integers here (the loops run over 100,000s of changes): ONLINE, DEGRADED,
OFFLINE, UNKNOWN, and ABSENT for "the camera did not exist".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

STATUSES = ("online", "degraded", "offline", "unknown")
ONLINE, DEGRADED, OFFLINE, UNKNOWN = range(4)
ABSENT = 4  # before the camera's creation (its first change has no previous status)
CODE: dict[str, int] = {name: code for code, name in enumerate(STATUSES)}
NAME: dict[int, str | None] = {**dict(enumerate(STATUSES)), ABSENT: None}
DOWN = frozenset({OFFLINE, DEGRADED})  # what the outage report lists
IMAGE_STATUSES = ("ok", "suspect", "faulty")  # the quality diagnosis's verdicts
IMAGE_OK, IMAGE_SUSPECT, IMAGE_FAULTY = range(3)
IMAGE_CODE: dict[str, int] = {name: code for code, name in enumerate(IMAGE_STATUSES)}


def code(status: str | None) -> int:
    """The code of a status as the stream writes it ('' or None: the camera did not exist;
    a value this module does not know counts as unknown)."""
    if not status:
        return ABSENT
    return CODE.get(status, UNKNOWN)


def image_code(status: str | None) -> int:
    """The code of an image status ('' or None: no verdict, ABSENT; unknown values: ok)."""
    if not status:
        return ABSENT
    return IMAGE_CODE.get(status, IMAGE_OK)


@dataclass(frozen=True, slots=True)
class Outage:
    start: float  # clipped to the window's start
    end: float  # clipped to the window's end
    began_before: bool  # it was already going on when the window began
    open: bool  # still going on at the window's end

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class CameraWindow:
    """One camera's figures over one window; `spans` holds its outages one by one when they
    were asked for (the roll-ups need only their number and the longest)."""

    start: float
    end: float
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # by status
    outages: int = 0
    outage_longest_s: float = 0.0
    spans: list[Outage] = field(default_factory=list)
    online_faulty_s: float = 0.0  # online with a faulty picture (not in seconds[ONLINE])

    def mark_faulty(self, seconds: float) -> None:
        """Move `seconds` of online time to online-but-faulty (faulty_online's answer)."""
        if seconds > 0:
            self.seconds[ONLINE] -= seconds
            self.online_faulty_s += seconds

    @property
    def online_s(self) -> float:
        return self.seconds[ONLINE]

    @property
    def degraded_s(self) -> float:
        return self.seconds[DEGRADED]

    @property
    def offline_s(self) -> float:
        return self.seconds[OFFLINE]

    @property
    def unknown_s(self) -> float:
        return self.seconds[UNKNOWN]

    @property
    def observed_s(self) -> float:
        s = self.seconds
        return s[ONLINE] + s[DEGRADED] + s[OFFLINE] + self.online_faulty_s

    @property
    def share_online(self) -> float | None:
        observed = self.observed_s
        return self.seconds[ONLINE] / observed if observed > 0 else None


def faulty_online(
    initial: int,
    times: Sequence[float],
    statuses: Sequence[int],
    lo: int,
    hi: int,
    image_initial: int,
    image_times: Sequence[float],
    image_statuses: Sequence[int],
    ilo: int,
    ihi: int,
    start: float,
    end: float,
) -> float:
    """Seconds of [start, end) in which the camera was `online` and its picture `faulty`: its
    status changes [lo, hi) and image changes [ilo, ihi), both inside the window and in order,
    merged (status `initial` and image `image_initial` at `start`). Called only for cameras
    whose picture was faulty at some time of the window: a few, so not on the hot path."""
    events = [(t, False, s) for t, s in zip(times[lo:hi], statuses[lo:hi], strict=True)]
    events += [
        (t, True, s) for t, s in zip(image_times[ilo:ihi], image_statuses[ilo:ihi], strict=True)
    ]
    events.sort(key=lambda e: e[0])  # stable: each timeline keeps its own order
    status, image, since, total = initial, image_initial, start, 0.0
    for at, is_image, new in events:
        if status == ONLINE and image == IMAGE_FAULTY:
            total += at - since
        since = at
        if is_image:
            image = new
        else:
            status = new
    if status == ONLINE and image == IMAGE_FAULTY:
        total += end - since
    return total


def camera_window(
    initial: int,
    times: Sequence[float],
    statuses: Sequence[int],
    start: float,
    end: float,
    lo: int = 0,
    hi: int | None = None,
    *,
    spans: bool = False,
) -> CameraWindow:
    """The figures of a camera that was in status `initial` (ABSENT: not yet created) at
    `start`, and changed to `statuses[i]` at `times[i]` for i in [lo, hi): those changes must
    be in order (non-decreasing times) and inside [start, end). The index bounds let callers
    pass a camera's whole retained history without copying a slice of it. With `spans`, each
    outage is listed too. (The loop is the roll-ups' hot path: ~0.5 us a change.)"""
    hi = len(times) if hi is None else hi
    if end <= start:
        return CameraWindow(start, end)
    if lo >= hi:  # no change inside: one status throughout (most cameras, most windows)
        seconds = [0.0, 0.0, 0.0, 0.0]
        if initial < ABSENT:
            seconds[initial] = end - start
        if initial != OFFLINE:
            return CameraWindow(start, end, seconds)
        whole = [Outage(start, end, True, True)] if spans else []
        return CameraWindow(start, end, seconds, 1, end - start, whole)
    out = CameraWindow(start, end)
    seconds, listed = out.seconds, out.spans
    count, longest = 0, 0.0
    status, since = initial, start
    carried = initial == OFFLINE  # the outage going on at the start, until it ends
    down_from: float | None = start if carried else None
    for at, new in zip(islice(times, lo, hi), islice(statuses, lo, hi), strict=True):
        if status < ABSENT:
            seconds[status] += at - since
        if new == OFFLINE:
            if down_from is None:
                down_from = at
        elif down_from is not None:
            count += 1
            if at - down_from > longest:  # noqa: PLR1730 - max() costs a call per outage
                longest = at - down_from
            if spans:
                listed.append(Outage(down_from, at, carried, False))
            down_from, carried = None, False
        status, since = new, at
    if status < ABSENT:
        seconds[status] += end - since
    if down_from is not None:
        count += 1
        longest = max(longest, end - down_from)
        if spans:
            listed.append(Outage(down_from, end, carried, True))
    out.outages, out.outage_longest_s = count, longest
    return out


def combine(parts: Iterable[CameraWindow], start: float, end: float) -> CameraWindow:
    """One camera's figures over [start, end) from those of the disjoint parts of it that are
    counted (its lifecycle's: gateway/lifecycle_log.py): seconds and outages added, the longest
    the longest; an outage cut by an uncounted gap is one in each part."""
    out = CameraWindow(start, end)
    for w in parts:
        for i in range(4):
            out.seconds[i] += w.seconds[i]
        out.outages += w.outages
        out.outage_longest_s = max(out.outage_longest_s, w.outage_longest_s)
        out.spans.extend(w.spans)
        out.online_faulty_s += w.online_faulty_s
    return out


def window(
    initial: str | None,
    changes: Iterable[tuple[float, str]],
    start: float,
    end: float,
) -> CameraWindow:
    """`camera_window` for statuses by name: `initial` the status at `start` (None: the camera
    did not exist yet), `changes` (time, new status) in order, inside [start, end)."""
    pairs = list(changes)
    times, statuses = [t for t, _ in pairs], [code(s) for _, s in pairs]
    return camera_window(code(initial), times, statuses, start, end, spans=True)


@dataclass(slots=True)
class Rollup:
    """Figures of a group of cameras (a department, a carrier, a project, a network, the town):
    seconds added up over the cameras, so the share online is time-weighted (a camera observed
    for half the window weighs half); outages counted over all of them, the longest the
    longest of any."""

    cameras: int = 0
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    outages: int = 0
    outage_longest_s: float = 0.0
    online_faulty_s: float = 0.0

    def add(self, cam: CameraWindow) -> None:
        self.cameras += 1
        mine, theirs = self.seconds, cam.seconds
        mine[0] += theirs[0]
        mine[1] += theirs[1]
        mine[2] += theirs[2]
        mine[3] += theirs[3]
        self.outages += cam.outages
        self.outage_longest_s = max(self.outage_longest_s, cam.outage_longest_s)
        self.online_faulty_s += cam.online_faulty_s

    @property
    def observed_s(self) -> float:
        s = self.seconds
        return s[ONLINE] + s[DEGRADED] + s[OFFLINE] + self.online_faulty_s

    @property
    def share_online(self) -> float | None:
        observed = self.observed_s
        return self.seconds[ONLINE] / observed if observed > 0 else None


def rollup(cameras: Iterable[tuple[str, CameraWindow]]) -> dict[str, Rollup]:
    """Group cameras' figures by key."""
    groups: dict[str, Rollup] = {}
    for key, cam in cameras:
        group = groups.get(key)
        if group is None:
            group = groups[key] = Rollup()
        group.add(cam)
    return groups


def down_since(
    times: Sequence[float], statuses: Sequence[int], before_first: int, hi: int | None = None
) -> tuple[int, float | None]:
    """Where a camera's current run of being down (offline or degraded, in any succession)
    began, from its changes in order (those before index `hi`, default all): (index of the
    change that began it, its time); the time is None when the run began before the first
    change held (`before_first`, the status before that change, is down too): it is at least
    as old as the history kept. Index `hi` (and None) when the camera is not down."""
    n = len(times) if hi is None else hi
    current = statuses[n - 1] if n else before_first
    if current not in DOWN:
        return n, None
    i = n
    while i > 0 and statuses[i - 1] in DOWN:
        i -= 1
    if i == 0 and before_first in DOWN:
        return 0, None
    return i, times[i]
