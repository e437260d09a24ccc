"""Entities of another integration as an Edge EMS device: read as metrics, written through the
site's guarded dispatch with read-back, leases lapsing to the safe state, failures audited.

The "other integration" is a test platform of real number, switch, select, climate and water
heater entities (see ``actuators.py``), driven through Home Assistant's own services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from custom_components.edge_ems import actuator
from custom_components.edge_ems.const import DOMAIN, EVENT_AUDIT
from custom_components.edge_ems.diagnostics import async_get_config_entry_diagnostics
from custom_components.edge_ems.models import EdgeEmsConfigEntry
from custom_components.edge_ems.services import ATTR_RECORDS
from homeassistant.components.climate import HVACMode
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from edge_ems.device import DeviceIdentity
from edge_ems.exceptions import (
    DeviceConnectionError,
    DeviceProtocolError,
    DeviceTimeoutError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from edge_ems.modbus import LinkRegistry
from edge_ems.planner.execute import PlanExecutor
from edge_ems.planner.problem import ChargeMode, Ev
from edge_ems.planner.solver import solve
from edge_ems.site import BuildContext, Catalog, DeviceSpec
from tests.lib.planner.support import problem

from .actuators import Boiler, Chooser, Knob, Relay, Thermostat, add_entities
from .support import LIVE, call, eventually, ha_device_id, setup_site, subentry

WALLBOX = "wallbox"
HEAT_PUMP = "heat_pump"
BOILER = "boiler"

WALLBOX_DATA: dict[str, Any] = {
    "actuator_kind": "ev_charger",
    "commands": {
        "ev_charging_enabled": {"entity_id": "switch.wallbox_charging", "safe_value": 1},
        "ev_current_limit_a": {
            "entity_id": "number.wallbox_current", "minimum": 6, "maximum": 16, "safe_value": 6,
        },
        "ev_phases": {"entity_id": "select.wallbox_phases"},
    },
}  # fmt: skip
HEAT_PUMP_DATA: dict[str, Any] = {
    "actuator_kind": "heat_pump",
    "commands": {
        "heat_pump_sg_ready": {"entity_id": "select.heat_pump_sg_ready", "safe_value": "normal"},
        "heat_pump_power_limit_w": {
            "entity_id": "number.heat_pump_limit", "minimum": 0, "maximum": 5000,
        },
        "heat_pump_mode": {"entity_id": "climate.heat_pump"},
        "room_temperature_setpoint_c": {
            "entity_id": "climate.heat_pump", "minimum": 18, "maximum": 23, "safe_value": 20,
        },
    },
}  # fmt: skip
BOILER_DATA: dict[str, Any] = {
    "actuator_kind": "water_heater",
    "commands": {
        "dhw_enabled": {"entity_id": "switch.boiler_heater", "safe_value": 0},
        "dhw_mode": {"entity_id": "water_heater.boiler"},
        "dhw_temperature_setpoint_c": {
            "entity_id": "water_heater.boiler",
            "minimum": 45,
            "maximum": 60,
        },
    },
}


class Other:
    """The other integration's entities, as the tests change them."""

    def __init__(self) -> None:
        self.current = Knob("Wallbox current", 16, 6, 32, 1, "A")
        self.charging = Relay("Wallbox charging", True)
        self.phases = Chooser("Wallbox phases", ["1", "3"], "3")
        self.limit = Knob("Heat pump limit", 3.0, 0, 6, 0.1, "kW")
        self.thermostat = Thermostat("Heat pump", HVACMode.HEAT, 21.0, 20.4)
        self.sg_ready = Chooser(
            "Heat pump SG Ready", ["block", "normal", "boost", "force"], "normal"
        )
        self.boiler = Boiler("Boiler", "eco", 50.0, 47.5)
        self.heater = Relay("Boiler heater", False)


@pytest.fixture
async def other(hass: HomeAssistant) -> Other:
    entities = Other()
    await add_entities(hass, *vars(entities).values())
    return entities


@pytest.fixture
async def unload(hass: HomeAssistant) -> AsyncIterator[None]:
    """Unload every site before Home Assistant stops."""
    yield
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def _site(
    hass: HomeAssistant, options: dict[str, Any] | None = None, **devices: dict[str, Any]
) -> EdgeEmsConfigEntry:
    subentries = [
        subentry("actuator", data, subentry_id=key, title=key.replace("_", " ").title())
        for key, data in devices.items()
    ]
    entry = await setup_site(hass, subentries, options={**LIVE, **(options or {})})
    return cast(EdgeEmsConfigEntry, entry)


