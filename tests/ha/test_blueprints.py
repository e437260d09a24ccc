"""The bundled blueprints: each one valid as Home Assistant loads blueprints, importable by
URL, and run by Home Assistant's automation engine against the simulated site."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from custom_components.edge_ems.const import DOMAIN
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint import models
from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import selector
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml
from packaging.version import Version
from pytest_homeassistant_custom_component.common import async_capture_events

from edge_ems.planner.site_plan import SitePlan
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite

from .hub_process import HubProcess, get, planned
from .support import (
    BESS,
    DEYE,
    LIVE,
    SUNSPEC,
    StartSite,
    can_bms,
    eventually,
    ha_device_id,
    setup_battery_site,
    setup_site,
    subentry,
)

pytestmark = pytest.mark.ha

BLUEPRINTS = Path(__file__).parents[2] / "blueprints"
REPOSITORY = "https://github.com/edge-ems/edge-ems/blob/main/"
CHARGE_WHEN_CHEAP = "edge_ems/charge_when_cheap.yaml"
STOP_EXPORT = "edge_ems/stop_export_when_negative.yaml"
EV_SURPLUS = "edge_ems/ev_from_solar_surplus.yaml"
BMS_ALARM = "edge_ems/notify_on_bms_alarm.yaml"
HOLD_PLAN = "edge_ems/hold_plan_while.yaml"
PRICE = "sensor.spot_price"
ALL = sorted((BLUEPRINTS / "automation").rglob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=lambda path: path.name)
def test_a_blueprint_loads_as_home_assistant_loads_it(path: Path) -> None:
    blueprint = models.Blueprint(
        load_yaml(path),
        expected_domain="automation",
        path=str(path.relative_to(BLUEPRINTS)),
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    metadata = blueprint.metadata
    assert metadata["source_url"] == REPOSITORY + str(path.relative_to(BLUEPRINTS.parent))
    assert Version(metadata["homeassistant"]["min_version"]) <= Version(ha_version)
    for name, spec in blueprint.inputs.items():
        assert spec.get("name"), name
        assert spec.get("selector"), name
        if "default" in spec:
            selector.selector(spec["selector"])(spec["default"])  # the selector takes it


def test_every_blueprint_is_tested() -> None:
    tested = {CHARGE_WHEN_CHEAP, STOP_EXPORT, EV_SURPLUS, BMS_ALARM, HOLD_PLAN}
    assert {str(path.relative_to(BLUEPRINTS / "automation")) for path in ALL} == tested


@pytest.fixture(name="config_dir")
async def fixture_config_dir(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[Path]:
    """A configuration folder of the test's own, holding the bundled blueprints.

    The automations are turned off afterwards: their minute timer would outlive the test.
    """
    await hass.async_add_executor_job(shutil.copytree, BLUEPRINTS, tmp_path / "blueprints")
    hass.config.config_dir = str(tmp_path)
    yield tmp_path
    if hass.services.has_service("automation", "turn_off"):
        await hass.services.async_call(
            "automation", "turn_off", {"entity_id": "all"}, blocking=True
        )


async def start_automation(
    hass: HomeAssistant, inputs: dict[str, object], path: str = CHARGE_WHEN_CHEAP
) -> None:
    """The blueprint as an automation, as the UI would save it."""
    automation = {
        "id": "cheap_charge",
        "alias": "Cheap charge",
        "use_blueprint": {"path": path, "input": inputs},
    }
    assert await async_setup_component(hass, "automation", {"automation": automation})
    await hass.async_block_till_done()
    state = hass.states.get("automation.cheap_charge")
    assert state is not None
    assert state.state == "on", state.attributes


async def test_cheap_power_charges_the_site_batteries(
    hass: HomeAssistant, config_dir: Path, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    hass.states.async_set(PRICE, "0.30")
    await start_automation(
        hass,
        {"site": entry.entry_id, "price_sensor": PRICE, "max_price": 0.1, "charge_power_w": 2500},
    )
    hass.states.async_set(PRICE, "0.20")  # a change, but not cheap: nothing happens
    await hass.async_block_till_done()
    assert entry.runtime_data.audit.records() == []

    hass.states.async_set(PRICE, "0.05")
    await hass.async_block_till_done()
    records = entry.runtime_data.audit.records()
    assert {(r["device_id"], r["outcome"], r["applied"], r["ttl"]) for r in records} == {
        (BESS, "applied", -2000, 180),
        (SUNSPEC, "applied", -500, 180),
    }
    assert {r["requested_by"] for r in records} == {"automation:automation.cheap_charge"}
    assert entry.runtime_data.dispatcher.leases().keys() == {BESS, SUNSPEC}


async def test_one_battery_until_it_is_full(
    hass: HomeAssistant, config_dir: Path, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    hass.states.async_set(PRICE, "0.30")
    hass.states.async_set("sensor.bess_soc", "95", {"device_class": "battery"})
    await start_automation(
        hass,
        {
            "site": entry.entry_id,
            "battery": ha_device_id(hass, entry, BESS),
            "price_sensor": PRICE,
            "soc_sensor": ["sensor.bess_soc"],
            "target_soc": 90,
        },
    )
    hass.states.async_set(PRICE, "0.05")  # cheap, but the battery is full enough
    await hass.async_block_till_done()
    assert entry.runtime_data.audit.records() == []

    hass.states.async_set("sensor.bess_soc", "40", {"device_class": "battery"})
    hass.states.async_set(PRICE, "0.04")
    await hass.async_block_till_done()
    (record,) = entry.runtime_data.audit.records()
    assert (record["device_id"], record["outcome"], record["applied"]) == (BESS, "applied", -3000)


def _writes(entry: Any, command: str) -> list[tuple[str, Any]]:
    return [
        (record["outcome"], record["applied"])
        for record in entry.runtime_data.audit.records()
        if record["command"] == command
    ]


@pytest.mark.parametrize(
    ("how", "stopped", "allowed"),
    [("grid_export_enabled", False, True), ("grid_export_limit_w", 0, 8000)],
)
async def test_export_stops_while_the_export_price_is_negative(
    hass: HomeAssistant,
    config_dir: Path,
    sim_site: SimulatedSite,
    how: str,
    stopped: Any,
    allowed: Any,
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    price = "sensor.export_price"
    hass.states.async_set(price, "0.04", {"unit_of_measurement": "EUR/kWh"})
    await start_automation(
        hass,
        {
            "inverter": ha_device_id(hass, entry, DEYE),
            "price_sensor": price,
            "how": how,
            "export_limit_w": 8000,
        },
        STOP_EXPORT,
    )
    hass.states.async_set(price, "-0.02", {"unit_of_measurement": "EUR/kWh"})
    await hass.async_block_till_done()
    assert _writes(entry, how) == [("applied", stopped)]
    hass.states.async_set(price, "-0.03", {"unit_of_measurement": "EUR/kWh"})
    await hass.async_block_till_done()  # still negative: the device already holds it
    assert _writes(entry, how)[1:] == [("unchanged", stopped)]
    hass.states.async_set(price, "0.01", {"unit_of_measurement": "EUR/kWh"})
    await hass.async_block_till_done()
    assert _writes(entry, how)[-1] == ("applied", allowed)


EV_SITE = SiteConfig(sunspec=None, bess=None, mqtt_bms=None, can_bms=False, heat_pump=None)


async def test_the_ev_charges_from_what_would_be_exported(
    hass: HomeAssistant, config_dir: Path, start_site: StartSite
) -> None:
    site = await start_site(EV_SITE)
    ends = site.endpoints
    charger = {
        "point_map": "alfen_eve",
        "transport": "tcp",
        "host": ends.host,
        "port": ends.ev_charger_port,
        "unit_id": ends.ev_charger_unit,
    }
    entry = await setup_site(
        hass, [subentry("modbus", charger, subentry_id="ev", title="EV")], options=LIVE
    )
    grid, ev = "sensor.grid_power", "sensor.ev_power"
    watts = {"unit_of_measurement": "W", "device_class": "power"}
    hass.states.async_set(grid, "-3000", watts)
    hass.states.async_set(ev, "0", watts)
    await start_automation(
        hass,
        {
            "charger": ha_device_id(hass, entry, "ev"),
            "grid_power": grid,
            "ev_power": ev,
            "max_current": 16,
        },
        EV_SURPLUS,
    )
    automation = "automation.cheap_charge"

    async def run() -> list[tuple[str, Any]]:
        await hass.services.async_call(
            "automation", "trigger", {"entity_id": automation}, blocking=True
        )
        await hass.async_block_till_done()
        return _writes(entry, "ev_current_limit_a")

    # 3000 W exported, less the 100 W margin, on one phase at 230 V: 12 A.
    assert (await run())[-1] == ("applied", 12)
    assert site.plant.ev is not None
    await eventually(lambda: site.plant.ev.limit_a == 12)  # type: ignore[union-attr]
    # The car takes 2760 W and the house now imports 500 W: 2160 W of surplus, 9 A.
    hass.states.async_set(ev, "-2760", watts)
    hass.states.async_set(grid, "500", watts)
    assert (await run())[-1] == ("applied", 9)
    # In kW, and far more than the maximum: 16 A.
    hass.states.async_set(grid, "-9", {**watts, "unit_of_measurement": "kW"})
    assert (await run())[-1] == ("applied", 16)
    # Importing with the car off: below the minimum, nothing is offered.
    hass.states.async_set(ev, "0", watts)
    hass.states.async_set(grid, "800", watts)
    assert (await run())[-1] == ("applied", 0)


async def test_a_bms_alarm_is_told(
    hass: HomeAssistant, config_dir: Path, start_site: StartSite
) -> None:
    site = await start_site(SiteConfig(sunspec=None, bess=None, mqtt_bms=None, tick=0.2))
    await setup_site(hass, [subentry("can_bms", can_bms(site), subentry_id="can", title="Rack")])
    alarm = er.async_get(hass).async_get_entity_id("binary_sensor", DOMAIN, "can_bms_alarms")
    assert alarm is not None
    await eventually(lambda: _state(hass, alarm) == "off")
    told = async_capture_events(hass, "battery_alarm_told")
    notify = [
        {
            "event": "battery_alarm_told",
            "event_data": {
                "alarm": "{{ alarm }}",
                "device": "{{ device }}",
                "since": "{{ since }}",
            },
        }
    ]
    await start_automation(hass, {"alarms": [alarm], "notify": notify}, BMS_ALARM)
    site.physics.battery.alarms = 1 << 3  # over-temperature
    await eventually(lambda: _state(hass, alarm) == "on")
    await eventually(lambda: told)
    (event,) = told
    assert event.data["device"] == "Rack"
    assert event.data["alarm"] == hass.states.get(alarm).name  # type: ignore[union-attr]
    assert event.data["since"]


async def test_the_plan_is_held_while_everyone_is_away_or_a_switch_is_on(
    hass: HomeAssistant, config_dir: Path, sim_site: SimulatedSite, planner_hub: HubProcess
) -> None:
    entry = await setup_battery_site(hass, sim_site, options={**LIVE, **planner_hub.options()})
    first = await planned(entry, lambda plan: BESS in plan.battery_power_w)
    ann, bob, guests = "person.ann", "person.bob", "input_boolean.guests"
    hass.states.async_set(ann, "home")
    hass.states.async_set(bob, "not_home")
    hass.states.async_set(guests, "off")
    bess = ha_device_id(hass, entry, BESS)
    await start_automation(
        hass, {"devices": [bess], "people": [ann, bob], "hold_switch": [guests]}, HOLD_PLAN
    )
    dispatcher = entry.runtime_data.dispatcher

    async def held_at_zero() -> bool:
        plan = await planned(entry, lambda plan: plan.document["inputs"]["overrides"] == [BESS])
        # Held at 0 W: the plan says so for now, and the battery is leased at it.
        assert plan.battery_power_w[BESS][0] == 0
        await eventually(lambda: dispatcher.leases().get(BESS, (None,))[0] == 0)
        return True

    async def followed_again() -> SitePlan:
        return await planned(entry, lambda plan: plan.document["inputs"]["overrides"] == [])

    # Someone is home: the plan is followed, nothing held (nor cleared) when others come and go.
    assert first.document["inputs"]["overrides"] == []
    hass.states.async_set(bob, "home")
    hass.states.async_set(bob, "not_home")
    hass.states.async_set(ann, "home", {"latitude": 50.1})  # moved, still home
    await hass.async_block_till_done()
    hass.states.async_set(ann, "not_home")  # everyone away: held
    await held_at_zero()
    hass.states.async_set(ann, "home")
    await followed_again()
    hass.states.async_set(guests, "on")  # the switch holds it, whoever is home
    await held_at_zero()
    hass.states.async_set(guests, "off")
    await followed_again()
    # What the hub's audit records of it: the automation asked for each hold.
    requests = await _plan_requests(planner_hub)
    assert sorted(kind for kind, _ in requests) == ["clear_override"] * 2 + ["override"] * 2
    assert {who for _, who in requests} == {"automation:automation.cheap_charge"}


async def _plan_requests(hub: HubProcess) -> list[tuple[str, str]]:
    """The site's override requests as the hub's audit holds them: kind and who asked."""
    async with aiohttp.ClientSession() as http:
        audit = await get(http, f"{hub.api}/audit", site_id="home", limit="200")
    return [
        (record["message"].split(":")[0].removeprefix("planner "), record["requested_by"])
        for record in audit["records"]
        if record["message"].startswith(("planner override", "planner clear_override"))
    ]


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state
