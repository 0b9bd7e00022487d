"""The ONVIF side of the camera simulator: many devices, one asyncio process, one aiohttp app.

Each device gets its own listening socket, an aiohttp `TCPSite` on (device.address, device.port),
and all sites share one `web.Application`: a handler finds its device from the local address of
the connection. Served per device:

- `POST /onvif/device_service`: GetSystemDateAndTime (no auth), GetCapabilities, GetServices,
  GetDeviceInformation, GetNetworkInterfaces;
- `POST /onvif/media_service`: GetProfiles, GetStreamUri, GetSnapshotUri;
- `GET /onvif/snapshot.jpg`: a JPEG behind HTTP digest auth (or what `Quirks.snapshot_format`
  says: a PNG, a BMP, an HTML error page, garbage).

Everything but GetSystemDateAndTime needs a WS-Security UsernameToken (PasswordDigest) whose
Created is within 5 minutes of the *device's* clock and whose nonce is fresh, else an HTTP 400
SOAP fault `ter:NotAuthorized`, as real cameras answer. Quirks (`devices.Quirks`) are read at
request time, so a test can flip them on a running simulator; going offline for real (the port
refuses connections) needs `set_offline()`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from aiohttp import hdrs, web
from lxml import etree
from multidict import CIMultiDict

from ..files import raise_nofile_limit
from . import soap
from .devices import HostileXml, SimDevice, SnapshotAuth
from .digest_auth import DigestAuthority, DigestResult, basic_challenge, check_basic
from .snapshot import snapshot_answer

log = logging.getLogger("camgw.simulator.onvif")

DEFAULT_ANSWER_DELAY_S: Final = 0.05  # PERF-NOTES: simulated cameras answer after 50 ms
SHUTDOWN_TIMEOUT_S: Final = 0.5
_SOAP_CONTENT_TYPE: Final = f"{soap.CONTENT_TYPE}; charset=utf-8"
_ROTATED_SUFFIX: Final = "-rotated"


def actual_password(device: SimDevice) -> str:
    """The password the device really accepts (differs from the one on file if wrong_password)."""
    if device.quirks.wrong_password:
        return device.password + _ROTATED_SUFFIX
    return device.password


@dataclass
class _DeviceState:
    device: SimDevice
    nonces: soap.NonceCache = field(default_factory=soap.NonceCache)
    site: web.TCPSite | None = None


_Op = Callable[[SimDevice, etree._Element], str | bytes]  # bytes: sent as they are


class OnvifServer:
    """Serves the ONVIF device and media services and the snapshot URL of many devices."""

    def __init__(
        self,
        devices: Iterable[SimDevice],
        *,
        answer_delay_s: float = DEFAULT_ANSWER_DELAY_S,
        jpeg_workers: int = 2,
    ) -> None:
        self.answer_delay_s = answer_delay_s
        # By where each device listens: devices may share an address on different ports.
        self._states: dict[tuple[str, int], _DeviceState] = {}
        for device in devices:
            if not device.onvif:
                continue
            if (device.address, device.port) in self._states:
                raise ValueError(f"two ONVIF devices on {device.address}:{device.port}")
            self._states[device.address, device.port] = _DeviceState(device)
        self._jpeg_workers = jpeg_workers
        self._jpeg_pool: ThreadPoolExecutor | None = None
        self._digest = DigestAuthority()
        self._runner: web.AppRunner | None = None
        self._hanging: set[asyncio.Future[None]] = set()
        self._ops: dict[tuple[str, str], _Op] = {
            (soap.NS_TDS, "GetCapabilities"): soap.get_capabilities,
            (soap.NS_TDS, "GetServices"): soap.get_services,
            (soap.NS_TDS, "GetDeviceInformation"): lambda d, _r: soap.get_device_information(d),
            (soap.NS_TDS, "GetNetworkInterfaces"): lambda d, _r: soap.get_network_interfaces(d),
            (soap.NS_TRT, "GetProfiles"): lambda d, _r: soap.get_profiles(d),
            (soap.NS_TRT, "GetStreamUri"): lambda d, r: soap.get_stream_uri(
                d, r, actual_password(d)
            ),
            (soap.NS_TRT, "GetSnapshotUri"): soap.get_snapshot_uri,
        }
        self._service_ns = {
            soap.DEVICE_SERVICE_PATH: soap.NS_TDS,
            soap.MEDIA_SERVICE_PATH: soap.NS_TRT,
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def devices(self) -> list[SimDevice]:
        return [s.device for s in self._states.values()]

    def is_listening(self, device: SimDevice) -> bool:
        state = self._states.get((device.address, device.port))
        return state is not None and state.site is not None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=soap.MAX_REQUEST_BYTES)
        app.router.add_post(soap.DEVICE_SERVICE_PATH, self._handle_soap)
        app.router.add_post(soap.MEDIA_SERVICE_PATH, self._handle_soap)
        app.router.add_get("/onvif/snapshot.jpg", self._handle_snapshot)
        app.router.add_get("/onvif/snapshot/{channel:[0-9]{1,4}}.jpg", self._handle_snapshot)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("already started")
        raise_nofile_limit()
        self._jpeg_pool = ThreadPoolExecutor(self._jpeg_workers, thread_name_prefix="sim-jpeg")
        runner = web.AppRunner(
            self._app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            handler_cancellation=True,  # a client giving up frees a hanging handler
        )
        await runner.setup()
        self._runner = runner
        try:
            for state in self._states.values():
                if not state.device.quirks.offline:
                    await self._listen(state)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        for state in self._states.values():
            state.site = None
        for waiter in list(self._hanging):
            waiter.cancel()
        if runner is not None:
            await runner.cleanup()
        if self._jpeg_pool is not None:
            self._jpeg_pool.shutdown(wait=False, cancel_futures=True)
            self._jpeg_pool = None

    async def _listen(self, state: _DeviceState) -> None:
        assert self._runner is not None
        device = state.device
        site = web.TCPSite(self._runner, device.address, device.port)
        try:
            await site.start()
        except OSError as err:
            raise OSError(
                err.errno, f"cannot listen on {device.address}:{device.port}: {err}"
            ) from err
        state.site = site

    async def set_offline(self, device: SimDevice, offline: bool) -> None:
        """Take a device off the network (its port refuses connections) or bring it back."""
        state = self._states.get((device.address, device.port))
        if state is None:
            raise KeyError(f"no ONVIF device on {device.address}:{device.port}")
        state.device.quirks.offline = offline
        if self._runner is None:
            return
        if offline:
            if state.site is not None:
                site, state.site = state.site, None
                await site.stop()
            self._drop_connections(device.address, device.port)
        elif state.site is None:
            await self._listen(state)

    def _drop_connections(self, address: str, port: int) -> None:
        """Reset every open connection to one device, as a camera vanishing from the LAN does."""
        if self._runner is None or self._runner.server is None:
            return
        for conn in self._runner.server.connections:
            transport = conn.transport
            if transport is None:
                continue
            sockname = transport.get_extra_info("sockname")
            if sockname and (sockname[0], sockname[1]) == (address, port):
                transport.abort()

    # ------------------------------------------------------------------ request handling

    def _state_for(self, request: web.Request) -> _DeviceState:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        state = self._states.get((sockname[0], sockname[1])) if sockname else None
        if state is None:
            raise web.HTTPNotFound()
        return state

    async def _before_answer(self, request: web.Request, state: _DeviceState) -> None:
        """Apply the offline, hang and delay quirks; returns when the device may answer."""
        quirks = state.device.quirks
        if quirks.offline:  # flipped without set_offline(): drop the connection
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if quirks.hang:  # until the client gives up, or the device goes offline, or we stop
            waiter = asyncio.get_running_loop().create_future()
            self._hanging.add(waiter)
            try:
                await waiter
            finally:
                self._hanging.discard(waiter)
        delay = self.answer_delay_s + quirks.extra_delay_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def _handle_soap(self, request: web.Request) -> web.StreamResponse:
        state = self._state_for(request)
        device = state.device
        data = await request.read()  # capped by client_max_size: 413 beyond
        await self._before_answer(request, state)
        if device.quirks.hostile_xml is not None:
            return await self._hostile(request, device.quirks.hostile_xml)
        try:
            parsed = soap.parse_request(data)
            if device.quirks.malformed_call == parsed.operation:
                return await self._hostile(request, HostileXml.malformed)
            body = self._answer(request.path, state, parsed)
        except soap.SoapFault as fault:
            return web.Response(
                body=soap.fault_envelope(fault),
                status=fault.http_status,
                content_type=soap.CONTENT_TYPE,
                charset="utf-8",
            )
        return web.Response(
            body=soap.envelope(body), content_type=soap.CONTENT_TYPE, charset="utf-8"
        )

    def _answer(self, path: str, state: _DeviceState, req: soap.SoapRequest) -> str | bytes:
        device = state.device
        if req.namespace != self._service_ns.get(path):
            raise soap.action_not_supported(f"{req.operation} on {path}")
        if (req.namespace, req.operation) == (soap.NS_TDS, "GetSystemDateAndTime"):
            return soap.get_system_date_and_time(device)  # pre-auth, as the ONVIF core says
        op = self._ops.get((req.namespace, req.operation))
        if op is None:
            raise soap.action_not_supported(req.operation)
        try:
            soap.verify_username_token(
                req.header,
                username=device.username,
                password=actual_password(device),
                device_now=soap.device_clock(device),
                nonces=state.nonces,
            )
        except soap.AuthError as err:
            log.debug("%s %s: %s", device.camera.id, req.operation, err)
            raise soap.not_authorized() from None
        return op(device, req.body)

    async def _hostile(self, request: web.Request, mode: HostileXml) -> web.StreamResponse:
        if mode is not HostileXml.huge:
            return web.Response(
                body=b"".join(soap.hostile_chunks(mode)),
                headers={"Content-Type": _SOAP_CONTENT_TYPE},
            )
        # ~50 MB, chunked (no Content-Length to trust), written as the client reads it
        response = web.StreamResponse(headers={"Content-Type": _SOAP_CONTENT_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for chunk in soap.hostile_chunks(mode):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client gave up reading, as it should
        return response

    def _snapshot_auth(self, request: web.Request, device: SimDevice) -> web.Response | None:
        """None if the request may have the picture, else the 401 with the device's challenges
        (`Quirks.snapshot_auth`: Digest MD5, SHA-256, both, or Basic only)."""
        authorization = request.headers.get(hdrs.AUTHORIZATION)
        mode = device.quirks.snapshot_auth
        if mode is SnapshotAuth.basic:
            password = actual_password(device)
            if check_basic(authorization, username=device.username, password=password):
                return None
            challenges = [basic_challenge()]
        else:
            result = self._digest.check(
                authorization,
                method=request.method,
                uri=request.raw_path,
                scope=device.address,
                username=device.username,
                password=actual_password(device),
                algorithms=mode.algorithms,
            )
            if result is DigestResult.ok:
                return None
            stale = result is DigestResult.stale
            challenges = self._digest.challenges(
                device.address, stale=stale, algorithms=mode.algorithms
            )
        headers = CIMultiDict((hdrs.WWW_AUTHENTICATE, c) for c in challenges)
        return web.Response(status=401, text="401 Unauthorized", headers=headers)

    async def _handle_snapshot(self, request: web.Request) -> web.StreamResponse:
        state = self._state_for(request)
        device = state.device
        await self._before_answer(request, state)
        refusal = self._snapshot_auth(request, device)
        if refusal is not None:
            return refusal
        when = dt.datetime.now(dt.UTC)
        camera = device.camera
        channel = int(request.match_info.get("channel", "1"))
        if not 1 <= channel <= device.channels:
            raise web.HTTPNotFound()
        label = camera.id if device.channels == 1 else f"{camera.id} ch{channel}"
        body, content_type = await asyncio.get_running_loop().run_in_executor(
            self._jpeg_pool,
            snapshot_answer,
            device.quirks.snapshot_format,
            label,
            camera.network,
            camera.name,
            when,
            device.quirks.picture,
        )
        return web.Response(
            body=body,
            content_type=content_type,
            headers={
                "X-Sim-Camera": label,
                "X-Sim-Time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                hdrs.CACHE_CONTROL: "no-store",
            },
        )