def _value(entry: EdgeEmsConfigEntry, device: str, metric: str) -> Any:
    reading = entry.runtime_data.devices[device].coordinator.data.get(metric)
    return None if reading is None else reading.value


async def test_the_entities_read_as_metrics_of_one_device(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA, heat_pump=HEAT_PUMP_DATA, boiler=BOILER_DATA)
    readings = {
        device_id: {metric: reading.value for metric, reading in device.coordinator.data.items()}
        for device_id, device in entry.runtime_data.devices.items()
    }
    assert readings == {
        WALLBOX: {"ev_charging_enabled": 1, "ev_current_limit_a": 16.0, "ev_phases": "3"},
        HEAT_PUMP: {
            "heat_pump_sg_ready": "normal",
            "heat_pump_power_limit_w": 3000.0,  # the entity's 3 kW
            "heat_pump_mode": "heat",
            "room_temperature_setpoint_c": 21.0,
            "room_temperature_c": 20.4,
        },
        BOILER: {
            "dhw_enabled": 0, "dhw_mode": "eco", "dhw_temperature_setpoint_c": 50.0,
            "dhw_temperature_c": 47.5,
        },
    }  # fmt: skip
    wallbox = entry.runtime_data.devices[WALLBOX].member.device
    commands = wallbox.commands
    current = commands["ev_current_limit_a"]
    # The user's clamps within the entity's own range (6-32 A).
    assert (current.minimum, current.maximum, current.lease) == (6, 16, True)
    assert current.target == "number.wallbox_current"
    # Phases named by a select "1" and "3": a planner's 3 is the option "3".
    assert commands["ev_phases"].options == {1: "1", 3: "3"}
    assert not commands["ev_phases"].lease  # no safe state: left as it is
    assert wallbox.safe_mode == {"ev_charging_enabled": 1, "ev_current_limit_a": 6}
    limit = entry.runtime_data.devices[HEAT_PUMP].member.device.commands["heat_pump_power_limit_w"]
    assert (limit.minimum, limit.maximum) == (0, 5000)
    # No entities of its own: the other integration's are the ones to look at.
    assert er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id) == []
    device = dr.async_get(hass).async_get(ha_device_id(hass, entry, WALLBOX))
    assert device is not None
    assert (device.name, device.manufacturer, device.model) == ("Wallbox", "Home Assistant", "test")


