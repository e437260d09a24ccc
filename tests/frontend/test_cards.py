"""Both Lovelace cards in a real Home Assistant with the simulated site, seen through headless
chromium (Debian's) as the demo user sees them: on a dashboard saved through the websocket
API, in the card picker and its editor, in light and dark themes, checked by axe-core. The
site is linked to a hub whose planner plans it offline, as ``make demo`` has it, so the plan
card shows the planner's plan through ``edge_ems.get_plan``.

One Home Assistant serves the whole module. Every request that would leave the machine is
refused and kept; the cards make none. ``EDGE_EMS_SCREENSHOTS=1`` saves the screenshots to
``docs/images/`` (otherwise to a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from scripts.hass_demo.browser import CHROMIUM, Session, chromium, log_in
from scripts.hass_demo.dashboard import add_dashboard
from scripts.hass_demo.hass_api import HomeAssistantApi
from scripts.hass_demo.plan import planner_config, wait_for_plan
from scripts.hass_demo.processes import DOMAIN, LOOPBACK, home_assistant, hub_process
from scripts.hass_demo.site import SITE, configure, live_entities, site_devices, wait_for_site

from edge_ems.cli.hubapi import HubApi
from edge_ems.cli.sim import opcua_cache
from edge_ems.planner.site_plan import SitePlan
from edge_ems.sim.site import SimulatedSite, free_port

pytestmark = [
    pytest.mark.ha,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]

REPO = Path(__file__).parents[2]
AXE = REPO / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
UPDATE_TIMEOUT_MS = 60_000
"""The simulated site changes within seconds; a minute is plenty on a loaded machine."""
HA_OWN_PREVIEWS = "https://demo.home-assistant.io/stub_config/"
"""Home Assistant's card picker previews its picture cards with images from its demo site:
requests of Home Assistant's own that the test refuses; the cards make none."""


@dataclass
class Demo:
    url: str
    dashboard: str
    entry_id: str
    hub_api: HubApi
    cabin_entry_id: str
    """A second site, with no device and linked to no hub."""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``docs/images`` when asked for, else a temporary folder."""
    if os.environ.get("EDGE_EMS_SCREENSHOTS"):
        return REPO / "docs" / "images"
    return tmp_path_factory.mktemp("images")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """Home Assistant with the simulated site added through the flows and linked to a
    planning hub, and a dashboard with both cards, as ``make demo`` sets it up."""
    folder = tmp_path_factory.mktemp("hass")
    site = SimulatedSite(SITE, opcua_cache=opcua_cache())
    timeout = aiohttp.ClientTimeout(total=60)
    api_port, grpc_port = free_port(LOOPBACK), free_port(LOOPBACK)
    async with (
        site,
        aiohttp.ClientSession(timeout=timeout) as session,
        hub_process(folder / "hub", LOOPBACK, api_port, grpc_port, planner_config()) as hub,
        home_assistant(LOOPBACK, free_port(LOOPBACK), folder) as hass,
    ):
        hub_api = HubApi(hub.url, hub.api_token, timeout=60)
        try:
            api = HomeAssistantApi(session, hass.url)
            await api.wait_until_up(hass)
            await api.onboard()
            entry_id = await configure(api, site.endpoints, hub)
            cabin = await api.run_flow(
                "/api/config/config_entries/flow",
                {"handler": DOMAIN},
                {"user": {"site_name": "Cabin", "site_id": "cabin"}},
            )
            await live_entities(api)
            batteries = await wait_for_site(hub_api, hub, len(site_devices(site.endpoints)))
            await wait_for_plan(hub_api, hub, [battery["asset_id"] for battery in batteries])
            dashboard = await add_dashboard(api, entry_id)
            yield Demo(hass.url, dashboard, entry_id, hub_api, cabin["result"]["entry_id"])
        finally:
            await hub_api.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(demo: Demo) -> AsyncIterator[Session]:
    """The demo user, logged in, at 2x for sharp screenshots."""
    async with chromium() as browser:
        yield await log_in(browser, demo.url, scale=2)


def watts(text: str) -> float:
    """A power as the card shows it ("171 W", "1.82 kW") in watts."""
    match = re.fullmatch(r"([\d.,]+) (W|kW)", text.strip())
    assert match, f"not a power: {text!r}"
    return float(match[1].replace(",", "")) * (1000 if match[2] == "kW" else 1)


async def axe(session: Session, selector: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the element (its shadow tree included)."""
    page = session.page
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    element = await page.locator(selector).first.element_handle()
    found: list[dict[str, Any]] = await page.evaluate(
        """async (element) => {
            const result = await axe.run(element, { resultTypes: ["violations"] });
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                               nodes: v.nodes.map((n) => n.html.slice(0, 120)) }));
        }""",
        element,
    )
    return found


