"""The hub's dashboard in a real browser (Debian's chromium, headless) against a real hub
with real agents on the simulated site (``hub_site.py``): every page loads with no console
error and shows the site's live values, they and the charts move without a reload; the
Plan page shows the hub planner's plan for the planned site and says why there is none for
the other; the override form goes through the planner where the hub plans the site (held,
shown on the Plan page, cleared) and straight to the site where it does not, through the
site's guards either way (applied where control is on, refused clearly where it is off),
and the audit page shows them; the same pages under an ingress-like path prefix; axe-core
finds nothing serious. Nothing is fetched from outside the hub. ``EDGE_EMS_SCREENSHOTS=1``
saves every page to ``docs/images/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from scripts.hass_demo.browser import CHROMIUM, Session, chromium, open_session

from .hub_site import API_TOKEN, SECOND_SITE, SITE_ID, LiveHub, live_hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]

REPO = Path(__file__).parents[2]
AXE = REPO / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
LIVE_MS = 60_000
"""The site changes every second and the pages poll every 5 s; a minute on a busy machine."""
HEARTBEAT_MS = 75_000
"""Agents report how polling goes with their heartbeat, every 30 s."""
PLAN_MS = 120_000
"""The hub plans a site once its agent is connected and its readings are in."""
PAGES = ["overview", "devices", "live", "sparklines", "plan", "overrides", "audit", "agents"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("EDGE_EMS_SCREENSHOTS"):
        return REPO / "docs" / "images"
    return tmp_path_factory.mktemp("images")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def browse(browser: Browser, url: str, *, color_scheme: str = "light") -> Session:
    """A page on the hub that notes console warnings too."""
    return await open_session(
        browser, url, color_scheme=color_scheme, console_levels=("error", "warning")
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def direct(browser: Browser, hub: LiveHub) -> AsyncIterator[Session]:
    """The dashboard on the hub's own port, the token handed over in the fragment."""
    seen = await browse(browser, hub.url)
    await seen.page.goto(f"{hub.url}/#token={API_TOKEN}")
    # The token left the address bar at once; the page went to the overview.
    await expect(seen.page).to_have_url(f"{hub.url}/#/overview")
    yield seen
    await seen.context.close()


async def open_page(seen: Session, base: str, name: str) -> Page:
    page = seen.page
    await page.goto(f"{base}#/{name}")
    await expect(page.locator(f"edge-ems-{name} .updated")).to_have_text(
        re.compile(r"^Updated "), timeout=LIVE_MS
    )
    return page


async def choose_site(page: Page, site: str) -> None:
    await page.locator("#site").select_option(site)


