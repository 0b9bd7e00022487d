"""Prometheus metrics: what an operator graphs (request rates and latency per route, cameras by
network and status, catalog rebuilds, refused requests, the audit trail's length and archive
failures). One registry per app, no globals."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from adapters.process import AdapterProcess

from .audit import AuditLog
from .catalog import REBUILD_BUCKETS, Catalog
from .discovery import DiscoveryService
from .edge import EdgeHub
from .loop_monitor import LoopDelay

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestStats(Collector):
    """Per-request counting in plain dicts (~1 us), turned into Prometheus families only when
    scraped: prometheus_client's labelled Counter and Histogram take a lock and a label lookup
    per call, which on the 304 path of the camera list cost a fifth of the request."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        hist = self.buckets.get(route)
        if hist is None:
            hist = self.buckets[route] = [0] * (len(_BUCKETS) + 1)
            self.sums[route] = 0.0
        hist[bisect_left(_BUCKETS, seconds)] += 1
        self.sums[route] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "camgw_http_requests",
            "HTTP requests by route, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), n in sorted(self.counts.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "camgw_http_request_duration_seconds", "HTTP request latency by route", labels=["route"]
        )
        for route, hist in sorted(self.buckets.items()):
            cumulative, total = [], 0
            for bound, n in zip((*_BUCKETS, float("inf")), hist, strict=True):
                total += n
                cumulative.append((str(bound) if bound != float("inf") else "+Inf", total))
            latency.add_metric([route], cumulative, self.sums[route])
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = RequestStats()
        self.registry.register(self.http)
        self.loop = LoopDelay()
        self.registry.register(self.loop)
        self.refused = Counter(
            "camgw_auth_refused",
            "Requests refused for authentication or authorisation",
            ["reason"],
            registry=self.registry,
        )

    def watch_catalog(self, catalog: Catalog) -> None:
        self.registry.register(_CatalogCollector(catalog))

    def watch_audit(self, audit: AuditLog) -> None:
        self.registry.register(_AuditCollector(audit))

    def watch_edge(self, hub: EdgeHub) -> None:
        if hub.networks:
            self.registry.register(_EdgeCollector(hub))

    def watch_discovery(self, service: DiscoveryService) -> None:
        self.registry.register(_WorkCollector(service))

    def watch_adapter_processes(self, processes: Iterable[AdapterProcess]) -> None:
        if watched := tuple(processes):
            self.registry.register(_ProcessCollector(watched))


class _ProcessCollector(Collector):
    """The child processes in-process networks' adapters run in (adapters/process.py): a child
    started more than once died or was killed, and its networks' reads failed meanwhile."""

    def __init__(self, processes: tuple[AdapterProcess, ...]) -> None:
        self.processes = processes

    def collect(self) -> Iterator[Metric]:
        starts = CounterMetricFamily(
            "camgw_adapter_process_starts",
            "Adapter child processes started (a restart after a death counts too)",
            labels=["networks"],
        )
        for p in self.processes:
            starts.add_metric([",".join(p.specs)], p.starts)
        yield starts