FLOW = "edge-ems-flow-card"
READ_FLOW = """(card) => {
    const root = card.shadowRoot;
    const text = (node, part) => root.querySelector(`g[data-node=${node}] .${part}`)?.textContent;
    const hass = card.hass;
    const meter = Object.values(hass.entities).find((e) =>
        e.platform === "edge_ems" && e.translation_key === "grid_power_w"
        && hass.devices[e.device_id]?.name?.startsWith("Eastron"));
    return {
        nodes: [...root.querySelectorAll("g.node")].map((g) => g.dataset.node),
        values: Object.fromEntries(["pv", "battery", "grid", "home", "ev", "heat_pump"]
            .map((node) => [node, text(node, "value")])),
        states: Object.fromEntries(["grid", "battery", "ev"].map((n) => [n, text(n, "state")])),
        flows: Object.fromEntries([...root.querySelectorAll("path.flow")]
            .map((p) => [p.dataset.node, p.classList.contains("to_bus") ? "to_bus" : "from_bus"])),
        desc: root.querySelector("desc").textContent,
        meter: hass.states[meter.entity_id].state,
    };
}"""


async def test_the_flow_card_shows_the_site_live(
    session: Session, demo: Demo, images: Path
) -> None:
    page = session.page
    before = len(session.errors)
    await page.goto(demo.dashboard)
    card = page.locator(FLOW)
    await page.locator(f"{FLOW} g[data-node=home] .value").wait_for(state="attached")
    await card.evaluate("(card) => { window.flowCard = card; }")
    # Every part with a power reading shows one (the site's first reads may still be coming).
    await page.wait_for_function(
        """() => ["pv", "battery", "grid", "home", "ev"].every((node) =>
            window.flowCard.shadowRoot.querySelector(`g[data-node=${node}] .value`))""",
        timeout=UPDATE_TIMEOUT_MS,
    )
    # The home is what the grid and the assets put on the bus, each with its sign (the
    # battery and the grid as their words say, the car charging): read again while a device
    # polled a moment before another makes the sum jump (the planner moves the batteries).
    sign = {"discharging": 1, "charging": -1, "idle": 0, "importing": 1, "exporting": -1}
    deadline = time.monotonic() + UPDATE_TIMEOUT_MS / 1000
    while True:
        read = await card.evaluate(READ_FLOW)
        assert read["nodes"] == ["pv", "battery", "grid", "home", "ev", "heat_pump"]
        # The heat pump reports no electrical power (and says so); every other part has one.
        assert read["values"]["heat_pump"] is None
        assert "Heat pump: no reading" in read["desc"]
        values = {n: watts(text) for n, text in read["values"].items() if n != "heat_pump"}
        # The grid is the meter's reading (not the sum with the inverter's CT).
        meter_agrees = abs(values["grid"] - abs(float(read["meter"]))) <= 5
        battery = sign[read["states"]["battery"]] * values["battery"]
        grid = sign[read["states"]["grid"]] * values["grid"]
        balance = grid + values["pv"] + battery - values["ev"]
        if meter_agrees and abs(values["home"] - balance) <= 30:
            break
        assert time.monotonic() < deadline, read
        await page.wait_for_timeout(1000)
    assert read["states"]["ev"] == "charging"
    # The dashes run the way the power goes: into the bus from PV, out of it to the car.
    assert read["flows"]["pv"] == "to_bus"
    assert read["flows"]["ev"] == "from_bus"
    assert read["flows"]["home"] == "from_bus"
    # The values move with the site, without a reload.
    await page.wait_for_function(
        "(desc) => window.flowCard.shadowRoot.querySelector('desc').textContent !== desc",
        arg=read["desc"],
        timeout=UPDATE_TIMEOUT_MS,
    )
    await card.screenshot(path=str(images / "flow-card.png"))
    assert await axe(session, FLOW) == []
    assert session.errors[before:] == []
    assert session.outside == [], "the dashboard asked for something outside Home Assistant"


PLAN = "edge-ems-plan-card"


# A plan card of its own beside the dashboard's, for another site: Home Assistant's theme,
# fonts and ha-card all apply.
SHOW_PLAN_CARD = """(entry) => {
    document.getElementById("plan-box")?.remove();
    const box = document.createElement("div");
    box.id = "plan-box";
    box.style.cssText = "position: fixed; z-index: 10; top: 60px; left: 300px; width: 560px;"
        + "padding: 16px; background: var(--primary-background-color)";
    const card = document.createElement("edge-ems-plan-card");
    card.setConfig({ type: "custom:edge-ems-plan-card", config_entry: entry, title: "Plan" });
    card.hass = document.querySelector("home-assistant").hass;
    box.appendChild(card);
    document.body.appendChild(box);
}"""


