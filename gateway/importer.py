"""Bulk import: CSV (the town's inventory columns plus address, name and location) or a JSON
array. Each row is validated on its own; bad rows are reported with their line, good rows kept.

CSV headers may be English or the Chinese of the town's resource table (类型, 归口部门, 运营商,
备注 for the network ...), and values may use the Chinese names of networks, categories,
departments and carriers. Files exported from Excel come with a BOM or in GB18030; both are read.

A bad row is reported with every problem it has, each naming the column as the file names it,
the value, and a sentence for the person who filled in the spreadsheet, in the file's language:
Chinese when the header row has a Chinese column name (名称, 类型, ...), English otherwise and for
JSON (`Layout`, `Reporter`; docs/import.md). Those sentences are made for bad rows only: a good
row costs what it did before.

Parsing and validating 100,000 rows takes seconds of CPU: it runs in a worker thread, never on
the event loop (`api.cameras.import_cameras`). A thread still shares the GIL with the loop, so
the work here keeps out of the loop's way: it leaves the GIL for a moment every `_YIELD_EVERY`
rows (`yielding`), frees what it built a slice at a time (`release`), and keeps the cyclic
collector from scanning it (`collector_paused`). Measured on 2 busy cores, the loop's worst
stall during the CPU part of a 100,000-row import went from 0.2-0.6 s to ~25 ms.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .errors import CamgwError, Conflict, FieldError, Invalid, field_path
from .models import (
    CameraCreate,
    ImportFieldError,
    ImportResult,
    ImportRowError,
    Lifecycle,
    Location,
)
from .records import id_problem
from .settings import CategoryConfig, NetworkConfig, Settings

MAX_ROWS = 100_000

T = TypeVar("T")

# Every this many rows (a few ms of work) the worker thread leaves the GIL for _YIELD_S: the
# event loop's thread, if it waits for the GIL, takes it at once, instead of after the
# interpreter's 5 ms switch interval, or much later when the OS preempts the worker holding it.
_YIELD_EVERY = 100
_YIELD_S = 0.0001

# header (lower-cased) -> CameraCreate field; None = recognised and ignored
HEADER_ALIASES: dict[str, str | None] = {
    "id": "id",
    "编号": "id",
    "name": "name",
    "名称": "name",
    "network": "network",
    "网络": "network",
    "备注": "network",  # the resource table notes each group's network in its remarks column
    "category": "category",
    "type": "category",
    "类型": "category",
    "department": "department",
    "responsible department": "department",
    "归口部门": "department",
    "carrier": "carrier",
    "运营商": "carrier",
    "project": "project",
    "项目": "project",
    "address": "address",
    "ip": "address",
    "地址": "address",
    "ip地址": "address",  # headers are matched lower-cased: IP地址
    "ip 地址": "address",
    "lat": "lat",
    "latitude": "lat",
    "纬度": "lat",
    "lon": "lon",
    "lng": "lon",
    "longitude": "lon",
    "经度": "lon",
    "location": "location",
    "位置": "location",
    "vendor": "vendor",
    "model": "model",
    "stream_uri": "stream_uri",
    "snapshot_uri": "snapshot_uri",
    "tags": "tags",
    "lifecycle": "lifecycle",
    "生命周期": "lifecycle",
    "建设状态": "lifecycle",
    "maintenance organisation": "maintenance.organisation",
    "维护单位": "maintenance.organisation",
    "maintenance contact": "maintenance.contact",
    "维护联系人": "maintenance.contact",
    "maintenance phone": "maintenance.phone",
    "维护电话": "maintenance.phone",
    "maintenance confirmed on": "maintenance.confirmed_on",
    "维护信息确认日期": "maintenance.confirmed_on",
    # Columns of the resource table that describe a group, not a camera.
    "cameras": None,
    "数量": None,
    "funding": None,
    "funding (10k cny)": None,
    "建设经费": None,
}


_paused = [0]  # imports building their objects right now
_pause_lock = threading.Lock()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Around the CPU-bound part of an import, run in a worker thread: automatic cyclic garbage
    collection is off meanwhile, and what survives is frozen afterwards.

    A 100,000-row import builds millions of objects (rows, models, records) that live until it
    ends. Each automatic full collection scans all of them while holding the GIL, so the event
    loop stood still for ever longer pauses (up to 0.55 s each, growing with the heap) although
    the work was in a thread. Nothing built here is cyclic garbage; plain refcounting frees it.
    Frozen objects stay out of later full passes, as gateway.catalog freezes its snapshots (and
    thaws and collects everything at most once a minute). Process-wide, so counted: the
    collector comes back on when the last import running leaves."""
    with _pause_lock:
        _paused[0] += 1
        gc.disable()
    try:
        yield
    finally:
        with _pause_lock:
            gc.freeze()  # first: everything allocated meanwhile would be one young generation
            _paused[0] -= 1
            if not _paused[0]:
                gc.enable()


