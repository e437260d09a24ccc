"""Config flow: the site, every device kind's subentry flow with each error, reconfigure,
reauthentication; each against a simulator on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from custom_components.edge_ems import config_flow
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
    ConfigSubentry,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from edge_ems.device import DeviceIdentity
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer
from edge_ems.sim.opcua_server import APPLICATION_URI, OpcUaBessSimulator, ServerSecurity
from edge_ems.sim.sunspec_dump import dump_image, read_dump
from edge_ems.sunspec.discovery import FoundModel
from edge_ems.sunspec.survey import ChainDevice
from tests.lib.bms.support import Mosquitto, free_port
from tests.lib.opcua.pki import CLIENT_URI, make_key_pair
from tests.lib.sunspec.conftest import DUMPS

from .support import (
    CAN_ONLY,
    DOMAIN,
    MODBUS_ONLY,
    MQTT_ONLY,
    OPCUA_ONLY,
    SUNSPEC_ONLY,
    StartSite,
    deye,
    meter,
    setup_site,
    subentry,
)


@pytest.fixture
async def site_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A loaded site without devices yet."""
    return await setup_site(hass, [])


@pytest.fixture(autouse=True)
def _quick_probe_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that does not answer is asked again; here without the second's wait."""
    monkeypatch.setattr(config_flow, "PROBE_RETRY_DELAY", 0.05)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _start(hass: HomeAssistant, entry: MockConfigEntry, kind: str) -> dict[str, Any]:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind), context={"source": SOURCE_USER}
    )


async def _reconfigure(hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, entry.subentries[subentry_id].subentry_type),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )


async def _submit(hass: HomeAssistant, result: dict[str, Any], data: dict[str, Any]) -> Any:
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


def _closed_port() -> int:
    return free_port()


# The site.


async def test_site_is_created_with_control_off(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_name": "My Home"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {"site_name": "My Home", "site_id": "my_home"}
    assert result["options"]["enable_control"] is False
    assert result["options"]["dry_run"] is True
    assert result["options"]["eeprom_daily_writes"] == 100
    assert result["result"].unique_id == "my_home"


async def test_site_id_must_be_new_and_usable(
    hass: HomeAssistant, site_entry: MockConfigEntry
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_name": "x", "site_id": "!!!"}
    )
    assert result["errors"] == {"site_id": "invalid_site_id"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_name": "Home again", "site_id": "home"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_site_is_renamed_and_keeps_its_id(
    hass: HomeAssistant, site_entry: MockConfigEntry
) -> None:
    result = await site_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_name": "Cottage"}
    )
    assert result["reason"] == "reconfigure_successful"
    assert site_entry.title == "Cottage"
    assert site_entry.data == {"site_name": "Cottage", "site_id": "home"}


# SunSpec.


