"""Bulk import as an admin does it with the town's spreadsheets: CSV (English or Chinese
headers, UTF-8 with a BOM or GB18030) and JSON arrays; bad rows are reported, good rows kept."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Headers, TokenFactory

Client = TestClient[web.Request, web.Application]

IMPORT = "/api/v1/cameras/import"
PROBLEM = "application/problem+json"
IDENTITY = {"Accept-Encoding": "identity"}
GOV = "governance."  # camera ids begin with their network's id


async def post_csv(
    client: Client, admin: Headers, text: str | bytes, charset: str = "utf-8"
) -> dict[str, Any]:
    data = text.encode() if isinstance(text, str) else text
    headers = admin | {"Content-Type": f"text/csv; charset={charset}"}
    resp = await client.post(IMPORT, data=data, headers=headers)
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def list_body(client: Client, admin: Headers) -> bytes:
    resp = await client.get("/api/v1/cameras", headers=admin | IDENTITY)
    assert resp.status == 200
    return await resp.read()


async def cameras(client: Client, admin: Headers) -> dict[str, dict[str, Any]]:
    resp = await client.get("/api/v1/cameras", headers=admin)
    return {c["id"]: c for c in (await resp.json())["items"]}


def errors_by_row(result: dict[str, Any]) -> dict[int, tuple[int | None, str | None]]:
    return {e["row"]: (e["line"], e["field"]) for e in result["errors"]}


async def test_csv_keeps_good_rows_and_reports_bad_ones(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    csv_text = (
        "id,name,network,category,address,lat,lon,tags\r\n"  # line 1
        f"{GOV}gate-a,Gate A,governance,sharp-eyes,127.1.0.1,31.08,121.30,school;gate\r\n"  # 2, 1
        f"{GOV}gate-b,Gate B,governance,sharp-eyes,10.9.9.9,,,\r\n"  # 3, row 2: outside the CIDRs
        f'{GOV}gate-c,"Gate C\r\nsecond line",governance,sharp-eyes,127.1.0.3,,,\r\n'  # 4-5, row 3
        "police.gate-d,Gate D,police,traffic,127.2.0.4,,,\r\n"  # 6, row 4
        "\r\n"  # 7: blank, skipped
        f"{GOV}gate-e,Gate E,governance,smart-security,127.1.0.5,95,121.3,\r\n"  # 8, row 5: lat
        f"{GOV}gate-f,Gate F,governance,smart-security,127.1.0.1,,,\r\n"  # 9, 6: address taken
        f"{GOV}gate-g,Gate G,governance,no-such-kind,127.1.0.7,,,\r\n"  # 10, row 7
        "police.gate-h,Gate H,police,sharp-eyes,127.2.0.8,,,\r\n"  # 11, 8: other network's kind
        f"{GOV}gate-i,Gate I,governance,road-blindspot,127.1.0.9,,,a|b\r\n"  # 12, row 9
    )
    result = await post_csv(client, admin, csv_text)

    assert result["created"] == 3
    assert result["failed"] == 6
    assert result["ids"] == ["governance.gate-a", "police.gate-d", "governance.gate-i"]
    assert errors_by_row(result) == {
        2: (3, "address"),
        3: (4, "name"),  # a line break inside a name (a multi-line cell) is refused
        5: (8, "location.lat"),
        6: (9, "address"),
        7: (10, "category"),
        8: (11, "category"),
    }
    assert [e["row"] for e in result["errors"]] == sorted(errors_by_row(result))
    reasons = {e["row"]: e["reason"] for e in result["errors"]}
    assert "CIDR" in reasons[2]
    assert "governance.gate-a" in reasons[6]  # names the camera that holds the address
    assert "governance" in reasons[8]

    listed = await cameras(client, admin)
    assert sorted(listed) == ["governance.gate-a", "governance.gate-i", "police.gate-d"]
    assert all(c["source"] == "imported" for c in listed.values())
    assert listed["governance.gate-a"]["tags"] == ["school", "gate"]
    gate_a = listed["governance.gate-a"]
    assert gate_a["location"] == {"lat": 31.08, "lon": 121.3, "address": None}
    assert listed["governance.gate-i"]["tags"] == ["a", "b"]
    assert listed["governance.gate-i"]["department"] == "Town Safety Office"  # category default
    assert listed["police.gate-d"]["carrier"] == "China Telecom"


async def test_multiline_cell_in_a_good_row_shifts_later_line_numbers(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    # The funding column describes a group and is ignored, so its line break is harmless.
    csv_text = (
        "name,network,category,address,funding\n"  # 1
        'Gate A,governance,sharp-eyes,127.1.0.1,"1800\nsee note"\n'  # 2-3, row 1
        "Gate B,governance,sharp-eyes,127.1.0.1,\n"  # 4, row 2: same address
        'Gate C,governance,sharp-eyes,bad-address,"a\n\nb"\n'  # 5-7, row 3
        "Gate D,governance,sharp-eyes,127.1.0.4,\n"  # 8, row 4
        ",governance,sharp-eyes,127.1.0.5,\n"  # 9, row 5: no name
    )
    result = await post_csv(client, admin, csv_text)
    assert result["created"] == 2
    assert errors_by_row(result) == {2: (4, "address"), 3: (5, "address"), 5: (9, "name")}


_TOWN_TABLE = (
    "名称,类型,数量,建设经费,归口部门,备注,运营商,地址\n"
    "东门雪亮,雪亮工程,943,1800,政法委,综治网,电信,127.1.0.11\n"
    "南桥补盲,道路监控补盲,460,990,镇平安办,综治网（待建设）,联通,127.1.0.12\n"
    "北路卡口,微卡口,180,1260,公安,公安网,电信,127.2.0.13\n"
    "坏的一行,雪亮工程,1,1,政法委,综治网,电信,127.9.0.14\n"
)


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
async def test_chinese_headers_and_values(
    client: Client, token: TokenFactory, encoding: str
) -> None:
    admin = await token("admin")
    raw = _TOWN_TABLE.encode(encoding)
    if encoding == "gb18030":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")  # really not UTF-8: the importer must detect it
    else:
        assert raw.startswith(b"\xef\xbb\xbf")
    result = await post_csv(client, admin, raw, charset=encoding)
    assert result["created"] == 3, result
    assert errors_by_row(result) == {4: (5, "address")}

    by_name = {c["name"]: c for c in (await cameras(client, admin)).values()}
    assert set(by_name) == {"东门雪亮", "南桥补盲", "北路卡口"}
    east = by_name["东门雪亮"]
    assert (east["network"], east["category"]) == ("governance", "sharp-eyes")
    assert (east["department"], east["carrier"]) == ("Political-Legal Committee", "China Telecom")
    assert east["project"] == "Sharp Eyes project"
    south = by_name["南桥补盲"]
    assert (south["network"], south["category"]) == ("governance", "road-blindspot")
    assert (south["department"], south["carrier"]) == ("Town Safety Office", "China Unicom")
    north = by_name["北路卡口"]
    assert (north["network"], north["category"], north["department"]) == (
        "police",
        "micro-checkpoint",
        "Police",
    )
    # The summary counts them under the English department names, so filters work too.
    summary = await (await client.get("/api/v1/summary", headers=admin)).json()
    assert summary["by_department"] == {
        "Police": 1,
        "Political-Legal Committee": 1,
        "Town Safety Office": 1,
    }


async def test_json_array_import(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    rows: list[Any] = [
        {"id": "governance.j-1", "network": "governance", "name": "J1", "category": "sharp-eyes",
         "address": "127.1.1.1"},
        {"id": "governance.j-2", "network": "governance", "category": "sharp-eyes",
         "address": "127.1.1.2"},
        "not an object",
        {"id": "police.j-4", "network": "police", "name": "J4", "category": "traffic",
         "address": "127.2.1.4", "department": "Traffic Police 1st Brigade", "tags": ["x"]},
        {"id": "police.j-5", "network": "police", "name": "J5", "category": "traffic",
         "address": "127.2.1.5", "colour": "red"},
    ]  # fmt: skip
    resp = await client.post(IMPORT, json=rows, headers=admin)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["created"] == 2
    assert result["ids"] == ["governance.j-1", "police.j-4"]
    assert errors_by_row(result) == {2: (None, "name"), 3: (None, None), 5: (None, "colour")}
    listed = await cameras(client, admin)
    assert sorted(listed) == ["governance.j-1", "police.j-4"]
    assert listed["police.j-4"]["department"] == "Traffic Police 1st Brigade"


async def test_json_import_must_be_an_array(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    resp = await client.post(IMPORT, json={"name": "x"}, headers=admin)
    assert resp.status == 422
    assert (await resp.json(content_type=PROBLEM))["field"] == "body"


async def test_unknown_csv_column_is_422_naming_it(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    before = await list_body(client, admin)
    resp = await client.post(
        IMPORT,
        data="name,network,category,address,colour\nA,governance,sharp-eyes,127.1.0.1,red\n",
        headers=admin | {"Content-Type": "text/csv"},
    )
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json(content_type=PROBLEM)
    assert problem["field"] == "header[4]"
    assert "colour" in problem["detail"]
    assert await list_body(client, admin) == before


@pytest.mark.parametrize("missing", ["name", "network", "category", "address"])
async def test_missing_required_column_is_422(
    client: Client, token: TokenFactory, missing: str
) -> None:
    admin = await token("admin")
    columns = {
        "name": "A",
        "network": "governance",
        "category": "sharp-eyes",
        "address": "127.1.0.1",
    }
    del columns[missing]
    text = ",".join(columns) + "\n" + ",".join(columns.values()) + "\n"
    resp = await client.post(IMPORT, data=text, headers=admin | {"Content-Type": "text/csv"})
    assert resp.status == 422
    problem = await resp.json(content_type=PROBLEM)
    assert problem["field"] == "header"
    assert missing in problem["detail"]
    assert await cameras(client, admin) == {}


async def test_csv_row_with_too_many_cells(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    result = await post_csv(
        client,
        admin,
        "name,network,category,address\n"
        "A,governance,sharp-eyes,127.1.0.1,surprise\n"
        "B,governance,sharp-eyes,127.1.0.2\n",
    )
    assert result["created"] == 1
    assert [(e["row"], e["line"]) for e in result["errors"]] == [(1, 2)]
    assert "cells" in result["errors"][0]["reason"]


async def test_empty_csv_is_422(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    resp = await client.post(IMPORT, data=b"", headers=admin | {"Content-Type": "text/csv"})
    assert resp.status == 422
    assert (await resp.json(content_type=PROBLEM))["field"] == "body"


async def test_import_is_audited(client: Client, token: TokenFactory) -> None:
    admin = await token("admin", name="importer")
    result = await post_csv(
        client,
        admin,
        "id,name,network,category,address\n"
        "governance.a-1,A1,governance,sharp-eyes,127.1.0.1\n"
        "governance.a-2,A2,governance,sharp-eyes,10.0.0.2\n"
        "police.a-3,A3,police,traffic,127.2.0.3\n",
    )
    assert (result["created"], result["failed"]) == (2, 1)

    auditor = await token("auditor")
    resp = await client.get("/api/v1/audit", headers=auditor)
    assert resp.status == 200, await resp.text()
    entries = (await resp.json())["items"]
    imports = {e["network"]: e for e in entries if e["action"] == "camera.import"}
    assert set(imports) == {"governance", "police"}  # one entry per network the rows name
    assert all(e["actor"].startswith("importer#") for e in imports.values())
    assert all(e["role"] == "admin" and e["target"] == "3 rows" for e in imports.values())
    assert imports["governance"]["detail"] == "created 1, failed 1"
    assert imports["police"]["detail"] == "created 1, failed 0"
    creates = {e["target"]: e for e in entries if e["action"] == "camera.create"}
    assert set(creates) == {"governance.a-1", "police.a-3"}
    assert creates["police.a-3"]["network"] == "police"
    assert creates["governance.a-1"]["extra"].get("via") == "import"
    assert all(e["actor"].startswith("importer#") for e in creates.values())

    # The trail can be filtered by camera.
    resp = await client.get("/api/v1/audit?camera=police.a-3", headers=auditor)
    assert [e["target"] for e in (await resp.json())["items"]] == ["police.a-3"]

    # Admins change cameras but do not read the trail.
    resp = await client.get("/api/v1/audit", headers=admin)
    assert resp.status == 403
