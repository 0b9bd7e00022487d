"""RTSP-only simulated cameras, served by GStreamer's RTSP server in a child process.

PyGObject is not in the venv: `gst_rtsp.py` runs under Debian's /usr/bin/python3 (python3-gi), and
this module starts and stops it from asyncio. The camera list (with passwords) goes to the child
on its stdin, never on its command line; later stdin lines take cameras offline and back
(`set_offline`); the child exits by itself if that pipe closes (our process died without calling
`stop()`).

    sim = RtspSimulator([RtspCamera("police-traffic-0001", "127.2.1.0", "admin", "pw")])
    # codec="h265" or "mjpeg" for the other codecs (RtspCamera.codec, or SimDevice.codec)
    await sim.start()
    sim.url("police-traffic-0001")  # rtsp://127.2.1.0:8554/stream1
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

from .devices import RTSP_PORT, SIM_USERNAME, SimDevice
from .onvif_server import actual_password

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("gst_rtsp.py")
SYSTEM_PYTHON_ENV = "CAMGW_SYSTEM_PYTHON"  # override /usr/bin/python3 (tests, other distros)
DEFAULT_SYSTEM_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",  # x264enc
    "gstreamer1.0-plugins-bad",  # x265enc
    "gstreamer1.0-x",  # textoverlay/clockoverlay (the pango plugin) live here on Debian 12
)
INSTALL_HINT = "apt-get install -y " + " ".join(DEBIAN_PACKAGES) + " (or run `make test` as root)"

AuthMethod = Literal["digest", "basic", "none"]
Codec = Literal["h264", "h265", "mjpeg"]  # H.264, H.265 (RFC 7798), MJPEG (RFC 2435)


class RtspSimulatorError(RuntimeError):
    """The RTSP simulator could not start (or died)."""


class GStreamerMissingError(RtspSimulatorError):
    """Debian's python3 lacks PyGObject, the RTSP server bindings or a GStreamer plugin."""


@dataclass(frozen=True, slots=True)
class RtspCamera:
    camera_id: str
    address: str
    username: str
    password: str = field(repr=False)
    port: int = RTSP_PORT
    path: str = "/stream1"
    width: int = 1280
    height: int = 720
    fps: int = 25
    auth: AuthMethod = "digest"
    codec: Codec = "h264"

    @classmethod
    def from_device(cls, device: SimDevice, **overrides: object) -> RtspCamera:
        """The RTSP side of a simulated device (an RTSP-only camera, or an ONVIF one's stream).

        The password is the one the device really accepts: with the wrong_password quirk, the
        one on file is refused here too, as by its ONVIF and snapshot services.
        """
        fields: dict[str, object] = {
            "camera_id": device.camera.id,
            "address": device.address,
            "username": device.username or SIM_USERNAME,
            "password": actual_password(device),
            "codec": device.codec,
        }
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]

    def config(self) -> dict[str, object]:
        return {
            "camera_id": self.camera_id,
            "address": self.address,
            "port": self.port,
            "path": self.path,
            "username": self.username,
            "password": self.password,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "auth": self.auth,
            "codec": self.codec,
        }


def system_python() -> str:
    """Debian's python3, which has python3-gi (the venv's interpreter does not)."""
    explicit = os.environ.get(SYSTEM_PYTHON_ENV)
    if explicit:
        return explicit
    if os.access(DEFAULT_SYSTEM_PYTHON, os.X_OK):
        return DEFAULT_SYSTEM_PYTHON
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        raise GStreamerMissingError(
            f"no system python3 found for the GStreamer RTSP server; {INSTALL_HINT}"
        )
    return found


_checked: dict[str, str] = {}  # python path -> GStreamer version, once per process


async def check_gstreamer(python: str | None = None, timeout_s: float = 20.0) -> str:
    """Raise GStreamerMissingError naming the Debian packages unless everything is importable.

    Returns the GStreamer version string. The result is cached for the process.
    """
    python = python or system_python()
    if python in _checked:
        return _checked[python]
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            str(SCRIPT),
            "--check",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise GStreamerMissingError(f"cannot run {python}: {exc.strerror}; {INSTALL_HINT}") from exc
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RtspSimulatorError(f"{python} {SCRIPT.name} --check hung for {timeout_s}s") from None
    lines = out.decode(errors="replace").splitlines()
    if proc.returncode == 0 and lines and lines[0].startswith("OK"):
        _checked[python] = lines[0][3:].strip()
        return _checked[python]
    missing = [line.split()[1:] for line in lines if line.startswith("MISSING ")]
    if missing:
        what = ", ".join(f"{m[0]} ({m[1]})" for m in missing if len(m) == 2)
        raise GStreamerMissingError(
            f"the RTSP camera simulator needs GStreamer for {python}; missing: {what}. "
            f"Install: {INSTALL_HINT}"
        )
    tail = err.decode(errors="replace").strip().splitlines()[-3:]
    raise GStreamerMissingError(
        f"{python} {SCRIPT.name} --check failed (exit {proc.returncode}: {' | '.join(tail)}); "
        f"{INSTALL_HINT}"
    )


