"""The plan end to end: the hub's planner (its own process, planning offline on recorded
prices) plans the site Home Assistant links to it; the plan's sensors, the planner's
actions, the setpoints reaching the simulated batteries, and what Home Assistant hands the
planner (a price entity of another integration, the Energy dashboard's solar forecast)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from custom_components.edge_ems.const import DOMAIN
from custom_components.edge_ems.sensor import PLAN_SENSORS, PLAN_STATUSES
from homeassistant.components.energy.data import async_get_manager
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_integration,
    mock_platform,
)

from edge_ems.metrics import BATTERY_POWER
from edge_ems.sim.site import SimulatedSite

from .hub_process import PATIENCE, HubProcess, hub_process, planned
from .support import BESS, DEYE, LIVE, call, ha_device_id, setup_battery_site


async def act(hass: HomeAssistant, service: str, **data: Any) -> None:
    """Call one of the planner's actions, which answer nothing."""
    await hass.services.async_call(DOMAIN, service, data, blocking=True)


def plan_entities(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, str]:
    """The plan sensors' entity ids by key."""
    registry = er.async_get(hass)
    found = {}
    for description in PLAN_SENSORS:
        entity_id = registry.async_get_entity_id(
            "sensor", DOMAIN, f"{entry.entry_id}_{description.key}"
        )
        assert entity_id is not None, description.key
        found[description.key] = entity_id
    return found


async def test_the_hubs_plan_shows_and_drives_the_batteries(
    hass: HomeAssistant, sim_site: SimulatedSite, planner_hub: HubProcess
) -> None:
    entry = await setup_battery_site(hass, sim_site, options={**LIVE, **planner_hub.options()})
    plan = await planned(entry, lambda plan: BESS in plan.battery_power_w)
    assert plan.site_id == "home"
    assert plan.currency == "EUR"
    assert set(plan.battery_power_w) <= {BESS, "sunspec"}
    assert BESS in plan.battery_power_w
    await hass.async_block_till_done()
    states = {key: hass.states.get(entity) for key, entity in plan_entities(hass, entry).items()}
    assert all(state is not None for state in states.values())
    status = states["plan_status"]
    assert status is not None
    assert status.state in PLAN_STATUSES
    assert status.attributes["version"] == plan.version
    now = dt_util.utcnow()
    price = states["plan_import_price"]
    assert price is not None
    assert float(price.state) == pytest.approx(plan.import_price_at(now), abs=1e-4)
    assert price.attributes["unit_of_measurement"] == "EUR/kWh"
    assert float(states["plan_spot_price"].state) == pytest.approx(  # type: ignore[union-attr]
        plan.spot_price_at(now), abs=1e-4
    )
    power = states["plan_battery_power"]
    assert power is not None
    assert float(power.state) == pytest.approx(plan.battery_power_at(now), abs=0.1)
    assert set(power.attributes) >= {BESS}
    window = states["plan_next_cheap_window"]
    assert window is not None
    assert dt_util.parse_datetime(window.state) is not None
    cost = states["plan_cost_today"]
    assert cost is not None
    assert cost.attributes["unit_of_measurement"] == "EUR"
    assert float(cost.state) == pytest.approx(plan.cost_on(dt_util.now().date(), now), abs=0.01)
    # The whole plan, as the plan card and automations take it.
    document = await call(hass, "get_plan", config_entry_id=entry.entry_id)
    assert document["schema"] == "edge-ems-site-plan/1"
    assert document["version"] >= plan.version
    assert len(document["prices"]["import"]) == document["plan"]["n_steps"]
    # The plan's setpoint reaches the battery through the site's guards, as a lease.
    dispatcher = entry.runtime_data.dispatcher
    async with asyncio.timeout(PATIENCE):
        while BESS not in dispatcher.leases():  # noqa: ASYNC110 - the hub sends it
            await asyncio.sleep(0.2)
    planned_by_hub = [
        r for r in entry.runtime_data.audit.records() if r["requested_by"] == "planner"
    ]
    assert planned_by_hub
    assert {r["command"] for r in planned_by_hub} <= {BATTERY_POWER}


async def test_replan_override_and_clear(
    hass: HomeAssistant, sim_site: SimulatedSite, planner_hub: HubProcess
) -> None:
    entry = await setup_battery_site(hass, sim_site, options={**LIVE, **planner_hub.options()})
    first = await planned(entry)
    await act(hass, "replan", config_entry_id=entry.entry_id, reason="guests tonight")
    again = await planned(entry, lambda plan: plan.version > first.version)
    assert again.document["inputs"]["reason"]
    bess = ha_device_id(hass, entry, BESS)
    await act(hass, "override", device_id=bess, value=-1500, duration={"minutes": 45})
    held = await planned(entry, lambda plan: plan.document["inputs"]["overrides"])
    assert held.document["inputs"]["overrides"] == [BESS]
    dispatcher = entry.runtime_data.dispatcher
    async with asyncio.timeout(PATIENCE):
        while dispatcher.leases().get(BESS, (None,))[0] != -1500:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    await act(hass, "clear_override", device_id=bess)
    await planned(entry, lambda plan: not plan.document["inputs"]["overrides"])
    # The planner says why it will not hold a device that takes no battery power.
    with pytest.raises(HomeAssistantError) as refused:
        await act(hass, "override", device_id=ha_device_id(hass, entry, DEYE), value=100,
                   duration={"minutes": 5})  # fmt: skip
    assert refused.value.translation_key == "planner_refused"
    # A window that is over, or too long, is refused before it is sent.
    for window in ({"end": dt_util.utcnow() - timedelta(minutes=1)}, {"duration": {"days": 8}}):
        with pytest.raises(ServiceValidationError) as invalid:
            await act(hass, "override", device_id=bess, value=0, **window)
        assert invalid.value.translation_key == "override_window"


