"""A simulated GB/T 28181 lower platform (下级平台), 2016 or 2022 edition, on loopback.

It registers with digest, keeps alive, answers catalog queries in pages (each page sent after
the superior platform's 200 for the one before, as wvp-style platforms pace them), sends
catalog notifications, and misbehaves on request: a wrong password, keepalives not sent, a
catalog that stops halfway, duplicate channel codes, raw bytes (oversized or malformed).
Traffic goes only to the superior platform's address, which must be on 127.0.0.0/8 or ::1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import random
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import cast
from urllib.parse import urlsplit

import aiohttp
import av
import cv2
import numpy as np

from adapters.gb28181 import manscdp, ps
from adapters.gb28181.digest import authorization
from adapters.gb28181.manscdp import CatalogItem
from adapters.gb28181.sip import SipRequest, SipResponse, params, parse, response_to, uri_user
from adapters.simulator.snapshot import render_frame, render_snapshot

MANSCDP = "Application/MANSCDP+xml"


def channel_codes(domain: str, count: int, type_code: str = "132", start: int = 1) -> list[str]:
    """`count` 20-digit channel codes under a 10-digit domain (region 8 + industry 2)."""
    return [f"{domain[:10]}{type_code}5{n:06d}" for n in range(start, start + count)]


def make_channels(domain: str, count: int, start: int = 1) -> list[CatalogItem]:
    group = f"{domain[:10]}2155000001"
    return [
        CatalogItem(
            device_id=code,
            name=f"治安探头 {n:05d}",
            manufacturer="Hikvision",
            model="DS-2CD3T47",
            owner="police",
            civil_code=domain[:6],
            address=f"东泾镇 路口 {n}",
            parental="0",
            parent_id=group,
            status="ON",
            longitude=f"{121.2 + n * 1e-5:.6f}",
            latitude=f"{31.05 + n * 1e-5:.6f}",
        )
        for n, code in enumerate(channel_codes(domain, count, start=start), start=start)
    ]


def make_groups(domain: str) -> list[CatalogItem]:
    """A group tree for channels to hang from: a business group (215) and a virtual
    organisation (216) under it; channels name the latter as their ParentID."""
    root = f"{domain[:10]}2155000009"
    return [
        CatalogItem(device_id=root, name="东泾镇 治安视频", parental="1", civil_code=domain[:6]),
        CatalogItem(
            device_id=f"{domain[:10]}2165000001",
            name="东泾镇派出所",
            parental="1",
            parent_id=root,
            business_group_id=root,
            civil_code=domain[:6],
        ),
    ]


_HOSTILE = (
    b"\r\n",
    b"\r\n\r\n",
    b"\x00",
    b" ",
    b":",
    b";tag=",
    b"<",
    b">",
    b"&e;",
    b"]]>",
    b'<!DOCTYPE x [<!ENTITY e "x">]>',
    b"<Item>",
    b"</DeviceList>",
    b"\xff\xfe",
    b"\xa1",
    b"Content-Length: 5\r\n",
    b"SIP/2.0 200 OK\r\n",
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A hostile variant of a valid message: bytes flipped, cut, repeated, or a piece known to
    trouble parsers (a CRLF, a NUL, a DTD, an entity, a stray tag, invalid GB bytes) put in."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        op = rng.randrange(5)
        if op == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            del out[at : at + rng.randint(1, 24)]
        elif op == 2:
            out[at:at] = out[at : at + rng.randint(1, 64)] * rng.randint(1, 3)
        else:
            out[at:at] = rng.choice(_HOSTILE)
    return bytes(out)


def mutate_body(msg: SipRequest, rng: random.Random) -> bytes:
    """`msg` with only its body spoiled, Content-Length kept true: what reaches the MANSCDP
    parser past a SIP layer that has nothing to object to."""
    spoiled = SipRequest(method=msg.method, uri=msg.uri, headers=list(msg.headers))
    spoiled.body = mutate(msg.body, rng)
    return spoiled.encode()


@dataclass(slots=True)
class Misbehaviour:
    stop_catalog_after: int | None = None  # items sent, then silence
    duplicate_every: int = 0  # every Nth item repeats the code of the one before
    lie_sum_num: int | None = None  # SumNum announced instead of the true count
    # Snapshot commands: "ok", "no-upload", "no-finish", "refuse" (Result ERROR), "not-jpeg"
    snapshot: str = "ok"
    # INVITE: "ok", "busy" (486), "no-media" (200, then no RTP), "garbage" (RTP of junk)
    invite: str = "ok"
    lose_keepalives: bool = False  # the keepalive loop runs but sends nothing


@dataclass(slots=True)
class LowerPlatformSim:
    platform_id: str
    domain: str
    password: str
    server: tuple[str, int]
    edition: str = "2016"
    channels: list[CatalogItem] = field(default_factory=list)
    page_size: int = 4
    transport: str = "udp"
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    video_codec: str = "H264"  # what its live video carries: H264 or H265
    server_id: str = "31011700002000000001"  # the superior platform's id
    # What the superior platform did to us: every request it sent, and our answers' counts.
    received: list[SipRequest] = field(default_factory=list)
    pages_sent: int = 0
    _proto: _SimUdp | None = None
    _tcp: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    _reader: asyncio.Task[None] | None = None
    _waiting: dict[str, asyncio.Future[SipResponse]] = field(default_factory=dict)
    _cseq: int = 1
    _sn: int = 100
    _catalog_task: asyncio.Task[None] | None = None
    catalog_sent: asyncio.Event = field(default_factory=asyncio.Event)  # the last page answered
    snapshots_taken: int = 0
    media_frames_sent: int = 0
    bye_received: asyncio.Event = field(default_factory=asyncio.Event)
    _media_to: tuple[str, int, int, bool] | None = None
    _media_task: asyncio.Task[None] | None = None
    last_upload: bytes = b""
    finish_sent_at: list[float] = field(default_factory=list)  # perf_counter, per snapshot
    # The superior platform's catalog subscription, as a notifier keeps it (RFC 6665): its
    # Call-ID, the subscriber's tag, ours, its Event; notifications go within that dialog.
    subscription: tuple[str, str, str, str] | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    subscribe_answer: int = 200  # what SUBSCRIBEs get (misbehaviour: e.g. 481 to a refresh)
    # Keep alive on its own every so many seconds once registered, and refresh the
    # registration before it expires (None: only when told, as the tests drive it).
    keepalive_every_s: float | None = None
    keepalives_sent: int = 0
    _alive_task: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        host = self.server[0]
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the simulator talks to loopback addresses only")
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            _, proto = await loop.create_datagram_endpoint(
                lambda: _SimUdp(self), remote_addr=self.server
            )
            self._proto = proto
        else:
            self._tcp = await asyncio.open_connection(*self.server)
            self._reader = asyncio.create_task(self._read_tcp())

    async def stop(self) -> None:
        tasks = (self._reader, self._catalog_task, self._media_task, self._alive_task)
        for task in (*tasks, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        if self._tcp is not None:
            self._tcp[1].close()

    @property
    def local(self) -> tuple[str, int]:
        if self._proto is not None and self._proto.transport is not None:
            sock = self._proto.transport.get_extra_info("sockname")
        else:
            assert self._tcp is not None
            sock = self._tcp[1].get_extra_info("sockname")
        return str(sock[0]), int(sock[1])

    # -- sending ---------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.sendto(data)
        else:
            assert self._tcp is not None
            self._tcp[1].write(data)

    def _request(
        self, method: str, body: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> SipRequest:
        host, port = self.local
        self._cseq += 1
        kind = self.transport.upper()
        headers = [
            ("Via", f"SIP/2.0/{kind} {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(6)}"),
            ("From", f"<sip:{self.platform_id}@{self.domain}>;tag={secrets.token_hex(4)}"),
            ("To", f"<sip:{self.platform_id}@{self.domain}>"),
            ("Call-ID", f"{secrets.token_hex(10)}@{host}"),
            ("CSeq", f"{self._cseq} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", f"camgw-sim GB/T 28181-{self.edition}"),
            ("X-GB-Ver", "3.0" if self.edition == "2022" else "2.0"),
        ]
        if body:
            headers.append(("Content-Type", MANSCDP))
        headers += extra or []
        uri = f"sip:{self.server_id}@{self.server[0]}:{self.server[1]}"
        return SipRequest(method=method, uri=uri, headers=headers, body=body)

    async def _transact(self, req: SipRequest, wait_s: float = 5.0) -> SipResponse:
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        key = f"{req.call_id}|{req.get('CSeq')}"
        self._waiting[key] = future
        self.send_raw(req.encode())
        try:
            async with asyncio.timeout(wait_s):
                return await future
        finally:
            self._waiting.pop(key, None)

    async def raw(self, data: bytes, call_id: str, cseq: str, wait_s: float = 2.0) -> SipResponse:
        """Hostile bytes sent as they are; the answer to the Call-ID and CSeq they carry."""
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        key = f"{call_id}|{cseq}"
        self._waiting[key] = future
        self.send_raw(data)
        try:
            async with asyncio.timeout(wait_s):
                return await future
        finally:
            self._waiting.pop(key, None)

    def request(
        self, method: str, body: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> SipRequest:
        """A request as this platform would send it (for tests to spoil)."""
        return self._request(method, body, extra)

    async def register(self, expires: int = 3600, password: str | None = None) -> SipResponse:
        """REGISTER, answer the 401 challenge with digest; the final response."""
        contact = f"<sip:{self.platform_id}@{self.local[0]}:{self.local[1]}>"
        extra = [("Contact", contact), ("Expires", str(expires))]
        first = self._request("REGISTER", extra=extra)
        reply = await self._transact(first)
        if reply.status != 401:
            return reply
        challenge = reply.get("WWW-Authenticate") or ""
        auth = authorization(
            challenge, self.platform_id, password or self.password, "REGISTER", first.uri
        )
        second = self._request("REGISTER", extra=[*extra, ("Authorization", auth)])
        second.set("Call-ID", first.call_id)
        reply = await self._transact(second)
        granted = reply.get("Expires") or str(expires)
        if reply.status == 200 and self.keepalive_every_s and self._alive_task is None:
            life = int(granted) if granted.isdigit() else expires
            self._alive_task = asyncio.create_task(self._keep_alive(self.keepalive_every_s, life))
        return reply

    async def _keep_alive(self, every_s: float, life_s: int) -> None:
        """Keepalives every `every_s` (none when told to lose them); the registration
        refreshed at 80 % of its life. A lost answer is tried again next time."""
        loop = asyncio.get_running_loop()
        registered = loop.time()
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(TimeoutError):
                due = loop.time() - registered > life_s * 0.8
                if due and (await self.register(life_s)).status == 200:
                    registered = loop.time()
                if not self.misbehave.lose_keepalives:
                    self.keepalives_sent += 1
                    await self.keepalive()

    async def keepalive(self) -> SipResponse:
        self._sn += 1
        body = manscdp.build(
            "Notify",
            [
                ("CmdType", "Keepalive"),
                ("SN", str(self._sn)),
                ("DeviceID", self.platform_id),
                ("Status", "OK"),
            ],
            charset=self._charset,
        )
        return await self._transact(self._request("MESSAGE", body))

    async def notify(
        self, items: list[CatalogItem], in_dialog: bool = True, state: str = "active"
    ) -> SipResponse:
        """A catalog notification (each item's `event`: ADD, DEL, UPDATE, ON, OFF, ...), sent
        within the superior platform's subscription (waited for, 5 s at most); `in_dialog=False`
        sends it outside any (a misbehaviour: camgw answers 481)."""
        if in_dialog:
            async with asyncio.timeout(5):
                await self.subscribed.wait()
        return await self._transact(self.notification(items, in_dialog, state))

    def notification(
        self, items: list[CatalogItem], in_dialog: bool = True, state: str = "active"
    ) -> SipRequest:
        """The NOTIFY `notify` sends (within the subscription, which must exist by now)."""
        self._sn += 1
        body = manscdp.catalog(
            "Notify", self._sn, self.platform_id, len(items), items, self._charset
        )
        req = self._request("NOTIFY", body, [("Subscription-State", state)])
        if not in_dialog:
            req.set("Event", "Catalog")
            return req
        if self.subscription is None:
            raise LookupError("no catalog subscription from the superior platform yet")
        call_id, theirs, ours, event = self.subscription
        req.set("Call-ID", call_id)
        req.set("From", f"<sip:{self.platform_id}@{self.domain}>;tag={ours}")
        req.set("To", f"<sip:{self.server_id}@{self.domain}>;tag={theirs}")
        req.set("Event", event)
        return req

    def _subscribe(self, msg: SipRequest) -> None:
        """Accept the catalog subscription (a refresh keeps its dialog and our tag)."""
        if self.subscribe_answer != 200:
            self.send_raw(response_to(msg, self.subscribe_answer).encode())
            return
        known = self.subscription
        ours = known[2] if known is not None and known[0] == msg.call_id else secrets.token_hex(4)
        reply = response_to(msg, 200, to_tag=ours)
        reply.headers.append(("Expires", msg.get("Expires") or "3600"))
        self.send_raw(reply.encode())
        theirs = params(msg.get("From") or "")[1].get("tag", "")
        self.subscription = (msg.call_id, theirs, ours, msg.get("Event") or "Catalog")
        self.subscribed.set()

    async def send_body(self, body: bytes, method: str = "MESSAGE") -> SipResponse:
        return await self._transact(self._request(method, body))

    async def send_request(self, req: SipRequest) -> SipResponse:
        return await self._transact(req)

    @property
    def _charset(self) -> str:
        return "GB18030" if self.edition == "2022" else "GB2312"

    # -- receiving -------------------------------------------------------------------------------

    def received_data(self, data: bytes) -> None:
        try:
            msg = parse(data, stream=self.transport == "tcp", max_bytes=1 << 20)
        except Exception:
            return
        if isinstance(msg, SipResponse):
            future = self._waiting.get(f"{msg.call_id}|{msg.get('CSeq')}")
            if future is not None and not future.done():
                future.set_result(msg)
            return
        self.received.append(msg)
        if msg.method == "INVITE":
            self._invite(msg)
            return
        if msg.method == "SUBSCRIBE":
            self._subscribe(msg)
            return
        if msg.method != "ACK":
            self.send_raw(response_to(msg, 200, to_tag=secrets.token_hex(4)).encode())
        if msg.method == "MESSAGE" and b"<CmdType>Catalog</CmdType>" in msg.body:
            query = manscdp.parse(msg.body)
            self._catalog_task = asyncio.get_running_loop().create_task(self._pages(query.sn))
        elif msg.method in ("ACK", "BYE"):
            self._end_media(msg)
        elif msg.method == "MESSAGE" and b"<CmdType>DeviceInfo</CmdType>" in msg.body:
            task = asyncio.get_running_loop().create_task(self._device_info(msg.body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif msg.method == "MESSAGE" and b"<SnapShotConfig>" in msg.body:
            task = asyncio.get_running_loop().create_task(self._snapshot(msg.body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pages(self, sn: int) -> None:
        items = list(self.channels)
        m = self.misbehave
        if m.duplicate_every:
            items = [
                replace(it, device_id=items[i - 1].device_id)
                if i and i % m.duplicate_every == 0
                else it
                for i, it in enumerate(items)
            ]
        if m.stop_catalog_after is not None:
            items = items[: m.stop_catalog_after]
        sum_num = m.lie_sum_num if m.lie_sum_num is not None else len(self.channels)
        for start in range(0, max(1, len(items)), self.page_size):  # (none: one empty page)
            page = items[start : start + self.page_size]
            body = manscdp.catalog("Response", sn, self.platform_id, sum_num, page, self._charset)
            reply = await self._transact(self._request("MESSAGE", body), wait_s=10.0)
            self.pages_sent += 1
            if reply.status != 200:
                break
        self.catalog_sent.set()

    async def _device_info(self, body: bytes) -> None:
        query = manscdp.parse(body)
        values = [
            ("CmdType", "DeviceInfo"),
            ("SN", str(query.sn)),
            ("DeviceID", self.platform_id),
            ("DeviceName", "东泾镇视频安全接入平台"),
            ("Result", "OK"),
            ("Manufacturer", "camgw-sim"),
            ("Model", f"GB/T 28181-{self.edition} lower platform"),
            ("Firmware", "1.0"),
            ("Channel", str(len(self.channels))),
        ]
        await self.send_body(manscdp.build("Response", values, charset=self._charset))

    async def _snapshot(self, body: bytes) -> None:
        """Answer a 2022 SnapShotConfig: Result, the JPEG uploaded, UploadSnapShotFinished."""
        command = manscdp.parse(body)
        url = _between(body, b"<UploadURL>", b"</UploadURL>")
        session = _between(body, b"<SessionID>", b"</SessionID>")
        host = urlsplit(url).hostname or ""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the simulator uploads to loopback addresses only")
        mode = self.misbehave.snapshot
        result = "ERROR" if mode == "refuse" else "OK"
        self._sn += 1
        values = [
            ("CmdType", "DeviceConfig"),
            ("SN", str(command.sn)),
            ("DeviceID", command.device_id),
            ("Result", result),
        ]
        await self.send_body(manscdp.build("Response", values, charset=self._charset))
        if mode in ("refuse", "no-upload"):
            return
        when = dt.datetime.now(dt.UTC)
        jpeg = await asyncio.to_thread(
            render_snapshot, command.device_id, "gb28181", command.device_id, when
        )
        data = b"<html>not a picture</html>" if mode == "not-jpeg" else jpeg
        async with aiohttp.ClientSession() as http, http.post(url, data=data) as resp:
            await resp.read()
        self.snapshots_taken += 1
        self.last_upload = data
        if mode == "no-finish":
            return
        finished = manscdp.build(
            "Notify",
            [
                ("CmdType", "UploadSnapShotFinished"),
                ("SN", str(self._sn)),
                ("DeviceID", command.device_id),
                ("SessionID", session),
            ],
            f"<SnapShotList><SnapShotFileID>{session}01</SnapShotFileID></SnapShotList>\n",
            self._charset,
        )
        self.finish_sent_at.append(time.perf_counter())
        await self.send_body(finished)

    def _invite(self, msg: SipRequest) -> None:
        """Answer a live INVITE with our SDP; the media starts at the ACK."""
        mode = self.misbehave.invite
        if mode == "busy":
            self.send_raw(response_to(msg, 486, to_tag=secrets.token_hex(4)).encode())
            return
        sdp = msg.body.decode()
        host = _sdp_value(sdp, "c=IN IP4 ")
        port = int(_sdp_value(sdp, "m=video ").split()[0])
        ssrc = _sdp_value(sdp, "y=")
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the simulator streams to loopback addresses only")
        tcp = "TCP/RTP/AVP" in _sdp_value(sdp, "m=video ")
        self._media_to = (host, port, int(ssrc), tcp)
        local = self.local[0]
        answer = (
            f"v=0\r\no={self.platform_id} 0 0 IN IP4 {local}\r\ns=Play\r\n"
            f"c=IN IP4 {local}\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=sendonly\r\n"
            f"a=rtpmap:96 PS/90000\r\ny={ssrc}\r\n"
        ).encode()
        reply = response_to(msg, 200, to_tag=secrets.token_hex(4))
        reply.headers.append(("Content-Type", "APPLICATION/SDP"))
        reply.body = answer
        self.send_raw(reply.encode())

    def _end_media(self, msg: SipRequest) -> None:
        if (
            msg.method == "ACK"
            and self._media_to is not None
            and self.misbehave.invite != "no-media"
        ):
            task = asyncio.get_running_loop().create_task(self._stream(self._media_to))
            self._media_task = task
        elif msg.method == "BYE":
            self.bye_received.set()
            if self._media_task is not None:
                self._media_task.cancel()

    async def _stream(self, to: tuple[str, int, int, bool]) -> None:
        """PS over RTP at 25 fps, on UDP or TCP (RFC 4571: we connect, camgw listens): a GOP of
        H.264 (or junk) until BYE (bounded: 10 s)."""
        host, port, ssrc, tcp = to
        codec = self.video_codec
        units = await asyncio.to_thread(video_gop, codec)
        send: Callable[[bytes], None]
        if tcp:
            _, writer = await asyncio.open_connection(host, port)
            send, close = (lambda p: writer.write(len(p).to_bytes(2, "big") + p)), writer.close
        else:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(host, port)
            )
            send, close = transport.sendto, transport.close
        seq = 0
        try:
            for n in range(250):
                unit, key = units[n % len(units)]
                frame = ps.mux(unit, codec, n * 3600, key)
                if self.misbehave.invite == "garbage":
                    frame = b"\x00\x00\x01\xba" + b"\xff" * 2000
                chunks = [frame[i : i + 1400] for i in range(0, len(frame), 1400)]
                for i, chunk in enumerate(chunks):
                    marker = 0x80 if i == len(chunks) - 1 else 0
                    header = struct.pack("!BBHII", 0x80, marker | 96, seq & 0xFFFF, n * 3600, ssrc)
                    send(header + chunk)
                    seq += 1
                self.media_frames_sent += 1
                await asyncio.sleep(0.04)
        except ConnectionError:
            return  # camgw closed the TCP connection: it has its keyframe
        finally:
            close()

    async def _read_tcp(self) -> None:
        assert self._tcp is not None
        reader = self._tcp[0]
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value.strip())
            body = await reader.readexactly(length)
            self.received_data(head + body)


def _sdp_value(sdp: str, prefix: str) -> str:
    for line in sdp.split("\r\n"):
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise ValueError(f"SDP without {prefix!r}")


def video_gop(codec: str = "H264", frames: int = 25) -> list[tuple[bytes, bool]]:
    """A second of 320x240 H.264 or H.265 (Annex-B, parameter sets in the keyframe). Blocking."""
    ctx = av.CodecContext.create("libx264" if codec == "H264" else "libx265", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.framerate = Fraction(25, 1)
    if codec == "H264":
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(frames), "bf": "0"}
    else:
        params = f"keyint={frames}:bframes=0:log-level=error:repeat-headers=1"
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x265-params": params}
    when = dt.datetime.now(dt.UTC)
    rendered = cv2.resize(render_frame("gb28181-live", "police", "live", when), (320, 240))
    picture = np.asarray(rendered, dtype=np.uint8)
    units: list[tuple[bytes, bool]] = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        units += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    units += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
    return units


def _between(data: bytes, start: bytes, end: bytes) -> str:
    at = data.index(start) + len(start)
    return data[at : data.index(end, at)].decode()


class _SimUdp(asyncio.DatagramProtocol):
    def __init__(self, sim: LowerPlatformSim) -> None:
        self.sim = sim
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.sim.received_data(data)


__all__ = [
    "LowerPlatformSim",
    "Misbehaviour",
    "channel_codes",
    "make_channels",
    "make_groups",
    "mutate",
    "mutate_body",
    "uri_user",
]
