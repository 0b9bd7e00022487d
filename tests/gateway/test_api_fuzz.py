"""Property-based fuzz of the whole API against its own OpenAPI document (schemathesis driving
hypothesis): every operation of `/api/v1/openapi.json`, with data that fits the document and
data that does not, sent by every role (one token granted one network, one granted all), by a
forged token and by no token, to the real app on a loopback port against the suite's real
redis-server. Asserted for every response: no 500, no 5xx at all outside the snapshot
operation (whose 502/503/504 say the *camera* failed, and are documented), and no response that
violates the document (status, media type, body schema, headers). Data that fits the document
must be accepted by a caller allowed to send it (the document is not looser than the server),
and data that does not must be refused (nor stricter).

Bounded to about a minute: `EXAMPLES` per operation and mode, each sent by every caller.

No camera traffic leaves 127.0.0.0/8: the seeded cameras sit on the shipped loopback ranges, the
records' rules keep every camera (and each of its URIs) there, the networks have no discovery
sources (a discovery job ends at once, without traffic), health rounds are off, and snapshot
fetches get short timeouts (nothing listens at the seeded addresses: 502/503/504).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from aiohttp import ClientSession, web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.config import DiscoveryConfig
from gateway.app import ENDPOINTS, create_app
from gateway.keys import REGISTRY, TOKENS
from gateway.models import Role
from gateway.policy import ROLE_PERMISSIONS, Permission
from gateway.settings import Settings
from gateway.vault import CredentialVault

# Per operation and mode; each example is sent once per caller (10 callers). About a minute on
# a 2-core machine for the API's ~40 operations (50 took two: the suite's whole budget is 15);
# CAMGW_FUZZ_EXAMPLES=500 for a longer hunt.
EXAMPLES = int(os.environ.get("CAMGW_FUZZ_EXAMPLES", "25"))
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
NETWORKS = [{"id": "governance"}, {"id": "police"}, {"id": "gov-affairs"}]

# Seeded cameras, on /24s of the shipped loopback ranges that nothing else in the suite or the
# demo fleet uses; one of each network has a snapshot URI (nothing listens there).
CAMERAS = [
    {"id": "governance.fuzz-1", "network": "governance", "category": "sharp-eyes"},
    {"id": "governance.fuzz-2", "network": "governance", "category": "road-blindspot"},
    {"id": "police.fuzz-1", "network": "police", "category": "public-security"},
    {"id": "police.fuzz-2", "network": "police", "category": "traffic"},
]
_ADDRESSES = {"governance": "127.1.251.{}", "police": "127.2.251.{}"}
_SNAPSHOT_PORT = 8080  # one of every network's access.camera_ports


def _new_camera(n: int) -> dict[str, Any]:
    """A body POST /api/v1/cameras takes (the configuration's network, category, range)."""
    return {
        "id": f"governance.fuzz-new-{n}",
        "network": "governance",
        "name": f"New {n}",
        "category": "smart-security",
        "address": f"127.1.252.{n}",
        "tags": ["fuzz"],
    }


@schemathesis.serializer("text/csv", "application/csv")
def _csv(ctx: Any, value: Any) -> dict[str, Any]:
    data = value if isinstance(value, bytes) else str(value).encode()
    return {"data": data}


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role | None  # None: no token, or a forged one
    headers: dict[str, str]

    def may(self, permission: str | None) -> bool:
        if permission is None:
            return True
        return self.role is not None and Permission(permission) in ROLE_PERMISSIONS[self.role]


@dataclass
class Served:
    base_url: str
    doc: dict[str, Any]
    callers: list[Caller]
    app: web.Application
    job: str  # a discovery job that exists


@dataclass
class Tally:
    sent: int = 0
    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)  # kind -> examples
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, kind: str, example: str) -> None:
        with self.lock:
            examples = self.failures.setdefault(kind, [])
            if len(examples) < 3:
                examples.append(example)

    def report(self) -> str:
        return "\n\n".join(
            f"{kind}\n  e.g. " + "\n  e.g. ".join(examples)
            for kind, examples in sorted(self.failures.items())
        )


def _fuzz_settings(settings: Settings) -> Settings:
    quiet = DiscoveryConfig(health_interval_s=0, timeout_s=0.5, camera_budget_s=1.0)
    snapshots = settings.snapshots.model_copy(
        update={
            "connect_timeout_s": 0.2,
            "timeout_s": 0.5,
            "rtsp_timeout_s": 0.5,
            "breaker_backoff_s": 0.5,
        }
    )
    networks = tuple(n.model_copy(update={"discovery": quiet}) for n in settings.networks)
    return settings.model_copy(update={"snapshots": snapshots, "networks": networks})


