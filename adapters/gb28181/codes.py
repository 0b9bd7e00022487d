"""The 20-digit GB/T 28181 code (统一编码) of a platform, device or channel, decoded.

Layout (GB/T 28181 appendix on coding rules, both editions):

    digits 1-8    centre code: province (1-2), city (3-4), district (5-6), grassroots unit (7-8)
    digits 9-10   industry (行业编码)
    digits 11-13  type (类型编码): 111-130 front-end main devices, 131-199 peripherals,
                  200-299 platform devices and organisation nodes
    digit 14      network identifier (网络标识)
    digits 15-20  serial number

The tables of meanings are per edition, because the editions differ: the 2022 edition adds
type codes and reads the network identifier by a table of its own. Which edition a code is
read by is the lower platform's (its configuration, else its `X-GB-Ver` header) and is
recorded with the decoding. The tables are data here; docs/gb28181.md says which entries we
could check against the standard's text and which not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Edition = Literal["2016", "2022"]

_CODE = re.compile(r"^[0-9]{20}$")

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
    "80": "residents self-built (居民自建)",
    "90": "other (其他主体)",
}

_TYPES_2016 = {
    "111": "DVR",
    "112": "video server",
    "113": "encoder",
    "114": "decoder",
    "115": "video switching matrix",
    "116": "audio switching matrix",
    "117": "alarm controller",
    "118": "NVR",
    "130": "HVR",
    "131": "camera",
    "132": "IP camera",
    "133": "display",
    "134": "alarm input",
    "135": "alarm output",
    "136": "audio input",
    "137": "audio output",
    "138": "mobile transmission device",
    "139": "other peripheral",
    "200": "central signalling control server (SIP server)",
    "201": "web application server",
    "202": "media distribution server",
    "203": "proxy server",
    "204": "security server",
    "205": "alarm server",
    "206": "database server",
    "207": "GIS server",
    "208": "management server",
    "209": "access gateway",
    "210": "media storage server",
    "211": "signalling security routing gateway",
    "215": "business group",
    "216": "virtual organisation",
}
_TYPES_2022 = _TYPES_2016 | {
    "119": "intelligent analysis device",
    "140": "intelligent camera (face / vehicle capture)",
    "217": "central organisation (中心组织)",
}
# Types that carry video: what becomes a camera record.
VIDEO_TYPES = frozenset({"131", "132", "140"})
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
    "7": "Internet",
    "8": "social resources access network (社会资源接入网)",
    "9": "reserved",
}
_NETWORK_2022 = _NETWORK_2016 | {
    "9": "other network (其他网络)",
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


def valid(code: str) -> bool:
    return bool(_CODE.match(code))


def decode(code: str, edition: Edition) -> DecodedCode:
    """Raises ValueError for anything but 20 ASCII digits."""
    if not valid(code):
        raise ValueError("a GB/T 28181 code is 20 digits")
    types = _TYPES_2022 if edition == "2022" else _TYPES_2016
    networks = _NETWORK_2022 if edition == "2022" else _NETWORK_2016
    return DecodedCode(
        code=code,
        edition=edition,
        region=code[:8],
        province=code[:2],
        city=code[2:4],
        district=code[4:6],
        unit=code[6:8],
        industry=code[8:10],
        industry_name=_INDUSTRY.get(code[8:10]),
        type=code[10:13],
        type_name=types.get(code[10:13]),
        network=code[13],
        network_name=networks.get(code[13]),
        serial=code[14:],
    )


def edition_of(header: str | None, configured: Edition | None) -> Edition:
    """The configured edition wins; else `X-GB-Ver` (3.x is 2022, 2.x is 2016); else 2016."""
    if configured is not None:
        return configured
    if header and header.strip().startswith("3"):
        return "2022"
    return "2016"
