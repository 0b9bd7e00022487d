"""One adapter implementation for any network: the networks differ only by configuration.

Discovery gathers targets from every configured source (WS-Discovery, static hosts, CSV
inventory, RTSP URIs), keeps those inside the network's CIDRs, and reads each camera with
bounded concurrency and a per-camera time budget: a hanging camera costs its own budget and
one concurrency slot, nothing more.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import aiohttp

from .base import (
    AdapterError,
    CameraAuthError,
    CameraFailed,
    CameraProtocolError,
    CameraRead,
    CameraUnreachable,
    Discovered,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    Failure,
    FailureKind,
    HealthResult,
    Profile,
    SnapshotFailed,
    SnapshotRequest,
    SnapshotResult,
    Target,
    failure_kind,
)
from .config import AccessConfig, DiscoveryConfig, SnapshotConfig
from .gil import LOOP_ITEMS, off_the_loop
from .http_snapshot import UnusableAnswers, fetch_snapshot
from .httpauth import Authenticator
from .imaging import ImageTooLarge, NotAPicture, identify, usable_jpeg
from .imaging import describe as describe_answer
from .inventory import parse_host, read_csv_inventory, rtsp_target
from .liveness import ClockProbe, clock_answers, probe_clocks
from .onvif import (
    PER_DEVICE_CONNECTIONS,
    OnvifClient,
    describe_exception,
    device_url,
    redact,
)
from .pacing import LoopLag, ReadWindow
from .rtsp import RtspNoCredentials, RtspTimeout, describe
from .stream_pool import StreamPool
from .uris import UriCredentials, credentials_fingerprint, split_credentials, uri_port
from .wsdiscovery import endpoints, probe

log = logging.getLogger(__name__)

_EVENT_BUFFER = 256  # discovery events read but not yet taken by the consumer
_PLACES_KEPT = 1 << 17  # device services remembered (a district network's devices, with room)

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    network: str
    cidrs: tuple[IPNet, ...]
    discovery: DiscoveryConfig
    credentials: UriCredentials | None
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    ref_key: bytes = field(default=b"", repr=False)  # keys the cameras' refs (this deployment)


class CameraNetworkAdapter:
    """Implements `base.NetworkAdapter` in-process."""

    def __init__(self, spec: AdapterSpec) -> None:
        self.spec = spec
        self.network = spec.network
        cfg = spec.discovery
        self._onvif = OnvifClient(
            timeout_s=cfg.timeout_s,
            max_response_bytes=cfg.max_response_bytes,
            # Every device read at once may hold its per-device share: no read waits for the
            # pool behind an NVR's long queue of calls (the wait counts against its timeout).
            pool_size=min(cfg.concurrency * PER_DEVICE_CONNECTIONS, 8192),
        )
        snap = spec.snapshots
        self._executor = ThreadPoolExecutor(
            snap.rtsp_workers, thread_name_prefix=f"rtsp-{self.network}"
        )
        self._streams = StreamPool(
            self._executor,
            snap.warm_streams,
            snap.warm_idle_s,
            max_pixels=snap.max_pixels,
            allow_basic=spec.access.allow_basic_over_http,
        )
        self._http: aiohttp.ClientSession | None = None
        self._auth_sessions: dict[str, Authenticator] = {}  # digest state per camera
        self.unusable_http = UnusableAnswers(snap.unusable_http_s)  # HTML pages, garbage
        self._started = False

    def allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.spec.cidrs)

    async def _ensure_started(self) -> None:
        if not self._started:
            await self._onvif.start()
            self._started = True

    def _snapshot_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=256, limit_per_host=2, ssl=False)
            self._http = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._http

    async def close(self) -> None:
        try:  # (each session closed even if closing another fails or is cancelled)
            if self._started:
                self._started = False
                await self._onvif.close()
        finally:
            try:
                if self._http is not None:
                    http, self._http = self._http, None
                    await http.close()
            finally:
                await self._streams.close()
                self._executor.shutdown(wait=False, cancel_futures=True)

    # -- snapshots ------------------------------------------------------------------------

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        """The camera's HTTP snapshot as a checked JPEG (a PNG or BMP converted), else one frame
        of its RTSP stream. Credentials go only where `_credentials_for` allows; Basic only as
        the network's `access` allows.

        An HTTP answer that is no usable picture (an HTML page, garbage, a picture that does
        not decode) is that step failing: the stream is tried next, the result's `note` says
        so, and for `unusable_http_s` the camera's HTTP snapshot is not asked again (its stream
        is). Without a stream it is raised as it is (NotAPicture), for the gateway to name. A
        picture over `max_pixels` is refused from its header (ImageTooLarge), never retried
        over RTSP: the camera needs reconfiguring, or the limit raising."""
        failed: list[tuple[str, AdapterError]] = []
        note: str | None = None
        uri = request.snapshot_uri
        if uri and request.stream_uri:
            known = self.unusable_http.recall(request.camera_id, uri)
            if known is not None:
                what, left = known
                skipped = f"not asked: it answered {what}; asked again in {left:.0f} s"
                failed.append((_HTTP_STEP, CameraProtocolError(skipped)))
                note, uri = _fallback_note(what), None
        if uri:
            try:
                return await self._http_picture(request, uri)
            except AdapterError as exc:
                failed.append((_HTTP_STEP, exc))
            except NotAPicture as exc:
                if request.stream_uri is None:
                    raise
                self.unusable_http.remember(request.camera_id, uri, exc.what)
                failed.append((_HTTP_STEP, CameraProtocolError(str(exc))))
                note = _fallback_note(exc.what)
        if request.stream_uri:
            creds, withheld = self._credentials_for(request, request.stream_uri)
            try:
                result = await self._grab(request.stream_uri, creds, failed, withheld)
            except AdapterError as exc:
                failed.append(("RTSP grab", exc))
            else:
                return replace(result, note=note)
        raise SnapshotFailed(failed)

    async def _http_picture(self, request: SnapshotRequest, uri: str) -> SnapshotResult:
        """The snapshot URI's answer as a JPEG: a JPEG checked to decode (its header first,
        against `max_pixels`), a PNG or BMP converted; in the worker threads. Raises what the
        fetch raises, NotAPicture, or ImageTooLarge."""
        cfg = self.spec.snapshots
        creds, withheld = self._credentials_for(request, uri)
        timeout = aiohttp.ClientTimeout(total=cfg.timeout_s, sock_connect=cfg.connect_timeout_s)
        answer = await fetch_snapshot(
            self._snapshot_session(),
            uri,
            creds,
            allowed=self.allowed,
            max_bytes=cfg.max_bytes,
            limits=timeout,
            sessions=self._auth_sessions,
            allow_basic_over_http=self.spec.access.allow_basic_over_http,
            withheld=withheld,
        )
        taken_at = time.time()
        kind = identify(answer.body)
        loop = asyncio.get_running_loop()
        try:
            picture = await loop.run_in_executor(
                self._executor, usable_jpeg, answer.body, kind, cfg.max_pixels
            )
        except ImageTooLarge:
            raise
        except NotAPicture as exc:
            raise NotAPicture(kind, exc.detail, answer.content_type) from None
        self.unusable_http.forget(request.camera_id, uri)
        if picture.converted_from is None:
            return SnapshotResult(picture.jpeg, "camera-http", taken_at)
        size = f"{picture.width}x{picture.height}"
        converted = f"{describe_answer(kind)} of {size} pixels, converted to JPEG"
        return SnapshotResult(
            picture.jpeg,
            "camera-http",
            taken_at,
            attempts=(f"{_HTTP_STEP}: {converted}",),
            note=f"converted from {picture.converted_from}",
        )

    async def _grab(
        self,
        stream_uri: str,
        creds: UriCredentials | None,
        failed: list[tuple[str, AdapterError]],
        withheld: str | None = None,
    ) -> SnapshotResult:
        """One frame of the stream. `creds` None: none are sent (credentials inside the URI
        are dropped too), and `withheld` says why if the camera asks for them."""
        stream_uri, _ = split_credentials(stream_uri)
        host = urlsplit(stream_uri).hostname or ""
        if not self.allowed(host):
            raise CameraProtocolError("stream URI names a host outside the network's ranges")
        cfg = self.spec.snapshots
        username, password = (creds.username, creds.password) if creds else (None, None)
        try:
            # The RTSP client checks `allowed` before it connects, follows no redirect and
            # refuses a Content-Base or control URL on another host; every wait in it is an
            # asyncio wait. The outer bound covers decoding too (milliseconds, in the executor).
            async with asyncio.timeout(cfg.rtsp_timeout_s + 1.0):
                jpeg, taken_at, warm = await self._streams.jpeg(
                    stream_uri,
                    username,
                    password,
                    allowed=self.allowed,
                    timeout_s=cfg.rtsp_timeout_s,
                )
        except TimeoutError as exc:
            raise CameraUnreachable(f"no frame within {cfg.rtsp_timeout_s:g}s") from exc
        except RtspNoCredentials:
            if withheld is None:
                raise
            raise CameraAuthError(f"the camera asks for authentication; {withheld}") from None
        attempts = tuple(f"{name}: {exc}" for name, exc in failed)
        return SnapshotResult(jpeg, "rtsp-grab", taken_at, warm, attempts)

    def _credentials_for(
        self, request: SnapshotRequest, uri: str
    ) -> tuple[UriCredentials | None, str | None]:
        """The credentials that may answer `uri`'s challenge, or None and why not (a reason
        naming neither host nor password). The camera's own, else the network's only if
        discovery read a device at this address (`network_credentials`); and only if `uri`
        names the camera's own address (compared as IP addresses) on a port its device
        advertised or the network's `camera_ports` list. The gateway checks this when it
        builds the request; checking again here holds even for a record forged in Redis."""
        creds = request.credentials
        if creds is None:
            if not request.network_credentials:
                return None, (
                    "credentials withheld: the camera has none of its own, and the network's "
                    "are offered only to a device that discovery found and read at this address"
                )
            creds = self.spec.credentials
            if creds is None:
                return None, "no credentials on file for the camera or configured for the network"
        try:
            parts = urlsplit(uri)
            same = ipaddress.ip_address(parts.hostname or "") == ipaddress.ip_address(
                request.address or ""
            )
        except ValueError:
            same = False  # a name, or no host: never the camera's own address
        if not same:
            return None, (
                "credentials withheld: the URI names a host other than the camera's own address"
            )
        port = uri_port(uri)
        if port is None:
            return None, "credentials withheld: the URI names no valid port"
        if port not in request.credential_ports | set(self.spec.access.camera_ports):
            return None, (
                f"credentials withheld: port {port} is neither one the camera's device "
                "advertised nor one of the network's camera_ports"
            )
        return creds, None

    # -- discovery ----------------------------------------------------------------------

    async def discover(self, job: str = "", actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        """Every target read with bounded concurrency; each camera's record or failure is
        yielded as soon as it is known (a bounded queue: a slow consumer slows the reads), and
        `DiscoveryDone` last. Closing the iterator cancels the reads."""
        await self._ensure_started()
        events: asyncio.Queue[DiscoveryEvent | None] = asyncio.Queue(maxsize=_EVENT_BUFFER)
        task = asyncio.create_task(self._run(events), name=f"discover-{self.network}-{job}")
        try:
            while (event := await events.get()) is not None:
                yield event
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, events: asyncio.Queue[DiscoveryEvent | None]) -> None:
        try:
            targets, refused, ignored = await self._targets()
            for failure in refused:
                await events.put(CameraFailed(failure))
            await events.put(
                DiscoveryProgress(
                    len(targets), sum(ignored.values()), dict(ignored.most_common(20))
                )
            )
            # Up to `concurrency` reads at once, fewer while this process's loop runs late
            # (pacing.py): parsing that outruns the CPU must not time out answered cameras.
            gate = ReadWindow(self.spec.discovery.concurrency, LoopLag())
            pacer = asyncio.create_task(gate.run(), name=f"pacer-{self.network}")

            async def one(target: Target) -> None:
                """Total: this camera ends as a record or as its own failure, so no exception
                leaves the gather and no sibling outlives a failed run."""
                try:
                    async with gate:
                        outcome = await self._read(target)
                except Exception as exc:  # _read is total; the last line of defence
                    reason = f"unexpected error ({describe_exception(exc)})"
                    outcome = self._failure(target, FailureKind.read, reason)
                if isinstance(outcome, Failure):
                    await events.put(CameraFailed(outcome))
                    return
                for camera in outcome:  # one per video source: an NVR's channels
                    await events.put(CameraRead(camera))

            try:
                await asyncio.gather(*(one(t) for t in targets))
            finally:
                pacer.cancel()
            if gate.cuts:
                log.info(
                    "discovery paced: its process's loop ran late",
                    extra={
                        "network": self.network,
                        "cuts": gate.cuts,
                        "fewest_reads_at_once": gate.smallest,
                    },
                )
            await events.put(DiscoveryDone())
        except Exception as exc:  # the network's sources broke: this run fails, nothing else
            log.exception("discovery failed", extra={"network": self.network})
            await events.put(DiscoveryDone(error=f"{type(exc).__name__}: {exc}"[:500]))
        finally:
            await events.put(None)

    async def _targets(self) -> tuple[list[Target], list[Failure], Counter[str]]:
        """Every source, one target per place a device answers: (address, port) for ONVIF,
        the stream URI for RTSP. Several devices may share an address (an NVR's port
        forwards, several ONVIF services); a place named twice is read once, and
        WS-Discovery's answer wins (it carries the endpoint reference, the most stable
        identity a device has). Also the configured targets outside the network's ranges (as
        failures) and everything ignored, by reason."""
        cfg = self.spec.discovery
        found: dict[tuple[str, str], Target] = {}
        static: list[Target] = []
        refused: list[Failure] = []
        ignored: Counter[str] = Counter()
        for entry in cfg.static_hosts:
            static.append(parse_host(entry, cfg.onvif_port))
        for uri in cfg.rtsp_uris:
            static.append(rtsp_target(uri))
        if cfg.csv_inventory is not None:
            static.extend(read_csv_inventory(cfg.csv_inventory, cfg.onvif_port))
        for t in static:
            if not self.allowed(t.address):
                ignored["outside the network's CIDRs"] += 1
                reason = "outside the network's CIDRs"
                refused.append(Failure(self.network, t.address, FailureKind.targets, reason))
            elif _place(t) in found:
                ignored["listed twice (same address and port, or same stream)"] += 1
            else:
                found[_place(t)] = t
        if cfg.wsdiscovery_targets or cfg.multicast_interface:
            found_at = endpoints(cfg.wsdiscovery_targets, cfg.wsdiscovery_port)
            result = await probe(
                [e for e in found_at if self.allowed(e.address)],
                allowed=self.allowed,
                wait_s=cfg.probe_wait_s,
                multicast_interface=cfg.multicast_interface,
                port=cfg.wsdiscovery_port,
            )
            for entry in result.ignored:
                ignored[_ignored_reason(entry)] += 1
            for t in result.targets:
                if _place(t) in found and found[_place(t)].source == "ws-discovery":
                    ignored["answered twice (same address and port)"] += 1
                found[_place(t)] = t
        return list(found.values()), refused, ignored

    async def _read(self, target: Target) -> list[Discovered] | Failure:
        """Total: the device's cameras (one per video source), or its Failure whatever the
        exception's type."""
        creds = self.spec.credentials
        if creds is None:
            return self._failure(target, FailureKind.credentials, "no credentials configured")
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.spec.discovery.camera_budget_s) as budget:
                if target.kind == "rtsp":
                    cameras = [await self._read_rtsp(target, creds)]
                else:
                    cameras = await self._onvif.enrich(self.network, target, creds, budget)
        except TimeoutError:
            # An NVR's budget grew with its channels (OnvifClient.enrich): say the one it had.
            allowed = (budget.when() or started) - started
            reason = f"no complete answer within {round(allowed, 1):g} s"
            return self._failure(target, FailureKind.timeout, reason)
        except AdapterError as exc:
            kind = _failure_kind(exc)
            refused = self._fingerprint(creds) if kind is FailureKind.auth else None
            return self._failure(target, kind, str(exc), refused)
        except Exception as exc:  # an answer nobody foresaw (or a bug): this camera's failure
            what = "RTSP DESCRIBE" if target.kind == "rtsp" else "ONVIF"
            reason = f"{what}: unusable answer ({describe_exception(exc)})"
            return self._failure(target, FailureKind.read, reason)
        port = uri_port(target.rtsp_uri or "") if target.kind == "rtsp" else target.port
        worked = self._fingerprint(creds)
        out = []
        for camera in cameras:
            lat, lon = target.place if target.place else (camera.lat, camera.lon)
            placed = replace(camera, port=port, lat=lat, lon=lon, credentials_fp=worked)
            out.append(replace(placed, ref=self.ref(placed, target)))
        return out

    def _fingerprint(self, creds: UriCredentials) -> str:
        """The credentials' keyed fingerprint: which credentials worked (on a camera read) or
        were refused (on an `auth` failure), never the credentials themselves."""
        return credentials_fingerprint(self.spec.ref_key, creds)

    def ref(self, camera: Discovered, target: Target) -> str:
        """The camera's opaque, stable key: keyed with this adapter's secret, from the device's
        strongest identity (endpoint reference, else serial and MAC, else address and port),
        and for a device of several video sources (an NVR) the camera's channel. A device of
        one source keeps the key it always had."""
        identity = camera.endpoint_reference or (
            f"hw|{camera.serial}|{camera.mac}" if camera.serial and camera.mac else ""
        )
        if not identity:
            port = uri_port(target.rtsp_uri or "") if target.kind == "rtsp" else target.port
            identity = f"at|{target.address}|{port}"
        if camera.channels > 1 and camera.channel is not None:
            identity = f"{identity}|ch|{camera.channel}"
        message = f"{self.network}|{identity}".encode()
        return hmac.new(self.spec.ref_key, message, hashlib.sha256).hexdigest()[:32]

    async def _read_rtsp(self, target: Target, creds: UriCredentials) -> Discovered:
        assert target.rtsp_uri is not None
        info = await describe(
            target.rtsp_uri,
            creds.username,
            creds.password,
            self.spec.discovery.timeout_s,
            allow_basic=self.spec.access.allow_basic_over_http,
        )
        return Discovered(
            network=self.network,
            address=target.address,
            source=target.source,
            name=target.name,
            rtsp_only=True,
            profiles=(
                Profile(
                    token="rtsp",
                    name="RTSP stream",
                    codec=info.codec,
                    width=info.width,
                    height=info.height,
                    fps=info.fps,
                    stream_uri=target.rtsp_uri,
                ),
            ),
            notes=("RTSP-only camera: no ONVIF, snapshots from the stream",),
        )

    def _failure(
        self, target: Target, kind: FailureKind, reason: str, credentials_fp: str | None = None
    ) -> Failure:
        reason = redact(reason, self.spec.credentials)  # a camera may echo the password back
        log.warning(
            "camera not read",
            extra={
                "network": self.network,
                "address": target.address,
                "step": kind.value,
                "reason": reason,
            },
        )
        port = uri_port(target.rtsp_uri or "") if target.kind == "rtsp" else target.port
        return Failure(
            self.network,
            target.address,
            kind,
            reason,
            target.endpoint_reference,
            port=port,
            credentials_fp=credentials_fp,
        )

    # -- health -------------------------------------------------------------------------

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        """Cheap liveness per camera: ONVIF clock (no auth) or an RTSP OPTIONS-free TCP connect.
        One probe per device: the channels of an NVR or encoder share its device service, and
        the answer is the device's, so its 16 channels are one probe, not 16. (Whether a
        camera behind a recorder still sends video the clock cannot tell either way.)
        `health_concurrency` workers take the devices in turn (not one task per camera: a
        district's round is 100,000 of them)."""
        await self._ensure_started()
        results: list[HealthResult | None] = [None] * len(targets)
        # A district's round is 75,000 cameras in one process: its passes over them (grouping,
        # the clock probes, their answers) run in a thread, not on the loop that discovery's
        # reads share (a two-second pass there made their connects time out).
        clocks, rest = await off_the_loop(len(targets) > LOOP_ITEMS, _probe_plan, targets)
        others = iter(rest)

        async def worker() -> None:
            for same in others:
                _fan(results, targets, same, await self._probe_one(targets[same[0]]))

        workers = min(self.spec.discovery.health_concurrency, len(rest))
        await asyncio.gather(
            self._clock_round(targets, clocks, results), *(worker() for _ in range(workers))
        )
        return [r for r in results if r is not None]

    async def _clock_round(
        self,
        targets: Sequence[Target],
        clocks: list[tuple[list[int], ClockProbe]],
        results: list[HealthResult | None],
    ) -> None:
        """The plain-HTTP devices' clocks, through one epoll loop in a worker thread
        (adapters/liveness.py); their results set there too (`results` at their own
        indices: the asyncio workers set the others)."""
        if not clocks:
            return
        stop = threading.Event()
        cfg = self.spec.discovery
        try:
            await asyncio.to_thread(
                _clock_results,
                targets,
                clocks,
                results,
                cfg.health_concurrency,
                cfg.timeout_s,
                stop,
            )
        finally:
            stop.set()  # (a cancelled round: the thread's unanswered probes end at once)

    async def _probe_one(self, target: Target) -> HealthResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.discovery.timeout_s):
                if target.kind == "rtsp":
                    await _tcp_connect(target)
                else:
                    await self._clock(target)
        except TimeoutError:
            return HealthResult(target.address, False, "timeout", ref=target.ref)
        except (AdapterError, OSError) as exc:
            reason = str(exc) if isinstance(exc, AdapterError) else type(exc).__name__
            return HealthResult(target.address, False, reason, ref=target.ref)
        ms = (time.perf_counter() - started) * 1000
        return HealthResult(target.address, True, None, round(ms, 1), target.ref)

    async def _clock(self, target: Target) -> None:
        """ONVIF liveness: the device service answers GetSystemDateAndTime (plain HTTP without
        a SOAP stack, adapters/liveness.py; HTTPS through zeep)."""
        scheme, port, url = _device_service(target)
        if scheme == "http":
            await clock_answers(target.address, port, url)
        else:
            await self._onvif.check(target)


