"""H.265/HEVC (ITU-T H.265) over RTP (RFC 7798): NAL unit types, the depacketizer (single NAL
unit packets, aggregation packets (AP, type 48), fragmentation units (FU, type 49)), the
parameter sets (sprop-vps/-sps/-pps in the SDP, and in-band), and the sequence parameter set
(size, profile, level). Decoding starts at an IRAP picture (BLA, IDR or CRA: types 16-21).

Transmission in decoding order only: a stream with sprop-max-don-diff > 0 (DONL/DOND fields,
reordered NAL units) is refused, as H.264's interleaved mode is. PACI packets (type 50) are
refused too: no camera is known to send them, and their payload cannot be ignored safely."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from .bits import BitReader, unescape_rbsp
from .errors import RtpError
from .h264 import decode_sprop
from .nal import Depacketizer, NalCodec, NalStream, split_aggregate
from .rtp import MAX_GOP_BYTES

log = logging.getLogger(__name__)

# NAL unit types (H.265 table 7-1, RFC 7798 section 4.4)
NAL_TRAIL_N, NAL_TRAIL_R = 0, 1
NAL_RASL_N, NAL_RASL_R = 8, 9
NAL_BLA_W_LP, NAL_BLA_W_RADL, NAL_BLA_N_LP = 16, 17, 18
NAL_IDR_W_RADL, NAL_IDR_N_LP, NAL_CRA = 19, 20, 21
NAL_VPS, NAL_SPS, NAL_PPS, NAL_AUD, NAL_EOS, NAL_EOB, NAL_FD = 32, 33, 34, 35, 36, 37, 38
NAL_SEI_PREFIX, NAL_SEI_SUFFIX = 39, 40
AP, FU, PACI = 48, 49, 50
IRAP = frozenset(range(NAL_BLA_W_LP, NAL_CRA + 1))
MAX_SIZE = 16888  # pixels, either dimension: level 6.2's sqrt(8 x MaxLumaPs)


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


# ------------------------------------------------------------------------------ depacketizer


class H265Depacketizer(Depacketizer):
    """RTP payloads of one H.265 stream -> NAL units (RFC 7798, sprop-max-don-diff 0)."""

    def __init__(self, max_nal_bytes: int) -> None:
        self.max_nal_bytes = max_nal_bytes
        self._fu: bytearray | None = None

    def reset(self) -> None:
        self._fu = None

    def push(self, payload: memoryview) -> list[bytes]:
        if len(payload) < 3:  # the 2-byte payload header and at least one byte
            raise RtpError(f"truncated H.265 RTP payload ({len(payload)} bytes)")
        if payload[0] & 0x80:
            raise RtpError("malformed H.265 payload header (forbidden_zero_bit set)")
        kind = (payload[0] >> 1) & 0x3F
        if kind < AP:
            self._fu = None
            return [bytes(payload)]
        if kind == AP:
            self._fu = None
            return _aggregation(payload)
        if kind == FU:
            return self._fragment(payload)
        if kind == PACI:
            raise RtpError("H.265 PACI packets (type 50) not supported")
        raise RtpError(f"not an H.265 payload (NAL type {kind})")

    def _fragment(self, payload: memoryview) -> list[bytes]:
        if len(payload) < 4:
            raise RtpError("truncated H.265 fragmentation unit")
        fu_header = payload[2]
        start, end, fu_type = fu_header & 0x80, fu_header & 0x40, fu_header & 0x3F
        if start and end:
            raise RtpError("malformed H.265 fragmentation unit (start and end bits both set)")
        if fu_type in (AP, FU, PACI):
            raise RtpError(f"malformed H.265 fragmentation unit (of a type {fu_type} packet)")
        if start:
            header = bytes(((payload[0] & 0x81) | (fu_type << 1), payload[1]))
            self._fu = bytearray(header)
        elif self._fu is None:  # the start was lost, or we joined mid-unit: skip it
            return []
        elif (self._fu[0] >> 1) & 0x3F != fu_type:
            self._fu = None  # a fragment of another NAL unit: the end of this one was lost
            return []
        self._fu += payload[3:]
        if len(self._fu) > self.max_nal_bytes:
            self._fu = None
            raise RtpError(f"H.265 NAL unit larger than {self.max_nal_bytes} bytes")
        if not end:
            return []
        nal, self._fu = bytes(self._fu), None
        return [nal]


def _aggregation(payload: memoryview) -> list[bytes]:
    return split_aggregate(payload, 2, 2, "H.265 aggregation packet")


# ------------------------------------------------------------------------------ the stream


def parameter_set_id(nal: bytes) -> int:
    """The id of a VPS, SPS or PPS (0 when unreadable)."""
    try:
        kind = nal_type(nal)
        b = BitReader(unescape_rbsp(nal[2:64]))
        if kind == NAL_VPS:
            return b.u(4)
        if kind == NAL_SPS:
            _sps_head(b)
        return b.ue() & 0x3F
    except (ValueError, IndexError):
        return 0


CODEC = NalCodec(
    name="H265",
    label="H.265",
    nal_type=nal_type,
    parameter_sets=(NAL_VPS, NAL_SPS, NAL_PPS),
    parameter_set_id=parameter_set_id,
    vcl=frozenset(range(32)),
    keyframes=IRAP,
    dropped=frozenset({NAL_AUD, NAL_FD}),
)


class H265Stream(NalStream):
    """One H.265 RTP stream: feed packets, read the current GOP (an IRAP picture first)."""

    def __init__(
        self,
        payload_type: int | None = None,
        parameter_sets: Iterable[bytes] = (),
        max_gop_bytes: int = MAX_GOP_BYTES,
    ) -> None:
        super().__init__(
            CODEC, H265Depacketizer(max_gop_bytes), payload_type, parameter_sets, max_gop_bytes
        )

    @classmethod
    def from_sdp(
        cls, payload_type: int | None, fmtp: dict[str, str], max_gop_bytes: int
    ) -> H265Stream:
        """RFC 7798 section 7.1: sprop-vps, sprop-sps, sprop-pps; sprop-max-don-diff."""
        don_diff = fmtp.get("sprop-max-don-diff", "0").strip() or "0"
        if don_diff != "0":
            raise RtpError(
                f"H.265 sprop-max-don-diff {don_diff[:8]} (reordered transmission) not supported"
            )
        nals: list[bytes] = []
        for key in ("sprop-vps", "sprop-sps", "sprop-pps"):
            nals += decode_sprop(fmtp.get(key, ""))
        return cls(payload_type, nals, max_gop_bytes)


# ------------------------------------------------------------------ sequence parameter set
# ITU-T H.265 section 7.3.2.2.1, up to the conformance window: size, profile, level

_PROFILE_NAMES = {
    1: "Main",
    2: "Main 10",
    3: "Main Still Picture",
    4: "Format Range Extensions",
    5: "High Throughput",
    9: "Screen Content Coding",
}


@dataclass(frozen=True, slots=True)
class H265Sps:
    profile_idc: int
    level_idc: int
    width: int
    height: int
    chroma_format_idc: int

    @property
    def profile(self) -> str:
        return _PROFILE_NAMES.get(self.profile_idc, f"profile {self.profile_idc}")

    @property
    def level(self) -> float:
        return round(self.level_idc / 30, 1)


def sps_from_sprop(sprop: str) -> H265Sps | None:
    """The first SPS of sprop-sps, parsed; None if there is none or it is bad."""
    for nal in decode_sprop(sprop):
        if len(nal) > 2 and nal_type(nal) == NAL_SPS:
            try:
                return parse_h265_sps(nal)
            except ValueError:
                log.debug("unparseable H.265 SPS in SDP")
                return None
    return None


def parse_h265_sps(nal: bytes) -> H265Sps:
    """Parse an SPS NAL unit (with its two-byte NAL header). Raises ValueError if malformed."""
    if len(nal) < 4 or nal_type(nal) != NAL_SPS:
        raise ValueError("not an H.265 SPS NAL unit")
    if len(nal) > 1024:
        raise ValueError("SPS too long")
    b = BitReader(unescape_rbsp(nal[2:]), "SPS")
    profile_idc, level_idc = _sps_head(b)
    if b.ue() > 15:  # sps_seq_parameter_set_id
        raise ValueError("bad sps_seq_parameter_set_id")
    chroma_format_idc = b.ue()
    if chroma_format_idc > 3:
        raise ValueError("bad chroma_format_idc")
    separate_colour_plane = b.u(1) if chroma_format_idc == 3 else 0
    width, height = b.ue(), b.ue()  # pic_width/height_in_luma_samples
    if b.u(1):  # conformance_window_flag
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        chroma = 0 if separate_colour_plane else chroma_format_idc
        sub_w = 2 if chroma in (1, 2) else 1
        sub_h = 2 if chroma == 1 else 1
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    if not (0 < width <= MAX_SIZE and 0 < height <= MAX_SIZE):
        raise ValueError("implausible SPS dimensions")
    return H265Sps(profile_idc, level_idc, width, height, chroma_format_idc)


def _sps_head(b: BitReader) -> tuple[int, int]:
    """sps_video_parameter_set_id to the end of profile_tier_level: (profile_idc, level_idc)."""
    b.u(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = b.u(3)
    if max_sub_layers_minus1 > 6:
        raise ValueError("bad sps_max_sub_layers_minus1")
    b.u(1)  # sps_temporal_id_nesting_flag
    # profile_tier_level(1, sps_max_sub_layers_minus1), section 7.3.3
    b.u(3)  # general_profile_space, general_tier_flag
    profile_idc = b.u(5)
    b.skip(32 + 4 + 43 + 1)  # compatibility flags, source flags, constraint flags, inbld
    level_idc = b.u(8)
    present = [(b.u(1), b.u(1)) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        b.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        b.skip(88 * profile_present + 8 * level_present)
    return profile_idc, level_idc