async def test_sunspec_device_is_identified_and_added(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    ends = site.endpoints
    result = await _start(hass, site_entry, "sunspec")
    assert result["type"] is FlowResultType.FORM
    where = {"host": ends.host, "port": ends.sunspec_port, "unit_id": ends.sunspec_unit}
    result = await _submit(hass, result, where)
    # The chain holds the inverter and, after it, its grid meter: the flow offers each.
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "chain")
    [field] = result["data_schema"].schema.values()
    labels = [option["label"] for option in field.config["options"]]
    assert labels == [
        "Edge EMS Simulated hybrid inverter, serial …0001 (models 1, 103, 120, 121, 122, 123, "
        "124, 160, 802)",
        "Edge EMS Simulated grid meter, serial …0002 (models 1, 203)",
    ]
    result = await _submit(hass, result, {"device_index": "0"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Edge EMS Simulated hybrid inverter"
    (added,) = site_entry.subentries.values()
    assert added.unique_id == "edge_ems_SIM-0001"
    assert added.data["device_index"] == 0
    # Adding the device reloads the site with it.
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED
    assert added.subentry_id in site_entry.runtime_data.devices

    meter = await _start(hass, site_entry, "sunspec")
    meter = await _submit(hass, meter, where)
    meter = await _submit(hass, meter, {"device_index": "1"})
    assert (meter["type"], meter["title"]) == (
        FlowResultType.CREATE_ENTRY,
        "Edge EMS Simulated grid meter",
    )
    await hass.async_block_till_done()
    [metered] = [s for s in site_entry.subentries.values() if s.unique_id == "edge_ems_SIM-0002"]
    readings = site_entry.runtime_data.devices[metered.subentry_id].coordinator.data
    assert "grid_power_w" in readings

    again = await _start(hass, site_entry, "sunspec")
    again = await _submit(hass, again, {**where, "base_address": 40000})
    again = await _submit(hass, again, {"device_index": "0"})
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"


async def test_a_sunspec_device_alone_in_its_chain_is_added_at_once(
    hass: HomeAssistant, site_entry: MockConfigEntry
) -> None:
    # A real SolarEdge inverter's registers, as it answered them.
    registers = await hass.async_add_executor_job(read_dump, DUMPS / "solaredge_20191001.txt")
    async with ModbusSimServer({1: dump_image(registers)}) as server:
        _, port = await server.start_tcp("127.0.0.1", 0)
        result = await _start(hass, site_entry, "sunspec")
        result = await _submit(hass, result, {"host": "127.0.0.1", "port": port, "unit_id": 1})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["title"].startswith("SolarEdge")
        assert result["data"]["device_index"] == 0
        await hass.async_block_till_done()


def test_a_chain_device_that_does_not_say_who_it_is_is_shown_by_its_models() -> None:
    models = (FoundModel(1, 40002, 66), FoundModel(203, 40070, 105))
    device = ChainDevice(index=1, models=models, identity=None)
    assert config_flow._chain_label(device) == "Device 2 (models 1, 203)"


async def test_a_device_that_misses_the_first_request_is_still_found(
    hass: HomeAssistant,
    site_entry: MockConfigEntry,
    start_site: StartSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = await start_site(SUNSPEC_ONLY)
    ends = site.endpoints
    port = _closed_port()
    proxies: list[asyncio.Server] = []

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            ends.host, ends.sunspec_port
        )

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(4096):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def late_answer() -> None:
        # The gateway comes up only after the flow's first request went unanswered.
        await asyncio.sleep(0.3)
        proxies.append(await asyncio.start_server(forward, "127.0.0.1", port))

    monkeypatch.setattr(config_flow, "PROBE_RETRY_DELAY", 1.0)
    late = asyncio.create_task(late_answer())
    result = await _start(hass, site_entry, "sunspec")
    result = await _submit(hass, result, {"host": "127.0.0.1", "port": port, "unit_id": 1})
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "chain")
    await late
    for proxy in proxies:
        proxy.close()


async def test_sunspec_errors(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite, silent_server: int
) -> None:
    site = await start_site(MODBUS_ONLY)
    ends = site.endpoints
    result = await _start(hass, site_entry, "sunspec")
    result = await _submit(
        hass, result, {"host": "127.0.0.1", "port": _closed_port(), "unit_id": 1}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    # The Deye answers Modbus, but holds no SunSpec map.
    result = await _submit(
        hass,
        result,
        {"host": ends.host, "port": ends.modbus_gateway_port, "unit_id": ends.meter_unit},
    )
    assert result["errors"] == {"base": "not_sunspec"}
    result = await _submit(hass, result, {"host": "127.0.0.1", "port": silent_server, "unit_id": 1})
    assert result["errors"] == {"base": "timeout"}


# Point-map Modbus devices.


async def test_modbus_devices_behind_one_gateway_share_its_link(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    for data in (deye(site), meter(site)):
        result = await _start(hass, site_entry, "modbus")
        result = await _submit(
            hass, result, {"point_map": data["point_map"], "transport": data["transport"]}
        )
        assert result["step_id"] == "network"
        result = await _submit(
            hass, result, {"host": data["host"], "port": data["port"], "unit_id": data["unit_id"]}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY, result
        await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED
    devices = site_entry.runtime_data.devices.values()
    links = {member.member.device.link for member in devices}  # type: ignore[attr-defined]
    assert len(devices) == 2
    assert len(links) == 1


async def test_a_probe_on_the_sites_link_outlives_a_reload(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite
) -> None:
    """A device added while the site is still being set up queues a reload; the next device's
    probe, on the site's own link to the gateway, is not cut off when that reload runs."""
    site = await start_site(MODBUS_ONLY)
    setup = site_entry.setup_lock
    await setup.acquire()  # the site being set up (again)
    try:
        hass.config_entries.async_add_subentry(
            site_entry,
            ConfigSubentry(data=MappingProxyType(deye(site)), subentry_type="modbus",
                           title="Deye", unique_id="deye"),
        )  # fmt: skip
        await asyncio.sleep(0.1)  # the reload it asks for waits for the setup
        data = meter(site)
        result = await _start(hass, site_entry, "modbus")
        result = await _submit(
            hass, result, {"point_map": data["point_map"], "transport": data["transport"]}
        )
        slow = site.modbus_gateway.inject(
            Fault(FaultKind.DELAY, delay=0.5, unit=site.endpoints.meter_unit)
        )
        network = {"host": data["host"], "port": data["port"], "unit_id": data["unit_id"]}
        probing = hass.async_create_task(_submit(hass, result, network))
        await asyncio.sleep(0.1)
    finally:
        setup.release()  # the queued reload runs
    result = await probing
    site.modbus_gateway.clear_faults()
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    assert slow.hits
    assert site_entry.state is ConfigEntryState.LOADED
    assert len(site_entry.runtime_data.devices) == 2


async def test_modbus_rtu_over_tcp(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    data = meter(site, rtu_over_tcp=True)
    result = await _start(hass, site_entry, "modbus")
    result = await _submit(
        hass, result, {"point_map": data["point_map"], "transport": data["transport"]}
    )
    result = await _submit(
        hass, result, {"host": data["host"], "port": data["port"], "unit_id": data["unit_id"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["transport"] == "rtu_over_tcp"
    assert result["title"] == "Eastron SDM630 Modbus V2"


async def test_modbus_errors(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    data = deye(site)
    result = await _start(hass, site_entry, "modbus")
    result = await _submit(hass, result, {"point_map": "deye_sun_sg_hybrid_hv", "transport": "tcp"})
    result = await _submit(
        hass, result, {"host": data["host"], "port": data["port"], "unit_id": data["unit_id"]}
    )
    assert result["errors"] == {"base": "map_mismatch"}
    result = await _submit(
        hass, result, {"host": data["host"], "port": _closed_port(), "unit_id": data["unit_id"]}
    )
    assert result["errors"] == {"base": "cannot_connect"}


async def test_a_device_is_added_to_a_site_that_is_not_loaded(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    data = deye(site)
    entry = MockConfigEntry(
        domain=DOMAIN, title="Home", unique_id="home", data={"site_id": "home", "site_name": "Home"}
    )
    entry.add_to_hass(hass)  # not set up: the probe opens (and closes) links of its own
    assert entry.state is ConfigEntryState.NOT_LOADED
    result = await _start(hass, entry, "modbus")
    result = await _submit(hass, result, {"point_map": data["point_map"], "transport": "tcp"})
    result = await _submit(
        hass, result, {"host": data["host"], "port": data["port"], "unit_id": data["unit_id"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_modbus_serial_port_that_does_not_exist(
    hass: HomeAssistant, site_entry: MockConfigEntry
) -> None:
    result = await _start(hass, site_entry, "modbus")
    result = await _submit(hass, result, {"point_map": "eastron_sdm630", "transport": "rtu"})
    assert result["step_id"] == "serial"
    result = await _submit(
        hass,
        result,
        {"serial_port": "/dev/ttyEDGEEMSNONE", "baudrate": 9600, "parity": "none", "unit_id": 1},
    )
    assert result["errors"] == {"base": "cannot_connect"}


async def test_modbus_reconfigure_keeps_the_device(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(MODBUS_ONLY)
    entry = await setup_site(hass, [subentry("modbus", deye(site), subentry_id="deye")])
    identity = entry.runtime_data.devices["deye"].member.device.identity
    assert identity is not None
    unique_id = config_flow._unique_id("modbus", deye(site), identity)
    hass.config_entries.async_update_subentry(entry, entry.subentries["deye"], unique_id=unique_id)
    await hass.async_block_till_done()
    result = await _reconfigure(hass, entry, "deye")
    assert result["step_id"] == "user"
    result = await _submit(hass, result, {"point_map": "deye_sun_sg_hybrid", "transport": "tcp"})
    data = deye(site)
    result = await _submit(hass, result, {"host": data["host"], "port": data["port"], "unit_id": 1})
    assert result["type"] is FlowResultType.ABORT, result
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries["deye"].data["unit_id"] == 1
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # Another device at the new address is refused: it is not the one configured.
    result = await _reconfigure(hass, entry, "deye")
    result = await _submit(hass, result, {"point_map": "eastron_sdm630", "transport": "tcp"})
    ends = site.endpoints
    result = await _submit(
        hass,
        result,
        {"host": ends.host, "port": ends.modbus_gateway_port, "unit_id": ends.meter_unit},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"


# MQTT BMS through Home Assistant's MQTT.


async def test_mqtt_bms_needs_home_assistant_mqtt(
    hass: HomeAssistant, site_entry: MockConfigEntry
) -> None:
    result = await _start(hass, site_entry, "mqtt_bms")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_configured"


async def test_mqtt_bms_is_heard_through_home_assistant_mqtt(
    hass: HomeAssistant,
    ha_mqtt: Mosquitto,
    site_entry: MockConfigEntry,
    start_site: StartSite,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    site = await start_site(MQTT_ONLY, mqtt=(ha_mqtt.host, ha_mqtt.port))
    monkeypatch.setattr(config_flow, "FIRST_DATA_TIMEOUT", 2.0)
    result = await _start(hass, site_entry, "mqtt_bms")
    result = await _submit(hass, result, {"topic_map": "esphome_jk_bms"})
    assert result["step_id"] == "topics"
    result = await _submit(hass, result, {"topic_prefix": "nobody/publishes/here"})
    assert result["errors"] == {"base": "no_data"}
    monkeypatch.setattr(config_flow, "FIRST_DATA_TIMEOUT", 60.0)
    result = await _submit(hass, result, dict(site.endpoints.mqtt_variables))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["data"]["variables"]["topic_prefix"] == "edge-ems-sim/jk-bms"
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED


async def test_mqtt_bms_with_a_keepalive_needs_concrete_variables(
    hass: HomeAssistant, ha_mqtt: Mosquitto, site_entry: MockConfigEntry
) -> None:
    result = await _start(hass, site_entry, "mqtt_bms")
    result = await _submit(hass, result, {"topic_map": "venus_os_battery"})
    result = await _submit(hass, result, {"portal_id": "+", "instance": "512"})
    assert result["errors"] == {"base": "variables_needed"}


# CAN BMS.


async def test_can_bms_is_heard_on_the_bus(
    hass: HomeAssistant,
    site_entry: MockConfigEntry,
    start_site: StartSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = await start_site(CAN_ONLY)
    monkeypatch.setattr(config_flow, "FIRST_DATA_TIMEOUT", 2.0)
    result = await _start(hass, site_entry, "can_bms")
    result = await _submit(hass, result, {"interface": "no-such-interface", "channel": "x"})
    assert result["errors"] == {"base": "cannot_connect"}
    result = await _submit(hass, result, {"interface": "virtual", "channel": "edge-ems-silent"})
    assert result["errors"] == {"base": "no_data"}
    monkeypatch.setattr(config_flow, "FIRST_DATA_TIMEOUT", 60.0)
    result = await _submit(
        hass, result, {"interface": "virtual", "channel": site.endpoints.can_channel}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["title"] == "PYLON Pylontech-compatible CAN BMS"
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED


# OPC UA.


@pytest.fixture
async def guarded_bess(hass: HomeAssistant, opcua_cache: Path) -> AsyncIterator[OpcUaBessSimulator]:
    """An OPC UA BESS that wants a user name and password; clients leave before it stops."""
    server = OpcUaBessSimulator(
        port=free_port(), users={"operator": "s3cret"}, address_space_cache=opcua_cache
    )
    await server.start()
    yield server
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


@pytest.mark.parametrize("expected_lingering_tasks", [True])  # see below
async def test_opcua_device_is_added(
    hass: HomeAssistant, site_entry: MockConfigEntry, start_site: StartSite, silent_server: int
) -> None:
    site = await start_site(OPCUA_ONLY)
    result = await _start(hass, site_entry, "opcua")
    result = await _submit(
        hass, result, {"url": f"opc.tcp://127.0.0.1:{_closed_port()}/", "node_map": "sim_bess"}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await _submit(
        hass, result, {"url": f"opc.tcp://127.0.0.1:{silent_server}/", "node_map": "sim_bess"}
    )
    assert result["errors"] == {"base": "timeout"}
    result = await _submit(hass, result, {"url": site.endpoints.opcua_url, "node_map": "sim_bess"})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["title"] == "Edge EMS Simulated BESS"


# asyncua's server keeps a timer for each refused login's session until the session would
# time out; it belongs to the simulated server, not to the integration.
@pytest.mark.parametrize("expected_lingering_tasks", [True])
async def test_opcua_credentials_are_checked_and_asked_again(
    hass: HomeAssistant, site_entry: MockConfigEntry, guarded_bess: OpcUaBessSimulator
) -> None:
    result = await _start(hass, site_entry, "opcua")
    wrong = {"url": guarded_bess.url, "node_map": "sim_bess", "username": "operator",
             "password": "wrong"}  # fmt: skip
    result = await _submit(hass, result, wrong)
    assert result["errors"] == {"base": "invalid_auth"}
    result = await _submit(hass, result, {**wrong, "password": "s3cret"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED
    (added,) = site_entry.subentries.values()

    # The password changes on the server's side: the site asks for it again, and runs
    # meanwhile with that device unavailable.
    hass.config_entries.async_update_subentry(
        site_entry, added, data={**added.data, "password": "outdated"}
    )
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED
    assert not site_entry.runtime_data.devices[added.subentry_id].coordinator.last_update_success
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == "reauth"
    assert flow["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"username": "operator", "password": "still wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"username": "operator", "password": "s3cret"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED

    # Asked again while the site runs (a password rotated by policy, say): it reloads.
    result = await site_entry.start_reauth_flow(hass, data={"subentry_id": added.subentry_id})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"username": "operator", "password": "s3cret"}
    )
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert site_entry.state is ConfigEntryState.LOADED


async def test_reauth_of_a_site_without_credentials(
    hass: HomeAssistant, site_entry: MockConfigEntry
) -> None:
    result = await site_entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_not_needed"


def test_devices_without_a_serial_number_are_known_by_where_they_answer() -> None:
    identity = DeviceIdentity("Maker", "Model")
    assert config_flow._unique_id("opcua", {"url": "opc.tcp://bess:4840"}, identity) == (
        "opcua_opc.tcp://bess:4840"
    )
    serial = {"serial_port": "/dev/ttyUSB0", "unit_id": 3}
    assert config_flow._unique_id("modbus", serial, identity) == "modbus_/dev/ttyUSB0_3"
    network = {"host": "gw", "port": 502, "unit_id": 3}
    assert config_flow._unique_id("modbus", network, identity) == "modbus_gw:502_3"


@pytest.mark.parametrize("expected_lingering_tasks", [True])  # asyncua's server, see above
async def test_opcua_over_a_secure_channel(
    hass: HomeAssistant, site_entry: MockConfigEntry, opcua_cache: Path, tmp_path: Path
) -> None:
    server_keys = await hass.async_add_executor_job(
        make_key_pair, tmp_path, "server", APPLICATION_URI, ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_keys = await hass.async_add_executor_job(
        make_key_pair, tmp_path, "client", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH
    )
    server = OpcUaBessSimulator(
        port=free_port(),
        security=ServerSecurity(server_keys.certificate, server_keys.private_key),
        address_space_cache=opcua_cache,
    )
    await server.start()
    try:
        result = await _start(hass, site_entry, "opcua")
        plain = {"url": server.url, "node_map": "sim_bess"}
        result = await _submit(hass, result, plain)
        assert result["errors"] == {"base": "cannot_connect"}  # no unsecured endpoint
        result = await _submit(hass, result, {**plain, "security": "basic256sha256_signandencrypt"})
        assert result["step_id"] == "security"
        missing = {
            "certificate": str(tmp_path / "none.der"),
            "private_key": str(tmp_path / "none.pem"),
            "application_uri": CLIENT_URI,
        }
        result = await _submit(hass, result, missing)
        assert result["errors"] == {"base": "cannot_connect"}
        result = await _submit(
            hass,
            result,
            {"certificate": str(client_keys.certificate),
             "private_key": str(client_keys.private_key), "application_uri": CLIENT_URI},
        )  # fmt: skip
        assert result["type"] is FlowResultType.CREATE_ENTRY, result
        await hass.async_block_till_done()
        assert site_entry.state is ConfigEntryState.LOADED
        (member,) = site_entry.runtime_data.devices.values()
        assert member.coordinator.data["soc_pct"].value is not None
    finally:
        await hass.config_entries.async_unload(site_entry.entry_id)
        await server.stop()