class RtspSimulator:
    """Serve `cameras` as RTSP-only cameras until `stop()` (also an async context manager)."""

    def __init__(
        self,
        cameras: list[RtspCamera],
        *,
        python: str | None = None,
        ready_timeout_s: float = 15.0,
    ) -> None:
        if not cameras:
            raise ValueError("RtspSimulator needs at least one camera")
        ids = [c.camera_id for c in cameras]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate camera_id in RtspSimulator cameras")
        self.cameras: dict[str, RtspCamera] = {c.camera_id: c for c in cameras}
        self._python = python
        self._ready_timeout_s = ready_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.returncode: int | None = None  # of the last child, once stopped
        self._control = asyncio.Lock()
        self.offline: set[str] = set()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def url(self, camera_id: str, with_credentials: bool = False) -> str:
        cam = self.cameras[camera_id]
        userinfo = ""
        if with_credentials:
            userinfo = f"{quote(cam.username, safe='')}:{quote(cam.password, safe='')}@"
        host = f"[{cam.address}]" if ":" in cam.address else cam.address
        return f"rtsp://{userinfo}{host}:{cam.port}{cam.path}"

    async def start(self) -> None:
        if self._proc is not None:
            raise RtspSimulatorError("RtspSimulator already started")
        python = self._python or system_python()
        await check_gstreamer(python)
        self.offline.clear()
        self._stderr_tail.clear()
        proc = await asyncio.create_subprocess_exec(
            python,
            str(SCRIPT),
            "--config",
            "-",
            "--control-stdin",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain_stderr(proc.stderr))
        config = {"cameras": [c.config() for c in self.cameras.values()]}
        try:
            proc.stdin.write(json.dumps(config).encode() + b"\n")
            await proc.stdin.drain()
            async with asyncio.timeout(self._ready_timeout_s):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        await proc.wait()
                        raise RtspSimulatorError(
                            f"RTSP simulator exited (code {proc.returncode}) before READY: "
                            + self._stderr_summary()
                        )
                    if line.strip() == b"READY":
                        break
        except TimeoutError:
            await self.stop()
            raise RtspSimulatorError(
                f"RTSP simulator not READY within {self._ready_timeout_s}s: "
                + self._stderr_summary()
            ) from None
        except BaseException:
            await self.stop()
            raise
        log.info("RTSP simulator pid %s serving %d cameras", proc.pid, len(self.cameras))

    async def set_offline(self, camera_id: str, offline: bool, timeout_s: float = 5.0) -> None:
        """Close (or reopen) the camera's RTSP port: clients are dropped, connections refused.

        Cameras sharing one address:port go offline together.
        """
        if camera_id not in self.cameras:
            raise KeyError(camera_id)
        proc = self._proc
        if proc is None or proc.returncode is not None:
            raise RtspSimulatorError("RTSP simulator is not running")
        assert proc.stdin is not None and proc.stdout is not None
        verb = "offline" if offline else "online"
        async with self._control:
            proc.stdin.write(f"{verb} {camera_id}\n".encode())
            await proc.stdin.drain()
            try:
                async with asyncio.timeout(timeout_s):
                    answer = (await proc.stdout.readline()).decode(errors="replace").strip()
            except TimeoutError:
                raise RtspSimulatorError(f"RTSP simulator did not answer {verb!r}") from None
        if answer != f"OK {verb} {camera_id}":
            raise RtspSimulatorError(f"RTSP simulator: {verb} {camera_id}: {answer or 'exited'}")
        if offline:
            self.offline.add(camera_id)
        else:
            self.offline.discard(camera_id)

    async def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    await proc.wait()
            except TimeoutError:
                log.warning("RTSP simulator pid %s ignored SIGTERM; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(ConnectionError):
                await proc.stdin.wait_closed()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None
        self.returncode = proc.returncode
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            log.warning(
                "RTSP simulator exited with %s: %s", proc.returncode, self._stderr_summary()
            )

    async def __aenter__(self) -> RtspSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        """Keep the pipe from filling; remember the last lines for error messages."""
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr_tail.append(text[:300])
                log.debug("gst_rtsp: %s", text)

    def _stderr_summary(self) -> str:
        return " | ".join(list(self._stderr_tail)[-3:]) or "(no output)"
