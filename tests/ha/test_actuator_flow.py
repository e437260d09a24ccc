"""The actuator subentry flow: what it is, which entity carries each command, safe states and
clamps, every error, reconfigure; against real entities of another (test) integration."""

from __future__ import annotations

from typing import Any

import pytest
from custom_components.edge_ems.const import DOMAIN
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .actuators import Knob
from .support import setup_site, subentry
from .test_actuator import WALLBOX_DATA, Other, add_entities


@pytest.fixture
async def other(hass: HomeAssistant) -> Other:
    entities = Other()
    await add_entities(hass, *vars(entities).values(), Knob("Percent", 50, 0, 100, 1, "%"))
    return entities


async def _site(hass: HomeAssistant, *devices: Any) -> MockConfigEntry:
    return await setup_site(hass, list(devices))


async def _start(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, "actuator"), context={"source": SOURCE_USER}
    )


async def _submit(hass: HomeAssistant, result: Any, data: dict[str, Any]) -> Any:
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


def _suggested(result: Any) -> dict[str, Any]:
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


async def test_an_ev_charger_is_added_with_every_error_on_the_way(
    hass: HomeAssistant, other: Other
) -> None:
    entry = await _site(hass)
    registry = er.async_get(hass)
    ours = registry.async_get_or_create("switch", DOMAIN, "ours", suggested_object_id="ours")
    hass.states.async_set(ours.entity_id, "on")
    other.phases.go_away()

    result = await _start(hass, entry)
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "user")
    result = await _submit(hass, result, {"name": "Wallbox", "actuator_kind": "ev_charger"})
    assert (result["step_id"], result["description_placeholders"]) == (
        "entities", {"name": "Wallbox"}
    )  # fmt: skip
    assert [str(key) for key in result["data_schema"].schema] == [
        "ev_charging_enabled", "ev_current_limit_a", "ev_phases",
    ]  # fmt: skip
    result = await _submit(hass, result, {})
    assert result["errors"] == {"base": "no_entity"}
    result = await _submit(hass, result, {
        "ev_charging_enabled": ours.entity_id,
        "ev_current_limit_a": "switch.wallbox_charging",
        "ev_phases": "number.nowhere",
    })  # fmt: skip
    assert result["errors"] == {
        "ev_charging_enabled": "own_entity",
        "ev_current_limit_a": "wrong_domain",
        "ev_phases": "entity_not_found",
    }
    result = await _submit(hass, result, {
        "ev_charging_enabled": "0123456789abcdef0123456789abcdef",  # a registry id of nothing
        "ev_current_limit_a": "number.percent",
        "ev_phases": "select.wallbox_phases",
    })  # fmt: skip
    assert result["errors"] == {
        "ev_charging_enabled": "entity_not_found",
        "ev_current_limit_a": "unit_mismatch",
        "ev_phases": "entity_unavailable",
    }
    other.phases.come_back()
    charging = registry.async_get("switch.wallbox_charging")
    assert charging is not None
    result = await _submit(hass, result, {
        "ev_charging_enabled": charging.id,  # the registry id stands for the entity
        "ev_current_limit_a": "number.wallbox_current",
        "ev_phases": "select.wallbox_phases",
    })  # fmt: skip

    assert result["step_id"] == "on_off"
    assert result["description_placeholders"]["entity_id"] == "switch.wallbox_charging"
    result = await _submit(hass, result, {"safe_state": "on"})

    assert result["step_id"] == "limits"
    assert result["description_placeholders"] == {
        "command": "Charge current offered to the vehicle (0 stops)",
        "entity": "Wallbox current",
        "entity_id": "number.wallbox_current",
    }
    assert _suggested(result) == {"minimum": 6.0, "maximum": 32.0}
    result = await _submit(hass, result, {"minimum": 10, "maximum": 8})
    assert result["errors"] == {"maximum": "maximum_below_minimum"}
    result = await _submit(hass, result, {"minimum": 6, "maximum": 16, "safe_value": 20})
    assert result["errors"] == {"safe_value": "safe_value_outside_limits"}
    result = await _submit(hass, result, {"minimum": 6, "maximum": 16, "safe_value": 6})

    assert result["step_id"] == "option"
    [field] = result["data_schema"].schema.values()
    assert field.config["options"] == ["leave_as_is", "1", "3"]
    result = await _submit(hass, result, {"safe_state": "leave_as_is"})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Wallbox"
    assert result["data"] == {
        "actuator_kind": "ev_charger",
        "commands": {
            "ev_charging_enabled": {"entity_id": "switch.wallbox_charging", "safe_value": 1},
            "ev_current_limit_a": {
                "entity_id": "number.wallbox_current", "minimum": 6, "maximum": 16,
                "safe_value": 6,
            },
            "ev_phases": {"entity_id": "select.wallbox_phases"},
        },
    }  # fmt: skip
    # The site reloads with it.
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (device,) = entry.runtime_data.devices.values()
    assert device.coordinator.data["ev_current_limit_a"].value == 16.0