async def test_the_device_is_named_by_the_device_its_entities_belong_to(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    theirs = MockConfigEntry(domain="test")
    theirs.add_to_hass(hass)
    charger = dr.async_get(hass).async_get_or_create(
        config_entry_id=theirs.entry_id, identifiers={("test", "pulsar")},
        manufacturer="Wallbox", model="Pulsar Plus",
    )  # fmt: skip
    er.async_get(hass).async_update_entity("number.wallbox_current", device_id=charger.id)
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    device = dr.async_get(hass).async_get(ha_device_id(hass, entry, WALLBOX))
    assert device is not None
    assert (device.manufacturer, device.model) == ("Wallbox", "Pulsar Plus")


async def test_commands_are_written_through_the_guards_and_read_back(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA, heat_pump=HEAT_PUMP_DATA, boiler=BOILER_DATA)
    events = async_capture_events(hass, EVENT_AUDIT)
    wallbox, heat_pump, boiler = (
        ha_device_id(hass, entry, key) for key in (WALLBOX, HEAT_PUMP, BOILER)
    )

    async def write(device_id: str, command: str, value: Any) -> dict[str, Any]:
        response = await call(
            hass, "write_point", device_id=device_id, command=command, value=value
        )
        (record,) = response[ATTR_RECORDS]
        return record

    record = await write(wallbox, "ev_current_limit_a", 10)
    assert (record["outcome"], record["applied"], record["read_back"]) == ("applied", 10, 10.0)
    assert record["message"] == "wrote 10 on number.wallbox_current"
    assert float(hass.states.get("number.wallbox_current").state) == 10
    # Clamped to the user's 16 A, though the entity would take 32.
    record = await write(wallbox, "ev_current_limit_a", 25)
    assert (record["reason"], record["applied"]) == ("clamped", 16)
    assert float(hass.states.get("number.wallbox_current").state) == 16
    record = await write(wallbox, "ev_charging_enabled", False)
    assert (record["applied"], record["read_back"]) == (0, 0)
    assert hass.states.get("switch.wallbox_charging").state == "off"
    record = await write(wallbox, "ev_phases", 1)
    assert (record["applied"], record["read_back"]) == ("1", "1")
    assert hass.states.get("select.wallbox_phases").state == "1"
    # 2345 W to a number in kW with 0.1 kW steps: 2.3 kW, read back as 2300 W.
    record = await write(heat_pump, "heat_pump_power_limit_w", 2345)
    assert (record["applied"], record["read_back"]) == (2345, 2300.0)
    assert float(hass.states.get("number.heat_pump_limit").state) == 2.3
    record = await write(heat_pump, "heat_pump_mode", "auto")
    assert hass.states.get("climate.heat_pump").state == "auto"
    record = await write(heat_pump, "room_temperature_setpoint_c", 22.2)
    assert record["read_back"] == 22.0  # the thermostat's half-degree step
    assert hass.states.get("climate.heat_pump").attributes["temperature"] == 22.0
    record = await write(heat_pump, "heat_pump_sg_ready", "boost")
    assert hass.states.get("select.heat_pump_sg_ready").state == "boost"
    await write(boiler, "dhw_mode", "electric")
    await write(boiler, "dhw_temperature_setpoint_c", 58)
    await write(boiler, "dhw_enabled", 1)
    boiler_state = hass.states.get("water_heater.boiler")
    assert (boiler_state.state, boiler_state.attributes["temperature"]) == ("electric", 58)
    assert hass.states.get("switch.boiler_heater").state == "on"

    # Only what is mapped may be written; what the entity does not offer is refused.
    with pytest.raises(ServiceValidationError) as refused:
        await write(heat_pump, "heat_pump_enabled", 1)
    assert refused.value.translation_key == "refused_unknown_command"
    with pytest.raises(ServiceValidationError) as refused:
        await write(heat_pump, "heat_pump_mode", "cool")
    assert refused.value.translation_key == "refused_invalid_value"
    records = [event.data["record"] for event in events]
    assert [r["outcome"] for r in records[-2:]] == ["refused", "refused"]
    assert {r["requested_by"] for r in records} == {"home_assistant"}


async def test_a_dry_run_calls_no_service(hass: HomeAssistant, other: Other, unload: None) -> None:
    entry = await _site(hass, {"dry_run": True}, wallbox=WALLBOX_DATA)
    response = await call(hass, "write_point", device_id=ha_device_id(hass, entry, WALLBOX),
                          command="ev_current_limit_a", value=8)  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["outcome"], record["message"]) == (
        "dry_run",
        "dry run: would write 8 on number.wallbox_current",
    )
    assert float(hass.states.get("number.wallbox_current").state) == 16


async def test_a_value_is_written_only_when_it_changes_within_the_budget(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, {"eeprom_daily_writes": 1}, heat_pump=HEAT_PUMP_DATA)
    device_id = ha_device_id(hass, entry, HEAT_PUMP)
    response = await call(hass, "write_point", device_id=device_id,
                          command="heat_pump_power_limit_w", value=3000)  # fmt: skip
    assert response[ATTR_RECORDS][0]["outcome"] == "unchanged"  # it holds 3 kW already
    await call(hass, "write_point", device_id=device_id,
               command="heat_pump_power_limit_w", value=2000)  # fmt: skip
    with pytest.raises(ServiceValidationError) as refused:
        await call(hass, "write_point", device_id=device_id,
                   command="heat_pump_power_limit_w", value=1000)  # fmt: skip
    assert refused.value.translation_key == "refused_budget_exhausted"
    assert float(hass.states.get("number.heat_pump_limit").state) == 2.0


