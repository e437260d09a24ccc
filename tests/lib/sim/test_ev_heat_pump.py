"""The simulated EV charger and heat pump, driven as an integration would: every point read
over Modbus TCP, every control written through the Dispatcher and read back, bad values
refused, and control handed back when it lapses."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import pytest

from edge_ems.dispatch import AuditRecord, ControlPolicy, Dispatcher, Outcome, Reason
from edge_ems.exceptions import WriteRefusedError
from edge_ems.modbus import LinkRegistry, ModbusDevice
from edge_ems.sim.clients import site_devices
from edge_ems.sim.config import EvChargerConfig, HeatPumpConfig
from edge_ems.sim.heat_pump import HeatPump, HeatPumpSettings, cop
from edge_ems.sim.site import SimulatedSite

from .conftest import MIDNIGHT, MODBUS_ONLY, NOON, PATIENT, FakeClock

LIVE = ControlPolicy(enable_control=True, dry_run=False)
LOADS = dataclasses.replace(
    MODBUS_ONLY,
    sunspec=None,
    ev_charger=EvChargerConfig(fallback_current_a=10.0, validity_s=60.0),
    heat_pump=HeatPumpConfig(),
)


@dataclasses.dataclass
class Rig:
    site: SimulatedSite
    charger: ModbusDevice
    pump: ModbusDevice
    monotonic: FakeClock
    dispatcher: Dispatcher
    records: list[AuditRecord]

    async def write(self, device: str, metric: str, value: object) -> AuditRecord:
        return await self.dispatcher.write(
            device,
            metric,
            value,
            requested_by="test",
            source="test",
            ttl=0.4,  # type: ignore[arg-type]
        )


@pytest.fixture
async def rig(clock: FakeClock, monotonic: FakeClock) -> AsyncIterator[Rig]:
    registry = LinkRegistry()
    async with SimulatedSite(LOADS, clock=clock, monotonic=monotonic) as site:
        found = {
            item.key: item.device
            for item in await site_devices(site.endpoints, registry, settings=PATIENT)
        }
        charger, pump = found["ev_charger"], found["heat_pump"]
        assert isinstance(charger, ModbusDevice)
        assert isinstance(pump, ModbusDevice)
        await charger.connect()
        await pump.connect()
        records: list[AuditRecord] = []
        dispatcher = Dispatcher("home", LIVE, records.append)
        dispatcher.add_device("ev", charger)
        dispatcher.add_device("hp", pump)
        try:
            yield Rig(site, charger, pump, monotonic, dispatcher, records)
        finally:
            await dispatcher.close(release=False)
            await registry.close()


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_every_point_of_both_reads(rig: Rig) -> None:
    for device in (rig.charger, rig.pump):
        readings = await device.read()
        readable = {p.metric for p in device.point_map.readable_points()}
        assert readings.keys() == readable
        assert all(reading.value is not None for reading in readings.values()), readings
    charger = await rig.charger.read()
    # The car is plugged in when the simulation starts and charges at the fallback current.
    assert charger["ev_state"].value == "c2"
    assert charger["ev_current_offered_a"].value == 10
    assert charger["ac_power_w"].value == pytest.approx(-3 * 230 * 10, abs=1)
    flows = rig.site.step()
    assert flows.ev_w == pytest.approx(-6900, abs=1)
    assert flows.heat_pump_w <= 0


async def test_charger_controls_write_and_read_back_and_lapse_to_the_fallback(rig: Rig) -> None:
    applied = await rig.write("ev", "ev_current_limit_a", 16)
    assert (applied.outcome, applied.read_back) == (Outcome.APPLIED, 16), applied.message
    phases = await rig.write("ev", "ev_phases", 1)
    assert (phases.outcome, phases.read_back) == (Outcome.APPLIED, 1), phases.message
    readings = await rig.charger.read()
    assert readings["ev_current_offered_a"].value == 16
    assert readings["ac_power_w"].value == pytest.approx(-230 * 16, abs=1)
    assert readings["control_revert_remaining_s"].value == 60
    # Nobody rewrites the limit within the charger's validity time: it falls back by itself.
    rig.monotonic.advance(61)
    rig.site.step()
    readings = await rig.charger.read()
    assert readings["ev_current_offered_a"].value == 10
    assert readings["control_revert_remaining_s"].value == 0


async def test_bad_charge_currents_are_refused_or_clamped(rig: Rig) -> None:
    between = await rig.write("ev", "ev_current_limit_a", 3)
    assert (between.outcome, between.reason) == (Outcome.REFUSED, Reason.INVALID_VALUE)
    assert "lies between 0 and 6; write 0 or from 6 up" in between.message
    clamped = await rig.write("ev", "ev_current_limit_a", 40)
    assert (clamped.outcome, clamped.reason, clamped.applied) == (
        Outcome.APPLIED,
        Reason.CLAMPED,
        32,
    )
    with pytest.raises(WriteRefusedError, match=r"outside \[0.0, 32.0\]") as refused:
        await rig.charger.write("ev_current_limit_a", 40)
    assert refused.value.reason == "out_of_range"
    three = await rig.write("ev", "ev_phases", 2)
    assert (three.outcome, three.reason) == (Outcome.REFUSED, Reason.INVALID_VALUE)
    stop = await rig.write("ev", "ev_current_limit_a", 0)
    assert stop.outcome is Outcome.APPLIED
    assert (await rig.charger.read())["ac_power_w"].value == 0
    assert (await rig.charger.read())["ev_state"].value == "b2"


async def test_a_lapsed_charge_current_lease_returns_the_charger_to_its_fallback(rig: Rig) -> None:
    assert rig.charger.commands["ev_current_limit_a"].lease
    await rig.write("ev", "ev_current_limit_a", 20)
    assert "ev" in rig.dispatcher.leases("ev_current_limit_a")
    await until(lambda: not rig.dispatcher.all_leases())
    released = [r for r in rig.records if r.outcome is Outcome.RELEASED]
    assert [(r.command, r.reason) for r in released] == [
        ("ev_current_limit_a", Reason.LEASE_EXPIRED)
    ]
    rig.monotonic.advance(61)
    rig.site.step()
    assert (await rig.charger.read())["ev_current_offered_a"].value == 10


async def test_heat_pump_controls_write_and_read_back(rig: Rig) -> None:
    writes = {
        "heat_pump_mode": "comfort",
        "room_temperature_setpoint_c": 22.5,
        "dhw_temperature_setpoint_c": 50,
        "heat_pump_sg_ready_enabled": 1,
        "heat_pump_sg_ready": "boost",
    }
    for metric, value in writes.items():
        record = await rig.write("hp", metric, value)
        assert (record.outcome, record.read_back) == (Outcome.APPLIED, value), record.message
    readings = await rig.pump.read()
    assert readings["heat_pump_sg_ready_state"].value == "boost"
    pump = rig.site.plant.heat_pump
    assert pump is not None
    assert pump.sg_ready == "boost"
    # SG Ready switched off: the orders no longer reach the heat pump.
    await rig.write("hp", "heat_pump_sg_ready_enabled", 0)
    assert (await rig.pump.read())["heat_pump_sg_ready_state"].value == "normal"


async def test_bad_heat_pump_values_are_refused(rig: Rig) -> None:
    mode = await rig.write("hp", "heat_pump_mode", "turbo")
    assert (mode.outcome, mode.reason) == (Outcome.REFUSED, Reason.INVALID_VALUE)
    assert "'turbo' is not one of ['comfort', 'program']" in mode.message
    order = await rig.write("hp", "heat_pump_sg_ready", "overdrive")
    assert order.reason is Reason.INVALID_VALUE
    unknown = await rig.write("hp", "flow_temperature_setpoint_c", 40)
    assert unknown.reason is Reason.UNKNOWN_COMMAND


async def test_a_lapsed_sg_ready_boost_hands_the_heat_pump_back(rig: Rig) -> None:
    assert rig.pump.commands["heat_pump_sg_ready"].lease
    await rig.write("hp", "heat_pump_sg_ready", "boost")
    await until(lambda: not rig.dispatcher.all_leases())
    assert (await rig.pump.read())["heat_pump_sg_ready_state"].value == "normal"


def test_the_maps_mark_the_leased_points(rig: Rig) -> None:
    point = rig.charger.point_map.points["ev_current_limit_a"]
    assert point.write is not None
    assert point.write.lease
    assert rig.charger.commands["ev_current_limit_a"].lease
    assert not rig.charger.commands["ev_phases"].lease


def test_the_heat_pump_follows_the_house_and_the_weather() -> None:
    cold, mild = HeatPump(), HeatPump()
    settings = HeatPumpSettings(mode="comfort")
    cold.step(NOON, -10.0, settings)
    mild.step(NOON, 10.0, settings)
    assert cold.power_w > mild.power_w > 0
    assert cold.cop < mild.cop
    assert cop(-10.0, 45.0) < cop(10.0, 35.0)
    blocked = HeatPump()
    assert blocked.step(NOON, -10.0, dataclasses.replace(settings, sg_ready="block")) == 0
    # An hour blocked in the cold: the house cools, following UA (T_in - T_out) / C.
    blocked.step(NOON + 3600, -10.0, dataclasses.replace(settings, sg_ready="block"))
    expected = 20.5 - blocked.house_ua_w_k * (20.5 + 10.0) / blocked.house_capacity_wh_k
    assert blocked.room_c == pytest.approx(expected, abs=0.01)


def test_the_car_tapers_near_full_and_leaves() -> None:
    from edge_ems.sim.ev_charger import EvCharger, Vehicle

    charger = EvCharger(Vehicle(capacity_wh=10_000.0, soc_pct=79.0), stay_h=5.0, period_h=8.0)
    first = charger.step(MIDNIGHT, 0.0)
    assert first == pytest.approx(3 * 230 * 10)
    charger.vehicle.soc_pct = 95.0
    assert charger.step(MIDNIGHT + 60, 0.0) < first
    charger.step(MIDNIGHT + 6 * 3600, 0.0)
    assert charger.state() == "a"
    assert charger.power_w == 0
