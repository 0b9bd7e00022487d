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
    # The table marks the group "to be built": planned records (issue 12).
    assert (east["lifecycle"], south["lifecycle"]) == ("in-service", "planned")
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


# -- what the person who filled in the file reads ---------------------------------------------


def problem(field: str | None, column: str | None, value: str | None, message: str) -> Any:
    return {"field": field, "column": column, "value": value, "message": message}


def row_error(row: int, line: int | None, *problems: Any) -> dict[str, Any]:
    """A bad row as the report has it: the first problem also in `field` and `reason`."""
    first = problems[0]
    return {
        "row": row,
        "line": line,
        "field": first["field"],
        "reason": first["message"],
        "errors": list(problems),
    }


# An unknown category's choices: the categories of the row's network (综治网) and of none.
_CATEGORY_ZH = "类型: 未知的值“未知类型”；可选：雪亮工程、智能安防、道路监控补盲、未分类"
_CATEGORY_EN = (
    "category: unknown value 'foo'; allowed: sharp-eyes, smart-security, road-blindspot, "
    "unclassified"
)


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
async def test_chinese_file_gets_every_problem_of_a_row_in_chinese(
    client: Client, token: TokenFactory, encoding: str
) -> None:
    admin = await token("admin")
    text = (
        "名称,类型,备注,地址,经度,纬度\n"
        "东门雪亮,雪亮工程,综治网,127.1.0.21,121.30,31.08\n"
        "西门,未知类型,综治网,127.1.0.22,200,31.08\n"  # an unknown category AND a bad longitude
        "南桥补盲,道路监控补盲,综治网（待建设）,127.1.0.23,,\n"
    )
    result = await post_csv(client, admin, text.encode(encoding), charset=encoding)

    assert (result["created"], result["failed"]) == (2, 1)
    assert result["errors"] == [
        row_error(
            2,
            3,
            problem("category", "类型", "未知类型", _CATEGORY_ZH),
            problem("location.lon", "经度", "200", "经度: 200 超出范围（-180 至 180）"),
        )
    ]
    names = {c["name"] for c in (await cameras(client, admin)).values()}
    assert names == {"东门雪亮", "南桥补盲"}  # the good rows beside it are imported