async def test_a_lapsed_lease_returns_each_command_to_its_safe_state(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, {"lease_ttl": 1.0}, wallbox=WALLBOX_DATA, heat_pump=HEAT_PUMP_DATA)
    events = async_capture_events(hass, EVENT_AUDIT)
    wallbox, heat_pump = ha_device_id(hass, entry, WALLBOX), ha_device_id(hass, entry, HEAT_PUMP)
    await call(hass, "write_point", device_id=wallbox, command="ev_current_limit_a", value=12)
    await call(hass, "write_point", device_id=wallbox, command="ev_charging_enabled", value=0)
    await call(
        hass, "write_point", device_id=heat_pump, command="heat_pump_sg_ready", value="block"
    )
    # No safe state for the power limit: it is no lease and stays.
    await call(
        hass, "write_point", device_id=heat_pump, command="heat_pump_power_limit_w", value=1500
    )
    assert entry.runtime_data.dispatcher.all_leases().keys() == {WALLBOX, HEAT_PUMP}

    await eventually(lambda: entry.runtime_data.dispatcher.all_leases() == {})
    released = [e.data["record"] for e in events if e.data["record"]["outcome"] == "released"]
    # Each lapse returns its command; the last one on a device returns the whole device,
    # the thermostat's safe 20 °C with it.
    assert {(r["device_id"], r["command"], r["applied"], r["reason"]) for r in released} == {
        (WALLBOX, "ev_current_limit_a", 6, "lease_expired"),
        (WALLBOX, "ev_charging_enabled", 1, "lease_expired"),
        (HEAT_PUMP, "heat_pump_sg_ready", "normal", "lease_expired"),
        (HEAT_PUMP, "room_temperature_setpoint_c", 20, "lease_expired"),
    }
    assert {r["message"] for r in released} >= {"returned to safe mode on number.wallbox_current"}
    assert float(hass.states.get("number.wallbox_current").state) == 6
    assert hass.states.get("switch.wallbox_charging").state == "on"
    assert hass.states.get("select.heat_pump_sg_ready").state == "normal"
    assert float(hass.states.get("number.heat_pump_limit").state) == 1.5
    assert entry.runtime_data.dispatcher.all_leases() == {}


