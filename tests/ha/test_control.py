"""Numbers, selects and switches write only through the site's guarded dispatch, as the
user who asked; the guards' refusals and the device's failures reach the caller."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.modbus_server import Fault, FaultKind
from edge_ems.sim.site import SimulatedSite

from .support import LIVE, MODBUS_ONLY, SUNSPEC_ONLY, StartSite, deye, setup_site, subentry, sunspec

EXPORT_LIMIT_ADDRESS = 143


async def _deye_site(
    hass: HomeAssistant, start_site: StartSite, options: dict[str, Any] | None = None
) -> tuple[SimulatedSite, MockConfigEntry]:
    site = await start_site(MODBUS_ONLY)
    entry = await setup_site(
        hass, [subentry("modbus", deye(site), subentry_id="deye", title="Deye")], options=options
    )
    return site, entry


async def _call(
    hass: HomeAssistant, domain: str, service: str, entity_id: str, user: MockUser, **data: Any
) -> None:
    await hass.services.async_call(
        domain,
        service,
        {"entity_id": entity_id, **data},
        blocking=True,
        context=Context(user_id=user.id),
    )


async def _refresh(entry: MockConfigEntry) -> None:
    await entry.runtime_data.devices["deye"].coordinator.async_refresh()


async def test_writes_are_applied_as_the_user_asked(
    hass: HomeAssistant, start_site: StartSite, hass_admin_user: MockUser
) -> None:
    _, entry = await _deye_site(hass, start_site, LIVE)
    await _call(hass, "select", "select_option", "select.deye_work_mode", hass_admin_user,
                option="selling_first")  # fmt: skip
    await _call(hass, "switch", "turn_off", "switch.deye_grid_export_enabled", hass_admin_user)
    await _call(hass, "number", "set_value", "number.deye_grid_export_limit", hass_admin_user,
                value=4000)  # fmt: skip
    await _refresh(entry)
    assert hass.states.get("select.deye_work_mode").state == "selling_first"
    assert hass.states.get("switch.deye_grid_export_enabled").state == "off"
    assert float(hass.states.get("number.deye_grid_export_limit").state) == 4000
    records = entry.runtime_data.audit.records()
    assert [(r["command"], r["outcome"], r["applied"]) for r in records] == [
        ("work_mode", "applied", "selling_first"),
        ("grid_export_enabled", "applied", 0),
        ("grid_export_limit_w", "applied", 4000),
    ]
    assert {(r["requested_by"], r["source"]) for r in records} == {
        (hass_admin_user.id, "ha_entity")
    }
    # The device already holds the limit: an EEPROM register is not written again.
    await _call(hass, "number", "set_value", "number.deye_grid_export_limit", hass_admin_user,
                value=4000)  # fmt: skip
    assert entry.runtime_data.audit.records()[-1]["outcome"] == "unchanged"


async def test_control_off_refuses_with_the_reason(
    hass: HomeAssistant, start_site: StartSite, hass_admin_user: MockUser
) -> None:
    _, entry = await _deye_site(hass, start_site)
    with pytest.raises(ServiceValidationError) as refused:
        await _call(hass, "switch", "turn_on", "switch.deye_battery_grid_charge_enabled",
                    hass_admin_user)  # fmt: skip
    assert refused.value.translation_key == "refused_control_disabled"
    assert refused.value.translation_placeholders["device"] == "Deye"
    (record,) = entry.runtime_data.audit.records()
    assert (record["outcome"], record["reason"]) == ("refused", "control_disabled")


async def test_dry_run_writes_nothing(
    hass: HomeAssistant, start_site: StartSite, hass_admin_user: MockUser
) -> None:
    _, entry = await _deye_site(hass, start_site, {"enable_control": True})
    await _call(hass, "select", "select_option", "select.deye_work_mode", hass_admin_user,
                option="selling_first")  # fmt: skip
    await _refresh(entry)
    assert hass.states.get("select.deye_work_mode").state == "zero_export_to_ct"
    (record,) = entry.runtime_data.audit.records()
    assert record["outcome"] == "dry_run"


async def test_a_device_that_fails_the_write(
    hass: HomeAssistant, start_site: StartSite, hass_admin_user: MockUser
) -> None:
    site, entry = await _deye_site(hass, start_site, LIVE)
    assert site.modbus_gateway is not None
    site.modbus_gateway.inject(
        Fault(FaultKind.EXCEPTION, code=4, unit=site.endpoints.deye_unit,
              space=RegisterSpace.HOLDING, addresses=(EXPORT_LIMIT_ADDRESS, EXPORT_LIMIT_ADDRESS))
    )  # fmt: skip
    with pytest.raises(HomeAssistantError) as failed:
        await _call(hass, "number", "set_value", "number.deye_grid_export_limit",
                    hass_admin_user, value=3000)  # fmt: skip
    assert failed.value.translation_key == "failed_device_error"
    assert entry.runtime_data.audit.records()[-1]["outcome"] == "failed"


async def test_release_button_hands_the_battery_back(
    hass: HomeAssistant, start_site: StartSite, hass_admin_user: MockUser
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    limits = {"max_charge_w": 2500, "max_discharge_w": 2500, "capacity_wh": 5000}
    entry = await setup_site(
        hass,
        [subentry("sunspec", sunspec(site), subentry_id="hybrid", title="Hybrid")],
        options={**LIVE, "batteries": {"hybrid": limits}},
    )
    dispatcher = entry.runtime_data.dispatcher
    (record,) = await dispatcher.dispatch(
        1000, requested_by="planner", source="test", asset_id="hybrid"
    )
    assert record.outcome == "applied"
    assert set(dispatcher.leases()) == {"hybrid"}
    await _call(hass, "button", "press", "button.hybrid_return_to_own_control", hass_admin_user)
    assert dispatcher.leases() == {}
    released = [r for r in entry.runtime_data.audit.records() if r["outcome"] == "released"]
    assert released
    assert {r["requested_by"] for r in released} == {hass_admin_user.id}


async def test_release_button_with_control_off(
    hass: HomeAssistant, start_site: StartSite, hass_admin_user: MockUser
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    await setup_site(hass, [subentry("sunspec", sunspec(site), subentry_id="hybrid")])
    with pytest.raises(ServiceValidationError) as refused:
        await _call(hass, "button", "press", "button.hybrid_return_to_own_control",
                    hass_admin_user)  # fmt: skip
    assert refused.value.translation_key == "refused_control_disabled"
