"""Listens on the registry's events channel so every gateway sharing a Redis learns of changes
at once: `version N` after each write, `tokens` after a revocation.

While the channel is down the catalog falls back to reading the version per request, and the
token cache is dropped, so a lost message can only cost speed, never freshness.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_RECHECK_S = 5.0  # re-read the version now and then, in case a message was missed
_YIELD_EVERY = 100  # messages handled between two turns of the event loop's other work


async def listen(
    redis: Redis,
    channel: str,
    read_version: Callable[[], Awaitable[int]],
    on_version: Callable[[int | None], None],
    on_tokens: Callable[[], None],
) -> None:
    backoff = 0.2
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as ps:
                await ps.subscribe(channel)
                # Subscribed first, then read: no change can fall between the two.
                on_version(await read_version())
                on_tokens()
                backoff = 0.2
                for n in itertools.count(1):
                    msg = await ps.get_message(timeout=_RECHECK_S)
                    if msg is None:
                        on_version(await read_version())
                        continue
                    _dispatch(msg["data"], on_version, on_tokens)
                    if n % _YIELD_EVERY == 0:
                        # Messages already read come without a pause: an import's 100,000
                        # writes were one long step of the event loop.
                        await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            log.warning("events channel down, retrying", extra={"error": type(exc).__name__})
            on_version(None)
            on_tokens()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def _dispatch(
    data: bytes, on_version: Callable[[int | None], None], on_tokens: Callable[[], None]
) -> None:
    text = data.decode(errors="replace")
    if text.startswith("version "):
        try:
            on_version(int(text.split(" ", 1)[1]))
        except ValueError:
            log.warning("ignored malformed event", extra={"event": text[:64]})
    elif text == "tokens":
        on_tokens()
