"""A device that goes away: its link notes (in debug: the device's poll reports outages) one
line when it goes down and one when it is back, and none of pymodbus's own lines pass in
between; reconnection attempts held back, never beyond the poll interval."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient

from edge_ems.exceptions import DeviceConnectionError
from edge_ems.modbus import LinkSettings, ModbusDevice, ModbusLink, TcpEndpoint
from edge_ems.pointmap import PointMap, PollGroup
from edge_ems.sim.modbus_server import ModbusSimServer

from ..bms.support import free_port
from .conftest import hybrid_image

FAST = [PollGroup.FAST]


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith(name)]


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        line
        for line in lines(caplog, "edge_ems.modbus")
        if " is down" in line or " is back" in line
    ]


async def test_an_outage_is_two_lines_and_pymodbus_keeps_quiet(
    hybrid_map: PointMap, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pymodbus")
    caplog.set_level(logging.DEBUG, logger="edge_ems.modbus")
    filters = list(logging.getLogger("pymodbus.logging").filters)
    port = free_port()
    settings = LinkSettings(timeout=1.0, retries=2, backoff_base=0.01, backoff_cap=0.02)
    link = ModbusLink(TcpEndpoint("127.0.0.1", port), settings)
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    try:
        for _ in range(4):  # nothing listens: four polls, each with its retries
            with pytest.raises(DeviceConnectionError, match="could not connect"):
                await device.read(groups=FAST)
        assert link.down
        assert lines(caplog, "pymodbus") == []
        assert outage_lines(caplog) == [
            f"tcp://127.0.0.1:{port} is down: could not connect to 127.0.0.1:{port}"
        ]
        async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as server:
            await server.start_tcp("127.0.0.1", port)
            assert (await device.read(groups=FAST))["soc_pct"].value == 55
        assert not link.down
        back = outage_lines(caplog)[1:]
        assert len(back) == 1
        assert back[0].startswith(f"tcp://127.0.0.1:{port} is back after")
        # Back up, its filter is gone: pymodbus may speak about it again.
        assert logging.getLogger("pymodbus.logging").filters == filters
    finally:
        await link.close()


async def test_pymodbus_lines_of_anything_else_are_not_silenced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pymodbus")
    down = ModbusLink(TcpEndpoint("127.0.0.1", free_port()), LinkSettings(timeout=1.0, retries=0))
    try:
        with pytest.raises(DeviceConnectionError):
            await down.connect()
        assert down.down
        # A pymodbus client no link wraps (Home Assistant's own modbus integration, say).
        client = AsyncModbusTcpClient("127.0.0.1", port=free_port(), timeout=0.5, retries=0)
        assert not await client.connect()
        client.close()
        assert any("Failed to connect" in line for line in lines(caplog, "pymodbus"))
    finally:
        await down.close()


async def test_reconnection_waits_no_longer_than_the_ceiling(hybrid_map: PointMap) -> None:
    port = free_port()
    ceiling = 0.5
    settings = LinkSettings(timeout=1.0, retries=0, backoff_base=0.2, reconnect_ceiling=ceiling)
    link = ModbusLink(TcpEndpoint("127.0.0.1", port), settings)
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    try:
        with pytest.raises(DeviceConnectionError, match="could not connect"):
            await device.read(groups=FAST)
        async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as server:
            await server.start_tcp("127.0.0.1", port)
            # Polled often, the device may be held back, but never beyond the ceiling.
            started = time.monotonic()
            held: list[str] = []
            while True:
                try:
                    await device.read(groups=FAST)
                    break
                except DeviceConnectionError as err:
                    held.append(str(err))
                    await asyncio.sleep(ceiling / 4)
            assert time.monotonic() - started <= ceiling + 0.2
            assert all("link down" in error for error in held)
            assert server.requests  # reached the device
        assert not link.down
    finally:
        await link.close()