@pytest.fixture
async def served(settings: Settings, vault: CredentialVault) -> AsyncIterator[Served]:
    app = create_app(_fuzz_settings(settings), vault)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base_url = f"http://{host}:{port}"
    try:
        tokens = app[TOKENS]
        callers = [
            Caller("anonymous", None, {}),
            Caller("forged", None, {"Authorization": "Bearer cgw_00000000_forged"}),
        ]
        for role in Role:
            for grants in (["governance"], ["*"]):
                secret, _ = await tokens.create(f"fuzz-{role.value}", role, grants, "tests")
                label = f"{role.value}[{','.join(grants)}]"
                callers.append(Caller(label, role, {"Authorization": f"Bearer {secret}"}))
        admin = next(c for c in callers if c.name == "admin[*]")
        async with ClientSession(base_url) as http:
            for n, cam in enumerate(CAMERAS, start=10):
                address = _ADDRESSES[cam["network"]].format(n)
                body = {**cam, "name": f"Fuzz {cam['id']}", "address": address}
                if cam["id"].endswith("-1"):
                    body["snapshot_uri"] = f"http://{address}:{_SNAPSHOT_PORT}/snapshot.jpg"
                resp = await http.post("/api/v1/cameras", json=body, headers=admin.headers)
                assert resp.status == 201, await resp.text()
            started = await http.post("/api/v1/networks/police/discover", headers=admin.headers)
            assert started.status == 202, await started.text()
            job = (await started.json())["id"]
            doc = await (await http.get("/api/v1/openapi.json")).json()
        yield Served(base_url, doc, callers, app, job)
    finally:
        await runner.cleanup()


CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _permission(case: Case) -> str | None:
    """What the operation's declaration requires (the document says it in words)."""
    for ep in ENDPOINTS:
        if (ep.method, ep.path) == (case.operation.method.upper(), case.operation.path):
            return ep.permission.value if ep.permission else None
    raise AssertionError(f"{case.operation.label} is not declared")


def _check(
    served: Served, tally: Tally, case: Case, caller: Caller, response: Any, mode: GenerationMode
) -> None:
    status = response.status_code
    with tally.lock:
        tally.sent += 1
        tally.statuses[(case.operation.label, status)] += 1
    problems: list[str] = []
    other = _other_route(served.doc, case)
    if other is not None:
        # A negative path value that names another route (`/cameras/import` for `{id}`) is a
        # request to that route: 405, naming only that route's methods.
        allowed = sorted(m.strip() for m in _header(response, "Allow").split(","))
        methods = sorted(m.upper() for m in served.doc["paths"][other])
        if status != 405 or allowed != methods or not _is_problem(response):
            problems.append(f"{other}: {status} Allow {allowed}, not 405 Allow {methods}")
    elif status == 500 or (status >= 500 and "/snapshot" not in case.operation.path):
        problems.append(f"server error {status}: {response.text[:300]}")
    checks = list(CHECKS)
    if mode is GenerationMode.NEGATIVE and not _negation_undone(case, caller):
        checks.append(negative_data_rejection)
    try:
        if other is None:
            case.validate_response(response, checks=checks, headers=caller.headers)
    except FailureGroup as exc:
        problems += [f"{type(f).__name__}: {f.title}: {f.message}" for f in exc.exceptions]
    permission = _permission(case)
    if (
        mode is GenerationMode.POSITIVE
        and caller.may(permission)
        and caller.role is not None
        and status in (400, 413, 415, 422)
        and not _semantic_refusal(case, response)
    ):
        problems.append(f"data the document accepts was refused: {status} {response.text[:300]}")
    for problem in problems:
        kind = f"{case.operation.label} ({mode.value}): {problem.splitlines()[0][:160]}"
        detail = " | ".join(problem.splitlines()[1:])[:300]
        tally.fail(kind, f"{caller.name}: {detail} :: {case.as_curl_command()[:400]}")


def _negation_undone(case: Case, caller: Caller) -> bool:
    """A negative case whose breakage is a missing or bad Authorization header is valid again
    once the caller's own token goes with it: what is sent is no longer negative data."""
    meta = case.meta
    mutations = getattr(meta.phase.data, "mutations", ()) if meta is not None else ()
    return "Authorization" in caller.headers and any(
        m.parameter_location == ParameterLocation.HEADER
        and (m.parameter or "").lower() == "authorization"
        for m in mutations
    )


def _other_route(doc: dict[str, Any], case: Case) -> str | None:
    """The documented path a request went to instead, when a path parameter took a value the
    document excludes because it is another route's literal segment."""
    op = doc["paths"][case.operation.path][case.operation.method.lower()]
    path = case.operation.path
    for param in op.get("parameters", []):
        excluded = param["schema"].get("not", {}).get("enum", [])
        value = (case.path_parameters or {}).get(param["name"])
        if param["in"] == "path" and value in excluded:
            path = path.replace("{" + param["name"] + "}", value)
    return path if path != case.operation.path and path in doc["paths"] else None


def _header(response: Any, name: str) -> str:
    values = response.headers.get(name.lower()) or [""]  # schemathesis: lower-case keys, lists
    return str(values[0])


def _is_problem(response: Any) -> bool:
    return _header(response, "Content-Type").startswith("application/problem+json")