async def test_release_returns_the_device_to_its_safe_state_now(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    device_id = ha_device_id(hass, entry, WALLBOX)
    await call(hass, "write_point", device_id=device_id, command="ev_current_limit_a", value=9)
    response = await call(hass, "release", device_id=device_id)
    assert [(r["command"], r["outcome"]) for r in response[ATTR_RECORDS]] == [
        ("ev_charging_enabled", "released"), ("ev_current_limit_a", "released"),
    ]  # fmt: skip
    assert float(hass.states.get("number.wallbox_current").state) == 6


async def test_a_state_that_does_not_follow_fails_the_read_back(
    hass: HomeAssistant, other: Other, unload: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actuator, "READ_BACK_TIMEOUT", 0.3)
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    device_id = ha_device_id(hass, entry, WALLBOX)
    other.current.follows = False
    with pytest.raises(HomeAssistantError) as failed:
        await call(hass, "write_point", device_id=device_id, command="ev_current_limit_a", value=8)
    assert failed.value.translation_key == "failed_read_back_mismatch"
    record = entry.runtime_data.audit.records()[-1]
    assert (record["outcome"], record["reason"], record["read_back"]) == (
        "failed", "read_back_mismatch", 16.0
    )  # fmt: skip
    assert "number.wallbox_current shows 16.0 after being told 8" in record["message"]
    # One that follows a moment later is waited for.
    other.current.follows, other.current.delay = True, 0.1
    response = await call(hass, "write_point", device_id=device_id,
                          command="ev_current_limit_a", value=8)  # fmt: skip
    assert response[ATTR_RECORDS][0]["read_back"] == 8.0


async def test_errors_of_the_other_integration_are_audited(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    device_id = ha_device_id(hass, entry, WALLBOX)
    other.charging.fail = HomeAssistantError("cloud said no")
    with pytest.raises(HomeAssistantError) as failed:
        await call(hass, "write_point", device_id=device_id, command="ev_charging_enabled", value=0)
    assert failed.value.translation_key == "failed_device_error"
    assert "cloud said no" in entry.runtime_data.audit.records()[-1]["message"]
    other.charging.fail = ServiceValidationError("not now")
    with pytest.raises(ServiceValidationError) as refused:
        await call(hass, "write_point", device_id=device_id, command="ev_charging_enabled", value=0)
    assert refused.value.translation_key == "refused_invalid_value"


async def test_an_unavailable_entity_is_a_device_that_does_not_answer(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    coordinator = entry.runtime_data.devices[WALLBOX].coordinator
    device_id = ha_device_id(hass, entry, WALLBOX)
    other.phases.go_away()
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert "select.wallbox_phases is unavailable" in str(coordinator.last_exception)
    assert entry.runtime_data.devices[WALLBOX].member.device.health.error_streak == 1
    with pytest.raises(HomeAssistantError) as failed:
        await call(hass, "write_point", device_id=device_id, command="ev_phases", value=1)
    assert failed.value.translation_key == "failed_device_error"
    other.phases.come_back()
    await coordinator.async_refresh()
    assert coordinator.last_update_success


async def test_entities_that_appear_after_the_site_are_read_once_they_do(
    hass: HomeAssistant, unload: None
) -> None:
    """Home Assistant may start Edge EMS before the other integration."""
    data = {**BOILER_DATA, "commands": dict(BOILER_DATA["commands"])}
    del data["commands"]["dhw_enabled"]  # the site sets the switch domain up itself
    entry = await _site(hass, boiler=data)
    coordinator = entry.runtime_data.devices[BOILER].coordinator
    assert not coordinator.last_update_success
    assert "water_heater.boiler does not exist" in str(coordinator.last_exception)
    await add_entities(hass, Boiler("Boiler", "off", 45.0, 30.0))
    await coordinator.async_refresh()
    assert coordinator.last_update_success, coordinator.last_exception
    assert coordinator.data["dhw_mode"].value == "off"
    device = dr.async_get(hass).async_get(ha_device_id(hass, entry, BOILER))
    assert device is not None
    assert (device.manufacturer, device.model) == ("Home Assistant", "test")


async def test_the_planner_drives_the_charger(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    ev = Ev("car", energy_needed_wh=7000.0, depart_step=4, modes=(ChargeMode(3, 6, 16),))
    plan = solve(problem(n=4, buy=[0.1, 0.5, 0.5, 0.5], evs=[ev]))
    executor = PlanExecutor(entry.runtime_data.dispatcher, {"car": WALLBOX}, lease_s=60)
    records = await executor.apply(plan, plan.horizon.time(0) + timedelta(minutes=1))
    # Charging was allowed and on 3 phases already: only the current is written.
    assert [(r.command, r.outcome) for r in records] == [
        ("ev_charging_enabled", "unchanged"), ("ev_current_limit_a", "applied"),
        ("ev_phases", "unchanged"),
    ]  # fmt: skip
    assert {(r.requested_by, r.source) for r in records} == {("planner", "planner")}
    assert hass.states.get("switch.wallbox_charging").state == "on"
    assert 6 <= float(hass.states.get("number.wallbox_current").state) <= 16
    assert hass.states.get("select.wallbox_phases").state == "3"


async def test_unloading_returns_leased_commands_and_reloading_keeps_the_device(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    await call(hass, "write_point", device_id=ha_device_id(hass, entry, WALLBOX),
               command="ev_current_limit_a", value=11)  # fmt: skip
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert float(hass.states.get("number.wallbox_current").state) == 6  # released on the way
    assert entry.state is ConfigEntryState.LOADED
    assert _value(entry, WALLBOX, "ev_current_limit_a") == 6.0
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_a_subentry_with_bad_data_fails_the_setup(hass: HomeAssistant, other: Other) -> None:
    wrong = {"ev_current_limit_a": {"entity_id": "switch.wallbox_charging"}}
    data = {"actuator_kind": "ev_charger", "commands": wrong}
    entry = await setup_site(hass, [subentry("actuator", data)], expect_loaded=False)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "cannot carry ev_current_limit_a" in (entry.reason or "")
    data = {"actuator_kind": "ev_charger",
            "commands": {"dhw_mode": {"entity_id": "water_heater.boiler"}}}  # fmt: skip
    hass.config_entries.async_update_subentry(entry, entry.subentries["actuator"], data=data)
    await hass.config_entries.async_reload(entry.entry_id)
    assert "offers no command dhw_mode" in (entry.reason or "")


async def test_diagnostics_show_which_entity_each_command_drives(
    hass: HomeAssistant, other: Other, unload: None
) -> None:
    entry = await _site(hass, wallbox=WALLBOX_DATA)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    device = diagnostics["devices"][WALLBOX]
    assert device["kind"] == "actuator"
    assert device["config"]["commands"]["ev_current_limit_a"]["entity_id"] == (
        "number.wallbox_current"
    )
    assert device["registers"] is None
    assert device["health"]["connected"] is True


def _device(hass: HomeAssistant, *bindings: actuator.Binding) -> actuator.HaActuatorDevice:
    """An actuator built as the site builds it, outside any site (it registers nothing)."""
    spec = DeviceSpec("loose", "Loose", "actuator", {
        "actuator_kind": "heat_pump",
        "commands": {
            binding.metric: {"entity_id": binding.entity_id, "safe_value": binding.safe_value}
            for binding in bindings
        },
    })  # fmt: skip
    context = BuildContext(Catalog(), LinkRegistry(), 10.0)
    device = actuator.actuator_factory(hass)(spec, context)
    assert isinstance(device, actuator.HaActuatorDevice)
    return device


async def test_the_device_refuses_what_its_entities_cannot_take(
    hass: HomeAssistant, other: Other, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Safe states reach the device without the Dispatcher's clamps: it checks them itself."""
    device = _device(
        hass,
        actuator.Binding("heat_pump_enabled", "switch.boiler_heater"),
        actuator.Binding("heat_pump_sg_ready", "select.heat_pump_sg_ready"),
        actuator.Binding("heat_pump_power_limit_w", "number.heat_pump_limit"),
    )
    assert dr.async_get(hass).async_get_devices(identifiers={(DOMAIN, "loose")}) == []
    refusals = {
        ("heat_pump_enabled", 0.5): "invalid_value",
        ("heat_pump_sg_ready", "turbo"): "invalid_value",
        ("heat_pump_power_limit_w", "lots"): "invalid_value",
        ("heat_pump_power_limit_w", float("nan")): "invalid_value",
        ("heat_pump_power_limit_w", 7000): "out_of_range",
        ("heat_pump_mode", "heat"): "unknown_command",
    }
    for (metric, value), reason in refusals.items():
        with pytest.raises(WriteRefusedError) as refused:
            await device.write(metric, value)
        assert refused.value.reason == reason, (metric, value)
    assert device.state_options("heat_pump_sg_ready") == ("block", "normal", "boost", "force")
    assert device.state_options("heat_pump_enabled") is None
    assert device.state_options("heat_pump_mode") is None
    assert device.learned == {}
    assert device.revert_timer is None

    # A service that hangs is a timeout; a state changing to something else is no read-back.
    monkeypatch.setattr(actuator, "SERVICE_TIMEOUT", 0.05)
    other.limit.pause = 1.0
    with pytest.raises(DeviceTimeoutError):
        await device.write("heat_pump_power_limit_w", 1000)
    other.limit.pause, other.limit.follows = 0.0, False
    monkeypatch.setattr(actuator, "READ_BACK_TIMEOUT", 0.5)
    attributes = dict(hass.states.get("number.heat_pump_limit").attributes)
    hass.loop.call_later(0.05, hass.states.async_set, "number.heat_pump_limit", "4.4", attributes)
    with pytest.raises(ReadBackMismatchError) as mismatch:
        await device.write("heat_pump_power_limit_w", 1000)
    assert mismatch.value.actual == 4400.0

    # An entity that goes away while the write waits for it fails the write.
    hass.loop.call_later(0.05, other.limit.go_away)
    with pytest.raises(DeviceConnectionError, match=r"number\.heat_pump_limit is unavailable"):
        await device.write("heat_pump_power_limit_w", 2000)
    other.limit.come_back()

    # A number that shows no number, or changed its unit, reads as nothing or fails.
    hass.states.async_set("number.heat_pump_limit", "unknown", attributes)
    assert "heat_pump_power_limit_w" not in await device.read()
    hass.states.async_set("number.heat_pump_limit", "abc", attributes)
    assert "heat_pump_power_limit_w" not in await device.read()
    hass.states.async_set("number.heat_pump_limit", "3", {**attributes, "unit_of_measurement": "%"})
    with pytest.raises(DeviceProtocolError, match="is in %, which is no W"):
        await device.read()


async def test_state_only_entities_and_a_thermostat_that_measures_nothing(
    hass: HomeAssistant,
) -> None:
    """Entities another integration keeps out of the registry, and attributes left out."""
    hass.states.async_set(
        "climate.bare", "heat", {"hvac_modes": ["off", "heat"], "temperature": 20}
    )
    device = _device(
        hass,
        actuator.Binding("heat_pump_mode", "climate.bare"),
        actuator.Binding("room_temperature_setpoint_c", "climate.bare"),
    )
    identity = await device.connect()
    assert identity == DeviceIdentity("Home Assistant", "entities")
    readings = await device.read()
    assert {metric: reading.value for metric, reading in readings.items()} == {
        "heat_pump_mode": "heat", "room_temperature_setpoint_c": 20.0,
    }  # fmt: skip
    assert device.declared_metrics == {
        "heat_pump_mode", "room_temperature_setpoint_c", "room_temperature_c",
    }  # fmt: skip
    # Nothing but a state: no integration takes the call.
    with pytest.raises(DeviceConnectionError, match="not found"):
        await device.write("room_temperature_setpoint_c", 21)
    await device.close()
    assert not device.health.connected
