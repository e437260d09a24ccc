"""Links: one request in flight per physical link, shared by unit ids; the registry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from modbus_connection.pymodbus import ModbusConnection

from edge_ems.exceptions import ConfigError, DeviceConnectionError
from edge_ems.modbus import (
    LinkRegistry,
    LinkSettings,
    ModbusDevice,
    ModbusLink,
    RtuOverTcpEndpoint,
    SerialEndpoint,
    TcpEndpoint,
    frame_gap,
)
from edge_ems.pointmap import PointMap, PollGroup, RegisterSpace
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer

from .conftest import PATIENT, hybrid_image


@pytest.fixture
async def gateway(hybrid_map: PointMap) -> AsyncIterator[ModbusSimServer]:
    """A gateway with two inverters behind it, answering slowly enough to overlap requests."""
    units = {1: hybrid_image(hybrid_map, soc_pct=41), 2: hybrid_image(hybrid_map, soc_pct=42)}
    async with ModbusSimServer(units) as sim:
        await sim.start_tcp()
        sim.inject(Fault(FaultKind.DELAY, delay=0.05))
        yield sim


async def test_modbus_connection_serialises_units_itself(gateway: ModbusSimServer) -> None:
    assert gateway.address is not None
    host, port = gateway.address
    connection = ModbusConnection(TcpEndpoint(host, port).params(), timeout=5.0)
    reads = [connection.for_unit(unit).read_input_registers(10, 1) for unit in (1, 2, 1, 2)]
    assert await asyncio.gather(*reads) == [[41], [42], [41], [42]]
    assert gateway.max_in_flight == 1
    await connection.close()


async def test_two_units_polled_at_once_share_one_link(
    gateway: ModbusSimServer, hybrid_map: PointMap
) -> None:
    assert gateway.address is not None
    registry = LinkRegistry()
    endpoint = TcpEndpoint(*gateway.address)
    first = ModbusDevice(registry.link(endpoint, PATIENT), hybrid_map, unit_id=1)
    second = ModbusDevice(registry.link(endpoint), hybrid_map, unit_id=2)
    assert first.link is second.link
    results = await asyncio.gather(*(d.read(groups=[PollGroup.FAST]) for d in (first, second) * 2))
    assert [r["soc_pct"].value for r in results] == [41, 42, 41, 42]
    assert gateway.max_in_flight == 1
    assert {request.unit for request in gateway.requests} == {1, 2}
    await first.close()
    assert first.link.connected  # the second device still uses it
    await second.close()
    assert not first.link.connected
    await registry.close()


def test_registry_keys_on_the_physical_link() -> None:
    registry = LinkRegistry()
    tcp = registry.link(TcpEndpoint("127.0.0.1", 1502))
    assert registry.link(TcpEndpoint("127.0.0.1", 1502)) is tcp
    assert registry.link(RtuOverTcpEndpoint("127.0.0.1", 1502)) is not tcp
    serial = registry.link(SerialEndpoint("/dev/ttyUSB0", baudrate=9600))
    with pytest.raises(ConfigError, match="already open"):
        registry.link(SerialEndpoint("/dev/ttyUSB0", baudrate=19200))
    with pytest.raises(ConfigError, match="must agree"):
        registry.link(SerialEndpoint("/dev/ttyUSB0", baudrate=9600), LinkSettings(timeout=9))
    assert registry.link(SerialEndpoint("/dev/ttyUSB0", baudrate=9600)) is serial


def test_frame_gap_is_three_and_a_half_characters() -> None:
    assert frame_gap(SerialEndpoint("/dev/ttyS0", baudrate=9600)) == pytest.approx(3.5 * 10 / 9600)
    assert frame_gap(SerialEndpoint("/dev/ttyS0", parity="E")) == pytest.approx(3.5 * 11 / 9600)
    assert frame_gap(SerialEndpoint("/dev/ttyS0", baudrate=115200)) == 0.00175
    assert frame_gap(TcpEndpoint("gateway")) == 0.0


async def test_unreachable_endpoint_retries_then_fails(unused_tcp_port: int) -> None:
    settings = LinkSettings(timeout=2.0, retries=2, backoff_base=0.01, backoff_cap=0.02)
    link = ModbusLink(TcpEndpoint("127.0.0.1", unused_tcp_port), settings, rng=random.Random(7))
    with pytest.raises(DeviceConnectionError, match=r"dev \(unit 3\) reading holding 5-6"):
        await link.read("dev", 3, RegisterSpace.HOLDING, 5, 2)
    await link.close()


async def test_closed_link_refuses(server: ModbusSimServer) -> None:
    assert server.address is not None
    link = ModbusLink(TcpEndpoint(*server.address), PATIENT)
    assert await link.read("dev", 1, RegisterSpace.INPUT, 10, 1) == [55]
    await link.close()
    with pytest.raises(DeviceConnectionError, match="closed"):
        await link.read("dev", 1, RegisterSpace.INPUT, 10, 1)