class _WorkCollector(Collector):
    """What this replica did of each network's scheduled work (several replicas share it under
    leases: their sum is the work done, each one's share shows the split)."""

    def __init__(self, service: DiscoveryService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        rounds = CounterMetricFamily(
            "camgw_health_rounds", "Health rounds this replica ran", labels=["network"]
        )
        probes = CounterMetricFamily(
            "camgw_health_probes",
            "Cameras this replica probed in health rounds",
            labels=["network"],
        )
        last = GaugeMetricFamily(
            "camgw_health_round_seconds",
            "How long this replica's last health round of the network took",
            labels=["network"],
        )
        for network, state in self.service.state.items():
            rounds.add_metric([network], state.health_runs)
            probes.add_metric([network], state.health_probes)
            last.add_metric([network], state.health_last_s)
        yield from (rounds, probes, last)


class _EdgeCollector(Collector):
    """Each edge adapter's liveness, as the gateway last heard it (docs/edge.md)."""

    def __init__(self, hub: EdgeHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub, now = self.hub, self.hub.clock()
        gauges = {
            name: GaugeMetricFamily(f"camgw_edge_{name}", doc, labels=["network"])
            for name, doc in (
                ("connected", "1 while the adapter is heard from within the heartbeat timeout"),
                ("heartbeat_age_seconds", "Since the adapter's last message (absent: never)"),
                ("inbox_depth", "Requests the adapter has not read, or not yet answered"),
                ("cameras_known", "Cameras the adapter says it knows"),
                ("last_discovery_timestamp_seconds", "When its last discovery ran or ended"),
            )
        }
        version = GaugeMetricFamily(
            "camgw_edge_adapter", "The adapter's version (value 1)", labels=["network", "version"]
        )
        refused = CounterMetricFamily(
            "camgw_edge_refused_messages",
            "Outbox messages refused (malformed, oversized, naming another network)",
            labels=["network", "reason"],
        )
        unmatched = CounterMetricFamily(
            "camgw_edge_unmatched_answers",
            "Answers that arrived after their request's deadline (or another gateway's)",
            labels=["network"],
        )
        for network, status in sorted(hub.status.items()):
            gauges["connected"].add_metric([network], float(hub.connected(network)))
            if (age := status.age(now)) is not None:
                gauges["heartbeat_age_seconds"].add_metric([network], age)
            if status.inbox_depth is not None:
                gauges["inbox_depth"].add_metric([network], status.inbox_depth)
            gauges["cameras_known"].add_metric([network], status.cameras)
            if status.last_discovery is not None:
                stamp = status.last_discovery.at
                gauges["last_discovery_timestamp_seconds"].add_metric([network], stamp)
            if status.adapter_version is not None:
                version.add_metric([network, status.adapter_version], 1)
            for reason, n in sorted(status.refused.items()):
                refused.add_metric([network, reason], n)
            unmatched.add_metric([network], status.unmatched)
        yield from gauges.values()
        yield version
        yield refused
        yield unmatched


class _AuditCollector(Collector):
    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def collect(self) -> Iterator[Metric]:
        a = self.audit
        yield GaugeMetricFamily(
            "camgw_audit_entries",
            "Entries in the audit stream when the archiver last looked (older ones are archived)",
            value=a.archiver.entries,
        )
        yield CounterMetricFamily(
            "camgw_audit_archive_failures",
            "Archive segments this gateway could not write (nothing was trimmed; alert on it)",
            value=a.archiver.failures,
        )
        yield CounterMetricFamily(
            "camgw_audit_archived_segments",
            "Archive segments this gateway wrote before trimming the stream",
            value=a.archiver.segments,
        )
        yield CounterMetricFamily(
            "camgw_audit_head_retries",
            "Audit entries sealed again because another writer had moved the chain's head",
            value=a.chain.retries,
        )
        yield CounterMetricFamily(
            "camgw_audit_query_entries_read",
            "Audit stream entries read by queries (scanned, or fetched by id from an index)",
            value=a.entries_read,
        )
        yield CounterMetricFamily(
            "camgw_audit_refusals_dropped",
            "Unauthenticated refusals whose per-minute counts could not be written for an hour",
            value=a.refusals.dropped,
        )


class _CatalogCollector(Collector):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterator[Metric]:
        cams = GaugeMetricFamily(
            "camgw_cameras",
            "Registered cameras by network and status",
            labels=["network", "status"],
        )
        for (network, status), n in sorted(self.catalog.status_counts().items()):
            cams.add_metric([network, status], n)
        yield cams
        versions = GaugeMetricFamily(
            "camgw_registry_version",
            "Registry version the catalog serves, per network (each moves with its own changes)",
            labels=["network"],
        )
        for network, version in sorted(self.catalog.snapshot.network_versions.items()):
            versions.add_metric([network], version)
        yield versions
        yield GaugeMetricFamily(
            "camgw_catalog_builds", "Catalog rebuilds since start", value=self.catalog.builds
        )
        yield GaugeMetricFamily(
            "camgw_catalog_full_loads",
            "Catalog rebuilds that read every record (the others read only what changed)",
            value=self.catalog.full_loads,
        )
        rebuilds = self.catalog.rebuilds
        rebuild_hist = HistogramMetricFamily(
            "camgw_catalog_rebuild_seconds",
            "How long each catalog rebuild took (the changed records, or all, read and applied)",
        )
        cumulative, running = [], 0
        for bound, n in zip((*REBUILD_BUCKETS, float("inf")), rebuilds.counts, strict=True):
            running += n
            cumulative.append(("+Inf" if bound == float("inf") else str(bound), running))
        rebuild_hist.add_metric([], cumulative, rebuilds.total_s)
        yield rebuild_hist
        bodies = self.catalog.bodies
        yield GaugeMetricFamily(
            "camgw_body_cache_bytes",
            "Bytes of response bodies cached for the current registry version ([server] "
            "body_cache_bytes bounds them)",
            value=bodies.bytes,
        )
        yield GaugeMetricFamily(
            "camgw_body_cache_evictions",
            "Bodies of the current registry version evicted to stay within the bound",
            value=bodies.evicted,
        )


class NetworkView(Collector):
    """The metrics as a caller granted some networks sees them: series labelled with any other
    network are left out (camera counts are as much the network owner's data as the records)."""

    def __init__(self, source: Collector, visible: frozenset[str]) -> None:
        self.source = source
        self.visible = visible

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [
                s
                for s in family.samples
                if "network" not in s.labels or s.labels["network"] in self.visible
            ]
            yield kept