async def test_the_plan_card_says_why_there_is_no_plan(session: Session, demo: Demo) -> None:
    # The cabin is linked to no hub, and only the hub plans: the card says so with the
    # action's own (translated) error. "No plan yet", for a linked site the hub has not
    # planned yet, is the model's (frontend/test).
    page = session.page
    before = len(session.errors)
    if not page.url.startswith(demo.dashboard):
        await page.goto(demo.dashboard)
    await page.locator(PLAN).first.wait_for(state="attached")
    await page.evaluate(SHOW_PLAN_CARD, demo.cabin_entry_id)
    message = page.locator(f"#plan-box {PLAN} .message.error")
    await message.wait_for()
    assert "not linked to a hub" in (await message.text_content() or "")
    assert await axe(session, f"#plan-box {PLAN}") == []
    await page.evaluate("() => document.getElementById('plan-box').remove()")
    assert session.errors[before:] == []


async def test_the_plan_card_draws_the_planners_plan(
    session: Session, demo: Demo, images: Path
) -> None:
    page = session.page
    before = len(session.errors)
    await page.goto(demo.dashboard)
    card = page.locator(PLAN)
    await card.locator(".chart.power canvas").wait_for()
    shown = await card.locator(".now").inner_text()
    # The current quarter-hour's import price, as the hub's planner has it (or the next
    # quarter's, should one begin between the two reads).
    plan = SitePlan.parse(await demo.hub_api.get("/plan", {"site_id": "demo_home"}))
    now = dt.datetime.now(dt.UTC)
    prices = {
        f"{price:.3f} {plan.currency}/kWh"
        for moment in (now, now + dt.timedelta(minutes=1))
        if (price := plan.import_price_at(moment)) is not None
    }
    assert any(price in shown for price in prices), (shown, prices)
    assert "Battery now" in shown
    assert await card.locator("canvas").count() == 2
    await card.screenshot(path=str(images / "plan-card.png"))
    assert await axe(session, PLAN) == []
    assert session.errors[before:] == []


async def test_dark_theme(demo: Demo, images: Path) -> None:
    """Home Assistant follows the browser's dark preference; the cards follow its theme."""
    async with chromium() as browser:
        dark = await log_in(browser, demo.url, scale=2, color_scheme="dark")
        page = dark.page
        await page.goto(demo.dashboard)
        card = page.locator(FLOW)
        await page.locator(f"{FLOW} g[data-node=home] .value").wait_for(state="attached")
        background = await card.evaluate(
            "(card) => getComputedStyle(card.shadowRoot.querySelector('ha-card')).backgroundColor"
        )
        channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
        assert max(channels) < 80, f"a dark card, not {background}"
        await page.wait_for_timeout(1000)
        await card.screenshot(path=str(images / "flow-card-dark.png"))
        plan = page.locator(PLAN)
        await plan.locator(".chart.power canvas").wait_for()
        await plan.screenshot(path=str(images / "plan-card-dark.png"))
        assert await axe(dark, FLOW) == []
        assert dark.errors == []
        assert dark.outside == []


async def test_the_card_picker_lists_both_cards_and_the_editor_opens(
    session: Session, demo: Demo
) -> None:
    page = session.page
    before = len(session.errors)
    await page.goto(f"{demo.dashboard}?edit=1")
    await page.get_by_text("Add card").click()
    await page.get_by_text("By card").click()
    await page.get_by_placeholder("Search cards").fill("Edge EMS")
    picker = page.locator("hui-card-picker .card")
    flow = picker.filter(has_text="Edge EMS power flow")
    plan = picker.filter(has_text="Edge EMS plan")
    # Each is listed with a live preview made from its stub configuration.
    await flow.locator(f"{FLOW} g[data-node=grid]").wait_for(state="attached")
    await plan.locator(PLAN).wait_for(state="attached")
    await flow.locator(".overlay").click()
    # The visual editor: Home Assistant's form from the card's getConfigForm, the site
    # already chosen, the card previewed beside it.
    dialog = page.locator("hui-dialog-edit-card")
    await dialog.get_by_text("Entities (instead of what the card finds)").wait_for()
    site = dialog.locator("ha-selector-config_entry")
    await site.get_by_text("Demo home").wait_for()
    await dialog.locator(f"{FLOW} g[data-node=grid]").wait_for(state="attached")
    await dialog.get_by_role("button", name="Cancel").click()
    # Home Assistant's own picture-card previews ask its demo site for images; nothing else
    # leaves the machine and nothing else fails.
    assert all(url.startswith(HA_OWN_PREVIEWS) for url in session.outside), session.outside
    errors = [e for e in session.errors[before:] if HA_OWN_PREVIEWS not in e]
    assert errors == []
