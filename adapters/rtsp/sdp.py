"""SDP (RFC 8866) as RTSP cameras answer DESCRIBE: the media descriptions, their attributes, and
what they say about the video (codec, size, frame rate, profile) and the audio codec."""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import h264, h265

# Static RTP payload types (RFC 3551) that cameras send without an rtpmap line.
_STATIC_PT = {0: "PCMU", 8: "PCMA", 14: "MPA", 26: "JPEG", 32: "MPV", 33: "MP2T", 34: "H263"}
_PT = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class SdpVideo:
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    profile: str | None = None
    level: float | None = None
    audio_codec: str | None = None


@dataclass(slots=True)
class SdpMedia:
    kind: str  # video, audio, application, ...
    payload_types: list[int]
    attrs: dict[str, list[str]]  # attribute name (lower case) -> values, in order

    @property
    def pt(self) -> int | None:
        return self.payload_types[0] if self.payload_types else None

    def encoding(self) -> str | None:
        """The encoding name of the first payload type (rtpmap, else the static table)."""
        for entry in self.attrs.get("rtpmap", []):
            map_pt, enc = _rtpmap(entry)
            if map_pt == self.pt and enc:
                return enc
        return _STATIC_PT.get(self.pt) if self.pt is not None else None

    def fmtp(self) -> dict[str, str]:
        """The format parameters of the first payload type (keys in lower case)."""
        return _fmtp(self.attrs.get("fmtp", []), self.pt)

    def control(self) -> str:
        return (self.attrs.get("control") or [""])[0]

    def explicit_size(self) -> tuple[int | None, int | None]:
        """a=framesize or a=x-dimensions."""
        return _explicit_size(self.attrs, self.pt)


@dataclass(slots=True)
class Sdp:
    attrs: dict[str, list[str]]  # session-level attributes
    media: list[SdpMedia]

    def control(self) -> str:
        return (self.attrs.get("control") or [""])[0]

    def videos(self) -> list[SdpMedia]:
        return [m for m in self.media if m.kind == "video"]


def parse(text: str) -> Sdp:
    """Session-level attributes and media descriptions. ValueError if it is not SDP."""
    if not text.lstrip().startswith("v="):
        raise ValueError("not an SDP document")
    session: dict[str, list[str]] = {}
    media: list[SdpMedia] = []
    for raw_line in text.splitlines()[:2000]:
        line = raw_line.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            fields = value.split()
            pts = [int(f) for f in fields[3:] if _PT.fullmatch(f)]
            media.append(SdpMedia(fields[0].lower() if fields else "", pts, {}))
        elif kind == "a":
            attr, _, rest = value.partition(":")
            attrs = media[-1].attrs if media else session
            values = attrs.setdefault(attr.lower(), [])
            if len(values) < 64:
                values.append(rest.strip())
    return Sdp(session, media)


def parse_sdp(text: str) -> SdpVideo:
    """Codec, resolution and frame rate of the first video stream; first audio codec."""
    media = parse(text).media
    audio = next((m for m in media if m.kind == "audio"), None)
    audio_codec = audio.encoding() if audio is not None else None
    video = next((m for m in media if m.kind == "video"), None)
    if video is None:
        return SdpVideo(audio_codec=audio_codec)
    codec = video.encoding()
    width = height = None
    fps: float | None = None
    profile: str | None = None
    level: float | None = None
    if codec == "H264":
        sps = h264.sps_from_sprop(video.fmtp().get("sprop-parameter-sets", ""))
        if sps is not None:
            width, height = sps.width, sps.height
            fps, profile, level = sps.fps, sps.profile, sps.level
    elif codec == "H265":
        sps265 = h265.sps_from_sprop(video.fmtp().get("sprop-sps", ""))
        if sps265 is not None:
            width, height = sps265.width, sps265.height
            profile, level = sps265.profile, sps265.level
    if width is None:
        width, height = video.explicit_size()
    fps = _explicit_fps(video.attrs) or fps
    return SdpVideo(codec, width, height, fps, profile, level, audio_codec)


def _rtpmap(entry: str) -> tuple[int | None, str | None]:
    """'96 H264/90000' -> (96, 'H264')"""
    pt_text, _, enc = entry.strip().partition(" ")
    name = enc.strip().split("/", 1)[0].upper() or None
    return (int(pt_text) if _PT.fullmatch(pt_text) else None), name


def _fmtp(entries: list[str], pt: int | None) -> dict[str, str]:
    for entry in entries:
        pt_text, _, params = entry.partition(" ")
        if pt is not None and pt_text.strip() != str(pt):
            continue
        out: dict[str, str] = {}
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip()
        return out
    return {}


def _explicit_size(attrs: dict[str, list[str]], pt: int | None) -> tuple[int | None, int | None]:
    for entry in attrs.get("framesize", []):  # a=framesize:96 1280-720
        m = re.fullmatch(r"([0-9]{1,3})\s+([0-9]{1,6})-([0-9]{1,6})", entry)
        if m and (pt is None or int(m.group(1)) == pt):
            return _sane(int(m.group(2)), int(m.group(3)))
    for entry in attrs.get("x-dimensions", []):  # a=x-dimensions:1280,720
        m = re.fullmatch(r"([0-9]{1,6})\s*,\s*([0-9]{1,6})", entry)
        if m:
            return _sane(int(m.group(1)), int(m.group(2)))
    return None, None


def _explicit_fps(attrs: dict[str, list[str]]) -> float | None:
    for entry in attrs.get("framerate", []) + attrs.get("x-framerate", []):
        try:
            value = float(entry)
        except ValueError:
            continue
        if 0 < value <= 1000:
            return value
    return None


def _sane(width: int, height: int) -> tuple[int | None, int | None]:
    if 0 < width <= 16384 and 0 < height <= 16384:
        return width, height
    return None, None