def yielding(items: Iterable[T]) -> Iterator[T]:
    """`items`, leaving the GIL for a moment every `_YIELD_EVERY` of them (worker threads only:
    it sleeps)."""
    for i, item in enumerate(items):
        if i % _YIELD_EVERY == _YIELD_EVERY - 1:
            time.sleep(_YIELD_S)
        yield item


def release(items: list[Any], step: int = _YIELD_EVERY) -> None:
    """Empty a list a slice at a time, in the worker thread that built it. Dropping the last
    reference to a list of 100,000 records frees them all in one C call that holds the GIL, and
    so the event loop, for ~0.2 s; a slice frees in well under a millisecond."""
    while items:
        del items[-step:]
        if items:
            time.sleep(_YIELD_S)


Lang = Literal["en", "zh"]

# Header names a person reads as Chinese: a CSV file with one of them gets Chinese messages.
CHINESE_HEADERS = frozenset(h for h in HEADER_ALIASES if not h.isascii())


@dataclass(frozen=True, slots=True)
class Layout:
    """How a file names things, for its error messages: the language of its headers and, for
    CSV, each field's column (position, header as written). JSON: English, key paths."""

    lang: Lang = "en"
    columns: Mapping[str, tuple[int, str]] | None = None  # field -> (index, header); None: JSON