async def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page (injected through the devtools
    protocol, which the page's CSP does not govern)."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({ id: v.id, help: v.help,
                               nodes: v.nodes.map((n) => n.html.slice(0, 120)) }));
        }"""
    )
    return found


async def test_overview_shows_the_site_now_and_moves_with_it(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "overview")
    await choose_site(page, SITE_ID)
    for part in ("pv", "home", "grid", "battery"):
        await expect(page.locator(f"[data-part={part}] .value")).to_have_text(
            re.compile(r"^[\d.,]+ k?W$"), timeout=LIVE_MS
        )
    await expect(page.locator("[data-part=soc] .value")).to_have_text(re.compile(r"^\d+ %$"))
    # The flow diagram has every part of the site, the EV charging.
    nodes = page.locator("svg.edge-ems-flow g.node")
    await expect(nodes).to_have_count(6)
    await expect(page.locator("svg.edge-ems-flow g[data-node=ev] .state")).to_have_text("charging")
    # Today's energy once the store has its first minutes.
    await expect(page.locator("table.today [data-part=pv] td")).to_have_text(
        re.compile(r"Wh$"), timeout=LIVE_MS
    )
    # The hub plans the farm: today's cost from its plan once a step is measured.
    await expect(page.locator("table.today [data-part=cost]")).to_contain_text(
        re.compile(r"[\d.,]+ CZK|not measured yet today|no plan yet")
    )
    # The values move with the site, without a reload.
    description = page.locator("svg.edge-ems-flow desc")
    before = await description.text_content()
    await expect(description).not_to_have_text(before or "", timeout=LIVE_MS)
    await page.screenshot(path=str(images / "dashboard-overview.png"))
    assert await axe(page) == []


async def test_devices_show_health_polls_and_their_points(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "devices")
    await choose_site(page, "")
    deye = page.locator("table.devices tr[data-asset=deye]")
    await expect(deye.locator(".health")).to_have_text("answering", timeout=HEARTBEAT_MS)
    await expect(deye.locator(".requests")).to_have_text(
        re.compile(r"^\d+ polls, 0 failed; \d+ requests$")
    )
    await expect(deye.locator(".last-poll")).to_have_text(re.compile(r"\d+ (s|min) ago"))
    # The battery without a protocol counts polls, not requests.
    depot = page.locator("table.devices tr[data-asset=depot-bess] .requests")
    await expect(depot).to_have_text(re.compile(r"^\d+ polls, 0 failed$"), timeout=HEARTBEAT_MS)
    await page.screenshot(path=str(images / "dashboard-devices.png"))
    assert await axe(page) == []
    # Click through to the inverter's points.
    await deye.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(r"#/devices/deye$"))
    soc = page.locator("table.points tr[data-metric=soc_pct] .value")
    await expect(soc).to_have_text(re.compile(r"^\d+(\.\d+)? %$"), timeout=LIVE_MS)
    assert await page.locator("table.points tbody tr").count() > 30
    assert await axe(page) == []


async def test_live_lists_every_measurement_searches_and_refreshes(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "live")
    rows = page.locator("table.live tbody tr")
    await expect(rows.first).to_be_visible()
    every = await rows.count()
    assert every > 100
    await page.locator("#live-search").fill("soc_pct")
    await expect(rows).not_to_have_count(every)
    texts = await page.locator("table.live tbody tr td:nth-child(2)").all_inner_texts()
    assert "soc_pct" in texts
    assert all("soc_pct" in text for text in texts)
    await page.locator("#live-search").fill("")
    await page.locator("#live-device").select_option("meter")
    grid = page.locator("table.live tr[data-metric=grid_power_w] td")
    await expect(grid.nth(3)).to_have_text("W")
    at = page.locator("table.live tr[data-metric=grid_power_w] .at")
    before = await at.text_content()
    await expect(at).not_to_have_text(before or "", timeout=LIVE_MS)
    await page.locator("#live-device").select_option("")
    await page.screenshot(path=str(images / "dashboard-live.png"))
    assert await axe(page) == []


async def test_sparklines_draw_the_last_hour_and_move(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "sparklines")
    deye = page.locator('.spark[data-key="ac_power_w@deye"]')
    await expect(deye.locator("canvas")).to_have_count(1, timeout=LIVE_MS)
    assert await page.locator(".spark canvas").count() >= 8
    # The chart moves: a newer point comes. (Its value may not change: at night, the
    # simulated battery can hold its discharge for minutes.)
    before = await deye.get_attribute("data-at")
    assert before is not None
    await expect(deye).not_to_have_attribute("data-at", before, timeout=LIVE_MS)
    await expect(deye.locator(".now")).to_have_text(re.compile(r"^-?[\d,.]+ k?W$"))
    await page.screenshot(path=str(images / "dashboard-sparklines.png"))
    assert await axe(page) == []


async def test_plan_shows_the_planners_plan_and_no_plan_where_it_plans_nothing(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "plan")
    await choose_site(page, SITE_ID)
    # The hub plans the farm's battery once its agent has connected and its charge is in.
    battery = page.locator('.chart.plan-asset[data-asset="battery-inverter"] canvas')
    await expect(battery).to_have_count(1, timeout=PLAN_MS)
    await expect(page.locator(".plan-made")).to_contain_text(re.compile(r"Plan \d+ made .*optimal"))
    await expect(page.locator(".plan-now")).to_contain_text(
        re.compile(r"Import now\s*[\d.,]+ CZK/kWh")
    )
    await expect(page.locator(".chart.plan-prices canvas")).to_have_count(1)
    await expect(page.locator(".overrides-now")).to_contain_text("None")
    await page.screenshot(path=str(images / "dashboard-plan.png"), full_page=True)
    assert await axe(page) == []
    # The depot is not planned: no plan, and why.
    await choose_site(page, SECOND_SITE)
    await expect(page.locator(".no-plan")).to_have_text("No plan yet")
    await expect(page.locator("edge-ems-plan")).to_contain_text("does not plan this site")
    assert await axe(page) == []


async def test_an_override_is_applied_refused_where_control_is_off_and_audited(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "overrides")
    inverter = hub.site.plant.battery_inverter
    assert inverter is not None
    # The farm is planned: the override goes to the planner, which sends it to the site.
    await choose_site(page, SITE_ID)
    await expect(page.locator(".how")).to_contain_text("The hub plans this site")
    await page.locator("#override-asset").select_option("battery-inverter")
    await page.locator("#override-power").fill("-1500")
    await page.locator("#override-minutes").fill("5")
    await page.get_by_role("button", name="Set").click()
    result = page.locator(".result")
    # "Override set ... waiting for the site's answer", or already the answer on a quick site.
    await expect(result).to_contain_text(re.compile("Override set|Applied"), timeout=LIVE_MS)
    held = page.locator("table.overrides tbody tr")
    await expect(held).to_have_count(1, timeout=LIVE_MS)
    await expect(held.first).to_contain_text("-1500 W")
    # The site's answer, from the audit trail: the planner sent the value, the site took it.
    await expect(result).to_have_text("Applied.", timeout=LIVE_MS)
    assert inverter.setpoint_w == -1500
    recent = page.locator("ul.recent li")
    await expect(recent.filter(has_text="= -1500").first).to_contain_text("applied")
    await page.screenshot(path=str(images / "dashboard-overrides.png"))
    assert await axe(page) == []
    # The Plan page shows the override in force and the plan made around it.
    page = await open_page(direct, hub.url + "/", "plan")
    await expect(page.locator(".overrides-now li")).to_contain_text(
        re.compile(r"battery-inverter: -1500 W until [\d:]+\s+\(by hub dashboard\)")
    )
    await expect(page.locator(".plan-now")).to_contain_text("charging 1.50 kW")
    assert await axe(page) == []
    # Cleared: the planner plans without it and the site follows the plan again.
    page = await open_page(direct, hub.url + "/", "overrides")
    held = page.locator("table.overrides tbody tr")
    await held.first.get_by_role("button", name="Clear").click()
    result = page.locator(".result")
    await expect(result).to_contain_text("Override cleared", timeout=LIVE_MS)
    await expect(held).to_have_count(0, timeout=LIVE_MS)
    await expect(result).to_have_text(
        "Override cleared: the site follows the plan again.", timeout=LIVE_MS
    )
    # The depot is not planned: a setpoint with a time to live, which the site refuses
    # since its control is off, and the page says why.
    await choose_site(page, SECOND_SITE)
    await expect(page.locator(".how")).to_contain_text("does not plan this site")
    await page.locator("#override-asset").select_option("depot-bess")
    await page.locator("#override-power").fill("-1500")
    await page.get_by_role("button", name="Set").click()
    await expect(result).to_contain_text("Refused by the site", timeout=LIVE_MS)
    await expect(result).to_contain_text("control is off")
    await page.get_by_role("button", name="Release").click()
    await expect(result).to_contain_text("Refused by the site", timeout=LIVE_MS)
    # The audit page shows the attempts, and filters by reason and device.
    page = await open_page(direct, hub.url + "/", "audit")
    await choose_site(page, "")
    rows = page.locator("table.audit tbody tr")
    await expect(rows.filter(has_text="hub dashboard").first).to_be_visible(timeout=LIVE_MS)
    await page.locator("#audit-reason").select_option("control_disabled")
    others = page.locator("table.audit tbody tr:not([data-reason=control_disabled])")
    await expect(others).to_have_count(0, timeout=LIVE_MS)
    await expect(rows.first).to_contain_text("depot-bess")
    await expect(rows.first.locator(".outcome")).to_contain_text("control is off")
    await page.locator("#audit-reason").select_option("")
    await page.locator("#audit-device").select_option("battery-inverter")
    await expect(rows.filter(has_text="depot-bess")).to_have_count(0, timeout=LIVE_MS)
    await expect(rows.filter(has_text="-1500").first).to_contain_text("applied")
    await page.locator("#audit-device").select_option("")
    await page.screenshot(path=str(images / "dashboard-audit.png"))
    assert await axe(page) == []


async def test_agents_show_both_sites_and_their_sessions(
    direct: Session, hub: LiveHub, images: Path
) -> None:
    page = await open_page(direct, hub.url + "/", "agents")
    await choose_site(page, "")
    for agent in ("farm-gw", "depot-gw"):
        card = page.locator(f"section.agent[data-agent={agent}]")
        await expect(card.locator(".connection")).to_have_text("connected")
        await expect(card.locator(".last-seen")).to_have_text(re.compile(r"\d+ (s|min) ago"))
        await expect(card.locator("table.sessions tbody tr").first).to_contain_text("open")
    # The site picker narrows every page to one site.
    await choose_site(page, SECOND_SITE)
    await expect(page.locator("section.agent")).to_have_count(1)
    await choose_site(page, "")
    await page.screenshot(path=str(images / "dashboard-agents.png"))
    assert await axe(page) == []


async def test_no_page_had_an_error_or_asked_outside(direct: Session) -> None:
    assert direct.errors == []
    assert direct.outside == []


async def test_every_page_works_under_an_ingress_prefix_without_a_token(
    browser: Browser, hub: LiveHub
) -> None:
    seen = await browse(browser, hub.ingress_url)
    try:
        checks = {
            "overview": "[data-part=pv] .value",
            "devices": "table.devices tr[data-asset=deye]",
            "live": "table.live tr[data-metric=soc_pct]",
            "sparklines": ".spark canvas",
            "plan": ".plan-made",
            "overrides": "#override-asset option",
            "audit": "table.audit tbody tr",
            "agents": "section.agent",
        }
        for name in PAGES:
            page = await open_page(seen, hub.ingress_url, name)
            await expect(page.locator(checks[name]).first).to_be_attached(timeout=LIVE_MS)
            # Every request went under the prefix, none to the hub's root.
            assert page.url.startswith(hub.ingress_url)
        assert await seen.page.locator("section.token").count() == 0
    finally:
        await seen.context.close()
    assert seen.errors == []
    assert seen.outside == []


async def test_without_a_token_the_page_asks_for_one(browser: Browser, hub: LiveHub) -> None:
    seen = await browse(browser, hub.url)
    try:
        page = seen.page
        await page.goto(f"{hub.url}/#/devices")
        form = page.locator("section.token")
        await expect(form).to_be_visible()
        await page.locator("#token").fill("not-the-token-000000")
        await page.get_by_role("button", name="Open").click()
        await expect(form.locator(".error")).to_contain_text("bearer token")
        await page.locator("#token").fill(API_TOKEN)
        await page.get_by_role("button", name="Open").click()
        await expect(page.locator("table.devices tr[data-asset=deye]")).to_be_visible()
        assert API_TOKEN not in await page.content()
    finally:
        await seen.context.close()
    # The hub refused the requests without the token; nothing else went wrong.
    assert all("401" in error for error in seen.errors), seen.errors


async def test_the_dark_theme_follows_the_preference(
    browser: Browser, hub: LiveHub, images: Path
) -> None:
    seen = await browse(browser, hub.url, color_scheme="dark")
    try:
        page = seen.page
        await page.goto(f"{hub.url}/#token={API_TOKEN}")
        await expect(page.locator("[data-part=pv] .value")).to_have_text(
            re.compile(r"W$"), timeout=LIVE_MS
        )
        background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 22, 20)"
        await page.screenshot(path=str(images / "dashboard-overview-dark.png"))
        assert await axe(page) == []
        await open_page(seen, hub.url + "/", "sparklines")
        await expect(page.locator(".spark canvas").first).to_be_attached(timeout=LIVE_MS)
        await page.screenshot(path=str(images / "dashboard-sparklines-dark.png"))
        assert await axe(page) == []
    finally:
        await seen.context.close()
    assert seen.errors == []
