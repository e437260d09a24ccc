"""The site entry's life: setup, unload and reload, unreachable devices, repairs, options."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from custom_components.edge_ems import async_remove_config_entry_device
from custom_components.edge_ems import coordinator as coordinator_module
from custom_components.edge_ems.const import DOMAIN
from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import UpdateFailed

from edge_ems.sim.modbus_server import Fault, FaultKind
from tests.lib.bms.support import free_port

from .support import (
    MODBUS_ONLY,
    SUNSPEC_ONLY,
    StartSite,
    deye,
    eventually,
    meter,
    setup_site,
    subentry,
    sunspec,
)


async def test_unload_and_reload(hass: HomeAssistant, start_site: StartSite) -> None:
    site = await start_site(MODBUS_ONLY)
    entry = await setup_site(hass, [subentry("modbus", deye(site), subentry_id="deye")])
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get("sensor.deye_soc").state == STATE_UNAVAILABLE
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.deye_soc").state == "55"


async def test_device_goes_unavailable_and_comes_back(
    hass: HomeAssistant, start_site: StartSite, caplog: pytest.LogCaptureFixture
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    entry = await setup_site(
        hass,
        [subentry("modbus", deye(site), subentry_id="deye"),
         subentry("sunspec", sunspec(site), subentry_id="hybrid")],
    )  # fmt: skip
    coordinator = entry.runtime_data.devices["hybrid"].coordinator
    server = site.sunspec_server
    assert server is not None
    host, port = server.address
    await server.stop()
    caplog.set_level(logging.INFO)
    for _ in range(3):
        await coordinator.async_refresh()
    assert hass.states.get("sensor.hybrid_soc").state == STATE_UNAVAILABLE
    # The Deye behind the other link stays available.
    assert hass.states.get("sensor.deye_soc").state != STATE_UNAVAILABLE
    await server.start_tcp(host, port)
    await coordinator.async_refresh()
    assert hass.states.get("sensor.hybrid_soc").state != STATE_UNAVAILABLE
    down = [r for r in caplog.records if "Error fetching hybrid" in r.getMessage()]
    up = [r for r in caplog.records if "Fetching hybrid data recovered" in r.getMessage()]
    assert (len(down), len(up)) == (1, 1)
    # One line says which device, once, and why.
    assert down[0].getMessage().count("hybrid") == 1
    assert "could not connect" in down[0].getMessage()


async def test_unreachable_for_hours_raises_a_repair(
    hass: HomeAssistant, start_site: StartSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    entry = await setup_site(hass, [subentry("sunspec", sunspec(site), subentry_id="hybrid")])
    coordinator = entry.runtime_data.devices["hybrid"].coordinator
    server = site.sunspec_server
    assert server is not None
    host, port = server.address
    await server.stop()
    issues = ir.async_get(hass)
    await coordinator.async_refresh()
    assert issues.async_get_issue(DOMAIN, "device_unreachable_hybrid") is None
    # Hours pass (the loop's clock cannot be moved while the link keeps real time).
    monkeypatch.setattr(coordinator_module, "UNREACHABLE_AFTER", timedelta(0))
    await coordinator.async_refresh()
    issue = issues.async_get_issue(DOMAIN, "device_unreachable_hybrid")
    assert issue is not None
    assert issue.translation_key == "device_unreachable"
    await server.start_tcp(host, port)
    await coordinator.async_refresh()
    assert issues.async_get_issue(DOMAIN, "device_unreachable_hybrid") is None


async def test_a_device_that_cannot_be_reached_keeps_no_other_from_loading(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    away = {"point_map": "eastron_sdm630", "transport": "tcp", "host": "127.0.0.1",
            "port": free_port(), "unit_id": 1}  # fmt: skip
    entry = await setup_site(
        hass,
        [subentry("modbus", deye(site), subentry_id="deye"),
         subentry("modbus", away, subentry_id="meter")],
    )  # fmt: skip
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.deye_soc").state == "55"
    # What the meter's map declares is there, unavailable until it answers.
    assert hass.states.get("sensor.meter_grid_power").state == STATE_UNAVAILABLE


async def test_a_device_unlike_its_map_raises_a_repair(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    data = {**deye(site), "point_map": "deye_sun_sg_hybrid_hv"}
    await setup_site(hass, [subentry("modbus", data, subentry_id="deye")])
    assert hass.states.get("sensor.deye_soc").state == STATE_UNAVAILABLE
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "map_mismatch_deye")
    assert issue is not None
    assert issue.translation_key == "map_mismatch"


async def test_a_map_the_catalog_lacks_is_a_setup_error(hass: HomeAssistant) -> None:
    data = {"point_map": "no_such_map", "transport": "tcp", "host": "127.0.0.1",
            "port": 502, "unit_id": 1}  # fmt: skip
    entry = await setup_site(hass, [subentry("modbus", data)], expect_loaded=False)
    assert entry.state is ConfigEntryState.SETUP_ERROR


async def test_options_set_the_policy_and_battery_limits(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    entry = await setup_site(
        hass,
        [subentry("sunspec", sunspec(site), subentry_id="hybrid"),
         subentry("modbus", deye(site), subentry_id="deye")],
    )  # fmt: skip
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"enable_control": True, "dry_run": True, "lease_ttl": 30, "eeprom_daily_writes": 10},
    )
    # Only the SunSpec hybrid takes battery power setpoints.
    assert result["step_id"] == "battery"
    assert result["description_placeholders"] == {"device": "hybrid"}
    limits = {"max_charge_w": 2000, "max_discharge_w": 2500, "capacity_wh": 5000}
    result = await hass.config_entries.options.async_configure(result["flow_id"], limits)
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.options["batteries"] == {"hybrid": limits}
    policy = entry.runtime_data.dispatcher.policy
    assert (policy.enable_control, policy.dry_run, policy.lease_ttl) == (True, True, 30)
    assert policy.eeprom_daily_writes == 10
    # Control is on, but dry run writes nothing: a repair says so.
    issue_id = f"control_in_dry_run_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"enable_control": True, "dry_run": False, "lease_ttl": 30, "eeprom_daily_writes": 10},
    )
    suggested = {
        str(key): key.description["suggested_value"] for key in result["data_schema"].schema
    }
    assert suggested == limits  # the limits given before
    await hass.config_entries.options.async_configure(result["flow_id"], limits)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    records = await entry.runtime_data.dispatcher.dispatch(
        5000, requested_by="test", source="test", asset_id="hybrid"
    )
    assert [(r.outcome, r.applied) for r in records] == [("applied", 2500)]
    await entry.runtime_data.dispatcher.release(requested_by="test", source="test")


async def test_options_of_a_site_that_is_not_loaded(hass: HomeAssistant) -> None:
    data = {"point_map": "no_such_map", "transport": "tcp", "host": "127.0.0.1",
            "port": free_port(), "unit_id": 1}  # fmt: skip
    entry = await setup_site(hass, [subentry("modbus", data)], expect_loaded=False)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"enable_control": False, "dry_run": True, "lease_ttl": 60, "eeprom_daily_writes": 100},
    )
    assert result["type"] == "create_entry"
    assert result["data"]["batteries"] == {}


async def test_removing_a_device(hass: HomeAssistant, start_site: StartSite) -> None:
    site = await start_site(MODBUS_ONLY)
    entry = await setup_site(
        hass,
        [subentry("modbus", deye(site), subentry_id="deye"),
         subentry("modbus", meter(site), subentry_id="meter")],
    )  # fmt: skip
    registry = dr.async_get(hass)
    meter_device = registry.async_get_device_by_identifier((DOMAIN, "meter"), entry.entry_id)
    assert meter_device is not None
    # A device its subentry still describes cannot be removed by hand.
    assert not await async_remove_config_entry_device(hass, entry, meter_device)
    hass.config_entries.async_remove_subentry(entry, "meter")
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert set(entry.runtime_data.devices) == {"deye"}
    assert registry.async_get_device_by_identifier((DOMAIN, "meter"), entry.entry_id) is None
    assert await async_remove_config_entry_device(hass, entry, meter_device)
    await eventually(lambda: entry.state, lambda state: state is ConfigEntryState.LOADED)
    assert await hass.config_entries.async_remove(entry.entry_id)


async def test_a_busy_device_is_asked_again_later(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    entry = await setup_site(hass, [subentry("modbus", meter(site), subentry_id="meter")])
    coordinator = entry.runtime_data.devices["meter"].coordinator
    assert site.modbus_gateway is not None
    # Modbus exception 6: server device busy.
    site.modbus_gateway.inject(Fault(FaultKind.EXCEPTION, code=6, unit=site.endpoints.meter_unit))
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert isinstance(coordinator.last_exception, UpdateFailed)
    assert coordinator.last_exception.retry_after is not None
    site.modbus_gateway.clear_faults()
    await coordinator.async_refresh()
    assert coordinator.last_update_success


async def test_devices_added_in_quick_succession_all_join(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(SUNSPEC_ONLY)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes every request, answers none

    # A device that never answers keeps each setup busy for seconds: the devices below are
    # added while the site is being set up again for the one before.
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    mute = {**deye(site), "port": server.sockets[0].getsockname()[1]}
    try:
        entry = await setup_site(hass, [subentry("modbus", mute, subentry_id="mute")])
        added = [
            ("deye", "modbus", deye(site)),
            ("meter", "modbus", meter(site)),
            ("meter_rtu", "modbus", meter(site, rtu_over_tcp=True)),
            ("hybrid", "sunspec", sunspec(site)),
        ]
        for key, kind, data in added:
            hass.config_entries.async_add_subentry(
                entry,
                ConfigSubentry(data=MappingProxyType(data), subentry_type=kind, title=key,
                               unique_id=key),
            )  # fmt: skip
            await asyncio.sleep(0.1)  # about as fast as a person clicks through the flows
        await hass.async_block_till_done()
        await eventually(
            lambda: entry.state is ConfigEntryState.LOADED
            and set(entry.runtime_data.devices) == set(entry.subentries)
        )
        assert len(entry.runtime_data.devices) == 5
    finally:
        server.close()


async def test_removing_the_site_removes_its_files(
    hass: HomeAssistant, start_site: StartSite, hass_storage: dict[str, Any]
) -> None:
    site = await start_site(MODBUS_ONLY)
    hub = {"hub": f"127.0.0.1:{free_port()}", "hub_token": "t" * 24}  # nothing listens
    entry = await setup_site(
        hass, [subentry("modbus", deye(site), subentry_id="deye")], options=hub
    )
    folder = Path(hass.config.path(".storage", DOMAIN, entry.entry_id))
    learned = f"{DOMAIN}.learned.{entry.entry_id}"
    assert await hass.async_add_executor_job(folder.is_dir)
    await hass.config_entries.async_unload(entry.entry_id)  # keeps what was learned
    assert "deye" in hass_storage[learned]["data"]
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not await hass.async_add_executor_job(folder.exists)
    assert learned not in hass_storage
