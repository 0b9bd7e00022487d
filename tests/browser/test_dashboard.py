"""The operations-center dashboard as its users see it (issue 13): sign-in per role, the
summary's numbers against the API's, filters and search, snapshots (an operator's, a viewer's
refusal, the reason prompt of a police camera), the incident view, an admin's registration with
a field error, discovery to 100%, the language switch, and no request to anything but the
gateway. Conditions are awaited with Playwright's waits, never with sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import re
from urllib.parse import quote

from tests.browser.conftest import Gateway, Session, needs_browser

with contextlib.suppress(ImportError):  # conftest.SKIP says why; every test here skips
    from playwright.async_api import Route, expect

pytestmark = needs_browser

NAV = {
    "viewer": ["summary", "cameras", "map", "incident", "outages", "bigscreen"],
    "operator": ["summary", "cameras", "map", "incident", "wall", "outages", "bigscreen"],
    "admin": ["summary", "cameras", "map", "incident", "wall", "outages", "admin", "bigscreen"],
    "auditor": ["audit"],
}


async def nav_of(s: Session) -> list[str]:
    links = s.page.locator("#nav a")
    return [await a.get_attribute("data-view") or "" for a in await links.all()]


async def test_each_role_signs_in_and_sees_only_what_it_may(session: Session) -> None:
    s = session
    await s.page.goto(s.gateway.url + "/")
    await s.page.fill("#token", "cgw_00000000_not-a-token-at-all-xxxxxxxx")
    await s.page.click("#signin button[type=submit]")
    await expect(s.page.locator("#signin-error")).to_contain_text("令牌无效")
    for role, views in NAV.items():
        await s.sign_in(role)
        assert await nav_of(s) == views, role
        token = s.gateway.tokens[role]
        assert token not in s.page.url
        assert await s.page.evaluate("sessionStorage.getItem('camgw.token')") == token
        await s.shot(f"signed-in-{role}")
        await s.page.click("#signout")
        await expect(s.page.locator("#signin")).to_be_visible()
        assert await s.page.evaluate("sessionStorage.getItem('camgw.token')") is None
    assert all(token not in url for url in s.requests for token in s.gateway.tokens.values())


async def test_the_summary_shows_the_apis_numbers(session: Session) -> None:
    s = session
    status, summary = await s.gateway.api("viewer", "/api/v1/summary")
    assert status == 200
    await s.sign_in("viewer")
    await expect(s.page.locator("#totals [data-testid=total-all] .value")).to_have_text(
        str(summary["total"])
    )
    for st in ("online", "offline", "degraded", "unknown"):
        await expect(s.page.locator(f"#totals [data-testid=total-{st}] .value")).to_have_text(
            str(summary["by_status"].get(st, 0))
        )
    table = s.page.locator("#inventory-table")
    for row in summary["inventory"]:
        if not (row["planned"] or row["registered"]):
            continue
        tr = table.locator(f"tr[data-category='{row['category']}']")
        await expect(tr.locator("[data-col=planned]")).to_have_text(f"{row['planned']:,}")
        await expect(tr.locator("[data-col=registered]")).to_have_text(f"{row['registered']:,}")
        online = sum(
            c["count"]
            for c in summary["by_network_category_status"]
            if c["category"] == row["category"] and c["status"] == "online"
        )
        await expect(tr.locator("[data-col=online]")).to_have_text(f"{online:,}")
    total = table.locator("tr[data-category='_total']")
    planned = sum(r["planned"] for r in summary["inventory"] if r["planned"] or r["registered"])
    await expect(total.locator("[data-col=planned]")).to_have_text(f"{planned:,}")
    await expect(s.page.locator("#health-table tr[data-network]")).to_have_count(3)
    await expect(s.page.locator("#conn")).to_have_attribute("data-state", "live")
    await s.shot("summary")


async def test_filters_and_search_match_the_api_and_polls_are_conditional(
    session: Session,
) -> None:
    s = session
    await s.sign_in("viewer")
    await s.go("cameras")
    info = s.page.locator("#list-info")
    _, everything = await s.gateway.api("viewer", "/api/v1/cameras?limit=10000")
    await expect(info).to_have_attribute("data-total", str(everything["total"]))

    _, police = await s.gateway.api("viewer", "/api/v1/cameras?network=police&limit=10000")
    await s.page.select_option("#f-network", "police")
    await expect(info).to_have_attribute("data-total", str(police["total"]))
    rows = s.page.locator("#camera-table tbody tr")
    await expect(rows).to_have_count(police["total"])
    assert {await r.get_attribute("data-id") for r in await rows.all()} == {
        c["id"] for c in police["items"]
    }

    # Pages: 25 a page, each next page by the API's cursor to the last, and back one.
    await s.page.select_option("#f-network", "")
    await s.page.select_option("#f-size", "25")
    ids = [c["id"] for c in everything["items"]]
    pages = -(-len(ids) // 25)
    assert pages >= 2, "the demo's fleet fills more than one page"
    walked: list[str | None] = []
    for n in range(pages):
        if n:
            await s.page.click("#next")
        await expect(rows.first).to_have_attribute("data-id", ids[25 * n])
        await expect(rows).to_have_count(min(25, len(ids) - 25 * n))
        walked += [await r.get_attribute("data-id") for r in await rows.all()]
    assert walked == ids
    await expect(s.page.locator("#next")).to_be_disabled()
    await s.page.click("#prev")
    await expect(rows.first).to_have_attribute("data-id", ids[25 * (pages - 2)])
    await s.page.select_option("#f-size", "50")

    unicom = [c for c in everything["items"] if c["carrier"] == "China Unicom"]
    await s.page.select_option("#f-carrier", "China Unicom")
    await expect(info).to_have_attribute("data-total", str(len(unicom)))
    await s.page.select_option("#f-carrier", "")

    target = everything["items"][3]
    await s.page.fill("#f-q", target["name"])
    _, found = await s.gateway.api(
        "viewer", f"/api/v1/cameras?q={quote(target['name'])}&limit=10000"
    )
    await expect(info).to_have_attribute("data-total", str(found["total"]))
    await expect(s.page.locator(f"#camera-table tr[data-id='{target['id']}']")).to_be_visible()
    await expect(
        s.page.locator(f"#camera-table tr[data-id='{target['id']}'] .badge")
    ).to_have_attribute("data-status", target["status"])
    await s.shot("cameras-search")

    # Asked again (the next poll, or coming back to the view), the same page is sent with
    # If-None-Match and answered 304: nothing changed, no body.
    await s.go("summary")
    await expect(s.page.locator("#inventory-table")).to_be_visible()
    async with s.page.expect_response(
        lambda r: "/api/v1/cameras?" in r.url and r.status == 304
    ) as waited:
        await s.go("cameras")
    response = await waited.value
    assert "if-none-match" in await response.request.all_headers()
    await expect(s.page.locator(f"#camera-table tr[data-id='{target['id']}']")).to_be_visible()


async def test_an_operator_gets_a_snapshot_and_a_viewer_is_refused(session: Session) -> None:
    s = session
    _, gov = await s.gateway.api("viewer", "/api/v1/cameras?network=governance&status=online")
    cam = gov["items"][0]["id"]
    await s.sign_in("operator")
    await s.go(f"camera/{cam}")
    await s.page.click("#snapshot-take")
    img = s.page.locator("#snapshot-img")
    await expect(img).to_be_visible()
    await expect(s.page.locator("#snapshot-img[data-loaded=yes]")).to_be_visible(timeout=20_000)
    assert (await img.get_attribute("src") or "").startswith("blob:")
    await expect(s.page.locator("#camera-meta")).not_to_contain_text("password")
    await s.shot("detail-operator-snapshot")

    await s.page.click("#signout")
    await s.sign_in("viewer")
    await s.go(f"camera/{cam}")
    await expect(s.page.locator("#camera-meta")).to_be_visible()
    await expect(s.page.locator("#snapshot-take")).to_have_count(0)
    status = await s.page.evaluate(
        """async (id) => (await fetch(`/api/v1/cameras/${id}/snapshot`, {headers:
        {Authorization: `Bearer ${sessionStorage.getItem('camgw.token')}`}})).status""",
        cam,
    )
    assert status == 403
    await s.shot("detail-viewer")


async def test_a_police_camera_asks_for_a_reason_first(session: Session) -> None:
    s = session
    _, pol = await s.gateway.api("viewer", "/api/v1/cameras?network=police&status=online")
    cam = pol["items"][0]["id"]
    await s.sign_in("operator")
    await s.go(f"camera/{cam}")
    await s.page.click("#snapshot-take")
    dialog = s.page.locator("#reason-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("公安网")
    await s.shot("detail-reason-prompt")
    await s.page.fill("#reason-input", "INC-2026-0413 manhole")
    await s.page.click("#reason-ok")
    await expect(s.page.locator("#snapshot-img[data-loaded=yes]")).to_be_visible(timeout=20_000)
    await s.page.click("#snapshot-take")  # the reference is kept: no second prompt
    await expect(dialog).to_have_count(0)
    _, trail = await s.gateway.api("auditor", f"/api/v1/audit?camera={cam}")
    shots = [e for e in trail["items"] if e["action"] == "camera.snapshot"]
    assert shots and all(e["extra"]["reason"] == "INC-2026-0413 manhole" for e in shots)
    assert shots[-1]["outcome"] == "ok"


async def test_the_incident_view_lists_the_nearest_cameras_and_takes_them(
    session: Session,
) -> None:
    s = session
    _, all_cams = await s.gateway.api("operator", "/api/v1/cameras?limit=10000")
    here = next(c for c in all_cams["items"] if c["network"] == "governance" and c["location"])
    lat, lon = here["location"]["lat"], here["location"]["lon"]
    _, near = await s.gateway.api(
        "operator", f"/api/v1/cameras?near={lat},{lon}&radius=800&limit=24"
    )
    await s.sign_in("operator")
    await s.go("incident")
    await expect(s.page.locator("#map circle.cam").first).to_be_visible()
    await s.page.fill("#inc-lat", str(lat))
    await s.page.fill("#inc-lon", str(lon))
    await s.page.fill("#inc-radius", "800")
    await s.page.click("#incident-find")
    rows = s.page.locator("#incident-table tbody tr")
    await expect(rows).to_have_count(len(near["items"]))
    assert [await r.get_attribute("data-id") for r in await rows.all()] == [
        c["id"] for c in near["items"]
    ]
    assert await rows.first.get_attribute("data-id") == here["id"]
    await expect(s.page.locator("#incident-marker")).to_have_count(1)
    await s.page.fill("#inc-reason", "INC-2026-0414 broken road")
    await s.page.click("#incident-snap")
    await expect(s.page.locator("#incident-taken")).to_be_visible(timeout=30_000)
    pictures = s.page.locator("#incident-pictures figure[data-status='200'] img")
    assert await pictures.count() >= 1
    await s.shot("incident")


async def test_an_admin_registers_a_camera_and_sees_a_field_error(session: Session) -> None:
    s = session
    await s.sign_in("admin")
    await s.go("admin")
    form = s.page.locator("#camera-form")
    await s.page.select_option("#cf-network", "governance")
    await s.page.fill("#cf-name", "Browser test gate")
    await s.page.select_option("#cf-category", "sharp-eyes")
    await s.page.fill("#cf-address", "127.1.77.77")
    await s.page.fill("#cf-lat", "31.1")
    await s.page.fill("#cf-lon", "121.28")
    await s.page.click("#camera-submit")
    await expect(s.page.locator("#camera-form-result .ok")).to_be_visible()
    text = await s.page.locator("#camera-form-result .ok").inner_text()
    cam_id = re.search(r"governance\.[\w.-]+", text)
    assert cam_id, text
    status, cam = await s.gateway.api("admin", f"/api/v1/cameras/{cam_id[0]}")
    assert status == 200 and cam["name"] == "Browser test gate"

    await s.page.fill("#cf-name", "Bad latitude")
    await s.page.fill("#cf-address", "127.1.77.78")
    await s.page.fill("#cf-lat", "99")
    await s.page.fill("#cf-lon", "121.28")
    await s.page.click("#camera-submit")
    slot = form.locator("[data-error-for='location.lat']")
    await expect(slot).not_to_be_empty()
    await expect(form.locator("label[data-field='location.lat']")).to_have_class(
        re.compile("invalid")
    )
    await s.shot("admin-field-error")

    # A CSV import: the good row is kept, the bad one reported with its line and field.
    csv = (
        "name,network,category,address,lat,lon\n"
        "Imported gate,governance,sharp-eyes,127.1.77.90,31.1,121.28\n"
        "Bad import,governance,sharp-eyes,not-an-address,31.1,121.28\n"
    )
    await s.page.set_input_files(
        "#import-file", files=[{"name": "cams.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    await s.page.click("#import-submit")
    await expect(s.page.locator("#import-summary")).to_have_text("新增 1 个，拒绝 1 个")
    bad = s.page.locator("#import-errors tbody tr")
    await expect(bad).to_have_count(1)
    await expect(bad.locator("td").nth(1)).to_have_text("3")  # the file's line
    await expect(bad.locator("td").nth(2)).to_have_text("address")
    await s.shot("admin-import")

    # Editing the registered camera from its detail: a merge patch of what changed.
    await s.go(f"camera/{cam_id[0]}")
    await s.page.fill("#cf-name", "Browser test gate, renamed")
    await s.page.click("#camera-submit")
    await expect(s.page.locator("#camera-form-result .ok")).to_be_visible()
    _, cam = await s.gateway.api("admin", f"/api/v1/cameras/{cam_id[0]}")
    assert cam["name"] == "Browser test gate, renamed" and cam["lifecycle"] == "in-service"


async def test_discovery_progress_reaches_100(session: Session) -> None:
    s = session
    await s.sign_in("admin")
    await s.go("admin")
    await s.page.select_option("#discover-network", "police")
    await s.page.click("#discover-start")
    await expect(s.page.locator("#discover-percent")).to_have_text("100%", timeout=60_000)
    await expect(s.page.locator("#discover-status")).to_have_attribute("data-state", "done")
    assert await s.page.locator("#discover-progress").get_attribute("value") == "100"
    await s.shot("admin-discovery")


async def test_the_language_switch(session: Session) -> None:
    s = session
    await s.sign_in("viewer")
    nav = s.page.locator("#nav a[data-view=summary]")
    await expect(nav).to_have_text("资源总览")
    assert await s.page.evaluate("document.documentElement.lang") == "zh-CN"
    await s.page.select_option("#lang", "en")
    await expect(nav).to_have_text("Inventory")
    await expect(s.page.locator("#totals [data-testid=total-all] .label")).to_have_text("Total")
    assert await s.page.evaluate("document.documentElement.lang") == "en"
    await s.shot("summary-en")
    await s.page.reload()
    await expect(s.page.locator("#nav a[data-view=summary]")).to_have_text("Inventory")
    await s.page.select_option("#lang", "zh")
    await expect(s.page.locator("#nav a[data-view=summary]")).to_have_text("资源总览")


async def test_every_view_loads_only_from_the_gateway(session: Session) -> None:
    """Each view of each role drawn (and photographed); the session fixture then checks that no
    request went anywhere but the gateway."""
    s = session
    _, cams = await s.gateway.api("viewer", "/api/v1/cameras?network=governance&limit=1")
    cam = cams["items"][0]["id"]
    waits = {
        "summary": "#inventory-table",
        "cameras": "#camera-table",
        "map": "#map circle.cam",
        "incident": "#map circle.cam",
        "wall": "#wall figure[data-loaded]",
        "outages": "#outage-total",
        "admin": "#discover-start",
        "audit": "#audit-table",
        f"camera/{cam}": "#availability-chart",
    }
    for role in ("operator", "admin", "auditor"):
        await s.sign_in(role)
        for view in [*NAV[role], f"camera/{cam}"]:
            if view == "bigscreen" or (role == "auditor" and view.startswith("camera/")):
                continue
            await s.go(view)
            await s.page.locator(waits[view]).first.wait_for(timeout=20_000)
            await s.shot(f"{role}-{view.replace('/', '-')}")
        await s.page.click("#signout")
    assert any(u.endswith("/static/js/app.js") for u in s.requests)


async def test_the_audit_view_and_the_chain(session: Session) -> None:
    s = session
    await s.sign_in("auditor")
    await expect(s.page.locator("#chain-status")).to_have_attribute(
        "data-state", "intact", timeout=20_000
    )
    await expect(s.page.locator("#audit-table tbody tr").first).to_be_visible()
    await s.page.fill("#a-network", "police")
    await s.page.click("#audit-search")
    await expect(s.page.locator("#audit-table tbody tr").first).to_be_visible()
    await s.shot("audit")


async def test_the_outage_report_downloads(session: Session) -> None:
    s = session
    await s.sign_in("viewer")
    await s.go("outages")
    await expect(s.page.locator("#outage-total")).to_be_visible()
    async with s.page.expect_download() as waited:
        await s.page.click("#outage-csv")
    download = await waited.value
    assert download.suggested_filename.endswith(".csv")
    async with s.page.expect_download() as waited:
        await s.page.click("#outage-xlsx")
    assert (await waited.value).suggested_filename.endswith(".xlsx")


async def test_an_unreachable_gateway_is_shown(session: Session) -> None:
    s = session
    await s.sign_in("viewer")
    await expect(s.page.locator("#conn")).to_have_attribute("data-state", "live")
    await s.page.route("**/api/v1/**", lambda route: route.abort())
    await s.go("cameras")
    await expect(s.page.locator("#conn")).to_have_attribute("data-state", "down")
    await expect(s.page.locator("#view .error").first).to_be_visible()
    await s.shot("unreachable")


async def test_the_big_screen_runs_without_interaction(session: Session, gateway: Gateway) -> None:
    s = session
    await s.sign_in("operator")
    await s.go("bigscreen")
    await expect(s.page.locator("#top")).to_be_hidden()
    await expect(s.page.locator("#stage .slide[data-slide='0'] #inventory-table")).to_be_visible()
    await s.shot("bigscreen")


async def test_a_viewer_granted_one_network_sees_only_that_network(session: Session) -> None:
    s = session
    role = "viewer (governance only)"
    _, summary = await s.gateway.api(role, "/api/v1/summary")
    _, everything = await s.gateway.api("viewer", "/api/v1/summary")
    assert 0 < summary["total"] < everything["total"]
    await s.sign_in(role)
    await expect(s.page.locator("#totals [data-testid=total-all] .value")).to_have_text(
        str(summary["total"])
    )
    await expect(s.page.locator("#health-table tr[data-network]")).to_have_count(1)
    await s.go("cameras")
    options = s.page.locator("#f-network option")
    await expect(options).to_have_count(2)  # all, governance
    assert await options.nth(1).get_attribute("value") == "governance"
    await expect(s.page.locator("#list-info")).to_have_attribute(
        "data-total", str(summary["total"])
    )


async def test_stale_data_is_shown_when_answers_stop(session: Session) -> None:
    """The page's clock is Playwright's: a minute passes at once, no test sleeps."""
    s = session
    await s.page.clock.install()
    await s.sign_in("viewer")
    await s.go("cameras")
    await expect(s.page.locator("#camera-table")).to_be_visible()
    await expect(s.page.locator("#conn")).to_have_attribute("data-state", "live")

    release = asyncio.Event()

    async def hang(route: Route) -> None:  # the gateway accepts, and does not answer
        await release.wait()
        await route.abort()

    await s.page.route("**/api/v1/**", hang)
    await s.page.clock.fast_forward("01:30")
    await expect(s.page.locator("#conn")).to_have_attribute("data-state", "stale")
    await expect(s.page.locator("#conn")).to_contain_text("数据可能已过时")
    await s.shot("stale")
    release.set()
