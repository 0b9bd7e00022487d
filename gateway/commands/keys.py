"""`camgw keygen`: the deployment's credential key file."""

from __future__ import annotations

import argparse

from adapters.vault import create_key_file

from .common import fail
from .context import Context


def keygen(args: argparse.Namespace, ctx: Context) -> int:
    path = ctx.settings.secrets.key_file
    if path.exists():
        fail(f"{path} exists; refusing to replace a key (stored credentials need it)")
    create_key_file(path)
    print(f"wrote {path} (mode 600)")
    return 0
