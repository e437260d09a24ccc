"""Every dispatch guard through the edge_ems actions, against the simulated site over sockets.

The site entry is set up as Home Assistant sets it up (integration, coordinators, entities);
the Deye and its gateway, the SunSpec hybrid and the OPC UA BESS answer from the simulators
on loopback ports. Each test reads what the simulated device holds afterwards.
"""

from __future__ import annotations

from typing import Any

import probatio
import pytest
from custom_components.edge_ems.const import DOMAIN
from custom_components.edge_ems.services import ATTR_RECORDS
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockUser

from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.site import SimulatedSite

from .support import (
    BESS,
    DEYE,
    LIVE,
    SUNSPEC,
    call,
    deye_register,
    ha_device_id,
    setup_battery_site,
)

pytestmark = pytest.mark.ha

EXPORT_LIMIT = "grid_export_limit_w"
EXPORT_LIMIT_ADDRESS = 143


async def test_control_is_off_by_default(hass: HomeAssistant, sim_site: SimulatedSite) -> None:
    entry = await setup_battery_site(hass, sim_site, options={})
    before = deye_register(sim_site, EXPORT_LIMIT_ADDRESS)
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "write_point", device_id=ha_device_id(hass, entry, DEYE),
                   command=EXPORT_LIMIT, value=1000)  # fmt: skip
    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == "refused_control_disabled"
    assert str(raised.value) == (
        'Control is not enabled for Home: turn on "Enable control" in the site\'s options to '
        "write to Deye"
    )
    assert deye_register(sim_site, EXPORT_LIMIT_ADDRESS) == before
    (record,) = entry.runtime_data.audit.records()
    assert (record["outcome"], record["reason"]) == ("refused", "control_disabled")


async def test_dry_run_answers_with_the_record_and_writes_nothing(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(
        hass, sim_site, options={"enable_control": True, "dry_run": True}
    )
    before = deye_register(sim_site, EXPORT_LIMIT_ADDRESS)
    response = await call(hass, "write_point", device_id=ha_device_id(hass, entry, DEYE),
                          command=EXPORT_LIMIT, value="1000")  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["outcome"], record["reason"], record["requested"]) == (
        "dry_run",
        "dry_run",
        1000,
    )
    assert deye_register(sim_site, EXPORT_LIMIT_ADDRESS) == before


async def test_write_is_applied_and_read_back(
    hass: HomeAssistant, sim_site: SimulatedSite, hass_admin_user: MockUser
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    context = Context(user_id=hass_admin_user.id)
    response = await call(hass, "write_point", context=context,
                          device_id=ha_device_id(hass, entry, DEYE),
                          command=EXPORT_LIMIT, value=4321)  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["outcome"], record["reason"]) == ("applied", "written")
    assert (record["applied"], record["read_back"]) == (4321, 4321)
    assert record["requested_by"] == f"user:{hass_admin_user.id} ({hass_admin_user.name})"
    assert record["source"] == "ha_action"
    assert record["device_id"] == DEYE
    assert deye_register(sim_site, EXPORT_LIMIT_ADDRESS) == 4321