@functools.lru_cache(maxsize=_PLACES_KEPT)
def _device_service(target: Target) -> tuple[str, int, str]:
    """Scheme, port and URL of a target's device service, worked out once per target rather
    than once per round (URL parsing was a sixth of a probe's CPU)."""
    url = device_url(target)
    parts = urlsplit(url)
    return parts.scheme, parts.port or (443 if parts.scheme == "https" else 80), url


def _probe_plan(
    targets: Sequence[Target],
) -> tuple[list[tuple[list[int], ClockProbe]], list[list[int]]]:
    """The round's devices (the indices of the targets that share one) as (indices, clock
    probe) for plain-HTTP device services, nearly all, and indices alone for the rest (HTTPS
    through zeep, RTSP-only)."""
    devices: dict[tuple[object, ...], list[int]] = {}
    for i, target in enumerate(targets):
        devices.setdefault(_device_key(target), []).append(i)
    clocks: list[tuple[list[int], ClockProbe]] = []
    rest: list[list[int]] = []
    for same in devices.values():
        probe = _clock_probe(targets[same[0]])
        if probe is None:
            rest.append(same)
        else:
            clocks.append((same, probe))
    return clocks, rest


def _clock_results(
    targets: Sequence[Target],
    clocks: list[tuple[list[int], ClockProbe]],
    results: list[HealthResult | None],
    concurrency: int,
    timeout_s: float,
    stop: threading.Event,
) -> None:
    """Blocking: the clock probes' answers as each device's cameras' results."""
    outcomes = probe_clocks([p for _, p in clocks], concurrency, timeout_s, stop)
    for (same, _), outcome in zip(clocks, outcomes, strict=True):
        t = targets[same[0]]
        if outcome.error is None:
            first = HealthResult(t.address, True, None, outcome.latency_ms, t.ref)
        else:
            first = HealthResult(t.address, False, str(outcome.error), ref=t.ref)
        _fan(results, targets, same, first)


