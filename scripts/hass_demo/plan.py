"""The demo's planner: the hub plans the simulated site offline (a recorded day of spot prices
and a recorded PV forecast, both replayed onto today and tomorrow), Home Assistant shows the
plan and the site carries it out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from edge_ems.cli.hubapi import HubApi
from edge_ems.planner.site_plan import SitePlan

from .hass_api import LOADED_TIMEOUT, HomeAssistantApi
from .processes import DOMAIN, DemoError, HubProcess
from .site import SITE_ID, until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "planner"


def planner_config() -> dict[str, Any]:
    """The hub's ``planner`` section: every battery the site registers, planned on recorded
    prices (EUR, like the demo's Home Assistant) with an example flat network tariff."""
    return {
        "time_zone": "Europe/Berlin",
        "replan_after_connect_s": 10,  # the site's first readings reach the store by then
        "prices": {
            "source": "file",
            "path": str(EXAMPLES / "prices-cz.json"),
            "area": "CZ",
            "market_time_zone": "Europe/Prague",
            "replay": True,
        },
        "tariff": str(EXAMPLES / "tariff-flat.yaml"),
        "pv_forecast": {"source": "file", "path": str(EXAMPLES / "pv-june.json"), "replay": True},
        "sites": [{"site_id": SITE_ID, "batteries": "all", "baseline": {"fallback_w": 400}}],
    }


async def wait_for_plan(api: HubApi, hub: HubProcess, batteries: Collection[str]) -> SitePlan:
    """Until the hub has planned the site with its ``batteries`` (plans made before the site
    connected have none); that plan."""

    async def published() -> SitePlan | None:  # a 404 before the first, which until() waits out
        plan = SitePlan.parse(await api.get("/plan", {"site_id": SITE_ID}))
        return plan if set(batteries) <= set(plan.battery_power_w) else None

    return await until(hub, published, "plan the site's batteries", LOADED_TIMEOUT)


def plan_lines(plan: SitePlan, hub: HubProcess, names: Mapping[str, str]) -> str:
    """What the planner decided, in a few lines."""
    first = plan.time(0)
    batteries = [
        f"  {names.get(asset, asset)}: {power[0]:+.0f} W now (+ discharges, - charges)"
        for asset, power in sorted(plan.battery_power_w.items())
    ]
    return "\n".join([
        f"the hub's planner ({plan.status}): {plan.n_steps} steps of "
        f"{plan.step.total_seconds() / 60:.0f} min from {first:%H:%M} UTC, version {plan.version}",
        f"  prices now: spot {plan.spot_price_at(first) or 0:.3f}, import "
        f"{plan.import_price[0]:.3f}, export {plan.export_price[0]:.3f} {plan.currency}/kWh",
        *batteries,
        f"  the whole plan: curl -s -H 'Authorization: Bearer {hub.api_token}' "
        f"'{hub.url}/plan?site_id={SITE_ID}'",
    ])  # fmt: skip


async def check_plan_in_home_assistant(api: HomeAssistantApi, plan: SitePlan) -> str:
    """Home Assistant's plan status sensor shows the hub's plan (it comes over the site's
    link to the hub, a moment after the hub made it)."""
    registry = await api.websocket({"type": "config/entity_registry/list"})
    found = [
        row["entity_id"]
        for row in registry
        if row["platform"] == DOMAIN and row["unique_id"].endswith("_plan_status")
    ]
    if len(found) != 1:
        raise DemoError(f"expected one plan status sensor, found {found}")
    deadline = time.monotonic() + LOADED_TIMEOUT
    while (state := (await api.request("GET", f"/api/states/{found[0]}"))["state"]) != plan.status:
        if time.monotonic() > deadline:
            raise DemoError(f"{found[0]} is {state!r}, the hub's plan is {plan.status!r}")
        await asyncio.sleep(1.0)
    return f"the plan in Home Assistant: {found[0]} = {state}"
