"""Register dumps: every register a device's points cover, private ones redacted, and a dump
that a simulator serves again to the same readings (after a trip through JSON, as diagnostics
take it)."""

from __future__ import annotations

import json

import pytest

from edge_ems.modbus import LinkSettings, ModbusDevice, ModbusLink, TcpEndpoint
from edge_ems.modbus.dump import REDACTED, dump_registers
from edge_ems.pointmap import PointMap, PointType, load_catalog
from edge_ems.readings import Value
from edge_ems.sim.modbus_server import ModbusSimServer, UnitImage

CATALOG = load_catalog()
SECRETS: dict[PointType, Value] = {PointType.STRING: "SECRET4711", PointType.U32: 31_415_926}


def secret_values(point_map: PointMap) -> dict[str, Value]:
    return {
        metric: SECRETS[point.type]
        for metric, point in point_map.points.items()
        if point.private and point.type in SECRETS
    }


@pytest.mark.parametrize("map_id", sorted(CATALOG))
async def test_no_private_register_leaves_unredacted_and_the_dump_replays(map_id: str) -> None:
    point_map = CATALOG[map_id]
    private = [point for point in point_map.points.values() if point.private]
    unit = point_map.device.default_unit_id
    image = UnitImage.from_point_map(point_map, secret_values(point_map))
    async with ModbusSimServer({unit: image}) as server:
        link = ModbusLink(TcpEndpoint(*await server.start_tcp()), LinkSettings(timeout=5.0))
        device = ModbusDevice(link, point_map)
        try:
            original = await device.read()
            dump = json.loads(json.dumps(await device.register_dump()))
        finally:
            await link.close()
    assert (dump["unit_id"], dump["map"]) == (unit, map_id)
    registers = dump_registers(dump)
    for point in private:
        covered = [registers[point.space].get(a) for a in range(point.address, point.end + 1)]
        assert covered == [REDACTED] * point.registers, point.metric
        assert any(
            first <= point.address and point.end <= last
            for first, last in dump["redacted"][str(point.space)]
        ), point.metric
    assert "SECRET" not in json.dumps(dump)

    async with ModbusSimServer({unit: UnitImage.from_dump(dump)}) as replay:
        link = ModbusLink(TcpEndpoint(*await replay.start_tcp()), LinkSettings(timeout=5.0))
        try:
            again = await ModbusDevice(link, point_map).read()
        finally:
            await link.close()
    assert {m: r.value for m, r in again.items()} == {m: r.value for m, r in original.items()}


async def test_a_replayed_serial_reads_as_asterisks() -> None:
    point_map = CATALOG["deye_sun_sg_hybrid"]
    image = UnitImage.from_point_map(
        point_map, {"device_model": "LV three-phase hybrid inverter", "device_serial": "2203040506"}
    )
    async with ModbusSimServer({1: image}) as server:
        link = ModbusLink(TcpEndpoint(*await server.start_tcp()), LinkSettings(timeout=5.0))
        device = ModbusDevice(link, point_map)
        try:
            identity = await device.connect()
            assert (identity.serial, identity.firmware) == ("2203040506", "0.0.0.0")
            dump = await device.register_dump()
        finally:
            await link.close()
    assert dump["redacted"] == {"holding": [[3, 7]]}
    async with ModbusSimServer({1: UnitImage.from_dump(dump)}) as replay:
        link = ModbusLink(TcpEndpoint(*await replay.start_tcp()), LinkSettings(timeout=5.0))
        try:
            identity = await ModbusDevice(link, point_map).connect()
        finally:
            await link.close()
    assert identity.serial == "*" * 10


@pytest.mark.parametrize(
    "dump", [{}, {"spaces": []}, {"spaces": {"coils": {}}}, {"spaces": {"holding": {"x": 1}}}]
)
def test_what_is_no_dump_is_refused(dump: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"registers|dump|coils"):
        UnitImage.from_dump(dump)
