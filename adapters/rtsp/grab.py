"""One frame from an RTSP stream, cold: our RTSP client fetches the first keyframe (player.py),
then hangs up; FFmpeg (PyAV) decodes it from memory in a thread (decode.py).

Why not let FFmpeg or OpenCV open rtsp:// themselves: FFmpeg follows RTSP redirects to any host
(an SSRF hole in a gateway that must contact only addresses inside a network's CIDRs), and
OpenCV opens one capture at a time per process (`VideoCapture` open holds a process-wide lock):
measured, four decodes waited ~2.7 s behind one network open that hung for 3 s. Here every
network wait is an asyncio wait in our own client, and decoding takes no lock but the stream's.

Messages name neither host nor credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import ParamSpec, TypeVar

from ..config import DEFAULT_MAX_PIXELS
from .decode import Frame, decode_gop, gop_to_jpeg
from .errors import GrabTimeout
from .player import RtspPlayer
from .rtp import MAX_GOP_BYTES, Gop

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(
    executor: Executor | None, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`func` in `executor`'s threads (None: asyncio.to_thread), never on the event loop."""
    if executor is None:
        return await asyncio.to_thread(func, *args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, lambda: func(*args, **kwargs))


async def grab_frame(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    *,
    allowed: Callable[[str], bool],
    timeout_s: float = 5.0,
    executor: Executor | None = None,
    max_gop_bytes: int = MAX_GOP_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_basic: bool = False,
) -> Frame:
    """A cold grab: connect, wait for the first keyframe, hang up, decode it (BGR array).

    `timeout_s` bounds the network part (handshake and keyframe); decoding one keyframe in
    `executor` (None: asyncio.to_thread) takes milliseconds. Raises an RtspError (refused,
    unauthorised, redirected, no supported codec, garbage), GrabTimeout, DecodeError or
    FrameTooLarge.
    """
    gop = await first_keyframe(
        uri, username, password, allowed, timeout_s, max_gop_bytes, allow_basic
    )
    return await in_thread(executor, decode_gop, gop, max_pixels)


async def grab_jpeg(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    *,
    allowed: Callable[[str], bool],
    timeout_s: float = 5.0,
    executor: Executor | None = None,
    quality: int = 85,
    max_gop_bytes: int = MAX_GOP_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_basic: bool = False,
) -> bytes:
    """grab_frame as JPEG (an MJPEG camera's own picture, checked; others encoded)."""
    gop = await first_keyframe(
        uri, username, password, allowed, timeout_s, max_gop_bytes, allow_basic
    )
    return await in_thread(executor, gop_to_jpeg, gop, quality, max_pixels)


async def first_keyframe(
    uri: str,
    username: str | None,
    password: str | None,
    allowed: Callable[[str], bool],
    timeout_s: float,
    max_gop_bytes: int = MAX_GOP_BYTES,
    allow_basic: bool = False,
) -> Gop:
    """Connect, wait for the first keyframe, hang up (TEARDOWN): its GOP of one unit.
    `allow_basic`: a Basic challenge over plain RTSP may be answered (the network opted in)."""
    player = RtspPlayer(
        uri,
        username,
        password,
        allowed=allowed,
        timeout=timeout_s,
        max_gop_bytes=max_gop_bytes,
        allow_basic=allow_basic,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await player.start()
            gop = await player.keyframe()
    except TimeoutError:
        raise GrabTimeout(timeout_message(player.stage, timeout_s)) from None
    finally:
        await player.close()
    return gop


def timeout_message(stage: str, timeout_s: float) -> str:
    if stage in ("media", "first keyframe"):
        return f"no keyframe within {timeout_s:g}s"
    return f"no answer to {stage} within {timeout_s:g}s"
