"""The Lovelace cards' cost in a real Home Assistant page: bundle size, render and update
times, and the dashboard's time to its first live values.

Run: ``scripts/in-env python bench/cards.py``. The stack is the HA demo's
(``scripts/hass_demo``): the simulated site in this process, ``hass`` in a child process set
up through its own flows, a dashboard with both cards, headless chromium (Debian's) logged in
as the demo user. Measured in the page with ``performance.now()``:

- the flow card's first render (created, configured, given ``hass``, drawn, styled and laid
  out; painting is the browser's) and its update when one of its entities changes (a new
  ``hass`` with that state replaced, as the frontend hands one over on every state change),
  ``RUNS`` each after ``WARM_UP``;
- the plan card's first render with the planner's 192-step plan (the action's answer given
  through ``hass``, so every run draws the same plan, with no hub to wait for), both charts
  drawn;
- the dashboard's load, from navigation to the flow card showing every part's value.

Reported: medians in milliseconds, the bundle's bytes raw and gzipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.hass_demo.browser import chromium, log_in
from scripts.hass_demo.dashboard import add_dashboard
from scripts.hass_demo.hass_api import HomeAssistantApi
from scripts.hass_demo.processes import home_assistant
from scripts.hass_demo.site import SITE, configure, live_entities
from tests.frontend.plan_response import get_plan_response

from _common import emit, median, progress
from edge_ems.cli.sim import SERVER_LOGGERS, opcua_cache, quiet_libraries
from edge_ems.sim.site import SimulatedSite, free_port

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "custom_components" / "edge_ems" / "frontend" / "edge-ems-cards.js"
RUNS = 50
WARM_UP = 5

TIMINGS = """async ([entry, response, runs, warmUp]) => {
    const real = document.querySelector("home-assistant").hass;
    const make = (tag, config, hass) => {
        const card = document.createElement(tag);
        card.setConfig({ type: `custom:${tag}`, config_entry: entry, ...config });
        card.hass = hass;
        return card;
    };
    const box = document.createElement("div");
    box.style.cssText = "position: fixed; top: 0; left: 300px; width: 560px";
    document.body.appendChild(box);
    const timed = async (body) => {
        const times = [];
        for (let i = 0; i < runs + warmUp; i += 1) {
            const started = performance.now();
            await body(i);
            if (i >= warmUp) times.push(performance.now() - started);
        }
        return times;
    };
    const first = await timed(async () => {
        const card = make("edge-ems-flow-card", {}, real);
        box.appendChild(card);
        await card.updateComplete;
        void card.shadowRoot.querySelector("svg").getBoundingClientRect();  // style and layout
        card.remove();
    });
    const card = make("edge-ems-flow-card", {}, real);
    box.appendChild(card);
    await card.updateComplete;
    const meter = Object.values(real.entities).find((e) =>
        e.platform === "edge_ems" && e.translation_key === "grid_power_w"
        && real.devices[e.device_id]?.name?.startsWith("Eastron")).entity_id;
    const update = await timed(async (i) => {
        const old = real.states[meter];
        const states = { ...real.states, [meter]: { ...old, state: String(100 + i) } };
        card.hass = { ...real, states };
        await card.updateComplete;
        void card.shadowRoot.querySelector("svg").getBoundingClientRect();
    });
    card.remove();
    const planned = { ...real, services: { ...real.services, edge_ems: { get_plan: {} } },
        callService: async () => ({ context: {}, response }) };
    const plan = await timed(async () => {
        const card = make("edge-ems-plan-card", {}, planned);
        box.appendChild(card);
        while (card.shadowRoot?.querySelectorAll("canvas").length !== 2) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            await card.updateComplete;
        }
        card.remove();
    });
    box.remove();
    return { first, update, plan };
}"""


async def run(folder: Path) -> dict[str, float]:
    site = SimulatedSite(SITE, opcua_cache=opcua_cache())
    async with (
        site,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        home_assistant("127.0.0.1", free_port(), folder / "ha") as hass,
    ):
        api = HomeAssistantApi(session, hass.url)
        progress("starting Home Assistant and setting up the site through its flows")
        await api.wait_until_up(hass)
        await api.onboard()
        entry_id = await configure(api, site.endpoints)
        await live_entities(api)
        dashboard = await add_dashboard(api, entry_id)
        now = dt.datetime.now(dt.UTC)
        start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        response = await asyncio.to_thread(get_plan_response, start)
        async with chromium() as browser:
            progress("logging in with headless chromium")
            page = (await log_in(browser, hass.url)).page
            started = time.perf_counter()
            await page.goto(dashboard)
            card = page.locator("edge-ems-flow-card")
            await card.wait_for(state="attached", timeout=120_000)
            await page.wait_for_function(
                """(card) => ["pv", "battery", "grid", "home", "ev"].every((node) =>
                    card.shadowRoot?.querySelector(`g[data-node=${node}] .value`))""",
                arg=await card.element_handle(),
                timeout=120_000,
            )
            loaded = (time.perf_counter() - started) * 1000.0
            progress("timing the cards in the page")
            times = await page.evaluate(TIMINGS, [entry_id, response, RUNS, WARM_UP])
    raw = BUNDLE.read_bytes()
    result = {
        "bundle_bytes": len(raw),
        "bundle_gzip_bytes": len(gzip.compress(raw, 9)),
        "flow_first_render_median_ms": round(median(times["first"]), 2),
        "flow_update_median_ms": round(median(times["update"]), 2),
        "plan_first_render_median_ms": round(median(times["plan"]), 2),
        "dashboard_to_values_ms": round(loaded, 0),
    }
    for name, value in result.items():
        progress(f"{name}: {value}")
    return result


def main() -> None:
    quiet_libraries(SERVER_LOGGERS)
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as folder:
        result = asyncio.run(run(Path(folder)))
    emit({"benchmark": "cards", "runs": RUNS, **result})


if __name__ == "__main__":
    main()
