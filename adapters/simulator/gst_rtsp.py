#!/usr/bin/python3
"""RTSP-only simulated cameras: one GStreamer RTSP server per camera address, one GLib main loop.

Run by Debian's /usr/bin/python3 (PyGObject comes from python3-gi, not from the venv), as a child
process of `adapters.simulator.rtsp_server.RtspSimulator`. It imports nothing from the project.

Each camera serves a test pattern (camera id and wall-clock time burned in) in its codec (H.264,
H.265 or MJPEG, per camera) at rtsp://ADDRESS:PORT/PATH behind RTSP digest authentication (or
basic, or none, per camera). The media factory is shared, so any number of clients of one camera
cost one encoder; the encoder only runs while somebody is watching (or asking DESCRIBE).

Configuration, JSON (an object with a "cameras" list, or the list itself):
    {"cameras": [{"camera_id": "police-traffic-0001", "address": "127.2.1.0", "port": 8554,
                  "path": "/stream1", "username": "admin", "password": "...",
                  "width": 1280, "height": 720, "fps": 25, "auth": "digest", "codec": "h264"}]}
given as `--config FILE`, or `--config -` to read ONE line of JSON from stdin (what the simulator
does: no password on a command line or on disk). With `--control-stdin`, further stdin lines are
commands, each answered by one stdout line:
    offline CAMERA_ID   close the camera's listening socket and drop its clients -> "OK offline ID"
    online CAMERA_ID    listen again                                              -> "OK online ID"
(cameras sharing one address:port go offline together; an unknown id -> "ERR unknown ID"), and the
server exits when stdin closes, so it never outlives a parent that died without stopping it.

For manual use: `--camera ID=ADDRESS[:PORT][/PATH]` (repeatable) with `--username` and the
password in the environment variable CAMGW_RTSP_PASSWORD (never on the command line).

`--check` verifies PyGObject, the RTSP server bindings and every GStreamer element used, prints
"OK" or one "MISSING <what> <debian-package>" line per problem, and exits 0 or 3.

Prints "READY" on stdout once every server is listening; exits 0 on SIGTERM or SIGINT, 2 on a
configuration or bind error (reason on stderr, never a password).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, NoReturn

RTSP_PORT = 8554
DEFAULT_PATH = "/stream1"
PASSWORD_ENV = "CAMGW_RTSP_PASSWORD"
REALM = "camgw-sim"

# element -> Debian package that ships it
ELEMENTS = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "textoverlay": "gstreamer1.0-x",
    "clockoverlay": "gstreamer1.0-x",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "x265enc": "gstreamer1.0-plugins-bad",
    "rtph265pay": "gstreamer1.0-plugins-good",
    "jpegenc": "gstreamer1.0-plugins-good",
    "rtpjpegpay": "gstreamer1.0-plugins-good",
}

GiModules = tuple[Any, Any, Any, Any]  # GLib, Gst, GstRtsp, GstRtspServer

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_PATH_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
_AUTH_METHODS = ("digest", "basic", "none")
_CODECS = ("h264", "h265", "mjpeg")


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"gst_rtsp: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _import_gi() -> GiModules:
    import gi  # noqa: PLC0415  (the import itself is what --check tests)

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: PLC0415

    return GLib, Gst, GstRtsp, GstRtspServer


def check() -> int:
    try:
        import gi  # noqa: PLC0415, F401
    except ImportError:
        print("MISSING gi python3-gi", flush=True)
        return 3
    try:
        _glib, gst, _gst_rtsp, _server = _import_gi()
    except (ImportError, ValueError):
        print("MISSING GstRtspServer gir1.2-gst-rtsp-server-1.0", flush=True)
        return 3
    gst.init(None)
    missing = [(e, pkg) for e, pkg in ELEMENTS.items() if gst.ElementFactory.find(e) is None]
    for element, pkg in missing:
        print(f"MISSING {element} {pkg}", flush=True)
    if missing:
        return 3
    print("OK", gst.version_string(), flush=True)
    return 0


@dataclass(frozen=True)
class Camera:
    camera_id: str
    address: str
    port: int
    path: str
    username: str
    password: str = field(repr=False)
    width: int
    height: int
    fps: int
    auth: str
    codec: str = "h264"


def _camera(raw: object, index: int) -> Camera:
    if not isinstance(raw, dict):
        _fail(f"camera #{index}: not an object")
    cam_id = str(raw.get("camera_id", ""))
    if not _ID_RE.match(cam_id):
        _fail(f"camera #{index}: invalid camera_id (letters, digits, . _ : - only)")
    path = str(raw.get("path", DEFAULT_PATH))
    if not _PATH_RE.match(path):
        _fail(f"camera {cam_id}: invalid path")
    auth = str(raw.get("auth", "digest"))
    if auth not in _AUTH_METHODS:
        _fail(f"camera {cam_id}: auth must be one of {', '.join(_AUTH_METHODS)}")
    codec = str(raw.get("codec", "h264"))
    if codec not in _CODECS:
        _fail(f"camera {cam_id}: codec must be one of {', '.join(_CODECS)}")
    try:
        cam = Camera(
            camera_id=cam_id,
            address=str(raw["address"]),
            port=int(raw.get("port", RTSP_PORT)),
            path=path,
            username=str(raw.get("username", "")),
            password=str(raw.get("password", "")),
            width=int(raw.get("width", 1280)),
            height=int(raw.get("height", 720)),
            fps=int(raw.get("fps", 25)),
            auth=auth,
            codec=codec,
        )
    except (KeyError, TypeError, ValueError) as exc:
        _fail(f"camera {cam_id}: bad field ({type(exc).__name__}: {exc.args[0]!s:.60})")
    if auth != "none" and not cam.username:
        _fail(f"camera {cam_id}: {auth} auth needs a username")
    if not (16 <= cam.width <= 4096 and 16 <= cam.height <= 4096):
        _fail(f"camera {cam_id}: width/height out of range")
    if not 1 <= cam.fps <= 60:
        _fail(f"camera {cam_id}: fps out of range")
    return cam


def load_cameras(args: argparse.Namespace) -> list[Camera]:
    raw: object
    if args.config == "-":
        try:
            raw = json.loads(_STDIN.readline())
        except ValueError:
            _fail("stdin: first line is not JSON")
    elif args.config:
        try:
            with open(args.config, encoding="utf-8") as fh:
                raw = json.load(fh)
        except (OSError, ValueError) as exc:
            _fail(f"{args.config}: {type(exc).__name__}")
    else:
        password = os.environ.get(PASSWORD_ENV, "")
        specs: list[dict[str, object]] = []
        for spec in args.camera or []:
            m = re.match(r"^([^=]+)=([^:/]+)(?::(\d+))?(/.*)?$", spec)
            if not m:
                _fail(f"--camera {spec!r}: expected ID=ADDRESS[:PORT][/PATH]")
            specs.append(
                {
                    "camera_id": m.group(1),
                    "address": m.group(2),
                    "port": int(m.group(3) or RTSP_PORT),
                    "path": m.group(4) or DEFAULT_PATH,
                    "username": args.username,
                    "password": password,
                    "width": args.width,
                    "height": args.height,
                    "fps": args.fps,
                    "auth": args.auth,
                    "codec": args.codec,
                }
            )
        raw = specs
    if isinstance(raw, dict):
        raw = raw.get("cameras")
    if not isinstance(raw, list) or not raw:
        _fail("no cameras configured")
    cameras = [_camera(c, i) for i, c in enumerate(raw)]
    seen: set[tuple[str, int, str]] = set()
    for cam in cameras:
        key = (cam.address, cam.port, cam.path)
        if key in seen:
            _fail(f"camera {cam.camera_id}: address, port and path already used")
        seen.add(key)
    return cameras


def launch_line(cam: Camera) -> str:
    """The media pipeline. camera_id is validated by _ID_RE, so it is safe inside quotes."""
    return (
        "( videotestsrc is-live=true pattern=smpte"
        f" ! video/x-raw,width={cam.width},height={cam.height},framerate={cam.fps}/1"
        f' ! textoverlay text="{cam.camera_id}" valignment=top halignment=left'
        ' font-desc="Sans Bold 28" shaded-background=true'
        ' ! clockoverlay time-format="%Y-%m-%d %H:%M:%S" valignment=bottom halignment=right'
        ' font-desc="Sans 24" shaded-background=true'
        f" ! videoconvert ! {_ENCODERS[cam.codec].format(fps=cam.fps)} )"
    )


# Encoder and payloader per codec: a keyframe every second, one encoder thread (a fleet of
# simulated cameras shares the machine), parameter sets with every keyframe (config-interval=-1:
# a client joining mid-stream can decode from the next keyframe). MJPEG: every frame is one
# (RFC 2435; rtpjpegpay sends the quantization tables in-band, Q=255).
_ENCODERS = {
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=1500 threads=1"
        " ! rtph264pay name=pay0 pt=96 config-interval=-1"
    ),
    "h265": (
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=1500"
        ' option-string="pools=1:frame-threads=1:log-level=error"'
        " ! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=-1"
    ),
    # rtpjpegpay takes 4:2:0 or 4:2:2 only (RTP/JPEG types 1 and 0): I420 before the encoder
    "mjpeg": "video/x-raw,format=I420 ! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26",
}


class _Stdin:
    """Unbuffered line reading of fd 0 (Python's buffered sys.stdin would hide lines from the
    GLib watch)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.eof = False

    def fill(self) -> None:
        data = os.read(0, 4096)
        if data:
            self.buffer += data
        else:
            self.eof = True

    def take_line(self) -> str | None:
        line, sep, rest = self.buffer.partition(b"\n")
        if not sep:
            return None
        self.buffer = rest
        return line.decode("utf-8", errors="replace")

    def readline(self) -> str:
        while (line := self.take_line()) is None and not self.eof:
            if len(self.buffer) > 16 * 1024 * 1024:
                _fail("stdin: config line too long")
            self.fill()
        return line or ""