JSON_LAYOUT = Layout()


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based data row
    line: int | None  # CSV line where the record starts
    data: dict[str, Any]
    problem: str | None = None  # found while parsing (CSV shape), before validation
    layout: Layout = JSON_LAYOUT  # the file's, shared by all its rows


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a row, as its reader sees it."""

    field: str | None  # the camera field (`location.lat`); None: the row as a whole
    column: str | None  # the column as the file names it (CSV header, JSON key path)
    value: str | None  # as the file has it, shortened; None where absent or possibly secret
    message: str  # a sentence in the file's language, beginning "<column>: "


@dataclass(frozen=True, slots=True)
class RowError:
    row: Row
    problems: tuple[Problem, ...]  # at least one, in the file's column order

    @property
    def field(self) -> str | None:
        return self.problems[0].field

    @property
    def reason(self) -> str:
        return self.problems[0].message


def decode_text(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Invalid([FieldError("body", "is neither UTF-8 nor GB18030 text")])


def parse_csv(raw: bytes, settings: Settings) -> list[Row]:
    reader = csv.reader(io.StringIO(decode_text(raw), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid([FieldError("body", "is empty; expected a header row")]) from None
    except csv.Error as exc:
        raise Invalid([FieldError("body", f"is not CSV: {exc}")]) from exc
    fields = _map_header(header)
    layout = _layout(header, fields)
    aliases = _value_aliases(settings)
    rows: list[Row] = []
    start = reader.line_num + 1
    for cells in yielding(_records(reader)):
        if len(rows) >= MAX_ROWS:
            raise Invalid([FieldError("body", f"has more than {MAX_ROWS} rows")])
        if any(c.strip() for c in cells):
            data = _row_dict(fields, cells, aliases)
            problem = TOO_MANY_CELLS if len(cells) > len(fields) else None
            rows.append(Row(len(rows) + 1, start, data, problem, layout))
        start = reader.line_num + 1
    return rows


def _records(reader: Any) -> Iterator[list[str]]:
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise Invalid([FieldError("body", f"line {reader.line_num}: {exc}")]) from exc


def parse_json(raw: bytes) -> list[Row]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid([FieldError("body", f"is not valid JSON: {exc.msg}")]) from exc
    if not isinstance(data, list):
        raise Invalid([FieldError("body", "must be a JSON array of camera objects")])
    if len(data) > MAX_ROWS:
        raise Invalid([FieldError("body", f"has more than {MAX_ROWS} rows")])
    return [Row(i + 1, None, item) for i, item in yielding(enumerate(data))]


def validate_rows(
    rows: list[Row], reporter: Reporter
) -> tuple[list[tuple[Row, CameraCreate]], list[RowError]]:
    good: list[tuple[Row, CameraCreate]] = []
    bad: list[RowError] = []
    for row in yielding(rows):
        if not isinstance(row.data, dict) or row.problem:
            bad.append(reporter.shape(row))
            continue
        try:
            good.append((row, CameraCreate.model_validate(row.data)))
        except ValidationError as exc:
            bad.append(reporter.invalid(row, exc))
    return good, bad


def answer(ids: list[str], bad: list[RowError]) -> bytes:
    """The ImportResult as JSON: the created ids, the bad rows in row order; empties `bad`
    (a worker thread's work, like the parsing)."""
    bad.sort(key=lambda e: e.row.number)
    errors = [
        ImportRowError(
            row=e.row.number,
            line=e.row.line,
            field=e.field,
            reason=e.reason,
            errors=[
                ImportFieldError(field=p.field, column=p.column, value=p.value, message=p.message)
                for p in e.problems
            ],
        )
        for e in yielding(bad)
    ]
    release(bad)
    body = ImportResult(created=len(ids), failed=len(errors), ids=ids, errors=errors)
    data = body.model_dump_json().encode()
    release(errors)
    return data


def _map_header(header: list[str]) -> list[str | None]:
    fields: list[str | None] = []
    for i, name in enumerate(header):
        key = name.strip().lower()
        if key not in HEADER_ALIASES:
            raise Invalid([FieldError(f"header[{i}]", f"unknown column {name.strip()[:40]!r}")])
        fields.append(HEADER_ALIASES[key])
    for needed in ("name", "network", "category", "address"):
        if needed not in fields:
            raise Invalid([FieldError("header", f"needs a {needed!r} column")])
    return fields


def _layout(header: list[str], fields: list[str | None]) -> Layout:
    """The file's language (Chinese if a header is, see CHINESE_HEADERS) and columns."""
    names = [h.strip() for h in header]
    lang: Lang = "zh" if any(n.lower() in CHINESE_HEADERS for n in names) else "en"
    columns = {f: (i, n) for i, (f, n) in enumerate(zip(fields, names, strict=True)) if f}
    return Layout(lang, columns)


# Lifecycle states as an inventory table writes them.
LIFECYCLE_ZH = {
    "规划": "planned",
    "计划": "planned",
    "待建设": "planned",
    "在建": "under-construction",
    "建设中": "under-construction",
    "在用": "in-service",
    "运行": "in-service",
    "维修": "under-repair",
    "维修中": "under-repair",
    "停用": "decommissioned",
    "已停用": "decommissioned",
    "报废": "decommissioned",
}
# Each state by its first name above (a report's choices, in the file's language).
_LIFECYCLE_NAMES = [next(k for k, v in LIFECYCLE_ZH.items() if v == s.value) for s in Lifecycle]
_TO_BE_BUILT = "待建设"  # a network cell naming it (综治网(待建设)): the group is not built yet


def _value_aliases(settings: Settings) -> dict[str, dict[str, str]]:
    """Chinese (and display) names accepted for configured ids and names."""
    net = {}
    for n in settings.networks:
        net.update({n.name_zh: n.id, n.name: n.id})
        net.update({f"{n.name_zh}(待建设)": n.id, f"{n.name_zh}（待建设）": n.id})
    cat = {}
    dept = {}
    carrier = {}
    for c in settings.categories:
        cat.update({c.name_zh: c.id, c.name: c.id})
        dept[c.department_zh] = c.department
        carrier[c.carrier_zh] = c.carrier
    drop = {""}
    return {
        "lifecycle": LIFECYCLE_ZH,
        "network": {k: v for k, v in net.items() if k not in drop},
        "category": {k: v for k, v in cat.items() if k not in drop},
        "department": {k: v for k, v in dept.items() if k not in drop},
        "carrier": {k: v for k, v in carrier.items() if k not in drop},
    }


def _row_dict(
    fields: list[str | None], cells: list[str], aliases: dict[str, dict[str, str]]
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field, cell in zip(fields, cells, strict=False):
        value = cell.strip()
        if field is None or value == "":
            continue
        data[field] = aliases.get(field, {}).get(value, value)
        if field == "network" and _TO_BE_BUILT in value:
            data.setdefault("lifecycle", "planned")
    contact = {k.split(".", 1)[1]: data.pop(k) for k in list(data) if k.startswith("maintenance.")}
    if contact:
        data["maintenance"] = contact
    lat, lon, where = data.pop("lat", None), data.pop("lon", None), data.pop("location", None)
    if lat is not None or lon is not None:
        data["location"] = {"lat": lat, "lon": lon, **({"address": where} if where else {})}
    elif where is not None:
        data["location"] = where  # fails validation with a clear message: lat/lon are needed
    if "tags" in data:
        data["tags"] = [t.strip() for t in data["tags"].replace("|", ";").split(";") if t.strip()]
    return data


# -- what the reader of a bad row sees ------------------------------------------------------------

TOO_MANY_CELLS = "row has more cells than the header has columns"

# Sentences by kind, (English, Chinese); each follows "<column>: ". `{v}` is the value quoted the
# file's way ('foo', “foo”), `{n}` a number as written, `{net}`/`{other}` a network as named there.
_SAY: dict[str, tuple[str, str]] = {
    "required": ("is required", "必填，不能为空"),
    "blank": ("must not be blank", "不能为空白"),
    "unknown": ("unknown value {v}; allowed: {choices}", "未知的值{v}；可选：{choices}"),
    "number": ("{v} is not a number", "{v}不是数字"),
    "range": ("{n} is out of range ({lo} to {hi})", "{n} 超出范围（{lo} 至 {hi}）"),
    "ip": ("{v} is not an IPv4 or IPv6 address", "{v}不是有效的 IPv4 或 IPv6 地址"),
    "too_long": (
        "is too long ({n} characters; at most {max})",
        "太长（{n} 个字符，最多 {max} 个）",
    ),
    "too_many": ("has too many values ({n}; at most {max})", "值太多（{n} 个，最多 {max} 个）"),
    "control": (
        "must not contain line breaks or other control characters",
        "不能包含换行符或其他控制字符",
    ),
    "id": (
        "{v} is not a valid id (a letter or digit, then letters, digits, '.', '_', ':' or '-'; "
        "at most 128 characters)",
        "{v}不是有效的编号（以字母或数字开头，其后只能是字母、数字或 . _ : -，最多 128 个字符）",
    ),
    "tag": (
        "{v} is not a valid tag (no spaces, quotes or / \\ ? # & % , ; < >; at most 64 characters)",
        "{v}不是有效的标签（不能含空格、引号或 / \\ ? # & % , ; < >，最多 64 个字符）",
    ),
    "text": ("must be text", "必须是文本"),
    "lat_lon": ("needs lat and lon as well", "还需要填写纬度和经度"),
    "unknown_field": ("is not a camera field", "不是摄像机的字段"),
    "not_granted": ("this token is not granted network {v}", "此令牌无权使用网络{v}"),
    "other_network": ("{v} belongs to network {other}, not {net}", "{v}属于{other}，不属于{net}"),
    "outside": (
        "{n} is outside the CIDRs of network {net} ({cidrs})",
        "{n} 不在{net}的地址段（{cidrs}）内",
    ),
    "id_prefix": (
        "{v} must begin with '{prefix}' (camera ids are scoped by network)",
        "{v}必须以“{prefix}”开头（编号按网络划分）",
    ),
    "exists": ("camera {v} already exists", "摄像机{v}已存在"),
    "address_taken": (
        "{n} belongs to camera {holder} on network {net}",
        "{n} 已属于{net}的摄像机“{holder}”",
    ),
    "cells": (TOO_MANY_CELLS, "此行的单元格比表头的列多"),
    "object": ("must be an object", "必须是对象"),
}
_LIST_SEPARATOR = {"en": ", ", "zh": "、"}
_NONE = {"en": "(none)", "zh": "（无）"}

# Inputs that may hold a secret (a URI's password, the credentials): never echoed.
_SECRET_FIELDS = frozenset({"stream_uri", "snapshot_uri", "credentials"})
_ENUMERATED = frozenset({"network", "category"})  # one of the configured ids (or their names)
_MAX_SHOWN = 100  # characters of a value repeated in a report
_FIELD_ORDER = {name: i for i, name in enumerate(CameraCreate.model_fields)}
_FIELD = re.compile(r"[^.\[]*")


def _default_columns() -> dict[Lang, dict[str, str]]:
    """A field's column name where the file has no column for it (`lat` when only `lon` is
    given): its first header alias in the file's language."""
    names: dict[Lang, dict[str, str]] = {"en": {}, "zh": {}}
    for header, target in HEADER_ALIASES.items():
        if target is not None:
            names["en" if header.isascii() else "zh"].setdefault(target, header)
    return names


_DEFAULT_COLUMNS = _default_columns()


def _bounds(metadata: list[Any]) -> tuple[float, float] | None:
    low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in metadata if hasattr(m, "le")), None)
    return None if low is None or high is None else (low, high)


