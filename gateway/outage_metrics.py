"""Prometheus series per responsible department and carrier (issue 12): cameras by status, the
outages going on and how long the longest of them has lasted. Read at scrape time from the
catalog's snapshot and the status history held in memory; the grouping is done once per
snapshot and history refresh (a scrape of 100,000 cameras then costs a dictionary walk).

Every series carries its `network` label, so a caller granted some networks sees only theirs
(metrics.NetworkView); a department, carrier or status that a network does not share is the
label value '' (status: `unknown`) for everyone, since the same scrape serves every role.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .availability import NAME, OFFLINE, UNKNOWN

if TYPE_CHECKING:
    from .catalog import Snapshot
    from .reports import Accountability

Group = tuple[str, str, str]  # network, department, carrier


@dataclass(slots=True)
class _Counts:
    snapshot: Snapshot | None = None
    generation: int = -1
    by_status: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    offline: Counter[Group] = field(default_factory=Counter)
    earliest: dict[Group, float] = field(default_factory=dict)  # the oldest outage's start


class OutageCollector(Collector):
    def __init__(self, service: Accountability) -> None:
        self.service = service
        self._counts = _Counts()

    def _count(self) -> _Counts:
        service = self.service
        snap, generation = service.catalog.snapshot, service.history.generation
        held = self._counts
        if held.snapshot is snap and held.generation == generation:
            return held
        counts = _Counts(snap, generation)
        now = service.history.now()
        for a in service.attrs.build(snap):
            if not a.in_service:
                continue
            dept = a.department if "department" in a.shared else ""
            carrier = a.carrier if "carrier" in a.shared else ""
            cam = service.history.camera(a.network, a.id)
            status = cam.to[-1] if cam is not None and cam.keys else a.status
            shown = status if "status" in a.shared else UNKNOWN
            counts.by_status[(a.network, dept, carrier, NAME[shown] or "unknown")] += 1
            if shown != OFFLINE:
                continue
            group = (a.network, dept, carrier)
            counts.offline[group] += 1
            # Since its last change (which took it offline), or as far back as is known.
            logged = cam is not None and bool(cam.keys)
            since = cam.times[-1] if cam is not None and logged else service.held_since(a, now)
            counts.earliest[group] = min(counts.earliest.get(group, since), since)
        self._counts = counts
        return counts

    def collect(self) -> Iterator[Metric]:
        counts = self._count()
        now = self.service.history.now()
        labels = ["network", "department", "carrier"]
        cameras = GaugeMetricFamily(
            "camgw_cameras_by_owner",
            "Cameras in service by network, responsible department, carrier and status",
            labels=[*labels, "status"],
        )
        for key, n in sorted(counts.by_status.items()):
            cameras.add_metric(list(key), n)
        yield cameras
        outages = GaugeMetricFamily(
            "camgw_outages_current",
            "Cameras in service offline now, by network, responsible department and carrier",
            labels=labels,
        )
        longest = GaugeMetricFamily(
            "camgw_outage_current_longest_seconds",
            "How long the longest outage going on has lasted (at least: an outage older than "
            "the history held counts from its start)",
            labels=labels,
        )
        for group, n in sorted(counts.offline.items()):
            outages.add_metric(list(group), n)
            longest.add_metric(list(group), max(0.0, now - counts.earliest[group]))
        yield outages
        yield longest
        held = GaugeMetricFamily(
            "camgw_status_history_changes",
            "Status changes this gateway holds in memory (read from the status stream)",
            labels=["network"],
        )
        for network, _, changes in self.service.history.sizes():
            held.add_metric([network], changes)
        yield held