# What the document states in words rather than schemas: the configuration's networks,
# categories and address ranges, and that every URI names the camera's own address on an
# allowed port (records.check_camera); a network's snapshot policy; an opaque cursor; CSV.
_IN_WORDS = re.compile(
    r"is not a configured (network|category)|must begin with '|belongs to network|"
    r"is outside the CIDRs|must name the camera|has no valid port|is neither advertised|"
    r"must name a host|is not a valid URI"
)


def _semantic_refusal(case: Case, response: Any) -> bool:
    """A refusal of data that fits the schemas, for a rule the document states in words."""
    try:
        problem = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False
    errors = problem.get("errors") or [{"field": problem.get("field"), "message": ""}]
    fields = {e.get("field") for e in errors}
    op = case.operation.label
    if op == "GET /api/v1/cameras":
        return fields == {"cursor"} and "not a cursor this API returned" in problem["detail"]
    if op in ("GET /api/v1/cameras/{id}/snapshot", "GET /api/v1/cameras/{id}/quality/evidence"):
        return fields == {"reason"} and not (case.query or {}).get("reason")
    if op == "POST /api/v1/cameras/import":
        csv = (case.media_type or "").endswith("csv")
        return csv and all(f in ("body", "header") or f.startswith("header[") for f in fields)
    if op in ("POST /api/v1/cameras", "PATCH /api/v1/cameras/{id}"):
        return all(_IN_WORDS.search(e.get("message", "")) for e in errors)
    if op == "PUT /api/v1/cameras/{id}/references/{period}":  # a JPEG of a camera view
        return fields == {"body"} and problem["detail"].startswith("not usable as a reference")
    return False


def _strategies(
    served: Served, schema: Any
) -> list[tuple[str, GenerationMode, st.SearchStrategy[Case]]]:
    """Per operation and mode, the generated cases; for positive ones, half of them also name
    what exists (a seeded camera, a configured network, a job) or send a body the
    configuration takes, so that records, redaction, snapshots and changes are exercised, not
    only refusals."""
    known: dict[str, list[str]] = {
        "/cameras/{id}": [c["id"] for c in CAMERAS],
        "/networks/{id}": [n["id"] for n in NETWORKS],
        "/jobs/{id}": [served.job],
    }
    out = []
    for result in schema.get_all_operations():
        operation = result.ok()
        op = served.doc["paths"][operation.path][operation.method.lower()]
        modes = [GenerationMode.POSITIVE]
        if op.get("parameters") or op.get("requestBody"):
            modes.append(GenerationMode.NEGATIVE)  # nothing to break in the others
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE:
                ids = next((v for k, v in known.items() if k in operation.path), [])
                if operation.method.upper() == "DELETE":
                    ids = []  # keep the seeded cameras for the other operations
                extra = [
                    operation.as_strategy(generation_mode=mode, path_parameters={"id": i})
                    for i in ids
                ]
                if operation.label == "POST /api/v1/cameras":
                    extra += [operation.as_strategy(body=_new_camera(n)) for n in range(1, 4)]
                if extra:
                    strategy = st.one_of(strategy, st.one_of(*extra))
            out.append((operation.label, mode, strategy))
    return out


def _fuzz(served: Served, tally: Tally) -> None:
    schema = schemathesis.openapi.from_dict(served.doc)
    with requests.Session() as session:
        for label, mode, strategy in _strategies(served, schema):
            _runner(served, tally, session, label, mode, strategy)()


def _runner(
    served: Served,
    tally: Tally,
    session: requests.Session,
    label: str,
    mode: GenerationMode,
    strategy: st.SearchStrategy[Case],
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        tally.examples[f"{label} {mode.value}"] += 1
        for caller in served.callers:
            response = case.call(
                base_url=served.base_url, session=session, headers=caller.headers, timeout=10
            )
            _check(served, tally, case, caller, response, mode)

    return run  # type: ignore[no-any-return]


def _by_status(tally: Tally) -> Counter[int]:
    total: Counter[int] = Counter()
    for (_, status), count in tally.statuses.items():
        total[status] += count
    return total


async def test_every_operation_for_every_caller_conforms_to_the_document(served: Served) -> None:
    tally = Tally()
    started = time.monotonic()
    await asyncio.to_thread(_fuzz, served, tally)
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {sum(tally.examples.values())} examples, {tally.sent} requests "
        f"in {elapsed:.1f} s; statuses: {sorted(_by_status(tally).items())}"
    )
    assert not tally.failures, f"{len(tally.failures)} kinds of failure:\n\n{tally.report()}"
    # Every operation was reached, for each mode, and every camera stayed on loopback.
    operations = {f"{m.upper()} {p}" for p, ms in served.doc["paths"].items() for m in ms}
    assert {k.rsplit(" ", 1)[0] for k in tally.examples} == operations, tally.examples
    for raw in (await served.app[REGISTRY].load_all()).records:
        assert ipaddress.ip_address(orjson.loads(raw)["address"]) in LOOPBACK
