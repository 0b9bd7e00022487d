"""The quality verdict across the dashboard (issue 15): badges on the video wall's tiles and in
the camera list, the list's filter by verdict, and "online but faulty" in the outage report.

The demo runs no quality rounds (its simulated cameras send a test card), so its cameras have no
verdict: the answers the page reads are the demo gateway's own, with verdicts added on the way
(and the list filtered by them, as the API does: tests/gateway/test_quality_filter.py). The
API's own filter is checked against the demo too: it takes the parameter and refuses a bad
value naming it."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from tests.browser.conftest import Session, needs_browser

with contextlib.suppress(ImportError):  # conftest.SKIP says why; every test here skips
    from playwright.async_api import Route, expect

pytestmark = needs_browser

LIST_POLL_MS = 15_000  # gateway/web/js/views/cameras.js


def _image(status: str, check: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "failing": [{"check": check, "level": status, "measures": {}}] if check else [],
        "since": "2026-12-01T03:40:00Z",
        "night": False,
        "failing_rounds": 2 if status == "faulty" else 1,
        "reference": False,
    }


async def _with_verdicts(s: Session) -> dict[str, str]:
    """The first two online cameras of the list get a verdict (faulty blurred, suspect dark);
    a list asked for by verdict holds those with it. Returns id -> verdict."""
    _, page = await s.gateway.api("admin", "/api/v1/cameras?limit=10000")
    online = [c["id"] for c in page["items"] if c["status"] == "online"][:2]
    verdicts = {online[0]: "faulty", online[1]: "suspect"}
    checks = {"faulty": "blur", "suspect": "too_dark"}

    async def list_with_verdicts(route: Route) -> None:
        query = parse_qs(urlsplit(route.request.url).query)
        wanted = query.pop("image", [None])[0]
        # the real list without the verdict filter (the demo has no verdicts), then filtered here
        url = (
            route.request.url.split("?")[0]
            + "?"
            + "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)
        )
        headers = {k: v for k, v in route.request.headers.items() if k != "if-none-match"}
        response = await route.fetch(url=url, headers=headers)
        body = await response.json()
        for item in body["items"]:
            if item["id"] in verdicts:
                status = verdicts[item["id"]]
                item["image"] = _image(status, checks.get(status))
        if wanted is not None:
            body["items"] = [
                i for i in body["items"] if (i.get("image") or {}).get("status") == wanted
            ]
            body["total"] = len(body["items"])
        await route.fulfill(status=200, json=body)

    await s.page.route("**/api/v1/cameras?*", list_with_verdicts)
    return verdicts


async def test_the_wall_tiles_carry_the_picture_verdict(session: Session) -> None:
    s = session
    verdicts = await _with_verdicts(s)
    await s.sign_in("operator")
    await s.go("wall")
    for cam_id, status in verdicts.items():
        tile = s.page.locator(f'#wall figure[data-id="{cam_id}"]')
        await expect(tile).to_have_attribute("data-image", status)
        badge = tile.locator(f'figcaption .badge[data-image="{status}"]')
        await expect(badge).to_have_text("画面故障" if status == "faulty" else "画面可疑")
    # a tile with no verdict has no such badge
    await expect(s.page.locator("#wall figcaption .badge[data-image]")).to_have_count(2)
    await s.page.select_option("#lang", "en")
    faulty = next(c for c, v in verdicts.items() if v == "faulty")
    await expect(
        s.page.locator(f'#wall figure[data-id="{faulty}"] figcaption .badge[data-image]')
    ).to_have_text("picture faulty")
    await s.shot("wall-image-badges")
    await s.page.select_option("#lang", "zh")
    await s.page.unroute_all(behavior="ignoreErrors")


async def test_the_wall_follows_verdicts_that_change(session: Session) -> None:
    """A wall stays up for hours: its captions follow the camera list, polled as the list
    view polls it. The page's clock is Playwright's: the poll comes at once, no test sleeps."""
    s = session
    await s.page.clock.install()
    verdicts = await _with_verdicts(s)
    await s.sign_in("operator")
    await s.go("wall")
    faulty, suspect = sorted(verdicts, key=lambda c: verdicts[c] != "faulty")
    await expect(s.page.locator(f'#wall figure[data-id="{faulty}"]')).to_have_attribute(
        "data-image", "faulty"
    )
    verdicts[faulty], verdicts[suspect] = "ok", "faulty"  # repaired; the other got worse
    await s.page.clock.fast_forward(LIST_POLL_MS + 1000)
    for cam_id, status in ((faulty, "ok"), (suspect, "faulty")):
        tile = s.page.locator(f'#wall figure[data-id="{cam_id}"]')
        await expect(tile).to_have_attribute("data-image", status)
        await expect(tile.locator("figcaption .badge[data-image]")).to_have_attribute(
            "data-image", status
        )
    await s.page.unroute_all(behavior="ignoreErrors")


async def test_the_camera_list_is_filtered_by_verdict(session: Session) -> None:
    s = session
    # the API itself: the parameter is known, a bad value refused naming it
    status, body = await s.gateway.api("viewer", "/api/v1/cameras?image=faulty&limit=5")
    assert status == 200 and body["items"] == []  # (no verdict in the demo)
    status, body = await s.gateway.api("viewer", "/api/v1/cameras?image=broken")
    assert status == 422 and body["field"] == "image"

    verdicts = await _with_verdicts(s)
    await s.sign_in("admin")
    await s.go("cameras")
    await expect(s.page.locator("#camera-table tbody tr").first).to_be_visible()
    for cam_id, status in verdicts.items():
        row = s.page.locator(f'#camera-table tr[data-id="{cam_id}"]')
        await expect(row).to_have_attribute("data-image", status)
        await expect(row.locator(f'.badge[data-image="{status}"]')).to_have_text(
            "故障" if status == "faulty" else "可疑"
        )
    async with s.page.expect_request(lambda r: "image=faulty" in r.url) as asked:
        await s.page.select_option("#f-image", "faulty")
    assert "/api/v1/cameras?" in (await asked.value).url
    faulty = next(c for c, v in verdicts.items() if v == "faulty")
    await expect(s.page.locator("#camera-table tbody tr")).to_have_count(1)
    await expect(s.page.locator("#camera-table tbody tr")).to_have_attribute("data-id", faulty)
    await expect(s.page.locator("#list-info")).to_have_attribute("data-total", "1")
    await s.shot("list-image-filter")
    await s.page.select_option("#f-image", "")  # the filters persist in the tab
    await s.page.unroute_all(behavior="ignoreErrors")


async def test_the_outage_report_shows_online_but_faulty(session: Session) -> None:
    s = session
    _, page = await s.gateway.api("admin", "/api/v1/cameras?limit=1&status=online")
    cam = page["items"][0]

    async def with_faulty_row(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        row = {
            "id": cam["id"],
            "network": cam["network"],
            "name": cam["name"],
            "category": cam["category"],
            "status": "online",
            "since": "2026-12-01T03:40:00Z",
            "since_exact": True,
            "down_s": 7200.0,
            "department": cam["department"],
            "carrier": cam["carrier"],
            "project": cam["project"],
            "maintenance": None,
            "last_error": None,
            "outages_recent": 0,
            "history": [],
            "image": "faulty",
            "failing": "blur,occlusion",
        }
        body["items"] = [row, *body["items"]]
        body["total"] += 1
        await route.fulfill(response=response, json=body)

    await s.page.route("**/api/v1/reports/outages?*", with_faulty_row)
    await s.sign_in("admin")
    await s.go("outages")
    row = s.page.locator(f'#outage-table tr[data-id="{cam["id"]}"]')
    await expect(row).to_have_attribute("data-image", "faulty")
    await expect(row.locator('[data-status="online-faulty"]')).to_have_text("在线但画面故障")
    await expect(row).to_contain_text("模糊, 遮挡")
    await expect(s.page.locator("#outage-faulty")).to_have_text("（其中 1 个在线但画面故障）")
    await s.page.unroute_all(behavior="ignoreErrors")


async def test_the_camera_detail_shows_the_evidence_picture(session: Session) -> None:
    s = session
    _, page = await s.gateway.api("admin", "/api/v1/cameras?network=governance&limit=1")
    cam = page["items"][0]["id"]
    asked: list[str] = []

    async def with_verdict(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        await route.fulfill(response=response, json=body | {"image": _image("faulty", "blur")})

    async def evidence(route: Route) -> None:  # what the gateway answers when it holds one
        asked.append(route.request.url)
        picture = np.full((180, 320, 3), 90, np.uint8)
        jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes()
        headers = {"X-Snapshot-Taken-At": "2026-12-01T03:40:00Z", "X-Quality-Verdict": "faulty"}
        await route.fulfill(status=200, body=jpeg, content_type="image/jpeg", headers=headers)

    await s.page.route(f"**/api/v1/cameras/{cam}", with_verdict)
    await s.page.route(f"**/api/v1/cameras/{cam}/quality/evidence*", evidence)
    await s.sign_in("operator")
    await s.go(f"camera/{cam}")
    await s.page.click("#evidence-load")
    await expect(s.page.locator("#evidence-img")).to_have_attribute("data-loaded", "yes")
    await expect(s.page.locator("#evidence-img")).to_be_visible()
    assert asked and f"/api/v1/cameras/{cam}/quality/evidence" in asked[0]
    await s.page.unroute_all(behavior="ignoreErrors")
