"""The pure record functions: what a registration becomes, what a patch changes, what discovery
may and may not overwrite, and which records the configuration refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import pytest

from adapters.base import Discovered, Profile
from gateway.models import (
    Camera,
    CameraCreate,
    CameraPatch,
    CameraSource,
    CameraStatus,
    Location,
    OnvifInfo,
    StreamProfile,
)
from gateway.records import (
    NetworkMismatch,
    apply_patch,
    camera_from_discovered,
    check_camera,
    device_here,
    discovered_id,
    input_field,
    merge_discovered,
    new_camera,
    patch_errors,
)
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(DEFAULT_CONFIG, use_env=False)


def create(**over: Any) -> CameraCreate:
    data = {"network": "governance", "name": "Gate", "category": "sharp-eyes"}
    return CameraCreate.model_validate(data | {"address": "127.1.0.1"} | over)


def record(**over: Any) -> Camera:
    data: dict[str, Any] = {
        "id": "governance.cam-1",
        "network": "governance",
        "name": "East gate",
        "category": "sharp-eyes",
        "department": "Political-Legal Committee",
        "carrier": "China Telecom",
        "project": "Sharp Eyes project",
        "location": {"lat": 31.08, "lon": 121.3, "address": "East gate"},
        "address": "127.1.0.1",
        "source": "registered",
        "tags": ["gate"],
        "profiles": [{"token": "main", "stream_uri": "rtsp://127.1.0.1/main"}],
        "created_at": T0,
        "updated_at": T0,
    }
    return Camera.model_validate(data | over)


# -- new_camera -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "network", "address", "expected"),
    [
        (
            "sharp-eyes",
            "governance",
            "127.1.0.1",
            ("Political-Legal Committee", "China Telecom", "Sharp Eyes project"),
        ),
        (
            "smart-security",
            "governance",
            "127.1.0.1",
            ("Political-Legal Committee", "China Telecom", "Smart security"),
        ),
        (
            "road-blindspot",
            "governance",
            "127.1.0.1",
            ("Town Safety Office", "China Unicom", "Road monitoring blind-spot filling"),
        ),
        (
            "public-security",
            "police",
            "127.2.0.1",
            ("Police", "China Telecom", "Public-security cameras"),
        ),
        (
            "micro-checkpoint",
            "police",
            "127.2.0.1",
            ("Police", "China Telecom", "Micro-checkpoints"),
        ),
        (
            "traffic",
            "police",
            "127.2.0.1",
            ("Traffic Police 2nd Brigade", "China Telecom", "Traffic cameras"),
        ),
        ("unclassified", "governance", "127.1.0.1", ("", "", "")),  # category with no owner
        ("no-such-category", "governance", "127.1.0.1", ("", "", "")),  # refused by check_camera
    ],
)
def test_new_camera_takes_owner_fields_from_its_category(
    settings: Settings, category: str, network: str, address: str, expected: tuple[str, str, str]
) -> None:
    body = create(category=category, network=network, address=address)
    cam = new_camera(body, settings, T0, CameraSource.registered)
    assert (cam.department, cam.carrier, cam.project) == expected


def test_new_camera_keeps_what_the_admin_gave(settings: Settings) -> None:
    body = create(
        id="governance.east-1",
        department="Community committee",
        carrier="",
        project="Village fund",
        tags=["a"],
        stream_uri="rtsp://127.1.0.1:554/ch1",
        credentials={"username": "admin", "password": "secret"},
        location={"lat": 31, "lon": 121},
    )
    cam = new_camera(body, settings, T0, CameraSource.imported)
    assert cam.id == "governance.east-1"
    assert (cam.department, cam.carrier, cam.project) == ("Community committee", "", "Village fund")
    assert cam.source is CameraSource.imported
    assert cam.status is CameraStatus.unknown
    assert cam.has_credentials is True
    assert "secret" not in cam.model_dump_json()
    assert [(p.token, p.stream_uri) for p in cam.profiles] == [("main", "rtsp://127.1.0.1:554/ch1")]
    assert cam.location == Location(lat=31, lon=121)
    assert cam.tags == ["a"]
    assert (cam.created_at, cam.updated_at, cam.rev) == (T0, T0, 1)


def test_new_camera_ids_are_generated_and_distinct(settings: Settings) -> None:
    ids = {new_camera(create(), settings, T0, CameraSource.registered).id for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("governance.") for i in ids)  # scoped by network
    bare = new_camera(create(), settings, T0, CameraSource.registered)
    assert (bare.profiles, bare.has_credentials, bare.tags, bare.location) == ([], False, [], None)


# -- apply_patch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"name": "West gate"}, {"name": "West gate"}),
        ({"name": "  padded  "}, {"name": "padded"}),
        ({"department": None}, {"department": ""}),
        ({"carrier": None, "project": None}, {"carrier": "", "project": ""}),
        ({"department": "Police"}, {"department": "Police"}),
        ({"tags": None}, {"tags": []}),
        ({"tags": ["x", "y"]}, {"tags": ["x", "y"]}),
        ({"location": None}, {"location": None}),
        (
            {"location": {"lat": 1, "lon": 2}},
            {"location": Location(lat=1, lon=2)},
        ),
        # A new address: what discovery read and the URIs at the old one go with it.
        ({"address": "127.1.9.9"}, {"address": ip_address("127.1.9.9"), "profiles": []}),
        ({"category": "smart-security"}, {"category": "smart-security"}),
        ({"stream_uri": None}, {"profiles": []}),
        (
            {"stream_uri": "rtsp://127.1.0.1/sub"},
            {"profiles": [StreamProfile(token="main", name="registered stream",
                                        stream_uri="rtsp://127.1.0.1/sub")]},
        ),
        ({"snapshot_uri": "http://127.1.0.1/snap.jpg"}, {"snapshot_uri": "http://127.1.0.1/snap.jpg"}),
        ({"credentials": {"username": "u", "password": "p"}}, {"has_credentials": True}),
        ({}, {}),
    ],
)  # fmt: skip
def test_apply_patch_changes_only_what_it_names(
    patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = record()
    snapshot = before.model_copy(deep=True)
    after = apply_patch(before, CameraPatch.model_validate(patch), T1)
    assert before == snapshot  # the input record is not mutated
    for field in Camera.model_fields:
        if field in expected:
            assert getattr(after, field) == expected[field], field
        elif field not in ("updated_at", "rev"):
            assert getattr(after, field) == getattr(before, field), field
    assert (after.updated_at, after.rev, after.created_at) == (T1, before.rev + 1, T0)


def test_clearing_credentials() -> None:
    cam = record(has_credentials=True)
    after = apply_patch(cam, CameraPatch.model_validate({"credentials": None}), T1)
    assert after.has_credentials is False
    kept = apply_patch(cam, CameraPatch.model_validate({"name": "x"}), T1)
    assert kept.has_credentials is True


@pytest.mark.parametrize("field", ["name", "category", "address"])
def test_required_fields_cannot_be_nulled(field: str) -> None:
    patch = CameraPatch.model_validate({field: None, "carrier": "X"})
    assert [(e.field, e.message) for e in patch_errors(patch)] == [(field, "may not be null")]
    after = apply_patch(record(), patch, T1)
    assert getattr(after, field) == getattr(record(), field)  # never stored as a hole
    assert after.carrier == "X"


def test_patch_errors_is_empty_for_a_valid_patch() -> None:
    assert patch_errors(CameraPatch.model_validate({"name": "x", "tags": None})) == []


# -- merge_discovered -------------------------------------------------------------------------


def discovered(**over: Any) -> Camera:
    data: dict[str, Any] = {
        "id": "governance.abc",
        "network": "governance",
        "name": "Hikvision DS-2CD governance.abc",
        "category": "unclassified",
        "address": "127.1.0.1",
        "vendor": "Hikvision",
        "model": "DS-2CD2143",
        "firmware": "V5.7.3",
        "serial": "SN123",
        "mac": "aa:bb:cc:dd:ee:ff",
        "onvif": {"device_uri": "http://127.1.0.1:8000/onvif/device_service"},
        "profiles": [
            {"token": "p0", "name": "main", "codec": "H264", "width": 1920, "height": 1080,
             "stream_uri": "rtsp://127.1.0.1:554/ch1"},
        ],
        "snapshot_uri": "http://127.1.0.1/snap.jpg",
        "capabilities": {"ptz": True},
        "status": "online",
        "last_seen": T1,
        "source": "discovered",
        "created_at": T1,
        "updated_at": T1,
    }  # fmt: skip
    return Camera.model_validate(data | over)


def test_merge_keeps_admin_fields_and_refreshes_discovered_ones() -> None:
    existing = record(rev=4, has_credentials=True, status="offline", last_error="timeout")
    found = discovered()
    merged = merge_discovered(existing, found, T1)
    # What the admin decided stays.
    for field in ("name", "category", "department", "carrier", "project", "location", "tags"):
        assert getattr(merged, field) == getattr(existing, field), field
    # What the camera says about itself is refreshed.
    for field in (
        "vendor",
        "model",
        "firmware",
        "serial",
        "mac",
        "onvif",
        "profiles",
        "snapshot_uri",
        "capabilities",
        "status",
        "last_seen",
        "last_error",
    ):
        assert getattr(merged, field) == getattr(found, field), field
    # The record's identity and history are the existing record's.
    assert (merged.id, merged.network, merged.source) == (
        "governance.cam-1",
        "governance",
        "registered",
    )
    assert (merged.created_at, merged.updated_at, merged.rev) == (T0, T1, 5)
    assert merged.has_credentials is True  # credentials on file are not forgotten


def test_merge_fills_admin_fields_that_are_empty() -> None:
    existing = record(name="Gate", department="", carrier="", project="", location=None, tags=[])
    found = discovered(
        carrier="China Telecom",
        location={"lat": 31.1, "lon": 121.2},
        tags=["onvif"],
    )
    merged = merge_discovered(existing, found, T1)
    assert merged.name == "Gate"
    assert merged.carrier == "China Telecom"
    assert merged.location == Location(lat=31.1, lon=121.2)
    assert merged.tags == ["onvif"]
    assert (merged.department, merged.project) == ("", "")  # nothing to fill from


def test_merge_of_a_discovered_record_keeps_its_classification() -> None:
    """An admin classified a discovered camera; the next discovery run must not undo that."""
    first = discovered(id="governance.abc", rev=2)
    classified = apply_patch(
        first,
        CameraPatch.model_validate({"category": "road-blindspot", "name": "Bridge"}),
        T1,
    )
    again = discovered(status="degraded", firmware="V5.8.0")
    merged = merge_discovered(classified, again, T1 + timedelta(minutes=5))
    assert (merged.category, merged.name) == ("road-blindspot", "Bridge")
    assert (merged.status, merged.firmware) == (CameraStatus.degraded, "V5.8.0")
    assert merged.source is CameraSource.discovered
    assert merged.rev == classified.rev + 1


# -- check_camera -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "fields"),
    [
        ({}, []),
        ({"network": "internet"}, ["network"]),
        ({"id": "cam-1"}, ["id"]),  # ids are scoped by network
        ({"id": "police.cam-1"}, ["id"]),  # and never another network's
        ({"category": "drone"}, ["category"]),
        ({"category": "traffic"}, ["category"]),  # a police category on the governance network
        ({"category": "unclassified"}, []),  # a category of no network fits every network
        ({"address": "10.1.0.1"}, ["address", "profiles[0].stream_uri"]),
        ({"address": "127.2.0.1"}, ["address", "profiles[0].stream_uri"]),
        ({"profiles": [{"token": "a", "stream_uri": "rtsp://127.9.0.1/x"}]},
         ["profiles[0].stream_uri"]),
        # Another host inside the network's ranges: not the camera's own address.
        ({"profiles": [{"token": "a", "stream_uri": "rtsp://127.1.0.2/x"}]},
         ["profiles[0].stream_uri"]),
        (
            {"profiles": [{"token": "a", "stream_uri": "rtsp://127.1.0.1/x"},
                          {"token": "b", "stream_uri": "rtsp://cam.local/x"}]},
            ["profiles[1].stream_uri"],
        ),
        ({"profiles": [{"token": "a"}]}, []),  # a profile without a URI names no host
        ({"snapshot_uri": "http://192.168.1.5/snap.jpg"}, ["snapshot_uri"]),
        ({"snapshot_uri": "http://127.1.0.1:8000/snap.jpg"}, []),  # a configured port
        ({"snapshot_uri": "http://127.1.0.1:9/snap.jpg"}, ["snapshot_uri"]),  # not one
        # ... unless the camera's device advertised it to discovery at this address
        ({"snapshot_uri": "http://127.1.0.1:9/snap.jpg",
          "device": {"address": "127.1.0.1", "ports": [9]}}, []),
        ({"snapshot_uri": "http://127.1.0.1:9/snap.jpg",
          "device": {"address": "127.1.0.7", "ports": [9]}}, ["snapshot_uri"]),
        ({"onvif": {"device_uri": "http://[::1]:8000/onvif"}}, ["onvif.device_uri"]),
        ({"onvif": {"device_uri": "http://127.1.0.1:8000/onvif"}}, []),
        ({"onvif": {"device_uri": "http://127.1.0.9:8000/onvif"}}, ["onvif.device_uri"]),
        ({"onvif": {"services": {"media": "http://127.1.0.9/media"}}}, ["onvif.services[media]"]),
        (
            {"category": "drone", "address": "10.0.0.1", "snapshot_uri": "http://10.0.0.1/s",
             "profiles": []},
            ["category", "address"],
        ),
    ],
)  # fmt: skip
def test_check_camera(settings: Settings, over: dict[str, Any], fields: list[str]) -> None:
    errors = check_camera(settings, record(**over))
    assert [e.field for e in errors] == fields
    assert all(e.message for e in errors)


def test_check_camera_messages_name_the_rule(settings: Settings) -> None:
    [other] = check_camera(settings, record(category="micro-checkpoint"))
    assert "police" in other.message
    [outside] = check_camera(settings, record(address="10.0.0.1", profiles=[]))
    assert "governance" in outside.message
    [by_name] = check_camera(settings, record(snapshot_uri="http://cam.local/s.jpg"))
    assert "IP address" in by_name.message
    [elsewhere] = check_camera(settings, record(snapshot_uri="http://127.1.0.2/s.jpg"))
    assert elsewhere.message == "must name the camera's own address"
    [port] = check_camera(settings, record(snapshot_uri="http://127.1.0.1:9/s.jpg"))
    assert port.message == (
        "port 9 is neither advertised by the camera's device nor allowed by network "
        "'governance' (access.camera_ports)"
    )
    [wrong_id] = check_camera(settings, record(id="police.x"))
    assert wrong_id.message == "must begin with 'governance.' (camera ids are scoped by network)"


@pytest.mark.parametrize(
    ("field", "sent"),
    [
        ("profiles[0].stream_uri", "stream_uri"),
        ("profiles[12].stream_uri", "stream_uri"),
        ("snapshot_uri", "snapshot_uri"),
        ("address", "address"),
        ("onvif.device_uri", "onvif.device_uri"),
    ],
)
def test_input_field(field: str, sent: str) -> None:
    assert input_field(field) == sent


def test_onvif_info_defaults_do_not_trip_the_check(settings: Settings) -> None:
    assert check_camera(settings, record(onvif=OnvifInfo())) == []


# -- credentials stay with the camera they were given for (issue 7, finding 1) -----------------


@pytest.mark.parametrize(
    ("patch", "kept"),
    [
        ({"name": "West gate"}, True),
        ({"tags": ["x"]}, True),
        ({"stream_uri": "rtsp://127.1.0.1/sub"}, True),  # same origin, another path
        ({"stream_uri": "rtsp://127.1.0.1:8554/main"}, False),  # another port
        ({"snapshot_uri": "http://127.1.0.1/snap.jpg"}, False),  # an origin never used before
        ({"address": "127.1.0.2"}, False),  # another camera, as far as anyone knows
        ({"address": "127.1.0.2", "credentials": {"username": "u", "password": "p"}}, True),
        ({"snapshot_uri": "http://127.1.0.1/s", "credentials": {"username": "u", "password": "p"}},
         True),
        ({"credentials": None}, False),
    ],
)  # fmt: skip
def test_a_patch_that_moves_a_camera_drops_its_credentials(
    patch: dict[str, Any], kept: bool
) -> None:
    """As browsers drop authorisation on a cross-origin redirect: a new address, or a URI on an
    origin the camera did not use, keeps no credentials unless the same patch brings new ones."""
    after = apply_patch(record(has_credentials=True), CameraPatch.model_validate(patch), T1)
    assert after.has_credentials is kept


def test_a_new_address_forgets_what_discovery_read_at_the_old_one() -> None:
    found = discovered(device={"address": "127.1.0.1", "ports": [80, 554, 8000]})
    assert device_here(found)
    moved = apply_patch(found, CameraPatch.model_validate({"address": "127.1.0.5"}), T1)
    assert (moved.device, moved.onvif, moved.snapshot_uri, moved.profiles) == (None, None, None, [])
    assert not device_here(moved)  # so the network's password is not offered there


def test_discovery_at_another_address_keeps_no_credentials() -> None:
    existing = record(has_credentials=True)
    moved = merge_discovered(existing, discovered(address="127.1.0.7", profiles=[]), T1)
    assert moved.has_credentials is False
    same = merge_discovered(existing, discovered(), T1)
    assert same.has_credentials is True


def test_discovery_never_merges_across_networks() -> None:
    police = record(id="governance.cam-1", network="police", category="traffic")
    with pytest.raises(NetworkMismatch, match="is on another network"):
        merge_discovered(police, discovered(), T1)


def found(**over: Any) -> Discovered:
    data: dict[str, Any] = {
        "network": "governance",
        "address": "127.1.0.1",
        "source": "ws-discovery",
        "vendor": "Hikvision",
        "model": "DS-2CD2143",
        "device_uri": "http://127.1.0.1:8000/onvif/device_service",
        "profiles": (Profile(token="p0", stream_uri="rtsp://127.1.0.1:554/ch1"),),
        "snapshot_uri": "http://127.1.0.1/onvif/snap.jpg",
    }
    return Discovered(**(data | over))


def test_discovered_ids_are_keyed_scoped_and_stable() -> None:
    key, other_key = b"k" * 32, b"o" * 32
    one = discovered_id(found(endpoint_reference="urn:uuid:1"), key)
    assert one.startswith("governance.")
    assert one == discovered_id(found(endpoint_reference="urn:uuid:1"), key)  # stable
    assert one != discovered_id(found(endpoint_reference="urn:uuid:2"), key)
    # Without the deployment's key nobody can compute it (the old, unkeyed scheme could).
    assert one != discovered_id(found(endpoint_reference="urn:uuid:1"), other_key)


def test_a_discovered_camera_knows_where_it_was_read_and_is_not_named_by_address(
    settings: Settings,
) -> None:
    cam = camera_from_discovered(found(), settings, T0, "governance.abc")
    assert cam.device is not None
    assert (str(cam.device.address), cam.device.ports) == ("127.1.0.1", [80, 554, 8000])
    assert cam.name == "Hikvision DS-2CD2143 governance.abc"
    assert "127.1.0.1" not in cam.name  # a name is shared where an address may not be
    assert check_camera(settings, cam) == []
