"""The 20-digit GB/T 28181 code decoded by each edition's tables (GB/T 28181-2016 appendix D,
GB/T 28181-2022 appendix E). The entries pinned here are those checked against the sources
docs/gb28181.md names; each difference between the editions has its own case."""

from __future__ import annotations

import pytest

from adapters.gb28181 import codes


def _code(industry: str = "00", type_code: str = "132", network: str = "5") -> str:
    return f"31011700{industry}{type_code}{network}000001"


def test_the_layout_is_the_same_in_both_editions() -> None:
    for edition in ("2016", "2022"):
        d = codes.decode("31011700001325000001", edition)  # type: ignore[arg-type]
        assert (d.region, d.province, d.city, d.district, d.unit) == (
            "31011700",
            "31",
            "01",
            "17",
            "00",
        )
        assert (d.industry, d.type, d.network, d.serial, d.edition) == (
            "00",
            "132",
            "5",
            "000001",
            edition,
        )
        assert d.is_video
    with pytest.raises(ValueError, match="20 digits"):
        codes.decode("3101170000132050000x", "2016")
    with pytest.raises(ValueError, match="20 digits"):
        codes.decode("３１０１１７００００１３２５００００１", "2016")  # (full-width digits)


@pytest.mark.parametrize(
    ("industry", "name"),
    [
        ("00", "social security road surface (社会治安路面接入)"),
        ("05", "traffic checkpoint (交通卡口接入)"),
        ("11", "education (教育部门接入)"),
        ("20", "government agencies, reserved (政府机关预留)"),
        ("44", "power (电力企业接入)"),
        ("55", "entertainment (娱乐企业接入)"),
        ("60", "enterprises and institutions, reserved (企业/事业单位预留)"),
        ("80", "residents' own (居民自建)"),
        ("90", "other entities (其他主体)"),
    ],
)
def test_industry_codes_read_the_same_in_both_editions(industry: str, name: str) -> None:
    assert codes.decode(_code(industry=industry), "2016").industry_name == name
    assert codes.decode(_code(industry=industry), "2022").industry_name == name


@pytest.mark.parametrize(
    ("type_code", "name"),
    [
        ("111", "DVR"),
        ("118", "NVR"),
        ("119", "extended front-end main device type (扩展的前端主设备类型)"),
        ("120", "extended front-end main device type (扩展的前端主设备类型)"),
        ("130", "HVR"),
        ("131", "camera (摄像机)"),
        ("132", "IP camera (网络摄像机)"),
        ("140", "extended front-end peripheral type (扩展的前端外围设备类型)"),
        ("200", "central signalling control server (中心信令控制服务器)"),
        ("215", "business group (业务分组)"),
        ("216", "virtual organisation (虚拟组织)"),
        ("217", "extended platform device type (扩展的平台设备类型)"),
        ("502", "extended external server type (扩展的平台外接服务器类型)"),
        ("105", None),
    ],
)
def test_2016_type_codes(type_code: str, name: str | None) -> None:
    assert codes.decode(_code(type_code=type_code), "2016").type_name == name


@pytest.mark.parametrize(
    ("type_code", "name"),
    [
        ("111", "DVR"),
        ("119", "reserved (预留)"),
        ("120", "online video image acquisition system (在线视频图像信息采集系统)"),
        ("121", "video checkpoint (视频卡口)"),
        ("122", "multi-lens device (多目设备)"),
        ("125", "security inspection device (安检设备)"),
        ("126", "extended front-end main device type (扩展的前端主设备类型)"),
        (
            "132",
            "IP camera / online video image acquisition device "
            "(网络摄像机/在线视频图像信息采集设备)",
        ),
        ("140", "alarm output device, relay or trigger controlled (报警输出设备)"),
        ("141", "barrier gate (道闸)"),
        ("143", "credential recognition unit (凭证识别单元)"),
        ("144", "extended front-end peripheral type (扩展的前端外围设备类型)"),
        ("215", "business group (业务分组)"),
        ("216", "virtual organisation (虚拟组织)"),
        ("217", "extended platform device type (扩展的平台设备类型)"),
        ("502", "video image analysis system (视频图像分析系统)"),
        ("505", "video image analysis device (视频图像分析设备)"),
    ],
)
def test_2022_type_codes(type_code: str, name: str) -> None:
    assert codes.decode(_code(type_code=type_code), "2022").type_name == name


@pytest.mark.parametrize(
    ("network", "in_2016", "in_2022"),
    [
        (
            "0",
            "monitoring and alarm private network (监控报警专网)",
            "public security video transmission network (公安视频传输网)",
        ),
        (
            "2",
            "monitoring and alarm private network (监控报警专网)",
            "industry private network (行业专网)",
        ),
        (
            "4",
            "monitoring and alarm private network (监控报警专网)",
            "public security mobile information network (公安移动信息网)",
        ),
        (
            "5",
            "public security information network (公安信息网)",
            "public security information network (公安信息网)",
        ),
        ("6", "government affairs network (政务网)", "e-government extranet (电子政务外网)"),
        ("7", "Internet (Internet网)", "Internet and other public networks (互联网等公共网络)"),
        ("8", "social resources access network (社会资源接入网)", "dedicated line (专线)"),
        ("9", "reserved (预留)", "reserved (预留)"),
    ],
)
def test_the_network_identifier_is_read_by_each_editions_table(
    network: str, in_2016: str, in_2022: str
) -> None:
    assert codes.decode(_code(network=network), "2016").network_name == in_2016
    assert codes.decode(_code(network=network), "2022").network_name == in_2022


def test_only_cameras_are_video_types_in_both_editions() -> None:
    # 140 is a relay-driven alarm output in 2022 (no video), an unassigned peripheral in 2016.
    for edition in ("2016", "2022"):
        assert codes.decode(_code(type_code="131"), edition).is_video  # type: ignore[arg-type]
        assert not codes.decode(_code(type_code="140"), edition).is_video  # type: ignore[arg-type]
        assert not codes.decode(_code(type_code="215"), edition).is_video  # type: ignore[arg-type]


def test_the_edition_a_code_is_read_by() -> None:
    assert codes.edition_of("3.0", None) == "2022"
    assert codes.edition_of("2.0", None) == "2016"
    assert codes.edition_of("3.0", "2016") == "2016"
    assert codes.edition_of(None, None) == "2016"
