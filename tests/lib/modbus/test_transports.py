"""RTU framing: over a TCP socket (transparent gateways) and on a serial line (socat ptys)."""

from __future__ import annotations

import pytest

from edge_ems.exceptions import DeviceConnectionError, DeviceExceptionError, DeviceTimeoutError
from edge_ems.modbus import (
    LinkSettings,
    ModbusDevice,
    ModbusLink,
    RtuOverTcpEndpoint,
    SerialEndpoint,
)
from edge_ems.pointmap import PointMap, PollGroup
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer, Request

from .conftest import PATIENT, hybrid_image

HASTY_RTU = LinkSettings(timeout=1.0, retries=0)


async def test_rtu_over_tcp(hybrid_map: PointMap) -> None:
    units = {1: hybrid_image(hybrid_map), 7: hybrid_image(hybrid_map, soc_pct=77)}
    async with ModbusSimServer(units) as server:
        host, port = await server.start_tcp(rtu_framing=True)
        link = ModbusLink(RtuOverTcpEndpoint(host, port), PATIENT)
        first = ModbusDevice(link, hybrid_map, name="first")
        seventh = ModbusDevice(link, hybrid_map, unit_id=7, name="seventh")
        assert (await first.connect()).serial == "SN0042"
        assert (await seventh.read(groups=[PollGroup.FAST]))["soc_pct"].value == 77
        result = await first.write("battery_power_setpoint_w", 1200)
        assert result.read_back == 1200
        assert Request(1, 6, 70, 1) in server.requests

        server.inject(Fault(FaultKind.EXCEPTION, code=2, times=1))
        with pytest.raises(DeviceExceptionError, match=r"seventh \(unit 7\).*exception 2"):
            await seventh.read(groups=[PollGroup.SLOW])
        await link.close()


async def test_rtu_over_tcp_drop_and_silence(hybrid_map: PointMap) -> None:
    async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as server:
        host, port = await server.start_tcp(rtu_framing=True)
        link = ModbusLink(RtuOverTcpEndpoint(host, port), HASTY_RTU)
        device = ModbusDevice(link, hybrid_map, name="gw")
        server.inject(Fault(FaultKind.DROP, times=1))
        with pytest.raises(DeviceConnectionError):
            await device.read(groups=[PollGroup.FAST])
        assert (await device.read(groups=[PollGroup.FAST]))["soc_pct"].value == 55
        await link.close()


async def test_serial_rtu(pty_pair: tuple[str, str], hybrid_map: PointMap) -> None:
    server_end, client_end = pty_pair
    async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as server:
        await server.start_serial(server_end, baudrate=9600)
        link = ModbusLink(SerialEndpoint(client_end, baudrate=9600), PATIENT)
        device = ModbusDevice(link, hybrid_map, name="rs485")
        assert (await device.connect()).model == "T1-8K"
        readings = await device.read()
        assert readings["ac_power_w"].value == -1234.5
        assert readings["work_mode"].value == "self_use"
        assert (await device.write("grid_export_limit_w", 2500)).read_back == 2500
        await link.close()


async def test_serial_silence_times_out(pty_pair: tuple[str, str], hybrid_map: PointMap) -> None:
    server_end, client_end = pty_pair
    async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as server:
        await server.start_serial(server_end)
        link = ModbusLink(SerialEndpoint(client_end), HASTY_RTU)
        device = ModbusDevice(link, hybrid_map, name="rs485")
        server.inject(Fault(FaultKind.DROP, times=1))  # a serial device just falls silent
        with pytest.raises(DeviceTimeoutError, match=r"rs485 \(unit 1\) reading holding 20-24"):
            await device.read(groups=[PollGroup.FAST])
        assert (await device.read(groups=[PollGroup.FAST]))["soc_pct"].value == 55
        await link.close()
