"""The simulated battery inverter (a Victron MultiPlus-II in ESS mode 3 behind a GX), driven as
a site would: every point read over Modbus TCP, power dispatched through the Dispatcher and
read back, out-of-range values clamped or refused, and the battery handed back both when a
lease lapses and when nobody writes at all."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import pytest

from edge_ems.dispatch import AssetLimits, AuditRecord, ControlPolicy, Dispatcher, Outcome, Reason
from edge_ems.exceptions import WriteRefusedError
from edge_ems.metrics import BATTERY_POWER
from edge_ems.modbus import LinkRegistry, ModbusDevice
from edge_ems.sim.battery_inverter import BatteryInverter
from edge_ems.sim.clients import site_devices
from edge_ems.sim.config import BatteryInverterConfig
from edge_ems.sim.physics import Battery
from edge_ems.sim.site import SimulatedSite

from .conftest import MODBUS_ONLY, PATIENT, FakeClock

LIVE = ControlPolicy(enable_control=True, dry_run=False)
CONFIG = BatteryInverterConfig(capacity_wh=10_000.0, max_power_w=4000.0, soc_pct=50.0)
SITE = dataclasses.replace(MODBUS_ONLY, sunspec=None, battery_inverter=CONFIG)
LIMITS = AssetLimits(max_charge_w=4000.0, max_discharge_w=4000.0, capacity_wh=10_000.0)


@dataclasses.dataclass
class Rig:
    site: SimulatedSite
    device: ModbusDevice
    clock: FakeClock
    monotonic: FakeClock
    dispatcher: Dispatcher
    records: list[AuditRecord]

    @property
    def inverter(self) -> BatteryInverter:
        inverter = self.site.plant.battery_inverter
        assert inverter is not None
        return inverter

    async def dispatch(self, power_w: float, ttl: float = 30.0) -> AuditRecord:
        [record] = await self.dispatcher.dispatch(
            power_w, requested_by="test", source="test", asset_id="victron", ttl=ttl
        )
        return record

    async def write(self, metric: str, value: object) -> AuditRecord:
        return await self.dispatcher.write(
            "victron",
            metric,
            value,  # type: ignore[arg-type]
            requested_by="test",
            source="test",
        )


@pytest.fixture
async def rig(clock: FakeClock, monotonic: FakeClock) -> AsyncIterator[Rig]:
    registry = LinkRegistry()
    async with SimulatedSite(SITE, clock=clock, monotonic=monotonic) as site:
        found = {
            item.key: item.device
            for item in await site_devices(site.endpoints, registry, settings=PATIENT)
        }
        device = found["battery_inverter"]
        assert isinstance(device, ModbusDevice)
        await device.connect()
        records: list[AuditRecord] = []
        dispatcher = Dispatcher("home", LIVE, records.append)
        dispatcher.add_device("victron", device, LIMITS)
        try:
            yield Rig(site, device, clock, monotonic, dispatcher, records)
        finally:
            await dispatcher.close(release=False)
            await registry.close()


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_every_point_reads(rig: Rig) -> None:
    readings = await rig.device.read()
    assert readings.keys() == {p.metric for p in rig.device.point_map.readable_points()}
    assert all(reading.value is not None for reading in readings.values()), readings
    battery = rig.inverter.battery
    assert readings["soc_pct"].value == pytest.approx(battery.soc_pct, abs=0.05)
    assert readings["battery_voltage_v"].value == pytest.approx(battery.voltage_v, abs=0.01)
    assert readings["battery_temperature_c"].value == pytest.approx(battery.temperature_c, abs=0.1)
    assert readings["ac_voltage_l1_v"].value == pytest.approx(230, abs=15)
    assert readings["ac_frequency_hz"].value == pytest.approx(50, abs=0.2)
    # Nobody has written a setpoint: the Multi passes the grid through.
    assert readings["battery_power_setpoint_w"].value == 0
    assert readings["ac_power_l1_w"].value == 0
    assert readings["inverter_state"].value == "passthru"
    assert readings["work_mode"].value == "on"
    assert readings["fault_code"].value == 0


async def test_a_dispatch_charges_the_battery_and_reads_back(rig: Rig) -> None:
    soc = rig.inverter.battery.soc_pct
    record = await rig.dispatch(-2000)
    assert (record.outcome, record.applied, record.read_back) == (Outcome.APPLIED, -2000.0, -2000)
    assert rig.dispatcher.leases() == {"victron": (-2000.0, pytest.approx(30, abs=1))}
    rig.clock.advance(600)
    flows = rig.site.step()
    assert flows.battery_inverter_w == -2000
    delivered = flows.deye_ac_w + flows.battery_inverter_w + flows.ev_w + flows.heat_pump_w
    assert flows.grid_w == pytest.approx(flows.house_w - delivered, abs=0.5)
    readings = await rig.device.read()
    assert readings["battery_power_setpoint_w"].value == -2000
    assert readings["ac_power_l1_w"].value == -2000
    assert readings["battery_current_a"].value < 0
    assert readings["inverter_state"].value == "bulk"
    # Ten minutes at 2 kW into a 10 kWh battery, 95 % of it stored.
    gained = 100.0 * 2000 * 0.95 / 6 / 10_000.0
    assert readings["soc_pct"].value == pytest.approx(soc + gained, abs=0.1)


async def test_a_discharge_feeds_the_site_until_the_battery_is_empty(rig: Rig) -> None:
    record = await rig.dispatch(1500)
    assert (record.outcome, record.read_back) == (Outcome.APPLIED, 1500)
    rig.site.step()
    readings = await rig.device.read()
    assert readings["ac_power_l1_w"].value == 1500
    assert readings["battery_current_a"].value > 0
    assert readings["inverter_state"].value == "inverting"
    # At its lowest state of charge the battery gives nothing, whatever the setpoint.
    rig.inverter.battery.soc_pct = rig.inverter.battery.soc_min_pct
    rig.clock.advance(60)
    assert rig.site.step().battery_inverter_w == 0
    assert (await rig.device.read())["battery_power_setpoint_w"].value == 1500


async def test_out_of_range_values_are_clamped_or_refused(rig: Rig) -> None:
    clamped = await rig.dispatch(9000)
    assert (clamped.outcome, clamped.reason, clamped.applied) == (
        Outcome.APPLIED,
        Reason.CLAMPED,
        4000.0,
    )
    assert rig.site.step().battery_inverter_w == 4000
    # The register takes -32767..32767 W; the device refuses more before anything is sent.
    with pytest.raises(WriteRefusedError, match=r"outside \[-32767.0, 32767.0\]") as refused:
        await rig.device.write(BATTERY_POWER, 40_000)
    assert refused.value.reason == "out_of_range"
    # Written past the dispatcher, the Multi holds the setpoint but not more than it can give.
    await rig.device.write(BATTERY_POWER, 8000)
    assert rig.site.step().battery_inverter_w == 4000
    word = await rig.write(BATTERY_POWER, "full")
    assert (word.outcome, word.reason) == (Outcome.REFUSED, Reason.INVALID_VALUE)
    assert "is not a finite number" in word.message
    switch = await rig.write("work_mode", "off")
    assert (switch.outcome, switch.reason) == (Outcome.REFUSED, Reason.NOT_ALLOWED)
    assert "allowlist" in switch.message


async def test_a_lapsed_lease_hands_the_battery_back(rig: Rig) -> None:
    assert rig.device.commands[BATTERY_POWER].lease
    await rig.dispatch(-1000, ttl=0.4)
    assert "victron" in rig.dispatcher.leases()
    assert rig.site.step().battery_inverter_w == -1000
    await until(lambda: not rig.dispatcher.all_leases())
    released = [r for r in rig.records if r.outcome is Outcome.RELEASED]
    assert [(r.command, r.reason, r.applied) for r in released] == [
        (BATTERY_POWER, Reason.LEASE_EXPIRED, 0)
    ]
    readings = await rig.device.read()
    assert readings["battery_power_setpoint_w"].value == 0
    assert readings["ac_power_l1_w"].value == 0
    assert readings["inverter_state"].value == "passthru"


async def test_the_multi_drops_a_setpoint_nobody_rewrites(rig: Rig) -> None:
    # Written once, outside any lease: only the Multi's own watchdog ends it.
    await rig.device.write(BATTERY_POWER, 1000)
    rig.monotonic.advance(59)
    assert rig.site.step().battery_inverter_w == 1000
    rig.monotonic.advance(2)
    assert rig.site.step().battery_inverter_w == 0
    readings = await rig.device.read()
    assert readings["battery_power_setpoint_w"].value == 0
    assert readings["inverter_state"].value == "passthru"
    # A write restarts it.
    await rig.device.write(BATTERY_POWER, 1000)
    assert rig.site.step().battery_inverter_w == 1000


def test_the_switch_gates_the_setpoint() -> None:
    inverter = BatteryInverter(Battery(soc_pct=50.0))
    inverter.accept({BATTERY_POWER: 2000}, 0.0, setpoint_written=True)
    assert inverter.wanted_w(1.0) == 2000
    inverter.accept({"work_mode": "charger_only"}, 1.0, setpoint_written=False)
    assert inverter.wanted_w(1.0) == 0
    inverter.accept(
        {BATTERY_POWER: -2000, "work_mode": "inverter_only"}, 2.0, setpoint_written=True
    )
    assert inverter.wanted_w(2.0) == 0
    inverter.accept({"work_mode": "on"}, 2.0, setpoint_written=False)
    assert inverter.wanted_w(2.0) == -2000
    assert inverter.wanted_w(2.0 + inverter.watchdog_s) == 0
    inverter.accept({"work_mode": "off"}, 3.0, setpoint_written=False)
    inverter.step(0.0, 3.0)
    assert inverter.state() == "off"
