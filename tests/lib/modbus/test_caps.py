"""A point-map device behind a gateway that takes fewer registers per read than the map allows:
the first poll learns the cap, later polls and later starts are never refused."""

from __future__ import annotations

import pytest

from edge_ems.modbus import LinkSettings, ModbusDevice, ModbusLink, TcpEndpoint
from edge_ems.pointmap import PointMap, PollGroup, load_catalog
from edge_ems.pointmap.plan import Limits, limits_of, plan_space
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer, UnitImage

from .conftest import PATIENT

READS = frozenset({3, 4})


@pytest.fixture(scope="module")
def deye() -> PointMap:
    return load_catalog()["deye_sun_sg_hybrid"]


def capped_plan(point_map: PointMap, cap: int) -> int:
    """Requests one poll needs under ``cap``, as the minimal planner counts them."""
    spans: dict[object, list[tuple[int, int]]] = {}
    for point in point_map.readable_points():
        if point.poll is PollGroup.ONCE:
            continue
        spans.setdefault(point.space, []).append((point.address, point.end))
        if point.scale_factor is not None:
            spans[point.space].append((point.scale_factor, point.scale_factor))
    declared = limits_of(point_map)
    limits = Limits(min(cap, declared.max_block), declared.max_gap, declared.refused)
    return sum(len(plan_space(space, found, limits)) for space, found in spans.items())  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [3, 2])
async def test_the_first_poll_learns_the_cap_and_later_polls_are_never_refused(
    deye: PointMap, code: int
) -> None:
    image = UnitImage.from_point_map(deye, {"device_model": "LV three-phase hybrid inverter"})
    async with ModbusSimServer({1: image}) as server:
        cap = server.inject(Fault(FaultKind.CAP, limit=50, code=code))
        host, port = await server.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), PATIENT)
        device = ModbusDevice(link, deye, name="deye")
        try:
            await device.connect()
            first = await device.read()
            assert set(first) == device.declared_metrics  # nothing was lost to the refusals
            assert cap.hits > 0
            # Reads of 48-50 registers were never needed: no plan of this map holds one.
            assert device.learned == {"read_cap": {"largest_ok": 47, "smallest_refused": 51}}
            refused, server_reads = cap.hits, len(server.requests)
            for _ in range(3):
                assert set(await device.read()) == device.declared_metrics
            assert cap.hits == refused
            per_poll = (len(server.requests) - server_reads) / 3
            assert per_poll == capped_plan(deye, 50)
            assert max(r.count for r in server.requests[server_reads:]) <= 50
        finally:
            await device.close()
            await link.close()


async def test_a_restored_cap_starts_right(deye: PointMap) -> None:
    image = UnitImage.from_point_map(deye, {"device_model": "LV three-phase hybrid inverter"})
    async with ModbusSimServer({1: image}) as server:
        cap = server.inject(Fault(FaultKind.CAP, limit=50))
        host, port = await server.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), LinkSettings(timeout=5.0, retries=0))
        learned = {"read_cap": {"largest_ok": 50, "smallest_refused": 51}}
        device = ModbusDevice(link, deye, name="deye", learned=learned)
        try:
            await device.connect()
            await device.read()
            await device.register_dump()
            assert cap.hits == 0
            assert device.learned == learned
        finally:
            await device.close()
            await link.close()


async def test_a_cap_between_what_worked_and_what_was_refused_is_found(deye: PointMap) -> None:
    """64 is a common logger limit: not a power of two's half of 125, so the first poll must
    search, not just halve."""
    image = UnitImage.from_point_map(deye, {"device_model": "LV three-phase hybrid inverter"})
    async with ModbusSimServer({1: image}) as server:
        cap = server.inject(Fault(FaultKind.CAP, limit=64))
        host, port = await server.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), PATIENT)
        device = ModbusDevice(link, deye, name="deye")
        try:
            await device.read()
            refused, sent = cap.hits, len(server.requests)
            await device.read()
            assert cap.hits == refused
            assert len(server.requests) - sent == capped_plan(deye, 64)
        finally:
            await device.close()
            await link.close()
