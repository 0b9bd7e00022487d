"""camgw's own RTSP client: stream inspection (`describe`), playing a video track
(`RtspPlayer`), cold frame grabs (`grab_frame`, `grab_jpeg`); warm streams are
`adapters.stream_pool`. Transport apart from codecs, as go2rtc's pkg/rtsp, pkg/h264, pkg/h265:

| module | handles |
|---|---|
| `transport.py` | RTSP/1.0 (RFC 2326): requests, Digest/Basic, no redirects, RTP over TCP |
| `info.py` | `describe()`: OPTIONS + DESCRIBE, what the SDP says (`RtspInfo`) |
| `sdp.py` | SDP (RFC 8866): media, rtpmap, fmtp, control, framesize/x-dimensions, framerate |
| `player.py` | SETUP/PLAY/keep-alive/TEARDOWN of the first H.264, H.265 or MJPEG video track |
| `rtp.py` | RTP header (RFC 3550), sequence gaps, `Gop` (what a decoder gets) |
| `nal.py` | access units, parameter sets and GOPs of NAL-unit codecs; Annex-B |
| `h264.py` | H.264 over RTP (RFC 6184: single, STAP-A, FU-A), sprop-parameter-sets, SPS |
| `h265.py` | H.265 over RTP (RFC 7798: single, AP, FU), sprop-vps/-sps/-pps, SPS, IRAP |
| `mjpeg.py` | JPEG over RTP (RFC 2435: types 0/1/64/65, Q 1-99 and in-band tables, DRI) |
| `bits.py` | the one bit reader (Exp-Golomb, emulation prevention) of the SPS parsers |
| `decode.py` | in-memory decoding with PyAV (FFmpeg), pixel limits, JPEG out |
| `grab.py` | a cold grab: first keyframe, hang up, decode in a thread |
| `errors.py` | the exception tree |

Nothing here imports the gateway; nothing hands FFmpeg or OpenCV a network URL.
"""

from .decode import Frame, GopDecoder, check_size, decode_gop, encode_jpeg, gop_to_jpeg
from .errors import (
    DecodeError,
    FrameTooLarge,
    GrabError,
    GrabTimeout,
    RtpError,
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspNoCredentials,
    RtspProtocolError,
    RtspTimeout,
)
from .grab import first_keyframe, grab_frame, grab_jpeg, timeout_message
from .h264 import H264Sps, parse_h264_sps
from .h265 import H265Sps, parse_h265_sps
from .info import RtspInfo, describe
from .player import RtspPlayer, open_stream
from .rtp import MAX_GOP_BYTES, Gop
from .sdp import SdpVideo, parse_sdp
from .transport import MAX_RESPONSE_BYTES

__all__ = [
    "MAX_GOP_BYTES",
    "MAX_RESPONSE_BYTES",
    "DecodeError",
    "Frame",
    "FrameTooLarge",
    "Gop",
    "GopDecoder",
    "GrabError",
    "GrabTimeout",
    "H264Sps",
    "H265Sps",
    "RtpError",
    "RtspAuthError",
    "RtspConnectionError",
    "RtspError",
    "RtspInfo",
    "RtspNoCredentials",
    "RtspPlayer",
    "RtspProtocolError",
    "RtspTimeout",
    "SdpVideo",
    "check_size",
    "decode_gop",
    "describe",
    "encode_jpeg",
    "first_keyframe",
    "gop_to_jpeg",
    "grab_frame",
    "grab_jpeg",
    "open_stream",
    "parse_h264_sps",
    "parse_h265_sps",
    "parse_sdp",
    "timeout_message",
]
