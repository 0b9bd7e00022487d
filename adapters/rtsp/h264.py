"""H.264 (ITU-T H.264) over RTP (RFC 6184): NAL unit types, the depacketizer (single NAL unit
packets, STAP-A aggregates, FU-A fragments: packetization modes 0 and 1; the interleaved mode 2
is refused), sprop-parameter-sets, and the sequence parameter set (size, frame rate, profile)."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from .bits import BitReader, unescape_rbsp
from .errors import RtpError
from .nal import Depacketizer, NalCodec, NalStream, split_aggregate
from .rtp import MAX_GOP_BYTES

log = logging.getLogger(__name__)

# NAL unit types (H.264 table 7-1, RFC 6184 table 1)
NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
STAP_A, STAP_B, MTAP16, MTAP24, FU_A, FU_B = 24, 25, 26, 27, 28, 29
MAX_SIZE = 16384  # pixels, either dimension (level 6.2 allows 8192x4320; 16384 is generous)


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


# ------------------------------------------------------------------------------ depacketizer


class H264Depacketizer(Depacketizer):
    """RTP payloads of one H.264 stream -> NAL units (RFC 6184, non-interleaved mode)."""

    def __init__(self, max_nal_bytes: int) -> None:
        self.max_nal_bytes = max_nal_bytes
        self._fu: bytearray | None = None

    def reset(self) -> None:
        self._fu = None

    def push(self, payload: memoryview) -> list[bytes]:
        if not payload:
            raise RtpError("empty H.264 RTP payload")
        indicator = payload[0]
        kind = indicator & 0x1F
        if 1 <= kind <= 23:
            self._fu = None
            return [bytes(payload)]
        if kind == STAP_A:
            self._fu = None
            return _stap_a(payload)
        if kind == FU_A:
            return self._fu_a(payload, indicator)
        if kind in (STAP_B, MTAP16, MTAP24, FU_B):
            raise RtpError(f"H.264 interleaved packetization (NAL type {kind}) not supported")
        raise RtpError(f"not an H.264 payload (NAL type {kind})")

    def _fu_a(self, payload: memoryview, indicator: int) -> list[bytes]:
        if len(payload) < 3:
            raise RtpError("truncated H.264 FU-A fragment")
        fu_header = payload[1]
        start, end = fu_header & 0x80, fu_header & 0x40
        if start and end:
            raise RtpError("malformed H.264 FU-A fragment (start and end bits both set)")
        if start:
            self._fu = bytearray(((indicator & 0xE0) | (fu_header & 0x1F),))
        elif self._fu is None:  # the start was lost, or we joined mid-unit: skip it
            return []
        self._fu += payload[2:]
        if len(self._fu) > self.max_nal_bytes:
            self._fu = None
            raise RtpError(f"H.264 NAL unit larger than {self.max_nal_bytes} bytes")
        if not end:
            return []
        nal, self._fu = bytes(self._fu), None
        return [nal]


def _stap_a(payload: memoryview) -> list[bytes]:
    return split_aggregate(payload, 1, 1, "H.264 STAP-A aggregate")


# ------------------------------------------------------------------------------ the stream


def parameter_set_id(nal: bytes) -> int:
    """seq_parameter_set_id of an SPS, pic_parameter_set_id of a PPS (0 when unreadable)."""
    try:
        b = BitReader(unescape_rbsp(nal[1:16]))
        if nal_type(nal) == NAL_SPS:
            b.skip(24)  # profile_idc, constraint flags, level_idc
        return b.ue() & 0xFF
    except (ValueError, IndexError):
        return 0


CODEC = NalCodec(
    name="H264",
    label="H.264",
    nal_type=nal_type,
    parameter_sets=(NAL_SPS, NAL_PPS),
    parameter_set_id=parameter_set_id,
    vcl=frozenset(range(1, 6)),
    keyframes=frozenset({NAL_IDR}),
    dropped=frozenset({NAL_AUD}),
)


class H264Stream(NalStream):
    """One H.264 RTP stream: feed packets, read the current GOP (IDR first)."""

    def __init__(
        self,
        payload_type: int | None = None,
        parameter_sets: Iterable[bytes] = (),
        max_gop_bytes: int = MAX_GOP_BYTES,
    ) -> None:
        super().__init__(
            CODEC, H264Depacketizer(max_gop_bytes), payload_type, parameter_sets, max_gop_bytes
        )

    @classmethod
    def from_sdp(
        cls, payload_type: int | None, fmtp: dict[str, str], max_gop_bytes: int
    ) -> H264Stream:
        """RFC 6184 section 8.1: packetization-mode (0 or 1), sprop-parameter-sets."""
        mode = fmtp.get("packetization-mode", "0").strip() or "0"
        if mode not in ("0", "1"):
            raise RtpError(f"H.264 packetization-mode {mode[:8]} not supported")
        sprop = decode_sprop(fmtp.get("sprop-parameter-sets", ""))
        return cls(payload_type, sprop, max_gop_bytes)


def decode_sprop(sprop: str) -> list[bytes]:
    """Comma-separated base64 NAL units (sprop-parameter-sets, sprop-vps/-sps/-pps) -> NAL
    units; bad items skipped."""
    nals = []
    for item in sprop.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            nal = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if nal and len(nal) <= 4096:
            nals.append(nal)
    return nals


# ------------------------------------------------------------------ sequence parameter set
# ITU-T H.264 section 7.3.2.1.1, just enough for size, rate and profile

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
_PROFILE_NAMES = {
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
    44: "CAVLC 4:4:4 Intra",
}


@dataclass(frozen=True, slots=True)
class H264Sps:
    profile_idc: int
    level_idc: int
    width: int
    height: int
    fps: float | None

    @property
    def profile(self) -> str:
        return _PROFILE_NAMES.get(self.profile_idc, f"profile {self.profile_idc}")

    @property
    def level(self) -> float:
        return self.level_idc / 10


def sps_from_sprop(sprop: str) -> H264Sps | None:
    """The first SPS of sprop-parameter-sets, parsed; None if there is none or it is bad."""
    for nal in decode_sprop(sprop):
        if nal_type(nal) == NAL_SPS:
            try:
                return parse_h264_sps(nal)
            except ValueError:
                log.debug("unparseable H.264 SPS in SDP")
                return None
    return None


def parse_h264_sps(nal: bytes) -> H264Sps:
    """Parse an SPS NAL unit (with its one-byte NAL header). Raises ValueError if malformed."""
    if len(nal) < 4 or nal[0] & 0x1F != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    if len(nal) > 1024:
        raise ValueError("SPS too long")
    b = BitReader(unescape_rbsp(nal[1:]), "SPS")
    profile_idc = b.u(8)
    b.u(8)  # constraint_set flags + reserved
    level_idc = b.u(8)
    b.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_plane = 1, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc, separate_colour_plane = _high_profile_fields(b)
    b.ue()  # log2_max_frame_num_minus4
    _skip_pic_order_cnt(b)
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = b.ue() + 1
    height_map_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)  # mb_adaptive_frame_field_flag
    b.u(1)  # direct_8x8_inference_flag
    crop_left = crop_right = crop_top = crop_bottom = 0
    if b.u(1):  # frame_cropping_flag
        crop_left, crop_right, crop_top, crop_bottom = b.ue(), b.ue(), b.ue(), b.ue()

    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    if chroma_array_type == 0:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        sub_w = 1 if chroma_array_type == 3 else 2
        sub_h = 2 if chroma_array_type == 1 else 1
        crop_x, crop_y = sub_w, sub_h * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop_left + crop_right)
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_y * (crop_top + crop_bottom)
    if not (0 < width <= MAX_SIZE and 0 < height <= MAX_SIZE):
        raise ValueError("implausible SPS dimensions")

    fps: float | None = None
    try:
        if b.u(1):  # vui_parameters_present_flag
            fps = _vui_fps(b)
    except ValueError:
        fps = None  # a truncated VUI still leaves the size known
    return H264Sps(profile_idc, level_idc, width, height, fps)


def _high_profile_fields(b: BitReader) -> tuple[int, int]:
    """chroma_format_idc and separate_colour_plane_flag; skips the rest of the high-profile part."""
    chroma_format_idc = b.ue()
    if chroma_format_idc > 3:
        raise ValueError("bad chroma_format_idc")
    separate_colour_plane = b.u(1) if chroma_format_idc == 3 else 0
    b.ue()  # bit_depth_luma_minus8
    b.ue()  # bit_depth_chroma_minus8
    b.u(1)  # qpprime_y_zero_transform_bypass_flag
    if b.u(1):  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma_format_idc != 3 else 12):
            if b.u(1):  # seq_scaling_list_present_flag[i]
                _skip_scaling_list(b, 16 if i < 6 else 64)
    return chroma_format_idc, separate_colour_plane


def _skip_pic_order_cnt(b: BitReader) -> None:
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        b.u(1)  # delta_pic_order_always_zero_flag
        b.se()  # offset_for_non_ref_pic
        b.se()  # offset_for_top_to_bottom_field
        cycle = b.ue()
        if cycle > 255:
            raise ValueError("bad num_ref_frames_in_pic_order_cnt_cycle")
        for _ in range(cycle):
            b.se()
    elif poc_type != 2:
        raise ValueError("bad pic_order_cnt_type")


def _skip_scaling_list(b: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + b.se() + 256) % 256
        last = nxt if nxt != 0 else last


def _vui_fps(b: BitReader) -> float | None:
    if b.u(1) and b.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc Extended_SAR
        b.u(32)  # sar_width, sar_height
    if b.u(1):  # overscan_info_present_flag
        b.u(1)
    if b.u(1):  # video_signal_type_present_flag
        b.u(3)
        b.u(1)
        if b.u(1):  # colour_description_present_flag
            b.u(24)
    if b.u(1):  # chroma_loc_info_present_flag
        b.ue()
        b.ue()
    if b.u(1):  # timing_info_present_flag
        num_units_in_tick = b.u(32)
        time_scale = b.u(32)
        if num_units_in_tick > 0 and time_scale > 0:
            fps = time_scale / (2 * num_units_in_tick)
            if 0 < fps <= 1000:
                return round(fps, 3)
    return None
