"""A point-map device on an RS-485 line (RTU on a serial port), a socat pty pair standing in
for the adapter; devices on one line must agree on its settings."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from edge_ems.pointmap import catalog_paths, load_point_map
from edge_ems.sim.modbus_server import ModbusSimServer, UnitImage

from .support import eventually, setup_site

METER_UNIT = 7


@pytest.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Two serial ports wired to each other."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not installed (apt-get install socat)")
    ends = (str(tmp_path / "line-sim"), str(tmp_path / "line-ha"))
    process = await asyncio.create_subprocess_exec(
        socat,
        f"pty,raw,echo=0,link={ends[0]}",
        f"pty,raw,echo=0,link={ends[1]}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: all(Path(end).exists() for end in ends), bool)
        yield ends
    finally:
        process.terminate()
        await process.wait()


@pytest.fixture
async def meter_on_line(hass: HomeAssistant, pty_pair: tuple[str, str]) -> AsyncIterator[str]:
    """An SDM630 answering RTU at 9600 baud; yields the port Home Assistant uses."""
    point_map = await hass.async_add_executor_job(load_point_map, catalog_paths()["eastron_sdm630"])
    image = UnitImage.from_point_map(point_map, {"device_serial": 1234567})
    server = ModbusSimServer({METER_UNIT: image}, line_baudrate=9600)
    await server.start_serial(pty_pair[0], baudrate=9600)
    yield pty_pair[1]
    for entry in hass.config_entries.async_entries("edge_ems"):
        await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def _add_serial_device(hass: HomeAssistant, entry_id: str, port: str, baud: int) -> dict:
    result = await hass.config_entries.subentries.async_init(
        (entry_id, "modbus"), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"point_map": "eastron_sdm630", "transport": "rtu"}
    )
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"serial_port": port, "baudrate": baud, "parity": "none", "unit_id": METER_UNIT},
    )


async def test_meter_on_a_serial_line(hass: HomeAssistant, meter_on_line: str) -> None:
    entry = await setup_site(hass, [])
    result = await _add_serial_device(hass, entry.entry_id, meter_on_line, 9600)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["data"]["serial_port"] == meter_on_line
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (member,) = entry.runtime_data.devices.values()
    assert member.coordinator.data["grid_power_w"].value is not None

    # One line cannot run at two speeds: a second device at another baud rate is refused.
    result = await _add_serial_device(hass, entry.entry_id, meter_on_line, 19200)
    assert result["errors"] == {"base": "link_conflict"}