async def test_a_heat_pump_takes_a_thermostat_a_water_heater_and_a_kw_limit(
    hass: HomeAssistant, other: Other
) -> None:
    boiler = {"actuator_kind": "switchable_load",
              "commands": {"load_enabled": {"entity_id": "switch.boiler_heater"}}}  # fmt: skip
    entry = await _site(hass, subentry("actuator", boiler, subentry_id="boiler"))
    result = await _start(hass, entry)
    result = await _submit(hass, result, {"name": "Heat pump", "actuator_kind": "heat_pump"})
    picked = {
        "heat_pump_sg_ready": "select.heat_pump_sg_ready",
        "heat_pump_power_limit_w": "number.heat_pump_limit",
        "heat_pump_enabled": "switch.boiler_heater",
        "heat_pump_mode": "climate.heat_pump",
        "room_temperature_setpoint_c": "climate.heat_pump",
        "dhw_temperature_setpoint_c": "water_heater.boiler",
    }
    result = await _submit(hass, result, picked)
    # The boiler's switch is driven by the other device already: two would fight over it.
    assert result["errors"] == {"heat_pump_enabled": "entity_in_use"}
    del picked["heat_pump_enabled"]
    result = await _submit(hass, result, picked)

    assert result["step_id"] == "option"  # SG Ready
    result = await _submit(hass, result, {"safe_state": "normal"})
    assert result["step_id"] == "limits"  # the power limit, in W though the entity is in kW
    assert _suggested(result) == {"minimum": 0.0, "maximum": 6000.0}
    [number, *_] = result["data_schema"].schema.values()
    assert number.config["unit_of_measurement"] == "W"
    assert number.config["step"] == 100.0
    result = await _submit(hass, result, {"minimum": 0, "maximum": 4000})
    assert result["step_id"] == "option"  # the thermostat's HVAC mode
    [field] = result["data_schema"].schema.values()
    assert field.config["options"] == ["leave_as_is", "off", "heat", "auto"]
    result = await _submit(hass, result, {"safe_state": "heat"})
    assert result["step_id"] == "limits"  # its target temperature
    assert _suggested(result) == {"minimum": 5.0, "maximum": 30.0}
    result = await _submit(hass, result, {"minimum": 18, "maximum": 24, "safe_value": 20})
    assert result["step_id"] == "limits"  # the water heater's
    assert _suggested(result) == {"minimum": 40.0, "maximum": 65.0}
    result = await _submit(hass, result, {"minimum": 45, "maximum": 60})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["commands"] == {
        "heat_pump_sg_ready": {"entity_id": "select.heat_pump_sg_ready", "safe_value": "normal"},
        "heat_pump_power_limit_w": {
            "entity_id": "number.heat_pump_limit", "minimum": 0, "maximum": 4000,
        },
        "heat_pump_mode": {"entity_id": "climate.heat_pump", "safe_value": "heat"},
        "room_temperature_setpoint_c": {
            "entity_id": "climate.heat_pump", "minimum": 18, "maximum": 24, "safe_value": 20,
        },
        "dhw_temperature_setpoint_c": {
            "entity_id": "water_heater.boiler", "minimum": 45, "maximum": 60,
        },
    }  # fmt: skip
    await hass.async_block_till_done()


