"""The simulator server's own contract: images, refusals, writes, fault filters, line pacing."""

from __future__ import annotations

import time

import pytest
from modbus_connection import IllegalFunctionError
from modbus_connection.pymodbus import ModbusConnection

from edge_ems.exceptions import DeviceExceptionError
from edge_ems.modbus import ModbusLink, TcpEndpoint
from edge_ems.pointmap import PointMap, RegisterSpace
from edge_ems.sim.modbus_server import (
    BITS_PER_CHARACTER,
    Fault,
    FaultKind,
    ModbusSimServer,
    Request,
    UnitImage,
)

from .conftest import PATIENT

HOLDING, INPUT = RegisterSpace.HOLDING, RegisterSpace.INPUT


def test_image_from_point_map(hybrid_map: PointMap) -> None:
    image = UnitImage.from_point_map(hybrid_map, {"grid_power_w": -2, "soc_pct": 99})
    assert image.read(HOLDING, 24, 1) == [0xFFFE]
    assert image.read(INPUT, 10, 1) == [99]
    assert image.span(HOLDING) == (0, 76)
    assert image.span(INPUT) == (10, 12)
    assert image.refuses(65, 80)
    assert not image.refuses(70, 76)


def test_image_without_map_has_no_metrics() -> None:
    image = UnitImage({HOLDING: {0: 1}})
    with pytest.raises(ValueError, match="not built from a point map"):
        image.set("soc_pct", 1)


async def test_refusals(link: ModbusLink, server: ModbusSimServer) -> None:
    for space, address, count in [(HOLDING, 59, 3), (HOLDING, 75, 3), (INPUT, 0, 2)]:
        with pytest.raises(DeviceExceptionError) as caught:
            await link.read("sim", 1, space, address, count)
        assert caught.value.code == 2  # refused range, past the span, before the span
    assert await link.read("sim", 1, HOLDING, 50, 2) == [0, 0]  # unmapped, inside the span
    assert server.address is not None
    connection = ModbusConnection(TcpEndpoint(*server.address).params(), timeout=5.0)
    with pytest.raises(IllegalFunctionError):
        await connection.for_unit(1).read_coils(0, 1)
    await connection.close()


async def test_writes_land_and_are_recorded(link: ModbusLink, server: ModbusSimServer) -> None:
    written: list[tuple[int, int, list[int]]] = []
    server.on_write = lambda unit, address, values: written.append((unit, address, values))
    await link.write("sim", 1, 72, [1, 2], single=False)
    await link.write("sim", 1, 74, [3], single=True)
    assert server.units[1].read(HOLDING, 72, 3) == [1, 2, 3]
    assert written == [(1, 72, [1, 2]), (1, 74, [3])]
    assert server.requests == [Request(1, 16, 72, 2), Request(1, 6, 74, 1)]
    server.reset_traffic()
    assert server.requests == []


async def test_fault_filters(hybrid_map: PointMap) -> None:
    units = {unit: UnitImage.from_point_map(hybrid_map) for unit in (1, 2)}
    async with ModbusSimServer(units) as server:
        link = ModbusLink(TcpEndpoint(*await server.start_tcp()), PATIENT)
        fault = server.inject(
            Fault(FaultKind.EXCEPTION, code=3, unit=2, space=INPUT, addresses=(12, 12), times=1)
        )
        assert await link.read("sim", 1, INPUT, 10, 3) == [0, 0, 0]  # other unit
        assert await link.read("sim", 2, HOLDING, 10, 3) == [0, 0, 0]  # other space
        assert await link.read("sim", 2, INPUT, 10, 2) == [0, 0]  # other addresses
        with pytest.raises(DeviceExceptionError):
            await link.read("sim", 2, INPUT, 10, 3)
        assert await link.read("sim", 2, INPUT, 10, 3) == [0, 0, 0]  # retired after one hit
        assert fault.hits == 1
        await link.close()


async def test_a_cap_refuses_larger_reads_only(link: ModbusLink, server: ModbusSimServer) -> None:
    cap = server.inject(Fault(FaultKind.CAP, limit=3))
    assert await link.read("sim", 1, HOLDING, 20, 3) == server.units[1].read(HOLDING, 20, 3)
    with pytest.raises(DeviceExceptionError) as caught:
        await link.read("sim", 1, HOLDING, 20, 4)
    assert caught.value.code == 3  # illegal data value, as gateways answer
    await link.write("sim", 1, 70, [1, 2, 3, 4], single=False)  # writes are not capped
    assert cap.hits == 1
    server.clear_faults()
    server.inject(Fault(FaultKind.CAP, limit=3, code=2))
    with pytest.raises(DeviceExceptionError) as caught:
        await link.read("sim", 1, HOLDING, 20, 4)
    assert caught.value.code == 2


async def test_an_absent_unit_gets_the_gateways_answer(
    link: ModbusLink, server: ModbusSimServer
) -> None:
    with pytest.raises(DeviceExceptionError) as caught:
        await link.read("sim", 9, HOLDING, 20, 1)
    assert caught.value.code == 11  # gateway target device failed to respond
    assert "gateway target device failed to respond" in str(caught.value)
    assert server.requests == [Request(9, 3, 20, 1)]


async def test_line_pacing(hybrid_map: PointMap) -> None:
    image = UnitImage.from_point_map(hybrid_map)
    async with ModbusSimServer({1: image}, line_baudrate=9600) as server:
        link = ModbusLink(TcpEndpoint(*await server.start_tcp(rtu_framing=False)), PATIENT)
        await link.read("sim", 1, HOLDING, 0, 1)  # connect first
        started = time.perf_counter()
        await link.read("sim", 1, HOLDING, 0, 50)
        wire = (8 + 5 + 2 * 50 + 3.5) * BITS_PER_CHARACTER / 9600
        assert time.perf_counter() - started >= wire
        await link.close()


def test_server_needs_a_unit() -> None:
    with pytest.raises(ValueError, match="at least one unit"):
        ModbusSimServer({})
