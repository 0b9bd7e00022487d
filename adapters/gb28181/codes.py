"""The 20-digit GB/T 28181 code (统一编码) of a platform, device or channel, decoded.

Layout (coding rule A: GB/T 28181-2016 appendix D, GB/T 28181-2022 appendix E):

    digits 1-8    centre code: province (1-2), city (3-4), district (5-6), grassroots unit (7-8)
    digits 9-10   industry (行业编码)
    digits 11-13  type (类型编码): 111-130 front-end main devices, 131-199 front-end
                  peripherals, 200-299 platform devices, 300-399 centre users, 400-499
                  terminal users, 500-599 servers outside the platform, 600-999 extension
    digit 14      network identifier (网络标识)
    digits 15-20  serial number

The tables of meanings are per edition, because the editions differ: 2022 adds front-end
types 120-125 and 140-143 (119 becomes reserved) and servers 502, 503, 505, and reads the
network identifier by a new table (0/1 public security video transmission network ... 8
dedicated line). Which edition a code is read by is the lower platform's (its configuration,
else its `X-GB-Ver` header) and is recorded with the decoding. docs/gb28181.md names the
sources each table was checked against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Edition = Literal["2016", "2022"]

_CODE = re.compile(r"^[0-9]{20}$")

# Industry codes (行业编码): the same table in both editions.
_INDUSTRY = {
    "00": "social security road surface (社会治安路面接入)",
    "01": "social security community (社会治安社区接入)",
    "02": "social security internal (社会治安内部接入)",
    "03": "social security other (社会治安其他接入)",
    "04": "traffic road (交通路面接入)",
    "05": "traffic checkpoint (交通卡口接入)",
    "06": "traffic internal (交通内部接入)",
    "07": "traffic other (交通其他接入)",
    "08": "urban management (城市管理接入)",
    "09": "health and environment (卫生环保接入)",
    "10": "commodity inspection and customs (商检海关接入)",
    "11": "education (教育部门接入)",
    "40": "agriculture, forestry, animal husbandry and fishery (农林牧渔业接入)",
    "41": "mining (采矿企业接入)",
    "42": "manufacturing (制造企业接入)",
    "43": "metallurgy (冶金企业接入)",
    "44": "power (电力企业接入)",
    "45": "gas (燃气企业接入)",
    "46": "construction (建筑企业接入)",
    "47": "logistics (物流企业接入)",
    "48": "postal (邮政企业接入)",
    "49": "information industry (信息企业接入)",
    "50": "accommodation and catering (住宿和餐饮业接入)",
    "51": "finance (金融企业接入)",
    "52": "real estate (房地产业接入)",
    "53": "commercial services (商务服务业接入)",
    "54": "water conservancy (水利企业接入)",
    "55": "entertainment (娱乐企业接入)",
}
_INDUSTRY_RANGES = (
    (12, 39, "government agencies, reserved (政府机关预留)"),
    (56, 79, "enterprises and institutions, reserved (企业/事业单位预留)"),
    (80, 89, "residents' own (居民自建)"),
    (90, 99, "other entities (其他主体)"),
)

_TYPES_COMMON = {
    "111": "DVR",
    "112": "video server (视频服务器)",
    "113": "encoder (编码器)",
    "114": "decoder (解码器)",
    "115": "video switching matrix (视频切换矩阵)",
    "116": "audio switching matrix (音频切换矩阵)",
    "117": "alarm controller (报警控制器)",
    "118": "NVR",
    "130": "HVR",
    "131": "camera (摄像机)",
    "133": "display (显示器)",
    "134": "alarm input device (报警输入设备)",
    "135": "alarm output device (报警输出设备)",
    "136": "audio input device (语音输入设备)",
    "137": "audio output device (语音输出设备)",
    "138": "mobile transmission device (移动传输设备)",
    "139": "other peripheral (其他外围设备)",
    "200": "central signalling control server (中心信令控制服务器)",
    "201": "web application server (Web应用服务器)",
    "202": "media distribution server (媒体分发服务器)",
    "203": "proxy server (代理服务器)",
    "204": "security server (安全服务器)",
    "205": "alarm server (报警服务器)",
    "206": "database server (数据库服务器)",
    "207": "GIS server (GIS服务器)",
    "208": "management server (管理服务器)",
    "209": "access gateway (接入网关)",
    "210": "media storage server (媒体存储服务器)",
    "211": "signalling security routing gateway (信令安全路由网关)",
    "215": "business group (业务分组)",
    "216": "virtual organisation (虚拟组织)",
    "300": "centre user (中心用户)",
    "400": "terminal user (终端用户)",
    "500": "video image information application platform (视频图像信息综合应用平台)",
    "501": "video image operation and maintenance platform (视频图像信息运维管理平台)",
}
_TYPES_2016 = _TYPES_COMMON | {
    "132": "IP camera (网络摄像机)",
}
_TYPES_2022 = _TYPES_COMMON | {
    "119": "reserved (预留)",
    "120": "online video image acquisition system (在线视频图像信息采集系统)",
    "121": "video checkpoint (视频卡口)",
    "122": "multi-lens device (多目设备)",
    "123": "car park entrance control device (停车场出入口控制设备)",
    "124": "personnel entrance control device (人员出入口控制设备)",
    "125": "security inspection device (安检设备)",
    "132": "IP camera / online video image acquisition device "
    "(网络摄像机/在线视频图像信息采集设备)",
    "140": "alarm output device, relay or trigger controlled (报警输出设备)",
    "141": "barrier gate (道闸)",
    "142": "smart door (智能门)",
    "143": "credential recognition unit (凭证识别单元)",
    "502": "video image analysis system (视频图像分析系统)",
    "503": "video image information database (视频图像信息数据库)",
    "505": "video image analysis device (视频图像分析设备)",
}
# Ranges each edition names without single entries: (first, last, meaning), first match wins.
_TYPE_RANGES_COMMON = (
    (212, 214, "extended platform device type (扩展的平台设备类型)"),
    (217, 299, "extended platform device type (扩展的平台设备类型)"),
    (301, 343, "industry role user (行业角色用户)"),
    (344, 399, "extended centre user type (扩展的中心用户类型)"),
    (401, 443, "industry role user (行业角色用户)"),
    (444, 499, "extended terminal user type (扩展的终端用户类型)"),
    (502, 599, "extended external server type (扩展的平台外接服务器类型)"),
    (600, 999, "extended type (扩展类型)"),
)
_TYPE_RANGES = {
    "2016": (
        (119, 129, "extended front-end main device type (扩展的前端主设备类型)"),
        (140, 199, "extended front-end peripheral type (扩展的前端外围设备类型)"),
        *_TYPE_RANGES_COMMON,
    ),
    "2022": (
        (126, 129, "extended front-end main device type (扩展的前端主设备类型)"),
        (144, 199, "extended front-end peripheral type (扩展的前端外围设备类型)"),
        *_TYPE_RANGES_COMMON,
    ),
}
# Types that carry video: what becomes a camera record (both editions).
VIDEO_TYPES = frozenset({"131", "132"})
# Types that are encoders/recorders whose channels are listed with the device's own code
# (a lower platform may list an NVR channel under the NVR's type).
CHANNEL_CAPABLE = frozenset({"111", "113", "118", "130"})

_NETWORK_2016 = {
    "0": "monitoring and alarm private network (监控报警专网)",
    "1": "monitoring and alarm private network (监控报警专网)",
    "2": "monitoring and alarm private network (监控报警专网)",
    "3": "monitoring and alarm private network (监控报警专网)",
    "4": "monitoring and alarm private network (监控报警专网)",
    "5": "public security information network (公安信息网)",
    "6": "government affairs network (政务网)",
    "7": "Internet (Internet网)",
    "8": "social resources access network (社会资源接入网)",
    "9": "reserved (预留)",
}
_NETWORK_2022 = {
    "0": "public security video transmission network (公安视频传输网)",
    "1": "public security video transmission network (公安视频传输网)",
    "2": "industry private network (行业专网)",
    "3": "political and legal information network (政法信息网)",
    "4": "public security mobile information network (公安移动信息网)",
    "5": "public security information network (公安信息网)",
    "6": "e-government extranet (电子政务外网)",
    "7": "Internet and other public networks (互联网等公共网络)",
    "8": "dedicated line (专线)",
    "9": "reserved (预留)",
}


@dataclass(frozen=True, slots=True)
class DecodedCode:
    code: str
    edition: Edition
    region: str  # the first 8 digits, most significant first
    province: str
    city: str
    district: str
    unit: str
    industry: str
    industry_name: str | None
    type: str
    type_name: str | None
    network: str
    network_name: str | None
    serial: str

    @property
    def is_video(self) -> bool:
        return self.type in VIDEO_TYPES


def is_channel(code: str, parental: str) -> bool:
    """Whether a catalog item is a video channel (a camera record): a camera type, or an
    encoder/recorder type listed without children (a platform that lists a channel under
    its device's type). Groups and other nodes build the tree instead."""
    kind = code[10:13]
    return kind in VIDEO_TYPES or (kind in CHANNEL_CAPABLE and parental == "0")


def valid(code: str) -> bool:
    return bool(_CODE.match(code))


def _ranged(value: str, ranges: tuple[tuple[int, int, str], ...]) -> str | None:
    number = int(value)
    return next((name for low, high, name in ranges if low <= number <= high), None)


def industry_name(industry: str) -> str | None:
    return _INDUSTRY.get(industry) or _ranged(industry, _INDUSTRY_RANGES)


def type_name(type_code: str, edition: Edition) -> str | None:
    """The type's meaning in `edition`; None where the edition assigns none (e.g. 101-110)."""
    table = _TYPES_2022 if edition == "2022" else _TYPES_2016
    return table.get(type_code) or _ranged(type_code, _TYPE_RANGES[edition])


def network_name(network: str, edition: Edition) -> str | None:
    return (_NETWORK_2022 if edition == "2022" else _NETWORK_2016).get(network)


def decode(code: str, edition: Edition) -> DecodedCode:
    """Raises ValueError for anything but 20 ASCII digits."""
    if not valid(code):
        raise ValueError("a GB/T 28181 code is 20 digits")
    return DecodedCode(
        code=code,
        edition=edition,
        region=code[:8],
        province=code[:2],
        city=code[2:4],
        district=code[4:6],
        unit=code[6:8],
        industry=code[8:10],
        industry_name=industry_name(code[8:10]),
        type=code[10:13],
        type_name=type_name(code[10:13], edition),
        network=code[13],
        network_name=network_name(code[13], edition),
        serial=code[14:],
    )


def edition_of(header: str | None, configured: Edition | None) -> Edition:
    """The configured edition wins; else `X-GB-Ver` (3.x is 2022, 2.x is 2016); else 2016."""
    if configured is not None:
        return configured
    if header and header.strip().startswith("3"):
        return "2022"
    return "2016"