async def test_option_names_are_written_as_codes(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    response = await call(hass, "write_point", device_id=ha_device_id(hass, entry, DEYE),
                          command="work_mode", value="selling_first")  # fmt: skip
    assert response[ATTR_RECORDS][0]["read_back"] == "selling_first"
    assert deye_register(sim_site, 142) == 0


async def test_values_beyond_the_limits_are_clamped(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    response = await call(hass, "write_point", device_id=ha_device_id(hass, entry, DEYE),
                          command=EXPORT_LIMIT, value=99_000)  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["outcome"], record["reason"]) == ("applied", "clamped")
    assert (record["requested"], record["applied"], record["read_back"]) == (99_000, 15_600, 15_600)
    assert deye_register(sim_site, EXPORT_LIMIT_ADDRESS) == 15_600


async def test_true_and_false_typed_as_text_are_on_and_off(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, DEYE)
    for text, value in (("False", False), (" true ", True)):
        response = await call(hass, "write_point", device_id=device_id,
                              command="grid_export_enabled", value=text)  # fmt: skip
        (record,) = response[ATTR_RECORDS]
        assert (record["outcome"], record["applied"]) == ("applied", value)


@pytest.mark.parametrize(
    ("command", "value", "key"),
    [
        ("no_such_command", 1, "refused_unknown_command"),
        ("tou_slot1_start", 1200, "refused_not_allowed"),
        ("ac_power_w", 100, "refused_unknown_command"),
        ("work_mode", "party", "refused_invalid_value"),
        (EXPORT_LIMIT, "nan", "refused_invalid_value"),
    ],
)
async def test_refusals_name_the_reason(
    hass: HomeAssistant, sim_site: SimulatedSite, command: str, value: Any, key: str
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    sim_site.modbus_gateway.reset_traffic()
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "write_point", device_id=ha_device_id(hass, entry, DEYE),
                   command=command, value=value)  # fmt: skip
    assert raised.value.translation_key == key
    assert raised.value.translation_placeholders["command"] == command
    assert not [r for r in sim_site.modbus_gateway.requests if r.function in (6, 16)]
    (record,) = entry.runtime_data.audit.records()
    assert record["outcome"] == "refused"


async def test_eeprom_budget_and_write_on_change(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options={**LIVE, "eeprom_daily_writes": 2})
    device_id = ha_device_id(hass, entry, DEYE)
    for value in (1000, 2000):
        response = await call(hass, "write_point", device_id=device_id,
                              command=EXPORT_LIMIT, value=value)  # fmt: skip
        assert response[ATTR_RECORDS][0]["outcome"] == "applied"
    # The device holds 2000 already: nothing is written, and no budget is needed for that.
    response = await call(hass, "write_point", device_id=device_id,
                          command=EXPORT_LIMIT, value=2000)  # fmt: skip
    assert response[ATTR_RECORDS][0]["outcome"] == "unchanged"
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "write_point", device_id=device_id, command=EXPORT_LIMIT, value=3000)
    assert raised.value.translation_key == "refused_budget_exhausted"
    assert deye_register(sim_site, EXPORT_LIMIT_ADDRESS) == 2000


async def test_writes_per_minute_are_bounded(hass: HomeAssistant, sim_site: SimulatedSite) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, DEYE)
    per_minute = entry.runtime_data.dispatcher.policy.writes_per_minute
    for index in range(per_minute):
        await call(hass, "write_point", device_id=device_id,
                   command=EXPORT_LIMIT, value=1000 + index)  # fmt: skip
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "write_point", device_id=device_id, command=EXPORT_LIMIT, value=1)
    assert raised.value.translation_key == "refused_rate_limited"
    assert deye_register(sim_site, EXPORT_LIMIT_ADDRESS) == 1000 + per_minute - 1


async def test_a_device_that_fails_the_write_is_reported(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, DEYE)
    sim_site.modbus_gateway.inject(fault_on_writes())
    with pytest.raises(HomeAssistantError) as raised:
        await call(hass, "write_point", device_id=device_id, command=EXPORT_LIMIT, value=700)
    assert not isinstance(raised.value, ServiceValidationError)
    assert raised.value.translation_key == "failed_device_error"
    (record,) = entry.runtime_data.audit.records()
    assert (record["outcome"], record["reason"], record["applied"]) == (
        "failed",
        "device_error",
        700,
    )


async def test_dispatch_to_one_battery_is_applied_and_read_back(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    response = await call(hass, "dispatch", device_id=ha_device_id(hass, entry, SUNSPEC),
                          power_w=-1000, ttl=120)  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["device_id"], record["outcome"], record["ttl"]) == (SUNSPEC, "applied", 120)
    assert record["read_back"] == pytest.approx(-1000, abs=30)
    controls = sim_site.sunspec.controls(sim_site.plant.sunspec)
    assert controls.mode != 0
    assert entry.runtime_data.dispatcher.leases()[SUNSPEC][0] == record["applied"]


