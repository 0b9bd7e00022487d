"""`describe()`: what an RTSP stream is, without playing it. OPTIONS and DESCRIBE on one TCP
connection, the whole exchange bounded by one timeout and each answer by MAX_RESPONSE_BYTES.
Used for RTSP-only cameras (no ONVIF) and to check a stream URI."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace

from .errors import RtspProtocolError, RtspTimeout
from .sdp import parse_sdp
from .transport import RtspConnection, new_connection, printable


@dataclass(frozen=True, slots=True)
class RtspInfo:
    uri: str  # without credentials
    codec: str | None  # encoding name of the first video stream: H264, H265, JPEG, ...
    width: int | None
    height: int | None
    fps: float | None
    profile: str | None = None  # from the SPS (H.264, H.265), e.g. "Baseline", "Main"
    level: float | None = None  # from the SPS, e.g. 3.1
    audio_codec: str | None = None
    auth: str = "none"  # "digest", "basic" or "none": what the camera asked for
    server: str | None = None  # the Server header
    methods: tuple[str, ...] = ()  # from OPTIONS' Public header
    elapsed_s: float = field(default=0.0, compare=False)


async def describe(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  (one budget for the whole exchange, applied below)
    *,
    allow_basic: bool = False,
) -> RtspInfo:
    """OPTIONS then DESCRIBE `uri`; return what the SDP says about its video.

    Credentials in the URI are used when `username` is not given. `allow_basic`: answer a
    Basic challenge (the password in clear; the network's `allow_basic_over_http`). Raises an
    `RtspError`.
    """
    conn = new_connection(uri, username, password, allow_basic=allow_basic)
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            info = await _inspect(conn)
    except TimeoutError:
        raise RtspTimeout(f"{conn.uri}: no answer to {conn.stage} within {timeout:g}s") from None
    finally:
        await conn.close()
    return replace(info, elapsed_s=round(time.monotonic() - started, 4))


async def _inspect(conn: RtspConnection) -> RtspInfo:
    await conn.connect()
    methods, server = await conn.options()
    resp = await conn.describe()
    try:
        sdp = parse_sdp(resp.body.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise conn.error(RtspProtocolError, f"DESCRIBE: {exc}") from None
    return RtspInfo(
        uri=conn.uri,
        codec=sdp.codec,
        width=sdp.width,
        height=sdp.height,
        fps=sdp.fps,
        profile=sdp.profile,
        level=sdp.level,
        audio_codec=sdp.audio_codec,
        auth=conn.auth.scheme if conn.auth is not None else "none",
        server=printable(server or resp.header("server") or "")[:80] or None,
        methods=methods,
    )
