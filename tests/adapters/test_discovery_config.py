"""Discovery configuration that matches the field (issue 9): every `[networks.discovery]` key is
checked when the config loads, with a message naming the key and the value, so that no
discovery job fails on its configuration; WS-Discovery probes go to the network's
`wsdiscovery_port` or a target's own port, shown against the simulator's responder on 127.x.

What is left to each run, by decision (docs/discovery.md): the CSV inventory's contents, re-read
at every run (the owner edits it between runs, and one network's file must not keep the whole
gateway from starting), and whether `multicast_interface` exists on the host.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import CameraFailed, DiscoveryProgress
from adapters.config import DiscoveryConfig
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.remote_config import ConfigError, load_adapter_config
from adapters.simulator.devices import SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.wsdiscovery_responder import WsDiscoveryResponder
from adapters.wsdiscovery import Endpoint, endpoints, probe
from gateway.cli import main
from gateway.settings import DEFAULT_CONFIG, load_settings

SHIPPED_TARGETS = 'wsdiscovery_targets = ["127.1.0.0/20"]'

# key -> (value, the message pydantic reports for it, after "Value error, ")
REFUSED: list[tuple[str, Any, tuple[str | int, ...], str]] = [
    ("wsdiscovery_targets", ["127.0.0.1:99999"], ("wsdiscovery_targets", 0),
     "'127.0.0.1:99999': port '99999' is not a number from 1 to 65535"),
    ("wsdiscovery_targets", ["127.1.0.0/24", "cam-7.local"], ("wsdiscovery_targets", 1),
     "'cam-7.local': not an address, a CIDR or address:port (names are not resolved; IPv6 with "
     "a port is '[address]:port')"),
    ("wsdiscovery_targets", ["127.1.0.5/24"], ("wsdiscovery_targets", 0),
     "'127.1.0.5/24': has host bits set: the range is 127.1.0.0/24"),
    ("wsdiscovery_targets", ["127.1.0.0/24:3703"], ("wsdiscovery_targets", 0),
     "'127.1.0.0/24:3703': a port goes with one address, not a range (wsdiscovery_port sets "
     "the port of the whole network)"),
    ("wsdiscovery_targets", ["239.255.255.250"], ("wsdiscovery_targets", 0),
     "'239.255.255.250': is a multicast address; a multicast probe is sent only on "
     "multicast_interface"),
    ("wsdiscovery_targets", ["fe80::1%eth0"], ("wsdiscovery_targets", 0),
     "'fe80::1%eth0': names an IPv6 zone; give the address alone"),
    ("wsdiscovery_targets", ["[::1]3703"], ("wsdiscovery_targets", 0),
     "'[::1]3703': not an address: an IPv6 address in brackets is '[address]:port'"),
    ("wsdiscovery_targets", ["127.1.0.0/16", "127.2.0.0/24"], ("wsdiscovery_targets",),
     "65,792 addresses to probe, more than 65,536: narrow the ranges"),
    ("wsdiscovery_port", 0, ("wsdiscovery_port",), ""),
    ("multicast_interface", "eth0 backup", ("multicast_interface",),
     "'eth0 backup': is not an interface name (1 to 15 characters, no spaces, '/', ':' or '%')"),
    ("static_hosts", ["127.1.0.9:8o8o"], ("static_hosts", 0),
     "'127.1.0.9:8o8o': port '8o8o' is not a number from 1 to 65535"),
    ("static_hosts", ["nvr-3.police.local:80"], ("static_hosts", 0),
     "'nvr-3.police.local:80': not an address or address:port (names are not resolved; IPv6 "
     "with a port is '[address]:port')"),
    ("static_hosts", ["127.1.0.0/24"], ("static_hosts", 0),
     "'127.1.0.0/24': not an address or address:port (names are not resolved; IPv6 with a port "
     "is '[address]:port')"),
    ("rtsp_uris", ["rtsp://admin:Secr3t@127.1.0.9:554/ch1"], ("rtsp_uris", 0),
     "'rtsp://127.1.0.9:554/ch1': carries credentials; give them in the network's credentials, "
     "never in a URI"),
    ("rtsp_uris", ["http://127.1.0.9/ch1"], ("rtsp_uris", 0),
     "'http://127.1.0.9/ch1': is not an rtsp:// or rtsps:// URI"),
    ("rtsp_uris", ["rtsp://cam-9.local/ch1"], ("rtsp_uris", 0),
     "'rtsp://cam-9.local/ch1': must name the camera by its IP address, with a valid port"),
    ("schedule_s", 5, ("schedule_s",), "5: 0 (on demand only) or at least 10 seconds"),
    ("health_interval_s", 0.2, ("health_interval_s",),
     "0.2: 0 (no health probes) or at least 1 second"),
    ("camera_budget_s", 2, (),
     "camera_budget_s (2) is less than timeout_s (5): one camera's budget must hold at least "
     "one request"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "loc", "message"), REFUSED)
def test_every_discovery_key_is_checked_when_the_config_loads(
    key: str, value: Any, loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        DiscoveryConfig.model_validate({key: value})
    (error,) = caught.value.errors()
    assert error["loc"] == loc
    if message:
        assert error["msg"] == f"Value error, {message}"
    assert "Secr3t" not in error["msg"]  # a URI's credentials are never repeated


def test_what_the_field_uses_is_accepted() -> None:
    cfg = DiscoveryConfig(
        wsdiscovery_targets=("127.1.0.0/24", "127.1.1.7", "127.0.0.1:13703", "[::1]:3703", "::1"),
        wsdiscovery_port=3703,
        multicast_interface="enp3s0.100",
        static_hosts=("127.1.0.5", "127.1.0.6:8000", "[fd00::6]:80"),
        rtsp_uris=("rtsp://127.1.0.9:554/ch1", "rtsps://[fd00::9]/ch1"),
        csv_inventory=Path("/nonexistent/inventory.csv"),  # read at each run, not at load
        schedule_s=3600,
        health_interval_s=30,
    )
    found = endpoints(cfg.wsdiscovery_targets, cfg.wsdiscovery_port)
    assert len(found) == 254 + 3  # each host once: '[::1]:3703' and '::1' are one probe
    assert found[0] == Endpoint("127.1.0.1", 3703)
    assert found[254:] == [
        Endpoint("127.1.1.7", 3703),
        Endpoint("127.0.0.1", 13703),
        Endpoint("::1", 3703),
    ]


def _shipped_with(tmp_path: Path, line: str) -> Path:
    text = DEFAULT_CONFIG.read_text()
    assert text.count(SHIPPED_TARGETS) == 1
    path = tmp_path / "camgw.toml"
    path.write_text(text.replace(SHIPPED_TARGETS, line))
    return path


def test_the_gateway_refuses_to_start_on_a_bad_target_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9: '127.0.0.1:13703' passed validation and failed every discovery job of the
    network; a bad value is now refused when the config loads, by key and value."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    ok = load_settings(_shipped_with(tmp_path, 'wsdiscovery_targets = ["127.1.0.5:13703"]'))
    assert ok.network_by_id["governance"].discovery.wsdiscovery_targets == ("127.1.0.5:13703",)

    path = _shipped_with(tmp_path, 'wsdiscovery_targets = ["127.1.0.5:137030"]')
    line = (
        f'{path}: network "governance": discovery.wsdiscovery_targets (item 1): '
        "'127.1.0.5:137030': port '137030' is not a number from 1 to 65535"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, use_env=False)
    assert caught.value.lines == [line]

    assert main(["--config", str(path), "token", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("camgw: bad configuration:")
    assert f"{line}\n" in err


def test_an_edge_adapter_refuses_its_config_the_same_way(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "config" / "police-adapter.example.toml"
    text = example.read_text()
    shipped = "wsdiscovery_targets = []"
    assert text.count(shipped) == 1
    path = tmp_path / "police-adapter.toml"
    path.write_text(text.replace(shipped, 'wsdiscovery_targets = ["10.31.0.0/16:3702"]'))
    with pytest.raises(ConfigError) as caught:
        load_adapter_config(path, "police")
    assert str(caught.value) == (
        f"{path}: discovery.wsdiscovery_targets (item 1): '10.31.0.0/16:3702': a port "
        "goes with one address, not a range (wsdiscovery_port sets the port of the whole "
        "network)"
    )
    # The inventory it names is not on this machine: the file loads (the adapter reads it at
    # each run, and says there if it is missing).
    assert load_adapter_config(example, "police").discovery.csv_inventory == Path(
        "/etc/camgw/police-inventory.csv"
    )


# --------------------------------------------------------------------------- probes

_N = 140 + os.getpid() % 20
NET = f"127.1.{_N}"
PORT = 13703


@pytest.fixture(scope="module")
async def responder() -> AsyncIterator[list[SimDevice]]:
    """Two simulated devices answering WS-Discovery on port 13703 only (not 3702)."""
    devices = [
        SimDevice(
            camera=FleetCamera(f"wsd-{i}", "governance", "sharp-eyes", "x", f"{NET}.{i}", 0, 0, ""),
            password="unused",
        )
        for i in (210, 211)
    ]
    server = WsDiscoveryResponder(devices, port=PORT)
    await server.start()
    yield devices
    await server.stop()


def _inside(address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(f"{NET}.0/24")


async def test_probes_go_to_the_networks_port_or_the_targets_own(
    responder: list[SimDevice],
) -> None:
    refs = {d.address: d.endpoint_reference for d in responder}

    async def found(**discovery: Any) -> dict[str, str | None]:
        """What a network's discovery run finds (no credentials: each found device is a
        `credentials` failure naming its address and endpoint reference)."""
        spec = AdapterSpec(
            "governance",
            (ipaddress.ip_network(f"{NET}.0/24"),),
            DiscoveryConfig(probe_wait_s=0.3, **discovery),
            None,
        )
        adapter = CameraNetworkAdapter(spec)
        out: dict[str, str | None] = {}
        try:
            async for event in adapter.discover("job"):
                if isinstance(event, DiscoveryProgress):
                    assert event.ignored == 0, event
                if isinstance(event, CameraFailed) and event.failure.address:
                    out[event.failure.address] = event.failure.endpoint_reference
        finally:
            await adapter.close()
        return out

    assert await found(wsdiscovery_targets=(f"{NET}.208/29",)) == {}  # nothing on 3702
    assert await found(wsdiscovery_targets=(f"{NET}.208/29",), wsdiscovery_port=PORT) == refs
    assert await found(wsdiscovery_targets=(f"{NET}.211:{PORT}", f"{NET}.210")) == {
        f"{NET}.211": refs[f"{NET}.211"]
    }


async def test_a_missing_multicast_interface_fails_the_run_naming_the_key() -> None:
    with pytest.raises(ValueError) as caught:
        await probe([], allowed=_inside, wait_s=0.01, multicast_interface="nosuch0")
    assert str(caught.value) == "multicast_interface 'nosuch0': no such interface on this host"
