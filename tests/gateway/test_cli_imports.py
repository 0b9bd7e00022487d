"""What each command loads: token and audit commands start without the gateway's server,
OpenCV, zeep or the simulator; no production path imports the simulator (docs/cli.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("adapters.simulator", "cv2", "zeep", "onvif", "av", "aiohttp.web", "gateway.app")


def loaded_after(*modules: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `modules`."""
    code = (
        "import importlib, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(out.split())


def heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("command", ["tokens", "audit", "keys"])
def test_token_and_audit_commands_load_nothing_heavy(command: str) -> None:
    loaded = loaded_after("gateway.cli", "gateway.commands.context", f"gateway.commands.{command}")
    assert heavy(loaded) == []


@pytest.mark.parametrize(
    "modules",
    [
        ("gateway.app", "gateway.commands.serve"),
        ("gateway.commands.discover", "gateway.commands.imports", "gateway.commands.acl"),
        ("gateway.commands.adapter", "adapters.remote"),
    ],
)
def test_production_paths_never_import_the_simulator(modules: tuple[str, ...]) -> None:
    loaded = loaded_after(*modules)
    assert not [m for m in loaded if m.startswith("adapters.simulator")]
