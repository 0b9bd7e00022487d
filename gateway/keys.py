"""Typed keys for everything that hangs on the application and the request."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from adapters.base import NetworkAdapter

from .audit import AuditLog
from .auth import TokenStore
from .catalog import Catalog
from .discovery import DiscoveryService
from .edge import EdgeHub
from .metrics import Metrics
from .policy import Principal
from .registry import Registry
from .settings import Settings
from .snapshots import SnapshotService
from .vault import CredentialVault

SETTINGS = web.AppKey("settings", Settings)
VAULT = web.AppKey("vault", CredentialVault)
REDIS = web.AppKey("redis", Redis)
REGISTRY = web.AppKey("registry", Registry)
CATALOG = web.AppKey("catalog", Catalog)
TOKENS = web.AppKey("tokens", TokenStore)
AUDIT = web.AppKey("audit", AuditLog)
METRICS = web.AppKey("metrics", Metrics)
DISCOVERY = web.AppKey("discovery", DiscoveryService)
SNAPSHOTS = web.AppKey("snapshots", SnapshotService)
ADAPTERS = web.AppKey("adapters", dict[str, NetworkAdapter])
EDGE = web.AppKey("edge", EdgeHub)

QUERY_CACHE = web.AppKey("query_cache", dict[tuple[object, str], object])

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
# The network a request concerns, set by a handler as soon as it knows: refusals and failures
# are audited under it, so each network's auditor sees the attempts against that network.
NETWORK = web.RequestKey("network", str)
BODY = web.RequestKey("body", bytes)  # the request body, once a handler has read it
