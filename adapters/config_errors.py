"""Config-file errors as a person reads them: the file, the line (a TOML syntax error) or the
setting (a refused value), and what is wrong, one line each.

The gateway's config (`gateway.settings.load_settings`) and an edge adapter's
(`adapters.remote_config.load_adapter_config`) both raise `ConfigError`. A refused value names
the block it is in by its id (`network "police"`, not `networks.1`), the setting's path inside
it, and the value given, except where it may be a secret: a value is never shown for a setting
whose name looks like one (password, secret, token, key, credential), for a URI that carries a
user or password, for an unknown key (it may be a misspelt `password`), or where a validator of
ours wrote the message (it names the value itself when that is safe).

This module does not import the gateway: an edge adapter uses it on its own.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

MAX_LINES = 20

Loc = tuple[int | str, ...]

_SECRET_NAME = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
_URI_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#]*@", re.IGNORECASE)
_TOML_WHERE = re.compile(
    r"^(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$", re.DOTALL
)
_TABLE_KEY = re.compile(r"\((?:'[^']*',? ?)+\)")  # tomllib's ('networks', 'sharing')
_PYTHON_CLASS = re.compile(r" for <class '[\w.]+'>")  # "Input is not a valid path for <...>"
_SLUG_PATTERN = "^[a-z0-9][a-z0-9-]{0,31}$"
_MAX_SHOWN = 60  # characters of a value shown in "(got ...)"


class ConfigError(ValueError):
    """A config file that cannot be used: `lines` say why, one finding a line, each naming the
    file. `str()` is the lines joined by newlines. A ValueError, so that code catching
    ValueError for a bad configuration keeps working."""

    def __init__(self, *lines: str) -> None:
        super().__init__(*lines)
        self.lines: list[str] = list(lines)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def read_toml(path: Path, *, hint: str = "") -> dict[str, Any]:
    """The file's contents, or ConfigError naming the file (and the line of a syntax error).
    `hint` says how to name another file, for one that is not there."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found" + (f" ({hint})" if hint else "")
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(toml_error_line(path, exc)) from None
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes as UTF-8
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start + 1})") from None


def toml_error_line(path: Path | str, exc: tomllib.TOMLDecodeError) -> str:
    """`FILE, line 12, column 5: Invalid value`; a table as the file names it, `[a.b]`."""
    lineno: int | None = getattr(exc, "lineno", None)  # Python 3.14 has the parts
    colno: int | None = getattr(exc, "colno", None)
    msg: str | None = getattr(exc, "msg", None)
    if msg is None or lineno is None:
        found = _TOML_WHERE.match(str(exc))
        if found is None:
            return f"{path}: {exc}"
        msg = found["msg"]
        if found["line"] is None:
            return f"{path}, at the end of the file: {msg}"
        lineno, colno = int(found["line"]), int(found["col"])
    msg = _TABLE_KEY.sub(lambda m: "[" + ".".join(re.findall(r"'([^']*)'", m[0])) + "]", msg)
    return f"{path}, line {lineno}, column {colno}: {msg}"


