"""Diagnostics: redacted, and with register dumps a simulator serves again to the same
readings."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import paths, props

from edge_ems.device import Device
from edge_ems.modbus import LinkRegistry, ModbusDevice, TcpEndpoint
from edge_ems.modbus.dump import REDACTED
from edge_ems.pointmap import PointType, load_catalog
from edge_ems.sim.modbus_server import ModbusSimServer, UnitImage
from edge_ems.sunspec import LinkUnit, SunSpecDevice

from .support import CAN_ONLY, SUNSPEC_ONLY, StartSite, can_bms, deye, setup_site, subentry, sunspec

# The plant settles once and then holds still, so a dump and a read see the same values.
STILL = dataclasses.replace(SUNSPEC_ONLY, tick=3600.0)
MOVING = ("readings", "registers", "last_seen", "timestamp", "id", "audit", "leases", "port",
          "channel")  # fmt: skip
# When a CAN battery was last heard, and whether it named its maker yet, depends on timing.
TIMED = ("devices.can.health", "devices.can.identity")


_moving, _timed = props(*MOVING), paths(*TIMED)


def _excluded(prop: Any, path: Any) -> bool:
    return bool(_moving(prop=prop, path=path) or _timed(prop=prop, path=path))


CATALOG = load_catalog()


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    start_site: StartSite,
    snapshot: SnapshotAssertion,
) -> None:
    site = await start_site(STILL)
    can_site = await start_site(CAN_ONLY)
    entry = await setup_site(
        hass,
        [subentry("modbus", deye(site), subentry_id="deye"),
         subentry("sunspec", sunspec(site), subentry_id="hybrid"),
         subentry("can_bms", can_bms(can_site), subentry_id="can")],
    )  # fmt: skip
    for member in entry.runtime_data.devices.values():
        await member.coordinator.async_refresh()
    can = entry.runtime_data.devices["can"].coordinator

    async def heard() -> bool:
        # The battery's frames come every second: what it learned is steady once heard.
        await can.async_refresh()
        return bool(can.data) and "device_manufacturer" in can.data

    async with asyncio.timeout(30):
        while not await heard():  # noqa: ASYNC110 - the frames come on their own clock
            await asyncio.sleep(0.2)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics == snapshot(exclude=_excluded)
    devices: dict[str, Any] = diagnostics["devices"]  # type: ignore[assignment]
    assert devices["deye"]["config"]["host"] == "**REDACTED**"
    assert devices["hybrid"]["readings"]["device_serial"] == "**REDACTED**"
    assert devices["can"]["registers"] is None

    for device_id in ("deye", "hybrid"):
        replayed = await _replay(
            entry.runtime_data.devices[device_id].member.device, devices[device_id]
        )
        shown = {k: v for k, v in devices[device_id]["readings"].items() if v != "**REDACTED**"}
        assert {k: v for k, v in replayed.items() if k in shown} == shown


async def _replay(original: Device, diagnostics: dict[str, Any]) -> dict[str, Any]:
    """Serve a device's dumped registers from a simulator and read them as the device."""
    dump = diagnostics["registers"]
    unit = 1
    # Redacted registers hold "**" (see pointmaps/README.md): the dump replays as it is.
    async with ModbusSimServer({unit: UnitImage.from_dump(dump)}) as server:
        host, port = await server.start_tcp()
        links = LinkRegistry()
        link = links.link(TcpEndpoint(host, port))
        device: Device
        if isinstance(original, ModbusDevice):
            device = ModbusDevice(link, original.point_map, unit_id=unit)
        else:
            device = SunSpecDevice(
                LinkUnit(link, unit),
                base_address=dump["base"],
                device_index=dump.get("device_index", 0),
            )
        try:
            await device.connect()
            readings = await device.read()
        finally:
            await device.close()
            await links.close()
    return {metric: reading.value for metric, reading in readings.items()}


SERIAL_TEXT = "SN1234567890"
SERIAL_NUMBER = 987654321
"""Serial numbers the simulated devices below carry: they must appear nowhere."""


@pytest.mark.parametrize("map_id", sorted(CATALOG))
async def test_no_catalog_map_lets_a_private_register_out(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, map_id: str
) -> None:
    point_map = CATALOG[map_id]
    private = [point for point in point_map.points.values() if point.private]
    values = {
        point.metric: SERIAL_TEXT[: point.registers * 2] if point.type is PointType.STRING
        else SERIAL_NUMBER
        for point in private
    }  # fmt: skip
    image = UnitImage.from_point_map(point_map, values)
    unit = point_map.device.default_unit_id
    async with ModbusSimServer({unit: image}) as server:
        _, port = await server.start_tcp("127.0.0.1", 0)
        data = {"point_map": map_id, "transport": "tcp", "host": "127.0.0.1", "port": port,
                "unit_id": unit}  # fmt: skip
        entry = await setup_site(hass, [subentry("modbus", data, subentry_id="device")])
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        await hass.config_entries.async_unload(entry.entry_id)
    text = json.dumps(diagnostics)
    assert SERIAL_TEXT[:4] not in text
    assert str(SERIAL_NUMBER) not in text
    dump = diagnostics["devices"]["device"]["registers"]  # type: ignore[index]
    for point in private:
        space = dump["spaces"][str(point.space)]
        for address in range(point.address, point.end + 1):
            assert space[str(address)] == REDACTED, (point.metric, address)
    redacted = dump.get("redacted", {})
    assert set(redacted) == {str(point.space) for point in private}
