"""Every failure of an RTSP inspection or frame grab, drawn once:

    AdapterError (adapters.base)
    ├── RtspError                    inspecting or playing a stream failed
    │   ├── RtspConnectionError      refused, unreachable, reset (also CameraUnreachable)
    │   ├── RtspTimeout              no complete answer in time (also CameraUnreachable)
    │   ├── RtspAuthError            credentials wanted or refused (also CameraAuthError)
    │   │   └── RtspNoCredentials    wanted, and we have none
    │   └── RtspProtocolError        garbage, oversized, redirected, foreign host, bad media
    │                                (also CameraProtocolError; RtpError is translated to it)
    └── GrabError                    no frame could be taken from the stream
        ├── GrabTimeout              no keyframe within the timeout (also CameraUnreachable)
        └── DecodeError              the stream's pictures did not decode (CameraProtocolError)
            └── FrameTooLarge        more pixels than this gateway decodes; nothing decoded

`RtpError` (a ValueError) is what the pure depacketizers raise; the player turns it into an
`RtspProtocolError` ("media: ..."). Messages name neither credentials nor, from the player and
the grabs, the host or the stream URI.
"""

from __future__ import annotations

from ..base import AdapterError, CameraAuthError, CameraProtocolError, CameraUnreachable


class RtspError(AdapterError):
    """Inspecting an RTSP stream failed. Messages name the URI without credentials."""


class RtspConnectionError(RtspError, CameraUnreachable):
    """The camera could not be reached (refused, unreachable, reset)."""


class PeerClosed(RtspConnectionError):
    """The camera closed the connection before answering (idle keep-alive ends, or after a 401)."""


class RtspAuthError(RtspError, CameraAuthError):
    """The camera wants credentials we do not have, or refused the ones we sent."""


class RtspNoCredentials(RtspAuthError):
    """The camera asks for authentication and we were given no credentials for it."""


class RtspTimeout(RtspError, CameraUnreachable):
    """No complete answer within the timeout."""


class RtspProtocolError(RtspError, CameraProtocolError):
    """The peer does not speak RTSP properly (garbage, oversized or inconsistent answer)."""


class RtpError(ValueError):
    """The media is not usable RTP of its codec (malformed, unsupported, oversized)."""


class GrabError(AdapterError):
    """No frame could be taken from the stream."""


class GrabTimeout(GrabError, CameraUnreachable):
    """The stream did not deliver a keyframe within the timeout."""


class DecodeError(GrabError, CameraProtocolError):
    """The camera's pictures did not decode."""


class FrameTooLarge(DecodeError):
    """The stream's pictures have more pixels than this gateway decodes; nothing was decoded."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            f"a stream of {width}x{height} pixels, over this gateway's limit of {limit:,}"
        )