async def test_an_actuator_is_reconfigured(hass: HomeAssistant, other: Other) -> None:
    data = {**WALLBOX_DATA, "commands": {**WALLBOX_DATA["commands"],
            "ev_phases": {"entity_id": "select.wallbox_phases", "safe_value": "3"}}}  # fmt: skip
    entry = await _site(hass, subentry("actuator", data, subentry_id="wallbox", title="Wallbox"))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "actuator"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": "wallbox"},
    )
    assert result["step_id"] == "user"
    assert _suggested(result) == {"name": "Wallbox", "actuator_kind": "ev_charger"}
    result = await _submit(hass, result, {"name": "Garage", "actuator_kind": "ev_charger"})
    assert _suggested(result) == {
        "ev_charging_enabled": "switch.wallbox_charging",
        "ev_current_limit_a": "number.wallbox_current",
        "ev_phases": "select.wallbox_phases",
    }
    # Its own entities are no other device's.
    result = await _submit(hass, result, _suggested(result))
    assert result["step_id"] == "on_off"
    assert _suggested(result) == {"safe_state": "on"}
    result = await _submit(hass, result, {"safe_state": "off"})
    assert _suggested(result) == {"minimum": 6, "maximum": 16, "safe_value": 6}
    result = await _submit(hass, result, {"minimum": 8, "maximum": 16})
    assert _suggested(result) == {"safe_state": "3"}
    result = await _submit(hass, result, {"safe_state": "3"})
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "reconfigure_successful")
    changed = entry.subentries["wallbox"]
    assert changed.title == "Garage"
    assert changed.data["commands"]["ev_charging_enabled"] == {
        "entity_id": "switch.wallbox_charging", "safe_value": 0,
    }  # fmt: skip
    assert changed.data["commands"]["ev_current_limit_a"] == {
        "entity_id": "number.wallbox_current", "minimum": 8, "maximum": 16,
    }  # fmt: skip
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # Another entity for a command starts from that entity's limits, not the old clamps.
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "actuator"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": "wallbox"},
    )
    result = await _submit(hass, result, {"name": "Garage", "actuator_kind": "switchable_load"})
    assert [str(key) for key in result["data_schema"].schema] == ["load_enabled"]
    assert _suggested(result) == {}
    result = await _submit(hass, result, {"load_enabled": "switch.wallbox_charging"})
    assert _suggested(result) == {}
    result = await _submit(hass, result, {"safe_state": "leave_as_is"})
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries["wallbox"].data == {
        "actuator_kind": "switchable_load",
        "commands": {"load_enabled": {"entity_id": "switch.wallbox_charging"}},
    }
    await hass.async_block_till_done()


async def test_a_number_that_names_no_range_or_unit_and_goes_away_midway(
    hass: HomeAssistant, other: Other
) -> None:
    entry = await _site(hass)
    hass.states.async_set("number.bare", "1", {"friendly_name": "Bare"})
    result = await _start(hass, entry)
    result = await _submit(hass, result, {"name": "Car", "actuator_kind": "ev_charger"})
    result = await _submit(hass, result, {"ev_current_limit_a": "number.bare",
                                          "ev_phases": "number.percent"})  # fmt: skip
    assert result["errors"] == {}
    assert result["step_id"] == "limits"
    [number, *_] = result["data_schema"].schema.values()
    assert "min" not in number.config
    assert "max" not in number.config
    assert number.config["unit_of_measurement"] == "A"
    assert result["description_placeholders"]["entity"] == "Bare"
    hass.states.async_remove("number.percent")
    result = await _submit(hass, result, {"minimum": 6, "maximum": 16})
    # Phases have no unit; the entity went away meanwhile, and its id stands for its name.
    assert result["step_id"] == "limits"
    [number, *_] = result["data_schema"].schema.values()
    assert "unit_of_measurement" not in number.config
    assert result["description_placeholders"]["entity"] == "number.percent"
    result = await _submit(hass, result, {"minimum": 1, "maximum": 3})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