async def test_dispatch_power_is_clamped_to_the_battery(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    response = await call(hass, "dispatch", device_id=ha_device_id(hass, entry, SUNSPEC),
                          power_w=-50_000)  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["outcome"], record["reason"], record["applied"]) == ("applied", "clamped", -2500)


async def test_dispatch_to_a_device_without_power_setpoint_is_refused(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "dispatch", device_id=ha_device_id(hass, entry, DEYE), power_w=500)
    assert raised.value.translation_key == "refused_unknown_command"


async def test_calls_that_name_no_device_of_ours_are_refused(
    hass: HomeAssistant, sim_site: SimulatedSite, entity_registry: er.EntityRegistry
) -> None:
    await setup_battery_site(hass, sim_site, options=LIVE)
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "dispatch", device_id="not-a-device", power_w=500)
    assert raised.value.translation_key == "unknown_device"
    with pytest.raises(ServiceValidationError):
        await call(hass, "release", config_entry_id="not-an-entry")


async def test_an_unloaded_site_is_refused(hass: HomeAssistant, sim_site: SimulatedSite) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, DEYE)
    await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "write_point", device_id=device_id, command=EXPORT_LIMIT, value=1)
    assert raised.value.translation_key == "site_not_loaded"
    with pytest.raises(ServiceValidationError):
        await call(hass, "release", config_entry_id=entry.entry_id)


async def test_the_only_site_is_the_default_target(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    await setup_battery_site(hass, sim_site, options={**LIVE, "dry_run": True})
    response = await call(hass, "dispatch", power_w=1500)
    records = response[ATTR_RECORDS]
    assert {record["device_id"]: record["outcome"] for record in records} == {
        BESS: "dry_run",
        SUNSPEC: "dry_run",
    }


async def test_calls_by_an_automation_name_it(hass: HomeAssistant, sim_site: SimulatedSite) -> None:
    entry = await setup_battery_site(
        hass, sim_site, options={"enable_control": True, "dry_run": True}
    )
    device_id = ha_device_id(hass, entry, DEYE)
    automation = {
        "id": "cheap_export",
        "alias": "Cheap export",
        "triggers": {"trigger": "event", "event_type": "test_go"},
        "actions": {
            "action": f"{DOMAIN}.write_point",
            "data": {"device_id": device_id, "command": EXPORT_LIMIT, "value": 10},
        },
    }
    assert await async_setup_component(hass, "automation", {"automation": automation})
    hass.bus.async_fire("test_go")
    await hass.async_block_till_done()
    (record,) = entry.runtime_data.audit.records()
    assert record["requested_by"] == "automation:automation.cheap_export"
    assert record["outcome"] == "dry_run"


async def test_calls_by_a_script_name_it(hass: HomeAssistant, sim_site: SimulatedSite) -> None:
    entry = await setup_battery_site(
        hass, sim_site, options={"enable_control": True, "dry_run": True}
    )
    script = {"sequence": [{"action": f"{DOMAIN}.dispatch", "data": {"power_w": -500}}]}
    assert await async_setup_component(hass, "script", {"script": {"night_charge": script}})
    await hass.services.async_call("script", "night_charge", blocking=True)
    records = entry.runtime_data.audit.records()
    assert {record["requested_by"] for record in records} == {"script:script.night_charge"}
    assert len(records) == 2  # one per battery


async def test_bad_values_never_reach_the_dispatcher(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    for data in ({"power_w": "lots"}, {"power_w": 5e9}, {"power_w": 100, "ttl": 0}):
        with pytest.raises(probatio.Invalid, match=r"power_w|ttl"):
            await call(hass, "dispatch", **data)
    assert entry.runtime_data.audit.records() == []


def fault_on_writes() -> Any:
    """Every write to the Deye answers with Modbus exception 4 (server device failure)."""
    from edge_ems.sim.modbus_server import Fault, FaultKind

    return Fault(FaultKind.EXCEPTION, code=4, unit=1, space=RegisterSpace.HOLDING,
                 addresses=(EXPORT_LIMIT_ADDRESS, EXPORT_LIMIT_ADDRESS))  # fmt: skip
