"""Bulk import: CSV (the town's inventory columns plus address, name and location) or a JSON
array. Each row is validated on its own; bad rows are reported with their line, good rows kept.

CSV headers may be English or the Chinese of the town's resource table (类型, 归口部门, 运营商,
备注 for the network ...), and values may use the Chinese names of networks, categories,
departments and carriers. Files exported from Excel come with a BOM or in GB18030; both are read.

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
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from .errors import FieldError, Invalid, field_errors
from .models import CameraCreate, ImportResult, ImportRowError
from .settings import Settings

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


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based data row
    line: int | None  # CSV line where the record starts
    data: dict[str, Any]
    problem: str | None = None  # found while parsing (CSV shape), before validation


@dataclass(frozen=True, slots=True)
class RowError:
    row: Row
    field: str | None
    reason: str


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
    aliases = _value_aliases(settings)
    rows: list[Row] = []
    start = reader.line_num + 1
    for cells in yielding(_records(reader)):
        if len(rows) >= MAX_ROWS:
            raise Invalid([FieldError("body", f"has more than {MAX_ROWS} rows")])
        if any(c.strip() for c in cells):
            data = _row_dict(fields, cells, aliases)
            problem = (
                "row has more cells than the header has columns"
                if len(cells) > len(fields)
                else None
            )
            rows.append(Row(len(rows) + 1, start, data, problem))
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


def validate_rows(rows: list[Row]) -> tuple[list[tuple[Row, CameraCreate]], list[RowError]]:
    good: list[tuple[Row, CameraCreate]] = []
    bad: list[RowError] = []
    for row in yielding(rows):
        if not isinstance(row.data, dict):
            bad.append(RowError(row, None, "must be an object"))
            continue
        if row.problem:
            bad.append(RowError(row, None, row.problem))
            continue
        try:
            good.append((row, CameraCreate.model_validate(row.data)))
        except ValidationError as exc:
            first = field_errors(exc)[0]
            bad.append(RowError(row, first.field or None, first.message))
    return good, bad


def answer(ids: list[str], bad: list[RowError]) -> bytes:
    """The ImportResult as JSON: the created ids, the bad rows in row order; empties `bad`
    (a worker thread's work, like the parsing)."""
    bad.sort(key=lambda e: e.row.number)
    errors = [
        ImportRowError(row=e.row.number, line=e.row.line, field=e.field, reason=e.reason)
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
    lat, lon, where = data.pop("lat", None), data.pop("lon", None), data.pop("location", None)
    if lat is not None or lon is not None:
        data["location"] = {"lat": lat, "lon": lon, **({"address": where} if where else {})}
    elif where is not None:
        data["location"] = where  # fails validation with a clear message: lat/lon are needed
    if "tags" in data:
        data["tags"] = [t.strip() for t in data["tags"].replace("|", ";").split(";") if t.strip()]
    return data