async def test_english_file_gets_every_problem_of_a_row_in_english(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    text = (
        "name,category,network,address,lon,lat\n"
        "East gate,sharp-eyes,governance,127.1.0.21,121.30,31.08\n"
        "West gate,foo,governance,127.1.0.22,200,31.08\n"  # an unknown category AND a bad lon
        "South bridge,Road blind-spot cameras,governance,127.1.0.23,,\n"  # a category's name
    )
    result = await post_csv(client, admin, text)

    assert (result["created"], result["failed"]) == (2, 1)
    assert result["errors"] == [
        row_error(
            2,
            3,
            problem("category", "category", "foo", _CATEGORY_EN),
            problem("location.lon", "lon", "200", "lon: 200 is out of range (-180 to 180)"),
        )
    ]
    names = {c["name"] for c in (await cameras(client, admin)).values()}
    assert names == {"East gate", "South bridge"}


async def test_chinese_messages_for_the_common_mistakes(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    long_name = "长" * 201
    text = (
        "编号,名称,类型,备注,地址,经度,纬度,tags\n"  # line 1
        "governance.east,东门,雪亮工程,综治网,127.1.0.21,121.3,31.08,学校;北门\n"  # 2: good
        ",,雪亮工程,外网,坏地址,东经121,,\n"  # 3
        "police.west,西门,治安探头,综治网,10.0.0.1,121.3,91,a b\n"  # 4
        f"governance.north,{long_name},雪亮工程,综治网,127.1.0.21,,,\n"  # 5
        "governance.south,南门,雪亮工程,综治网,127.1.0.25,,,\n"  # 6: good
        "governance.east,东门二,雪亮工程,综治网,127.1.0.26,,,\n"  # 7: the id of line 2
        "governance.x,X,雪亮工程,综治网,127.1.0.27,,,,多出来的一格\n"  # 8
    )
    result = await post_csv(client, admin, text)

    assert (result["created"], result["failed"]) == (2, 5)
    assert result["errors"] == [
        row_error(
            2,
            3,
            problem("name", "名称", None, "名称: 必填，不能为空"),
            problem(
                "network", "备注", "外网", "备注: 未知的值“外网”；可选：综治网、公安网、政务网"
            ),
            problem("address", "地址", "坏地址", "地址: “坏地址”不是有效的 IPv4 或 IPv6 地址"),
            problem("location.lon", "经度", "东经121", "经度: “东经121”不是数字"),
            problem("location.lat", "纬度", None, "纬度: 必填，不能为空"),
        ),
        row_error(
            3,
            4,
            problem(
                "id",
                "编号",
                "police.west",
                "编号: “police.west”必须以“governance.”开头（编号按网络划分）",
            ),
            problem("category", "类型", "治安探头", "类型: “治安探头”属于公安网，不属于综治网"),
            problem(
                "address", "地址", "10.0.0.1", "地址: 10.0.0.1 不在综治网的地址段（127.1.0.0/16）内"
            ),
            problem("location.lat", "纬度", "91", "纬度: 91 超出范围（-90 至 90）"),
            problem(
                "tags[0]",
                "tags",
                "a b",
                "tags: “a b”不是有效的标签（不能含空格、引号或 / \\ ? # & % , ; < >，"
                "最多 64 个字符）",
            ),
        ),
        row_error(
            4,
            5,
            problem("name", "名称", long_name[:99] + "…", "名称: 太长（201 个字符，最多 200 个）"),
        ),
        row_error(
            6,
            7,
            problem("id", "编号", "governance.east", "编号: 摄像机“governance.east”已存在"),
        ),
        row_error(7, 8, problem(None, None, None, "此行的单元格比表头的列多")),
    ]
    # Taken addresses are worded too (a camera of the file, or one registered before).
    again = await post_csv(
        client, admin, "名称,类型,备注,地址\n东门三,雪亮工程,综治网,127.1.0.21\n"
    )
    assert again["errors"] == [
        row_error(
            1,
            2,
            problem(
                "address",
                "地址",
                "127.1.0.21",
                "地址: 127.1.0.21 已属于综治网的摄像机“governance.east”",
            ),
        )
    ]


async def test_one_chinese_header_makes_the_messages_chinese(
    client: Client, token: TokenFactory
) -> None:
    """The rule (docs/import.md): a header row with any Chinese column name gets Chinese."""
    admin = await token("admin")
    text = "name,类型,network,address,lon\nA,foo,governance,127.1.0.1,121.3\n"
    result = await post_csv(client, admin, text)
    assert result["errors"] == [
        row_error(
            1,
            2,
            problem(
                "category",
                "类型",
                "foo",
                "类型: 未知的值“foo”；可选：雪亮工程、智能安防、道路监控补盲、未分类",
            ),
            problem("location.lat", "纬度", None, "纬度: 必填，不能为空"),  # no lat column
        )
    ]


async def test_english_messages_for_the_common_mistakes(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    text = (
        "id,name,category,network,address,lat,lon,location,stream_uri\n"  # line 1
        ",A,sharp-eyes,nope,127.1.0.1,,,,\n"  # 2
        "police.b,,traffic,governance,10.0.0.2,95,abc,,\n"  # 3
        ",C,sharp-eyes,governance,127.1.0.3,,,Main street,rtsp://admin:s3cret@127.1.0.3/live\n"
    )
    result = await post_csv(client, admin, text)

    assert (result["created"], result["failed"]) == (0, 3)
    assert result["errors"] == [
        row_error(
            1,
            2,
            problem(
                "network",
                "network",
                "nope",
                "network: unknown value 'nope'; allowed: governance, police, gov-affairs",
            ),
        ),
        row_error(
            2,
            3,
            problem(
                "id",
                "id",
                "police.b",
                "id: 'police.b' must begin with 'governance.' (camera ids are scoped by network)",
            ),
            problem("name", "name", None, "name: is required"),
            problem(
                "category",
                "category",
                "traffic",
                "category: 'traffic' belongs to network 'police', not 'governance'",
            ),
            problem(
                "address",
                "address",
                "10.0.0.2",
                "address: 10.0.0.2 is outside the CIDRs of network 'governance' (127.1.0.0/16)",
            ),
            problem("location.lat", "lat", "95", "lat: 95 is out of range (-90 to 90)"),
            problem("location.lon", "lon", "abc", "lon: 'abc' is not a number"),
        ),
        row_error(
            3,
            4,
            problem("location", "location", "Main street", "location: needs lat and lon as well"),
            # A URI may hold a password: its value is never repeated.
            problem(
                "stream_uri",
                "stream_uri",
                None,
                "stream_uri: must not contain credentials; send them in the `credentials` field",
            ),
        ),
    ]


async def test_choices_name_only_the_networks_the_token_is_granted(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin", ["governance"])
    text = (
        "name,category,network,address\n"
        "A,sharp-eyes,nope,127.1.0.1\n"
        "B,traffic,governance,127.1.0.2\n"  # a police category: unknown to this token
        "C,traffic,police,127.2.0.3\n"
    )
    result = await post_csv(client, admin, text)
    assert (result["created"], result["failed"]) == (0, 3)
    assert result["errors"] == [
        row_error(
            1,
            2,
            problem(
                "network", "network", "nope", "network: this token is not granted network 'nope'"
            ),
        ),
        row_error(
            2,
            3,
            problem(
                "category",
                "category",
                "traffic",
                "category: unknown value 'traffic'; allowed: sharp-eyes, smart-security, "
                "road-blindspot, unclassified",
            ),
        ),
        row_error(
            3,
            4,
            problem(
                "network",
                "network",
                "police",
                "network: this token is not granted network 'police'",
            ),
        ),
    ]


async def test_json_rows_name_their_keys_in_english(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    rows: list[Any] = [
        {"name": 5, "network": "governance", "category": "sharp-eyes", "address": "127.1.1.1",
         "location": {"lat": 31.1}, "credentials": {"username": "admin", "password": ""},
         "password": "s3cret"},
        "not an object",
    ]  # fmt: skip
    resp = await client.post(IMPORT, json=rows, headers=admin)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["errors"] == [
        row_error(
            1,
            None,
            problem("name", "name", "5", "name: must be text"),
            problem("location.lon", "location.lon", None, "location.lon: is required"),
            problem(
                "credentials.password",
                "credentials.password",
                None,
                "credentials.password: must not be blank",
            ),
            problem("password", "password", None, "password: is not a camera field"),
        ),
        row_error(2, None, problem(None, None, None, "must be an object")),
    ]
