"""A lapsed dispatch lease hands a live simulated SunSpec hybrid's battery back to itself.

The dispatcher's lease clock is a test clock, so the lease lapses when the test says so;
everything else is real: the simulated site's Modbus server, the SunSpec device over TCP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from edge_ems.dispatch import AssetLimits, AuditRecord, ControlPolicy, Dispatcher, Outcome, Reason
from edge_ems.modbus import ModbusLink, TcpEndpoint
from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.site import SimulatedSite
from edge_ems.sunspec import LinkUnit, SunSpecDevice, model_definition

from ..bms.support import allow_loopback_sockets
from ..sim.conftest import MODBUS_ONLY, NOON, PATIENT, FakeClock

LIVE = ControlPolicy(enable_control=True, dry_run=False)


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    """The Modbus devices of a simulated site at noon: PV enough to charge the battery."""
    allow_loopback_sockets()
    clock, monotonic = FakeClock(NOON), FakeClock(1000.0)  # the inverter's timers stand still
    async with SimulatedSite(MODBUS_ONLY, clock=clock, monotonic=monotonic) as running:
        yield running


@pytest.fixture
async def inverter(site: SimulatedSite) -> AsyncIterator[SunSpecDevice]:
    endpoints = site.endpoints
    assert endpoints.sunspec_port is not None
    assert endpoints.sunspec_unit is not None
    link = ModbusLink(TcpEndpoint(endpoints.host, endpoints.sunspec_port), PATIENT)
    device = SunSpecDevice(LinkUnit(link, endpoints.sunspec_unit), name="hybrid")
    await device.connect()
    yield device
    await link.close()


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def storage_mode(site: SimulatedSite, device: SunSpecDevice) -> int:
    """``StorCtl_Mod`` as the simulated inverter holds it."""
    assert site.sunspec is not None
    assert device.chain is not None
    model = next(found for found in device.chain.models if found.id == 124)
    point = model_definition(124).group.point("StorCtl_Mod")
    assert point is not None
    [raw] = site.sunspec.image.read(RegisterSpace.HOLDING, model.address + point.offset, 1)
    return raw


async def test_a_lapsed_lease_returns_the_battery_to_its_own_control(
    site: SimulatedSite, inverter: SunSpecDevice
) -> None:
    hybrid = site.plant.sunspec
    assert hybrid is not None
    own = hybrid.battery.power_w
    assert own < 0  # its own self-consumption stores the noon surplus
    leases = FakeClock(0.0)
    records: list[AuditRecord] = []
    dispatcher = Dispatcher("home", LIVE, records.append, monotonic=leases)
    dispatcher.add_device("hybrid", inverter, AssetLimits(5000, 5000, 10_000))
    [applied] = await dispatcher.dispatch(
        1500, asset_id="hybrid", requested_by="planner", source="test", ttl=0.3
    )
    assert (applied.outcome, applied.read_back) == (Outcome.APPLIED, 1500), applied.message
    assert storage_mode(site, inverter) == 0b11
    assert hybrid.battery.power_w == 1500  # pinned: it discharges into the noon surplus

    leases.advance(1.0)
    await until(lambda: not dispatcher.leases())
    released = [
        (r.command, r.applied, r.read_back, r.reason)
        for r in records
        if r.outcome is Outcome.RELEASED
    ]
    assert released == [
        ("battery_power_control_enabled", False, False, Reason.LEASE_EXPIRED),
        ("active_power_limit_enabled", 0, False, Reason.LEASE_EXPIRED),
    ]
    assert storage_mode(site, inverter) == 0
    readings = await inverter.read()
    assert readings["battery_power_control_enabled"].value is False
    assert readings["battery_power_setpoint_w"].value is None
    site.step()
    assert hybrid.battery.power_w == pytest.approx(own, abs=1)  # not pinned idle at 0

    # The next setpoint puts the window in force again.
    [again] = await dispatcher.dispatch(
        -800, asset_id="hybrid", requested_by="planner", source="test", ttl=60
    )
    assert (again.outcome, again.read_back) == (Outcome.APPLIED, -800)
    assert storage_mode(site, inverter) == 0b11
    assert hybrid.battery.power_w == -800
    await dispatcher.close()
    assert storage_mode(site, inverter) == 0
