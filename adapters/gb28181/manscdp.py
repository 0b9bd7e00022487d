"""MANSCDP bodies (Application/MANSCDP+xml): decoded from GB2312/GB18030, parsed with defusedxml.

A body is bytes of a declared charset: GB2312 is what 2016-edition platforms declare, GB18030
what 2022-edition ones do; both are decoded as GB18030 (a superset of GB2312 and GBK, which
platforms that declare GB2312 often really send). UTF-8 is accepted when declared. A body that
does not decode, or whose XML has a DTD, entities or more elements than a catalog page can
hold, is refused with `ManscdpError` (the SIP layer answers 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

MAX_ITEMS = 200  # catalog items per message (real platforms send 1-20 per page)
MAX_ELEMENTS = 20 * MAX_ITEMS + 200
MAX_TEXT = 256
_DECL = re.compile(rb"^\s*<\?xml[^>]{0,200}\?>", re.S)
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9_-]{1,20})["']""")
_CHARSETS = {"gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030", "utf-8": "utf-8"}


class ManscdpError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CatalogItem:
    device_id: str
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    owner: str = ""
    civil_code: str = ""
    block: str = ""
    address: str = ""
    parental: str = ""
    parent_id: str = ""
    business_group_id: str = ""
    ip_address: str = ""
    port: str = ""
    status: str = ""
    longitude: str = ""
    latitude: str = ""
    event: str = ""  # in a catalog notification: ADD, DEL, UPDATE, ON, OFF, VLOST, DEFECT


@dataclass(frozen=True, slots=True)
class Manscdp:
    """One message: Query, Response, Notify or Control, with what camgw reads of it."""

    kind: str  # root element
    cmd_type: str
    sn: int
    device_id: str
    charset: str
    fields: dict[str, str] = field(default_factory=dict)  # simple children: Result, Status...
    sum_num: int | None = None
    items: tuple[CatalogItem, ...] = ()


_ITEM_FIELDS = {
    "DeviceID": "device_id",
    "Name": "name",
    "Manufacturer": "manufacturer",
    "Model": "model",
    "Owner": "owner",
    "CivilCode": "civil_code",
    "Block": "block",
    "Address": "address",
    "Parental": "parental",
    "ParentID": "parent_id",
    "BusinessGroupID": "business_group_id",
    "IPAddress": "ip_address",
    "Port": "port",
    "Status": "status",
    "Longitude": "longitude",
    "Latitude": "latitude",
    "Event": "event",
}


def decode_body(body: bytes) -> tuple[str, str]:
    """(text without its XML declaration, charset declared)."""
    m = _DECL.match(body)
    declared = "gb2312"  # GB/T 28181's default where a body declares nothing
    if m is not None:
        enc = _ENCODING.search(m.group(0))
        if enc is not None:
            declared = enc.group(1).decode("ascii").lower()
    codec = _CHARSETS.get(declared)
    if codec is None:
        raise ManscdpError(f"charset {declared[:20]} is not GB2312, GBK, GB18030 or UTF-8")
    rest = body[m.end() :] if m is not None else body
    try:
        return rest.decode(codec), declared
    except UnicodeDecodeError:
        raise ManscdpError(f"body is not valid {declared.upper()}") from None


def parse(body: bytes) -> Manscdp:
    text, charset = decode_body(body)
    if text.count("<") > MAX_ELEMENTS * 2:
        raise ManscdpError("too many elements")
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException) as exc:
        raise ManscdpError(f"XML refused: {type(exc).__name__}") from None
    if root.tag not in ("Query", "Response", "Notify", "Control"):
        raise ManscdpError(f"root element {root.tag[:32]!r} is not MANSCDP")
    fields = {c.tag: _text(c) for c in root if len(c) == 0}
    sn = fields.get("SN", "")
    if not sn.isdigit() or len(sn) > 10:
        raise ManscdpError("SN missing or not a number")
    cmd = fields.get("CmdType", "")
    if not re.fullmatch(r"[A-Za-z]{1,32}", cmd):
        raise ManscdpError("CmdType missing or malformed")
    sum_num = None
    if "SumNum" in fields:
        if not fields["SumNum"].isdigit() or len(fields["SumNum"]) > 7:
            raise ManscdpError("SumNum is not a number")
        sum_num = int(fields["SumNum"])
    items: list[CatalogItem] = []
    device_list = root.find("DeviceList")
    if device_list is not None:
        children = list(device_list)
        if len(children) > MAX_ITEMS:
            raise ManscdpError(f"more than {MAX_ITEMS} items in one message")
        items = [_item(c) for c in children if c.tag == "Item"]
    return Manscdp(
        kind=root.tag,
        cmd_type=cmd,
        sn=int(sn),
        device_id=fields.get("DeviceID", ""),
        charset=charset,
        fields=fields,
        sum_num=sum_num,
        items=tuple(items),
    )


def _text(e: Element) -> str:
    return (e.text or "").strip()[:MAX_TEXT]


def _item(e: Element) -> CatalogItem:
    values = {_ITEM_FIELDS[c.tag]: _text(c) for c in e if c.tag in _ITEM_FIELDS}
    if "device_id" not in values:
        raise ManscdpError("catalog item without DeviceID")
    return CatalogItem(**values)


# -- building ------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build(
    kind: str, values: list[tuple[str, str]], inner: str = "", charset: str = "GB2312"
) -> bytes:
    """A MANSCDP document encoded in `charset` (GB2312 or GB18030), declared as such."""
    body = "".join(f"<{k}>{_escape(v)}</{k}>\n" for k, v in values)
    text = f'<?xml version="1.0" encoding="{charset}"?>\n<{kind}>\n{body}{inner}</{kind}>\n'
    return text.encode("gb18030")


def query(cmd: str, sn: int, device_id: str, charset: str = "GB2312") -> bytes:
    return build("Query", [("CmdType", cmd), ("SN", str(sn)), ("DeviceID", device_id)], "", charset)


def item_xml(item: CatalogItem) -> str:
    parts = [
        f"<{tag}>{_escape(getattr(item, attr))}</{tag}>"
        for tag, attr in _ITEM_FIELDS.items()
        if getattr(item, attr)
    ]
    return "<Item>" + "".join(parts) + "</Item>\n"


def catalog(
    kind: str,
    sn: int,
    device_id: str,
    sum_num: int,
    items: list[CatalogItem],
    charset: str = "GB2312",
) -> bytes:
    """A catalog Response page, or a catalog Notify (items with Event)."""
    inner = (
        f'<DeviceList Num="{len(items)}">\n'
        + "".join(item_xml(i) for i in items)
        + "</DeviceList>\n"
    )
    values = [("CmdType", "Catalog"), ("SN", str(sn)), ("DeviceID", device_id)]
    values.append(("SumNum", str(sum_num)))
    return build(kind, values, inner, charset)
