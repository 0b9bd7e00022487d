"""Which settings a command runs with, and where they came from (said on every command that
uses the registry, so nobody writes tokens into somebody else's Redis by accident):

1. `--config FILE` or `CAMGW_CONFIG`: that file (`REDIS_URL`, `CAMGW_KEY_FILE` override it).
2. Else, with `REDIS_URL` set: the shipped config with that Redis.
3. Else `var/demo.json`, left by a demo (`make run`) started in this directory: the shipped
   config as that demo runs it: its private Redis, key file and audit archive, the camera
   passwords it made up, the RTSP inventories of its simulated fleet, its URL (for `import`).
4. Else the shipped `config/camgw.toml`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from adapters.config import CredentialRef

from ..settings import DEFAULT_CONFIG, NetworkConfig, Settings, load_settings

VAR = Path("var")
DEMO_STATE = VAR / "demo.json"


class DemoState(BaseModel):
    """What a running demo leaves in `var/demo.json` for the commands run beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: Path
    redis_url: str
    key_file: Path
    archive_dir: Path
    api_url: str
    tokens_file: Path
    passwords: dict[str, Path]  # network -> the password file the demo made up for it
    inventories: dict[str, Path]  # network -> CSV of its RTSP-only cameras
    pid: int
    started_at: datetime

    def apply(self, settings: Settings) -> Settings:
        """`settings` as the demo runs them."""
        return with_inventories(
            with_password_files(settings, self.passwords), self.inventories
        ).model_copy(
            update={
                "redis": settings.redis.model_copy(update={"url": self.redis_url}),
                "secrets": settings.secrets.model_copy(update={"key_file": self.key_file}),
                "audit": settings.audit.model_copy(update={"archive_dir": self.archive_dir}),
            }
        )

    @property
    def running(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True

    def write(self, path: Path = DEMO_STATE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)


def read_demo_state(path: Path = DEMO_STATE) -> DemoState | None:
    try:
        return DemoState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path} is not a demo's state ({exc}); remove it") from exc


@dataclass(frozen=True)
class Context:
    settings: Settings
    config: Path  # the config file read
    source: str  # where the settings came from, as the user reads it
    demo: DemoState | None = None

    @property
    def start_hint(self) -> str:
        """What to do when the registry does not answer."""
        if self.demo is not None and not self.demo.running:
            return (
                f"The demo that wrote {DEMO_STATE} (pid {self.demo.pid}) has stopped: start it "
                "again with `make run`, or name another registry with --config."
            )
        if self.demo is not None:
            return f"The demo (pid {self.demo.pid}) runs, but its Redis does not: see var/redis."
        return (
            "Start that Redis, or start the demo with `make run`, or name the registry "
            "with --config FILE or REDIS_URL."
        )


def resolve(config: Path | None, *, demo: bool = True) -> Context:
    """The settings for a command, per the module's rules (`demo`: whether a running demo's
    settings may apply; not for the demo itself)."""
    env_config = os.environ.get("CAMGW_CONFIG")
    named = config or (Path(env_config) if env_config else None)
    if named is not None:
        return Context(load_settings(named), named, _shown(named))
    if os.environ.get("REDIS_URL"):
        shown = f"{_shown(DEFAULT_CONFIG)} and REDIS_URL"
        return Context(load_settings(DEFAULT_CONFIG), DEFAULT_CONFIG, shown)
    state = read_demo_state() if demo else None
    if state is None:
        return Context(load_settings(DEFAULT_CONFIG), DEFAULT_CONFIG, _shown(DEFAULT_CONFIG))
    settings = state.apply(load_settings(state.config))
    if os.environ.get("CAMGW_KEY_FILE"):
        key_file = Path(os.environ["CAMGW_KEY_FILE"])
        settings = settings.model_copy(
            update={"secrets": settings.secrets.model_copy(update={"key_file": key_file})}
        )
    return Context(settings, state.config, f"the demo's, {DEMO_STATE}", state)


def with_inventories(settings: Settings, paths: dict[str, Path]) -> Settings:
    """`settings` with each network's discovery also reading its CSV inventory."""
    return _each_network(
        settings,
        paths,
        lambda n, path: {"discovery": n.discovery.model_copy(update={"csv_inventory": path})},
    )


def with_password_files(settings: Settings, files: dict[str, Path]) -> Settings:
    """`settings` with these networks' camera passwords read from files."""
    return _each_network(
        settings,
        files,
        lambda n, path: {
            "credentials": CredentialRef(
                username=n.credentials.username if n.credentials else "admin",
                password_file=path,
            )
        },
    )


def _each_network(
    settings: Settings,
    values: dict[str, Path],
    update: Callable[[NetworkConfig, Path], dict[str, Any]],
) -> Settings:
    networks = tuple(
        n.model_copy(update=update(n, values[n.id])) if n.id in values else n
        for n in settings.networks
    )
    return settings.model_copy(update={"networks": networks})


def _shown(path: Path) -> str:
    """A path as short as the user would type it from here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
