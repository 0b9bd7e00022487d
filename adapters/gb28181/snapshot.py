"""GB/T 28181-2022 image snapshots (图像抓拍): camgw asks a channel for one picture, the device
uploads the JPEG over HTTP to a one-time URL camgw gave it, then reports
UploadSnapShotFinished with the same SessionID.

The upload URL is `http://{upload host}:{port}/gb28181/snap/{token}`: the token is 32 random
bytes, good for one upload, from an address of the platform's ranges, within the session's
deadline, of at most `max_snapshot_bytes`, and a JPEG (its first bytes say so). Anything else
is refused (403, 404, 410, 413, 415) and changes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from .config import LowerPlatform
from .manscdp import build

_TOKEN_CHARS = 43  # token_urlsafe(32)
UPLOAD_PATH = "/gb28181/snap/"


@dataclass(slots=True)
class SnapSession:
    session_id: str
    token: str
    platform: LowerPlatform
    code: str
    deadline: float
    done: asyncio.Future[bytes]
    jpeg: bytes | None = None
    finished_at: float | None = None  # UploadSnapShotFinished received (clock)
    uploaded_at: float | None = None
    notes: list[str] = field(default_factory=list)


class SnapSessions:
    """Pending snapshot sessions, by SessionID and by upload token."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.by_session: dict[str, SnapSession] = {}
        self.by_token: dict[str, SnapSession] = {}
        self.refused = 0

    def open(self, platform: LowerPlatform, code: str, deadline: float) -> SnapSession:
        loop = asyncio.get_running_loop()
        session = SnapSession(
            session_id=secrets.token_hex(16),
            token=secrets.token_urlsafe(32),
            platform=platform,
            code=code,
            deadline=deadline,
            done=loop.create_future(),
        )
        self.by_session[session.session_id] = session
        self.by_token[session.token] = session
        return session

    def close(self, session: SnapSession) -> None:
        self.by_session.pop(session.session_id, None)
        self.by_token.pop(session.token, None)
        if not session.done.done():
            session.done.cancel()

    def finished(self, session_id: str, platform_id: str) -> bool:
        """UploadSnapShotFinished for the session; False when it is not one of ours."""
        session = self.by_session.get(session_id)
        if session is None or session.platform.id != platform_id:
            return False
        session.finished_at = self.clock()
        self._settle(session)
        return True

    def _settle(self, session: SnapSession) -> None:
        ready = session.jpeg is not None and session.finished_at is not None
        if ready and not session.done.done():
            session.done.set_result(session.jpeg or b"")

    async def upload(self, request: web.Request) -> web.Response:
        token = request.match_info.get("token", "")
        session = self.by_token.get(token) if len(token) == _TOKEN_CHARS else None
        if session is None:
            self.refused += 1
            raise web.HTTPNotFound(text="no such upload")
        if not session.platform.allows(request.remote or ""):
            self.refused += 1
            raise web.HTTPForbidden(text="upload from outside the platform's ranges")
        if session.jpeg is not None or self.clock() > session.deadline:
            self.refused += 1
            raise web.HTTPGone(text="this upload URL is used up or expired")
        if request.content_length is not None and request.content_length > self.max_bytes:
            self.refused += 1
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_bytes, actual_size=0)
        data = await _read_bounded(request, self.max_bytes)
        if data is None:
            self.refused += 1
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_bytes, actual_size=0)
        if request.content_type.startswith("multipart/"):
            data = _multipart_file(data)
        if not data.startswith(b"\xff\xd8\xff"):
            self.refused += 1
            raise web.HTTPUnsupportedMediaType(text="not a JPEG")
        session.jpeg = data
        session.uploaded_at = self.clock()
        self._settle(session)
        return web.Response(text="OK")


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 << 10):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _multipart_file(data: bytes) -> bytes:
    """The first part's bytes of a multipart/form-data upload (some devices post a form)."""
    start = data.find(b"\r\n\r\n")
    if start < 0:
        return data
    body = data[start + 4 :]
    end = body.rfind(b"\r\n--")
    return body[:end] if end >= 0 else body


def upload_app(sessions: SnapSessions) -> web.Application:
    app = web.Application(client_max_size=sessions.max_bytes + 4096)
    app.router.add_route("POST", UPLOAD_PATH + "{token}", sessions.upload)
    app.router.add_route("PUT", UPLOAD_PATH + "{token}", sessions.upload)
    return app


def snapshot_command(sn: int, code: str, url: str, session_id: str, charset: str) -> bytes:
    """The 2022 edition's SnapShotConfig (one picture) for channel `code`."""
    inner = (
        "<SnapShotConfig>\n<SnapNum>1</SnapNum>\n<Interval>1</Interval>\n"
        f"<UploadURL>{url}</UploadURL>\n<SessionID>{session_id}</SessionID>\n</SnapShotConfig>\n"
    )
    values = [("CmdType", "DeviceConfig"), ("SN", str(sn)), ("DeviceID", code)]
    return build("Control", values, inner, charset)