_STDIN = _Stdin()


def _raise_fd_limit() -> None:
    """One listening socket per camera address: thousands of descriptors at fleet scale."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def build_server(gi_mods: GiModules, address: str, port: int, cams: list[Camera]) -> Any:
    """One RTSP server (one listening socket) with a mount per camera, not yet attached."""
    _glib, gst, gst_rtsp, server_mod = gi_mods
    server = server_mod.RTSPServer()
    server.set_address(address)
    server.set_service(str(port))
    mounts = server.get_mount_points()
    kinds = {cam.auth for cam in cams}
    if len(kinds) > 1:
        _fail(f"{address}:{port}: cameras sharing one server need the same auth method")
    auth = None
    if kinds != {"none"}:
        auth = server_mod.RTSPAuth()
        auth.set_realm(REALM)
        digest = "digest" in kinds
        auth.set_supported_methods(
            gst_rtsp.RTSPAuthMethod.DIGEST if digest else gst_rtsp.RTSPAuthMethod.BASIC
        )
        # No default token: an unauthenticated request has no media role and gets a 401 with
        # the challenge; an authenticated user asking another camera's mount gets a 404.
        server.set_auth(auth)
    for i, cam in enumerate(cams):
        factory = server_mod.RTSPMediaFactory()
        factory.set_launch(launch_line(cam))
        factory.set_shared(True)  # many clients, one encoder
        if auth is not None:
            role = f"camera{i}"
            token = server_mod.RTSPToken()
            token.set_string(server_mod.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
            user, password = cam.username, cam.password
            if cam.auth == "digest":
                auth.add_digest(user, password, token)
            else:
                auth.add_basic(server_mod.RTSPAuth.make_basic(user, password), token)
            factory.add_role_from_structure(
                gst.Structure.new_from_string(
                    f"{role}, media.factory.access=(boolean)true,"
                    " media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory(cam.path, factory)
    return server


class Fleet:
    """Every server, attached to the default main context; offline/online by camera id."""

    def __init__(self, gi_mods: GiModules, cameras: list[Camera]) -> None:
        self.glib = gi_mods[0]
        self.server_mod = gi_mods[3]
        by_endpoint: dict[tuple[str, int], list[Camera]] = {}
        for cam in cameras:
            by_endpoint.setdefault((cam.address, cam.port), []).append(cam)
        self.servers: list[Any] = []
        self.index: dict[str, int] = {}  # camera id -> position in servers / sources
        for (address, port), cams in by_endpoint.items():
            for cam in cams:
                self.index[cam.camera_id] = len(self.servers)
            self.servers.append(build_server(gi_mods, address, port, cams))
        self.sources = [server.attach(None) for server in self.servers]
        for (address, port), source in zip(by_endpoint, self.sources, strict=True):
            if source == 0:
                _fail(f"cannot listen on {address}:{port} (address in use or not local)")

    def drop_clients(self, server: Any) -> None:
        server.client_filter(lambda _server, _client: self.server_mod.RTSPFilterResult.REMOVE)

    def command(self, line: str) -> str:
        verb, _, cam_id = line.strip().partition(" ")
        if verb not in ("offline", "online"):
            return f"ERR unknown command {verb[:20]}"
        i = self.index.get(cam_id)
        if i is None:
            return f"ERR unknown {cam_id[:128]}"
        if verb == "offline" and self.sources[i]:
            self.glib.Source.remove(self.sources[i])  # closes the listening socket: refused
            self.sources[i] = 0
            self.drop_clients(self.servers[i])
        elif verb == "online" and not self.sources[i]:
            self.sources[i] = self.servers[i].attach(None)
            if not self.sources[i]:
                return f"ERR cannot listen again for {cam_id}"
        return f"OK {verb} {cam_id}"

    def close(self) -> None:
        for server in self.servers:  # drop clients so their media pipelines stop before exit
            self.drop_clients(server)


def serve(cameras: list[Camera], control_stdin: bool) -> int:
    gi_mods = _import_gi()
    glib, gst = gi_mods[0], gi_mods[1]
    gst.init(None)
    _raise_fd_limit()
    loop = glib.MainLoop()
    fleet = Fleet(gi_mods, cameras)

    def quit_loop(*_args: object) -> bool:
        loop.quit()
        return False

    def on_stdin(_channel: object, _condition: object) -> bool:
        _STDIN.fill()
        while (line := _STDIN.take_line()) is not None:
            if line.strip():
                print(fleet.command(line), flush=True)
        if _STDIN.eof:  # the parent is gone or closed us
            loop.quit()
            return False
        return True

    glib.unix_signal_add(glib.PRIORITY_HIGH, signal.SIGTERM, quit_loop)
    glib.unix_signal_add(glib.PRIORITY_HIGH, signal.SIGINT, quit_loop)
    if control_stdin:
        condition = glib.IOCondition.IN | glib.IOCondition.HUP
        glib.io_add_watch(glib.IOChannel.unix_new(0), glib.PRIORITY_DEFAULT, condition, on_stdin)
    print("READY", flush=True)
    loop.run()
    fleet.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="check GStreamer, print OK/MISSING")
    parser.add_argument("--config", help="JSON file, or - for one JSON line on stdin")
    parser.add_argument("--camera", action="append", help="ID=ADDRESS[:PORT][/PATH]")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--auth", choices=_AUTH_METHODS, default="digest")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--codec", choices=_CODECS, default="h264")
    parser.add_argument(
        "--control-stdin", action="store_true", help="offline/online commands; exit at EOF"
    )
    args = parser.parse_args(argv)
    if args.check:
        return check()
    cameras = load_cameras(args)
    return serve(cameras, args.control_stdin)


if __name__ == "__main__":
    sys.exit(main())