def _fan(
    results: list[HealthResult | None],
    targets: Sequence[Target],
    same: list[int],
    first: HealthResult,
) -> None:
    """A device's answer as the result of each camera it serves (an NVR's channels)."""
    results[same[0]] = first
    for i in same[1:]:
        results[i] = replace(first, address=targets[i].address, ref=targets[i].ref)


def _clock_probe(target: Target) -> ClockProbe | None:
    """The clock probe of an ONVIF device service over plain HTTP (None: another kind)."""
    if target.kind == "rtsp":
        return None
    scheme, port, url = _device_service(target)
    return ClockProbe(target.address, port, url) if scheme == "http" else None


def _device_key(target: Target) -> tuple[object, ...]:
    """What a health probe reaches: targets equal here are answered by one device."""
    return (target.kind, target.address, target.port, target.xaddrs, target.rtsp_uri)


def _place(target: Target) -> tuple[str, str]:
    """Where a device answers: its address and port (ONVIF) or its stream (RTSP-only)."""
    if target.kind == "rtsp":
        return target.address, target.rtsp_uri or ""
    return target.address, str(target.port)


def _ignored_reason(entry: str) -> str:
    """'127.1.0.9: outside the network's CIDRs' -> the reason alone (bounded: a metric label
    and a job's counter, never a sender's long text)."""
    _, _, reason = entry.partition(": ")
    return (reason or entry)[:80]


_HTTP_STEP = "camera HTTP snapshot"


def _fallback_note(what: str) -> str:
    """The same words for every picture while the camera's HTTP snapshot stays unusable."""
    return f"fallback: the HTTP snapshot answers {what}"


def _failure_kind(exc: AdapterError) -> FailureKind:
    """auth: credentials refused; read: an unusable answer; timeout and unreachable: no answer
    at all, which the gateway counts as a failed observation, not as a fault of the camera."""
    kind = failure_kind(exc)
    if kind is FailureKind.unreachable and (
        isinstance(exc, RtspTimeout) or isinstance(exc.__cause__, TimeoutError)
    ):
        return FailureKind.timeout
    return kind


async def _tcp_connect(target: Target) -> None:
    parts = urlsplit(target.rtsp_uri or "")
    try:
        _, writer = await asyncio.open_connection(target.address, parts.port or 554)
    except OSError as exc:
        raise CameraUnreachable(f"RTSP port: {type(exc).__name__}") from exc
    writer.close()
    await writer.wait_closed()