# Both bounds of the numbers that have them (pydantic's error names only the one crossed).
_RANGES = {
    f"location.{name}": found
    for name, info in Location.model_fields.items()
    if (found := _bounds(info.metadata))
}


def _shown(value: Any) -> str | None:
    """A value as a report repeats it: text as it is, a JSON number or boolean as JSON,
    shortened; not an object or array (what they hold is not the column's value)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        text = orjson.dumps(value).decode() if math.isfinite(value) else str(value)
    else:
        return None
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _quote(lang: Lang, value: str | None) -> str:
    return f"“{value or ''}”" if lang == "zh" else f"'{value or ''}'"


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _column_key(path: str) -> str:
    """The CSV column (a HEADER_ALIASES target) a field path comes from."""
    top = _FIELD.match(path)
    name = top.group() if top else path
    if name == "location":
        sub = path.removeprefix("location.")
        return sub if sub in ("lat", "lon") else "location"
    return name


class Reporter:
    """What the reader of a bad row sees: every problem of the row, each naming the column as
    the file names it and its value, in a sentence in the file's language (`Row.layout`).
    Called for bad rows only, in the import's worker thread.

    `sees` says which networks the caller is granted: the choices offered for an unknown
    network or category name only those (as GET /api/v1/networks lists only those), and a row
    on a network the caller is not granted is told so, without more about that network."""

    def __init__(self, settings: Settings, sees: Callable[[str], bool] = lambda _: True) -> None:
        self.settings = settings
        self.sees = sees

    # -- the three ways a row goes wrong --

    def shape(self, row: Row) -> RowError:
        """A row that is no camera at all: not a JSON object, or a CSV record too wide."""
        lang = row.layout.lang
        if not isinstance(row.data, dict):
            message = _SAY["object"][0 if lang == "en" else 1]
        elif row.problem == TOO_MANY_CELLS:
            message = _SAY["cells"][0 if lang == "en" else 1]
        else:
            message = row.problem or "invalid"
        return RowError(row, (Problem(None, None, None, message),))

    def invalid(self, row: Row, exc: ValidationError) -> RowError:
        """A row the model refuses: pydantic's errors, and what the configuration says about
        the fields that passed (an unknown category beside a bad longitude: both)."""
        errors = exc.errors()
        failed = {str(e["loc"][0]) for e in errors if e["loc"]}
        problems = [self._pydantic(row, e) for e in errors]
        return self._error(row, problems + self._configured(row, failed))

    def refused(self, row: Row, exc: CamgwError) -> RowError:
        """A valid row refused by the configuration (`records.check_camera`), the caller's
        grants or the registry (a taken id or address)."""
        if isinstance(exc, Conflict):
            return self._error(row, [self._conflict(row, exc)])
        found = self._configured(row, set())
        covered = {p.field for p in found}
        told = (
            exc.errors
            if isinstance(exc, Invalid)
            else [FieldError(str(exc.extra.get("field") or ""), exc.detail)]
        )
        for e in told:  # what the checks here do not word themselves (a URI's port ...)
            if (e.field or None) not in covered:
                found.append(self._plain(row, e.field or None, e.message))
        return self._error(row, found)

    # -- pieces --

    def _error(self, row: Row, problems: list[Problem]) -> RowError:
        if not problems:  # not expected: every refusal names at least one problem
            problems = [Problem(None, None, None, "invalid")]
        columns = row.layout.columns or {}

        def position(p: Problem) -> int:
            if p.field is None:
                return -1
            found = columns.get(_column_key(p.field))
            if found is not None:
                return found[0]
            top = _FIELD.match(p.field)
            order = _FIELD_ORDER.get(top.group() if top else p.field, len(_FIELD_ORDER))
            return len(columns) + order

        return RowError(row, tuple(sorted(problems, key=position)))

    def _column(self, layout: Layout, path: str) -> str:
        if layout.columns is None:
            return path  # JSON: the key path
        key = _column_key(path)
        found = layout.columns.get(key)
        if found is not None:
            return found[1]
        return _DEFAULT_COLUMNS[layout.lang].get(key, key)

    def _say(
        self, row: Row, path: str | None, value: str | None, kind: str, **words: object
    ) -> Problem:
        lang = row.layout.lang
        text = _SAY[kind][0 if lang == "en" else 1].format(v=_quote(lang, value), **words)
        return self._problem(row, path, value, text)

    def _plain(self, row: Row, path: str | None, message: str, value: str | None = None) -> Problem:
        """Someone else's wording (pydantic's, a check's): English, named by its column."""
        return self._problem(row, path, value, message)

    def _problem(self, row: Row, path: str | None, value: str | None, text: str) -> Problem:
        if not path:
            return Problem(None, None, None, text)
        column = self._column(row.layout, path)
        secret = _column_key(path) in _SECRET_FIELDS or path.startswith("credentials")
        return Problem(path, column, None if secret else value, f"{column}: {text}")

    def _pydantic(self, row: Row, e: ErrorDetails) -> Problem:
        path = field_path(tuple(e["loc"]))
        kind, raw, ctx = e["type"], e.get("input"), e.get("ctx") or {}
        top = _column_key(path)
        value = _shown(raw)
        # Sentences that do not repeat the value, for any field ...
        if kind == "missing" or (raw is None and kind.endswith("_type")):
            return self._say(row, path, None, "required")
        if top in _ENUMERATED:
            return self._unknown(row, top, value)
        if top == "lifecycle":
            names = _LIFECYCLE_NAMES if row.layout.lang == "zh" else [s.value for s in Lifecycle]
            choices = _LIST_SEPARATOR[row.layout.lang].join(names)
            return self._say(row, path, value, "unknown", choices=choices)
        if kind == "string_type":
            return self._say(row, path, value, "text")
        if kind in ("string_too_long", "too_long") and ctx.get("field_type") != "List":
            length = ctx.get("actual_length", len(str(raw).strip()))
            return self._say(row, path, value, "too_long", n=length, max=ctx.get("max_length"))
        if kind == "too_long":
            count = ctx.get("actual_length")
            return self._say(row, path, value, "too_many", n=count, max=ctx.get("max_length"))
        if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
            return self._say(row, path, value, "blank")
        if kind == "value_error" and "control characters" in str(ctx.get("error")):
            return self._say(row, path, value, "control")
        if kind == "extra_forbidden":  # a key nobody expects may be a `password`: not repeated
            return self._say(row, path, None, "unknown_field")
        # ... and those that do, never for one that may hold a secret.
        secret = top in _SECRET_FIELDS or path.startswith("credentials")
        bound = kind in ("greater_than_equal", "less_than_equal")
        if secret:
            pass  # pydantic's and the validators' own words never repeat the value
        elif kind in ("float_parsing", "float_type") or (bound and _is_nan(raw)):
            return self._say(row, path, value, "number")
        elif bound and path in _RANGES:
            low, high = _RANGES[path]
            return self._say(row, path, value, "range", n=value, lo=low, hi=high)
        elif kind == "ip_any_address":
            return self._say(row, path, value, "ip")
        elif kind == "string_pattern_mismatch" and top in ("id", "tags"):
            return self._say(row, path, value, "id" if top == "id" else "tag")
        elif kind == "model_type" and path == "location" and isinstance(raw, str):
            return self._say(row, path, value, "lat_lon")
        message = str(ctx["error"]) if kind == "value_error" and "error" in ctx else e["msg"]
        return self._plain(row, path, message, value)

    def _configured(self, row: Row, failed: set[str]) -> list[Problem]:
        """The configuration's rules (`records.check_camera`'s) on the fields that passed the
        model: a configured network the caller is granted, a category of that network, the
        address inside its ranges, an id scoped by it."""
        data, lang = row.data, row.layout.lang
        problems: list[Problem] = []
        net_id = data.get("network") if "network" not in failed else None
        if isinstance(net_id, str):
            if not self.sees(net_id):
                name = self._name("network", lang, net_id)
                return [self._say(row, "network", name, "not_granted")]
            if net_id not in self.settings.network_by_id:
                problems.append(self._unknown(row, "network", _shown(net_id)))
        network = self._network(data)
        cat_id = data.get("category") if "category" not in failed else None
        if isinstance(cat_id, str):
            category = self._category(cat_id)
            if category is None:
                problems.append(self._unknown(row, "category", _shown(cat_id)))
            elif network is not None and category.network not in (None, network.id):
                problems.append(
                    self._say(
                        row,
                        "category",
                        self._name("category", lang, cat_id),
                        "other_network",
                        other=self._network_words(lang, str(category.network)),
                        net=self._network_words(lang, network.id),
                    )
                )
        if network is None:
            return problems
        address = data.get("address") if "address" not in failed else None
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else None
        except ValueError:
            ip = None
        if ip is not None and not network.contains(ip):
            cidrs = ", ".join(str(c) for c in network.cidrs)
            words = self._network_words(lang, network.id)
            problems.append(
                self._say(row, "address", address, "outside", n=address, net=words, cidrs=cidrs)
            )
        cam_id = data.get("id") if "id" not in failed else None
        if isinstance(cam_id, str) and id_problem(cam_id, network.id):
            shown = _shown(cam_id)
            problems.append(self._say(row, "id", shown, "id_prefix", prefix=f"{network.id}."))
        return problems

    def _conflict(self, row: Row, exc: Conflict) -> Problem:
        """The registry's refusals that name a camera: worded for the file, others as they are."""
        field = str(exc.extra.get("field") or "") or None
        value = _shown(row.data.get(field)) if field else None
        if match := re.fullmatch(r"camera (\S+) already exists", exc.detail):
            return self._say(row, "id", match[1], "exists")
        if match := re.fullmatch(
            r"address (\S+) on network (\S+) belongs to camera (\S+)", exc.detail
        ):
            words = self._network_words(row.layout.lang, match[2])
            return self._say(
                row, "address", match[1], "address_taken", n=match[1], net=words, holder=match[3]
            )
        return self._plain(row, field, exc.detail, value)

    def _unknown(self, row: Row, kind: str, value: str | None) -> Problem:
        """An enumerated field's value that is none of the configured ones: name the choices."""
        lang = row.layout.lang
        if kind == "network":
            ids = [n.id for n in self.settings.networks if self.sees(n.id)]
        else:
            network = self._network(row.data)
            ids = [
                c.id
                for c in self.settings.categories
                if (c.network in (None, network.id) if network else self._visible(c))
            ]
        names = [self._name(kind, lang, i) for i in ids]
        choices = _LIST_SEPARATOR[lang].join(names) or _NONE[lang]
        return self._say(row, kind, value, "unknown", choices=choices)

    def _network(self, data: dict[str, Any]) -> NetworkConfig | None:
        """The row's network, if it is a configured one the caller is granted."""
        net_id = data.get("network")
        if not isinstance(net_id, str) or not self.sees(net_id):
            return None
        return self.settings.network_by_id.get(net_id)

    def _category(self, cat_id: str) -> CategoryConfig | None:
        """A configured category the caller may use (its network granted, or none)."""
        category = self.settings.category_by_id.get(cat_id)
        return category if category is not None and self._visible(category) else None

    def _visible(self, category: CategoryConfig) -> bool:
        return category.network is None or self.sees(category.network)

    def _name(self, kind: str, lang: Lang, value: str) -> str:
        """A configured id as the file's language names it (Chinese: its `name_zh`)."""
        if lang == "en":
            return value
        found: NetworkConfig | CategoryConfig | None = (
            self.settings.network_by_id.get(value)
            if kind == "network"
            else self.settings.category_by_id.get(value)
        )
        return found.name_zh or value if found is not None else value

    def _network_words(self, lang: Lang, net_id: str) -> str:
        """A network inside a sentence: 'police' in English, 公安网 in Chinese."""
        return self._name("network", lang, net_id) if lang == "zh" else f"'{net_id}'"