async def test_a_site_without_a_hub_has_no_planner(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    assert entry.runtime_data.plan is None
    for action, data in (
        ("get_plan", {}),
        ("replan", {}),
        ("clear_override", {}),
        ("override", {"device_id": ha_device_id(hass, entry, BESS), "value": 0,
                      "duration": {"minutes": 5}}),
    ):  # fmt: skip
        call_it = call if action == "get_plan" else act
        with pytest.raises(ServiceValidationError) as refused:
            await call_it(hass, action, config_entry_id=entry.entry_id, **data)
        assert refused.value.translation_key == "no_planner", action


async def test_a_linked_site_waits_for_its_first_plan(
    hass: HomeAssistant, sim_site: SimulatedSite, tmp_path: Path
) -> None:
    async with hub_process(tmp_path) as idle:  # configured, never started
        entry = await setup_battery_site(hass, sim_site, options={**LIVE, **idle.options()})
        answer = await call(hass, "get_plan", config_entry_id=entry.entry_id)
        assert answer == {"site_id": "home", "version": None, "plan": None}
        status = plan_entities(hass, entry)["plan_status"]
        assert hass.states.get(status).state == "unavailable"  # type: ignore[union-attr]
        with pytest.raises(HomeAssistantError) as refused:
            await act(hass, "replan", config_entry_id=entry.entry_id)
        assert refused.value.translation_key == "planner_refused"


class SolarForecast(MockPlatform):
    """The energy platform of a solar forecast provider (Forecast.Solar's shape)."""

    def __init__(self, wh_hours: dict[str, float]) -> None:
        super().__init__()
        self._wh_hours = wh_hours

    async def async_get_solar_forecast(
        self, hass: HomeAssistant, config_entry_id: str
    ) -> dict[str, dict[str, float]]:
        return {"wh_hours": self._wh_hours}


async def test_home_assistants_prices_and_solar_forecast_are_planned_with(
    hass: HomeAssistant,
    sim_site: SimulatedSite,
    planner_hub: HubProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Another integration's price sensor: today's and tomorrow's spot prices, per MWh.
    start = dt_util.utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    quarter = timedelta(minutes=15)
    raw = [
        {"start": (start + n * quarter).isoformat(), "end": (start + (n + 1) * quarter).isoformat(),
         "value": 40.0 + (n % 8) * 10}
        for n in range(4 * 36)
    ]  # fmt: skip
    hass.states.async_set("sensor.spot", "40", {"unit_of_measurement": "EUR/MWh", "raw_today": raw})
    # A solar forecast provider the Energy dashboard draws.
    mock_integration(hass, MockModule("sunny"))
    hours = {(start + timedelta(hours=n)).isoformat(): 1000.0 for n in range(36)}
    mock_platform(hass, "sunny.energy", SolarForecast(hours))
    hass.config.components.add("sunny")  # loaded, as its config entry would have it
    provider = MockConfigEntry(domain="sunny", title="Sunny")
    provider.add_to_hass(hass)
    manager = await async_get_manager(hass)
    await manager.async_update(
        {
            "energy_sources": [
                {
                    "type": "solar",
                    "stat_energy_from": "sensor.pv_energy",
                    "config_entry_solar_forecast": [provider.entry_id],
                }
            ]
        }
    )
    options = {**LIVE, **planner_hub.options(), "price_entity": "sensor.spot", "price_kind": "spot",
               "solar_forecast": True}  # fmt: skip
    entry = await setup_battery_site(hass, sim_site, options=options)
    plan = await planned(
        entry,
        lambda plan: plan.document["inputs"]["sources"].get("spot_price") == "sensor.spot"
        and plan.document["inputs"]["sources"].get("pv_forecast") == "energy:sunny",
    )
    now = dt_util.utcnow()
    step = (now - start) // quarter
    assert plan.spot_price_at(now) == pytest.approx(raw[step]["value"] / 1000)
    assert plan.document["plan"]["pv_w"][0] == pytest.approx(1000.0, rel=0.01)
    # A price list that stops mid-day is refused here, and the planner keeps the last good one.
    broken = raw[:4] + raw[8:]
    hass.states.async_set(
        "sensor.spot", "41", {"unit_of_measurement": "EUR/MWh", "raw_today": broken}
    )
    await hass.async_block_till_done()
    assert "the prices of sensor.spot are not usable" in caplog.text
    await act(hass, "replan", config_entry_id=entry.entry_id)
    replanned = await planned(entry, lambda again: again.version > plan.version)
    assert replanned.document["inputs"]["sources"]["spot_price"] == "sensor.spot"
    assert replanned.spot_price_at(now) == pytest.approx(raw[step]["value"] / 1000)