def validation_lines(
    exc: ValidationError,
    source: Path | str,
    raw: Any,
    model: type[BaseModel],
    *,
    blocks: Mapping[str, str] | None = None,
    origins: Mapping[Loc, str] | None = None,
    limit: int = MAX_LINES,
) -> list[str]:
    """One line per error of `model.model_validate(raw)`, each starting with `source`.

    `blocks` names the arrays of tables whose items are named by their `id`: {"networks":
    "network"} turns `networks.1.discovery.timeout_s` into `network "police": discovery.timeout_s`.
    `origins` names where a value came from when not from the file: {("redis", "url"):
    "REDIS_URL"}. More than `limit` lines end with "... and N more"."""
    errors = exc.errors(include_url=False)
    unknown = {
        (err["loc"][:-1], _suggestion(model, err["loc"])) for err in errors if _is_unknown(err)
    }
    lines: list[str] = []
    for err in _merge_unions(errors):
        loc = err["loc"]
        if err["type"] == "missing" and (loc[:-1], loc[-1]) in unknown:
            continue  # "unknown setting 'nmae'; did you mean 'name'?" says it
        if err["type"] == "too_short" and any(
            other["loc"][: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors
        ):
            continue  # "should have at least 1 item after validation": its items were refused
        line = _line(err, source, raw, model, blocks or {}, origins or {})
        if line not in lines:
            lines.append(line)
    if len(lines) > limit:
        lines[limit:] = [f"... and {len(lines) - limit} more"]
    return lines


def _line(
    err: ErrorDetails,
    source: Path | str,
    raw: Any,
    model: type[BaseModel],
    blocks: Mapping[str, str],
    origins: Mapping[Loc, str],
) -> str:
    loc = err["loc"]
    parts = [str(source)]
    rest: Loc = loc
    if len(loc) >= 2 and isinstance(loc[0], str) and loc[0] in blocks and isinstance(loc[1], int):
        parts.append(_block_name(blocks[loc[0]], loc[0], loc[1], raw))
        rest = loc[2:]
    if _is_unknown(err):
        where, name = rest[:-1], rest[-1]
        if where:
            parts.append(_path(where))
        message = f"unknown setting '{name}'"
        suggestion = _suggestion(model, loc)
        if suggestion is not None:
            message += f"; did you mean '{suggestion}'?"
        parts.append(message)
        return ": ".join(parts)
    if rest:
        path = _path(rest)
        origin = origins.get(tuple(loc))
        parts.append(f"{path} (from {origin})" if origin else path)
    message = _message(err)
    shown = _shown(err)
    parts.append(f"{message} (got {shown})" if shown is not None else message)
    return ": ".join(parts)


def _is_unknown(err: ErrorDetails) -> bool:
    return err["type"] == "extra_forbidden" and bool(err["loc"]) and isinstance(err["loc"][-1], str)


def _block_name(kind: str, array: str, index: int, raw: Any) -> str:
    """`network "police"`, or `[[networks]] block 2` where that block has no usable id."""
    try:
        block_id = raw[array][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        block_id = None
    if isinstance(block_id, str) and block_id:
        return f"{kind} {_quoted(block_id)}"
    return f"[[{array}]] block {index + 1} (no id)"


def _path(loc: Loc) -> str:
    """`discovery.timeout_s`; an item of an array: `discovery.rtsp_uris (item 2)`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f" (item {part + 1})"
        else:
            text += f".{part}" if text else part
    return text


def _message(err: ErrorDetails) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "required, but not given"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "should be a table ([section] or { key = value, ... })"
    if kind in ("tuple_type", "list_type"):
        return "should be an array ([...])"
    ctx = err.get("ctx") or {}
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _SLUG_PATTERN:
        return "should be 1 to 32 of a-z, 0-9 and '-', not starting with '-'"
    if kind in ("too_short", "too_long") and ctx.get("field_type") in ("Tuple", "List"):
        bound = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        items = "item" if bound == 1 else "items"
        least = "least" if kind == "too_short" else "most"
        return f"should have at {least} {bound} {items}, not {ctx['actual_length']}"
    return _PYTHON_CLASS.sub("", msg.removeprefix("Value error, "))


def _shown(err: ErrorDetails) -> str | None:
    """The refused value as the file writes it, or None where it is not to be shown."""
    if err["type"] in ("value_error", "assertion_error", "missing", "extra_forbidden"):
        return None  # our validators name what they refuse, when that is safe
    if any(isinstance(part, str) and _SECRET_NAME.search(part) for part in err["loc"]):
        return None
    value = err.get("input")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        if _URI_USERINFO.match(value.strip()):
            return None
        return _quoted(value)
    return None  # a table or an array: the path says which


def _quoted(text: str) -> str:
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return json.dumps(text, ensure_ascii=False)


def _suggestion(model: type[BaseModel], loc: Loc) -> str | None:
    """The known setting closest to an unknown key's name, if one is close."""
    name = loc[-1]
    parent = _model_at(model, loc[:-1])
    if parent is None or not isinstance(name, str):
        return None
    known = {field.lower(): field for field in parent.model_fields}
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return known[close[0]] if close else None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of an array of tables: the same model
        if current is None or part not in current.model_fields:
            return None
        current = _model_in(current.model_fields[part].annotation)
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through `X | None`, `tuple[X, ...]` and `Annotated`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _merge_unions(errors: Sequence[ErrorDetails]) -> list[ErrorDetails]:
    """A value refused by each member of a union (an IPv4 or IPv6 network) is one error at the
    field, not one per member at a location named after pydantic's validator."""
    merged: list[ErrorDetails] = []
    by_loc: dict[Loc, ErrorDetails] = {}
    for err in errors:
        loc = tuple(p for p in err["loc"] if not _is_union_member(p))
        if loc == err["loc"] or _is_unknown(err):
            merged.append(err)
            continue
        first = by_loc.get(loc)
        if first is None:
            by_loc[loc] = {**err, "loc": loc}
            merged.append(by_loc[loc])
        else:
            first["msg"] = _either(first["msg"], err["msg"])
    return merged


def _is_union_member(part: int | str) -> bool:
    """Pydantic names a union member in the location by its validator (`lax-or-strict[...]`,
    `function-after[...]`); a setting's name never has brackets."""
    return isinstance(part, str) and ("[" in part or "(" in part)


def _either(first: str, second: str) -> str:
    """ "Input is not a valid IPv4 network" and "... IPv6 network": "... IPv4 network or IPv6
    network"."""
    if second in first:
        return first
    a, b = first.split(" "), second.split(" ")
    common = 0
    while common < min(len(a), len(b)) - 1 and a[common] == b[common]:
        common += 1
    return " ".join(a) + " or " + " ".join(b[common:])
