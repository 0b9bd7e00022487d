"""A camera's quality reference frames: the picture it should show by day and by night.

The JPEGs are where the rounds read them (`<prefix>:quality:ref:{id}:day|night`, gateway/
quality.py); beside them, `<prefix>:quality:refmeta:{id}` (hash period -> JSON) says when each
was set, by whom, from where (the camera's picture then, or an upload) and its size. Deleting a
camera deletes both, its evidence thumbnail and its frozen-check signature
(`Registry.on_delete`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import Field, ValidationError
from redis.asyncio import Redis

from .errors import redis_errors
from .models import Model
from .settings import Settings

Period = Literal["day", "night"]
PERIODS: tuple[Period, ...] = ("day", "night")


class ReferenceInfo(Model):
    period: Period = Field(description="Used by day or by night (the network's local clock)")
    set_at: datetime | None = Field(description="When it was set (None: before this was kept)")
    set_by: str = Field(description="The actor who set it ('' when not known)")
    source: Literal["current", "upload", "unknown"] = Field(
        description="The camera's picture when accepted, or a picture an admin uploaded"
    )
    bytes: int = Field(ge=1, description="Size of the reference JPEG")
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)


class ReferenceStore:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis.prefix

    def jpeg_key(self, cam_id: str, period: Period) -> str:
        return f"{self.prefix}:quality:ref:{cam_id}:{period}"

    def meta_key(self, cam_id: str) -> str:
        return f"{self.prefix}:quality:refmeta:{cam_id}"

    async def put(self, cam_id: str, jpeg: bytes, info: ReferenceInfo) -> None:
        """The picture and what is known of it, together (one transaction)."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.jpeg_key(cam_id, info.period), jpeg)
                pipe.hset(self.meta_key(cam_id), info.period, info.model_dump_json())
                await pipe.execute()

    async def describe(self, cam_id: str, info: ReferenceInfo) -> None:
        """What is known of a picture already stored (accepted through the rounds' service)."""
        with redis_errors():
            await self.redis.hset(self.meta_key(cam_id), info.period, info.model_dump_json())

    async def listed(self, cam_id: str, in_adapter: bool = False) -> list[ReferenceInfo]:
        """The camera's references, day first; one stored before its metadata was kept is
        listed with what its size says. `in_adapter`: an edge camera's, kept by its adapter
        (only what is known of them is here)."""
        if in_adapter:
            with redis_errors():
                meta = await self.redis.hgetall(self.meta_key(cam_id))
            kept = {_text(k): _parsed(v) for k, v in meta.items()}
            return [found for p in PERIODS if (found := kept.get(p)) is not None]
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for period in PERIODS:
                    pipe.strlen(self.jpeg_key(cam_id, period))
                pipe.hgetall(self.meta_key(cam_id))
                *sizes, meta = await pipe.execute()
        known = {_text(k): v for k, v in meta.items()}
        out = []
        for period, size in zip(PERIODS, sizes, strict=True):
            if not size:
                continue
            info = _parsed(known.get(period))
            if info is None or info.bytes != size:
                info = ReferenceInfo(
                    period=period, set_at=None, set_by="", source="unknown", bytes=size
                )
            out.append(info)
        return out

    async def delete(self, cam_id: str, period: Period) -> bool:
        """Whether there was one."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.jpeg_key(cam_id, period))
                pipe.hdel(self.meta_key(cam_id), period)
                gone, _ = await pipe.execute()
        return bool(gone)

    async def forget(self, cam_id: str) -> None:
        """A deleted camera: its references, its evidence thumbnail and its frozen-check
        signature in every network's hash (the record, and so its network, is gone already)."""
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(
                    *(self.jpeg_key(cam_id, p) for p in PERIODS),
                    self.meta_key(cam_id),
                    evidence_key(self.prefix, cam_id),
                )
                for net in self.settings.networks:
                    pipe.hdel(f"{self.prefix}:quality:sig:{net.id}", cam_id)
                await pipe.execute()


def evidence_key(prefix: str, cam_id: str) -> str:
    """The camera's evidence thumbnail (gateway/quality.py keeps it)."""
    return f"{prefix}:quality:evidence:{cam_id}"


def now_info(
    period: Period, actor: str, source: Literal["current", "upload"], size: int, w: int, h: int
) -> ReferenceInfo:
    return ReferenceInfo(
        period=period,
        set_at=datetime.now(UTC),
        set_by=actor,
        source=source,
        bytes=size,
        width=w,
        height=h,
    )


def _parsed(raw: bytes | str | None) -> ReferenceInfo | None:
    if raw is None:
        return None
    try:
        return ReferenceInfo.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
