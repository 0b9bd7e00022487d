"""The picture verdict of the quality diagnosis in the camera detail view (docs/quality.md):
the record's `image` as a round leaves it, shown as a badge with the failing checks, in both
languages. Rounds run once an interval (an hour as shipped), so the record the page reads is
given its verdict on the way (the rest of the record is the demo gateway's own answer)."""

from __future__ import annotations

import contextlib
from typing import Any

from tests.browser.conftest import Session, needs_browser

with contextlib.suppress(ImportError):  # conftest.SKIP says why; every test here skips
    from playwright.async_api import Route, expect

pytestmark = needs_browser

IMAGE: dict[str, Any] = {
    "status": "faulty",
    "failing": [{"check": "blur", "level": "faulty", "measures": {"sharpness": 0.21}}],
    "since": "2026-12-01T03:40:00Z",
    "night": False,
    "failing_rounds": 2,
    "reference": True,
}


async def test_the_camera_detail_shows_the_picture_verdict(session: Session) -> None:
    s = session
    _, page = await s.gateway.api("admin", "/api/v1/cameras?network=governance&limit=1")
    cam = page["items"][0]["id"]

    async def with_verdict(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        await route.fulfill(response=response, json=body | {"image": IMAGE})

    await s.page.route(f"**/api/v1/cameras/{cam}", with_verdict)
    await s.sign_in("admin")
    await s.go(f"camera/{cam}")
    verdict = s.page.locator("#image-quality")
    await expect(verdict).to_have_attribute("data-image", "faulty")
    await expect(verdict).to_contain_text("故障")
    await expect(verdict).to_contain_text("模糊")
    await s.page.select_option("#lang", "en")
    await expect(s.page.locator("#image-quality")).to_contain_text("faulty blurred")
    await s.shot("detail-image-quality")
    await s.page.select_option("#lang", "zh")
    # the view keeps polling the record: the verdict is no longer added once the test is over
    await s.page.unroute_all(behavior="ignoreErrors")
