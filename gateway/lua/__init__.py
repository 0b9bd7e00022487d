"""The registry's Lua scripts: every multi-key write is one script, so it is atomic."""

from __future__ import annotations

from importlib.resources import files


def source(name: str) -> str:
    """The text of the script `name` in this package (e.g. "upsert.lua")."""
    return (files(__package__) / name).read_text()
