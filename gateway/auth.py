"""Bearer tokens: created once, shown once, stored only as SHA-256 hashes.

A token reads `cgw_<id>_<secret>`; the id finds the record, the hash of the whole token must
match in constant time. Resolved tokens are cached briefly per process (the dashboard polls many
times a second); a revocation publishes `tokens` on the events channel and every gateway sharing
the Redis drops its cache at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from .errors import redis_errors
from .models import Role, TokenInfo
from .policy import ALL_NETWORKS, Principal, parse_grants

_CACHE_TTL_S = 30.0
_CACHE_MAX = 10_000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:tokens"
        self.events = f"{prefix}:events"
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def create(
        self, name: str, role: Role, networks: list[str], created_by: str
    ) -> tuple[str, TokenInfo]:
        token_id = secrets.token_hex(4)
        token = f"cgw_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(
            id=token_id,
            name=name,
            role=role,
            networks=[ALL_NETWORKS] if ALL_NETWORKS in networks else sorted(set(networks)),
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        stored = info.model_dump(mode="json") | {"sha256": _digest(token)}
        with redis_errors():
            if not await self.redis.hsetnx(self.key, token_id, orjson.dumps(stored)):
                return await self.create(name, role, networks, created_by)  # id collision
        return token, info

    async def list(self) -> list[TokenInfo]:
        with redis_errors():
            raw = await self.redis.hgetall(self.key)
        infos = [_info(v) for v in raw.values()]
        return sorted(infos, key=lambda i: i.created_at)

    async def revoke(self, token_id: str) -> bool:
        with redis_errors():
            removed = bool(await self.redis.hdel(self.key, token_id))
            if removed:
                await self.redis.publish(self.events, "tokens")
        self.forget()
        return removed

    def forget(self) -> None:
        self._cache.clear()

    async def resolve(self, token: str) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit and hit[0] > now:
            return hit[1]
        principal = await self._lookup(token)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (now + _CACHE_TTL_S, principal)
        return principal

    async def _lookup(self, token: str) -> Principal | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "cgw" or len(token) > 128:
            return None
        with redis_errors():
            raw = await self.redis.hget(self.key, parts[1])
        if raw is None:
            return None
        stored = orjson.loads(raw)
        if not hmac.compare_digest(stored.get("sha256", ""), _digest(token)):
            return None
        info = _info(raw)
        return Principal(info.id, info.name, info.role, parse_grants(info.networks))


def _info(raw: bytes | str) -> TokenInfo:
    data = orjson.loads(raw)
    data.pop("sha256", None)
    return TokenInfo.model_validate(data)
