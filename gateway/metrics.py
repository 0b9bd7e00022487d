"""Prometheus metrics: what an operator graphs (request rates and latency per route, cameras by
network and status, catalog rebuilds, refused requests). One registry per app, no globals."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .catalog import Catalog


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "camgw_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "camgw_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.refused = Counter(
            "camgw_auth_refused",
            "Requests refused for authentication or authorisation",
            ["reason"],
            registry=self.registry,
        )

    def watch_catalog(self, catalog: Catalog) -> None:
        self.registry.register(_CatalogCollector(catalog))


class _CatalogCollector(Collector):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cams = GaugeMetricFamily(
            "camgw_cameras",
            "Registered cameras by network and status",
            labels=["network", "status"],
        )
        for (network, status), n in sorted(self.catalog.status_counts().items()):
            cams.add_metric([network, status], n)
        yield cams
        yield GaugeMetricFamily(
            "camgw_registry_version",
            "Registry version the catalog serves",
            value=self.catalog.snapshot.version,
        )
        yield GaugeMetricFamily(
            "camgw_catalog_builds", "Catalog rebuilds since start", value=self.catalog.builds
        )
