"""`camgw`: the command line. This module only parses: each command's module in
`gateway.commands` is imported when that command runs, so a token command starts without
loading the gateway, OpenCV, zeep or the camera simulator.

Every failure is a sentence on stderr (`camgw: ...`), exit code 1 (it did not work) or 2 (it was
asked wrongly); a traceback only with CAMGW_LOG_LEVEL=DEBUG."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from adapters.vault import VaultError

from . import logs
from .commands.common import Fail, say

log = logging.getLogger("camgw")

ROLES = ("viewer", "operator", "admin", "auditor")  # gateway.models.Role, without importing it


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Services log what they do; a one-off command only what went wrong.
    service = args.run in ("serve:serve", "demo:demo", "adapter:run")
    logs.setup(os.environ.get("CAMGW_LOG_LEVEL", "INFO" if service else "WARNING"))
    try:
        return _run(args)
    except Fail as exc:
        say(exc.message)
        return exc.code
    except VaultError as exc:
        say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, or a failure nobody foresaw: a sentence, not a traceback
        log.debug("unexpected error", exc_info=True)
        say(
            f"unexpected error: {type(exc).__name__}: {exc} (CAMGW_LOG_LEVEL=DEBUG shows "
            "where; please report it)"
        )
        return 1


def _run(args: argparse.Namespace) -> int:
    from .commands.context import resolve

    module, _, name = args.run.partition(":")
    ctx = None
    if args.settings != "none":
        try:
            ctx = resolve(args.config, demo=args.settings == "demo")
        except (OSError, ValueError) as exc:  # ConfigError (one line per finding) included
            lines = getattr(exc, "lines", None) or [str(exc)]
            raise Fail("bad configuration:\n  " + "\n  ".join(lines), 2) from None
    command = getattr(importlib.import_module(f"gateway.commands.{module}"), name)
    return int(command(args, ctx))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camgw", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=None, help="config file (CAMGW_CONFIG)")
    sub = p.add_subparsers(required=True, metavar="command")

    s = _command(sub, "serve", "serve:serve", "run the gateway")
    s.add_argument("--host")
    s.add_argument("--port", type=int)

    d = _command(sub, "demo", "demo:demo", "private Redis + demo fleet + gateway, printing tokens")
    d.set_defaults(settings="no-demo")
    d.add_argument("--var", type=Path, default=Path("var"), help="state directory")
    d.add_argument("--scale", type=float, default=0.05, help="fleet size vs the inventory")
    d.add_argument("--port", type=int)
    d.add_argument(
        "--no-gb28181",
        dest="gb28181",
        action="store_false",
        help="no simulated GB/T 28181 lower platform (the police network's video platform)",
    )

    t = sub.add_parser("token", help="manage API tokens").add_subparsers(required=True)
    tc = _command(t, "create", "tokens:create", "create a token and print it once")
    tc.add_argument("--role", required=True, choices=ROLES)
    tc.add_argument("--networks", required=True, help="comma-separated ids, or '*' for all")
    tc.add_argument("--name", required=True)
    _command(t, "list", "tokens:list_", "list tokens (never their secrets)")
    tr = _command(t, "revoke", "tokens:revoke", "revoke a token by id")
    tr.add_argument("id")

    i = _command(sub, "import", "imports:import_file", "import a CSV or JSON file via the API")
    i.add_argument("file", type=Path)
    i.add_argument("--url", help="the gateway (CAMGW_URL; beside a demo: the demo's)")
    i.add_argument("--json", action="store_true", help="print the API's report as JSON")

    _audit_parsers(sub)
    _simulate_parser(sub)

    dc = _command(sub, "discover", "discover:discover", "run one discovery with a progress bar")
    dc.add_argument("--network", required=True)

    _adapter_parsers(sub)
    _command(sub, "keygen", "keys:keygen", "create the credential key file")
    _acl_parser(sub)
    return p


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, run: str, text: str
) -> argparse.ArgumentParser:
    """A subcommand that runs `gateway.commands.<module>:<function>(args, context)`."""
    parser = sub.add_parser(name, help=text, description=text)
    parser.set_defaults(run=run, settings="demo")
    return parser


def _audit_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("audit", help="read and check the audit trail").add_subparsers(required=True)
    at = _command(a, "tail", "audit:tail", "print the newest entries as JSON lines")
    at.add_argument("-n", type=int, default=20, help="how many (default 20)")
    at.add_argument("-f", action="store_true", help="then follow: print new entries as they come")
    av = _command(
        a, "verify", "audit:verify", "check the chain (archive, then stream; or one export file)"
    )
    av.add_argument("--archive-dir", type=Path, help="archive segments (default: [audit])")
    av.add_argument("--file", type=Path, help="verify this export or segment file only")
    ae = _command(a, "export", "audit:export", "entries since a time, as a verifiable file")
    ae.add_argument("--since", required=True, help="ISO 8601 date-time, e.g. 2024-05-01T00:00Z")
    ae.add_argument("--out", type=Path, help="file to write (default: stdout)")
    ae.add_argument("--archive-dir", type=Path, help="archive segments (default: [audit])")


def _simulate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sm = _command(
        sub, "simulate", "simulate:simulate", "serve the simulated camera fleet on loopback"
    )
    sm.add_argument("--scale", type=float, default=0.05, help="fleet size vs the inventory")
    sm.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    sm.add_argument("--quirks", action="store_true", help="give a few cameras each quirk")
    sm.add_argument("--rtsp-only-every", type=int, default=25, help="every Nth camera RTSP-only")
    sm.add_argument("--no-rtsp", action="store_true", help="no GStreamer RTSP streams")
    sm.add_argument("--inventory-dir", type=Path, help="write RTSP-only inventories (CSV) here")
    sm.add_argument("--nvr-share", type=float, default=0.0, help="share behind 16-channel NVRs")
    sm.add_argument(
        "--encoder-share", type=float, default=0.0, help="share behind 4-channel encoders"
    )
    sm.add_argument(
        "--password-file",
        action="append",
        default=[],
        metavar="NETWORK=FILE",
        help="this network's camera password is the first line of FILE (repeatable)",
    )


def _adapter_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = _command(sub, "adapter", "adapter:run", "run one network's edge adapter (inside it)")
    p.set_defaults(settings="none")  # its own config file only: no gateway config there
    p.add_argument("--network", required=True, help="the network's id")
    p.add_argument(
        "--config", dest="adapter_config", type=Path, required=True, help="the adapter's file"
    )
    actions = p.add_subparsers(dest="adapter_action")
    actions.add_parser("keygen", help="create the adapter's key file").set_defaults(
        run="adapter:keygen"
    )
    c = actions.add_parser("credentials", help="keep a camera's own credentials (stdin: password)")
    c.add_argument("--ref", required=True, help="the camera's ref (the record's device.ref)")
    c.add_argument("--username", required=True)
    c.set_defaults(run="adapter:credentials")
    a = actions.add_parser("audit", help="the adapter's own log").add_subparsers(required=True)
    v = a.add_parser("verify", help="check its hash chain; the first broken or missing link")
    v.set_defaults(run="adapter:verify")


def _acl_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ac = _command(
        sub,
        "acl",
        "acl:acl",
        "print (or --apply) the Redis ACL users: one per edge adapter, one for the gateway",
    )
    ac.add_argument(
        "--all-networks", action="store_true", help='every network, not only mode = "edge"'
    )
    ac.add_argument("--apply", action="store_true", help="ACL SETUSER them (and ACL SAVE)")
    ac.add_argument(
        "--password-dir",
        type=Path,
        help="passwords in DIR/<user>.password: kept if there, else generated there (mode 600)",
    )
    ac.add_argument(
        "--password-file",
        action="append",
        default=[],
        metavar="USER=FILE",
        help="this user's password is the first line of FILE (repeatable)",
    )
    ac.add_argument("--admin-user", help="--apply logs in as this ACL user (default: [redis])")
    pw = ac.add_mutually_exclusive_group()
    pw.add_argument("--admin-password-env", metavar="VAR", help="its password's variable")
    pw.add_argument("--admin-password-file", type=Path, metavar="FILE", help="its password file")


if __name__ == "__main__":
    sys.exit(main())
