"""The simulated site over Modbus: physics reaches the registers, writes reach the physics."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from edge_ems.modbus import ModbusDevice, ModbusLink, RtuOverTcpEndpoint, TcpEndpoint
from edge_ems.pointmap import RegisterSpace
from edge_ems.readings import Quality, Value
from edge_ems.sim.site import SimulatedSite
from edge_ems.sunspec import LinkUnit, SunSpecDevice

from ..bms.support import eventually
from .conftest import DAY, MODBUS_ONLY, NIGHT, NOON, PATIENT, FakeClock

WRITES = frozenset({5, 6, 15, 16})


@pytest.fixture
async def gateway(site: SimulatedSite) -> AsyncIterator[ModbusLink]:
    """One link to the gateway port, as an integration keeps it for every unit behind it."""
    link = ModbusLink(TcpEndpoint(site.endpoints.host, site.endpoints.modbus_gateway_port), PATIENT)
    yield link
    await link.close()


@pytest.fixture
def deye(site: SimulatedSite, gateway: ModbusLink) -> ModbusDevice:
    assert site.deye_map is not None
    return ModbusDevice(gateway, site.deye_map, unit_id=site.endpoints.deye_unit, name="deye")


@pytest.fixture
def sdm630(site: SimulatedSite, gateway: ModbusLink) -> ModbusDevice:
    assert site.meter_map is not None
    return ModbusDevice(gateway, site.meter_map, unit_id=site.endpoints.meter_unit, name="sdm")


@pytest.fixture
async def sunspec(site: SimulatedSite) -> AsyncIterator[SunSpecDevice]:
    endpoints = site.endpoints
    assert endpoints.sunspec_port is not None
    assert endpoints.sunspec_unit is not None
    link = ModbusLink(TcpEndpoint(endpoints.host, endpoints.sunspec_port), PATIENT)
    device = SunSpecDevice(LinkUnit(link, endpoints.sunspec_unit), name="sunspec")
    await device.connect()
    yield device
    await link.close()


async def values(device: ModbusDevice | SunSpecDevice) -> dict[str, Value]:
    readings = await device.read()
    assert all(reading.quality is Quality.GOOD for reading in readings.values()), readings
    return {metric: reading.value for metric, reading in readings.items()}


def number(value: Value) -> float:
    assert isinstance(value, int | float)
    return float(value)


async def test_pv_follows_the_sun_into_the_registers(
    site: SimulatedSite, clock: FakeClock, deye: ModbusDevice, sunspec: SunSpecDevice
) -> None:
    clock.now = NIGHT
    site.step()
    night, night_sunspec = await values(deye), await values(sunspec)
    assert night["pv1_power_w"] == night["pv2_power_w"] == 0
    assert night_sunspec["pv_power_w"] == 0
    clock.now = NOON
    site.step()
    noon, noon_sunspec = await values(deye), await values(sunspec)
    strings = number(noon["pv1_power_w"]) + number(noon["pv2_power_w"])
    peak = site.plant.pv.peak_w
    assert 0.6 * peak < strings <= peak  # passing clouds take up to 30 %
    assert strings == pytest.approx(site.plant.pv.power_w(NOON), abs=1)
    assert site.plant.sunspec is not None
    assert noon_sunspec["pv_power_w"] == pytest.approx(site.plant.sunspec.pv.power_w(NOON), abs=1)


async def test_soc_integrates_and_counters_accumulate_in_the_registers(
    site: SimulatedSite, clock: FakeClock, deye: ModbusDevice
) -> None:
    site.step()
    before = await values(deye)
    battery = site.physics.battery
    assert before["soc_pct"] == round(battery.soc_pct)
    assert before["battery_power_w"] == round(battery.power_w) < 0  # noon: charging
    clock.advance(3600)
    site.step()
    after = await values(deye)
    assert after["soc_pct"] == round(battery.soc_pct)
    assert number(after["soc_pct"]) > number(before["soc_pct"]) + 20  # ~5 kW into 10 kWh
    for counter in ("pv_energy_wh", "battery_charge_energy_wh", "load_energy_wh"):
        assert number(after[counter]) > number(before[counter])
    assert after["pv_energy_wh"] == pytest.approx(site.plant.pv.energy_wh, abs=100)


async def test_the_meter_reads_the_grid_power_of_the_physics(
    site: SimulatedSite, clock: FakeClock, sdm630: ModbusDevice, deye: ModbusDevice
) -> None:
    for moment in (NIGHT, NOON, NOON + 6 * 3600):
        clock.now = moment
        site.step()
        grid = site.physics.grid_w(moment)
        meter = await values(sdm630)
        assert meter["grid_power_w"] == pytest.approx(grid, abs=0.05)
        phases = sum(number(meter[f"grid_power_{phase}_w"]) for phase in ("l1", "l2", "l3"))
        assert phases == pytest.approx(grid, abs=0.5)
        assert meter["grid_import_energy_wh"] == pytest.approx(site.physics.grid_import_wh, abs=1)
        assert (await values(deye))["grid_power_w"] == round(grid)


async def test_the_sdm630_and_the_deye_share_one_gateway_port(
    site: SimulatedSite, gateway: ModbusLink, deye: ModbusDevice, sdm630: ModbusDevice
) -> None:
    assert site.modbus_gateway is not None
    site.modbus_gateway.reset_traffic()
    identities = [await deye.connect(), await sdm630.connect()]
    assert [identity.manufacturer for identity in identities] == ["Deye", "Eastron"]
    await values(deye)
    await values(sdm630)
    assert {request.unit for request in site.modbus_gateway.requests} == {
        site.endpoints.deye_unit,
        site.endpoints.meter_unit,
    }
    assert deye.link is sdm630.link is gateway


async def test_the_sdm630_answers_rtu_over_tcp_too(site: SimulatedSite) -> None:
    endpoints = site.endpoints
    assert site.meter_map is not None
    link = ModbusLink(RtuOverTcpEndpoint(endpoints.host, endpoints.meter_rtu_port), PATIENT)
    try:
        meter = ModbusDevice(link, site.meter_map, unit_id=endpoints.meter_unit)
        reading = await values(meter)
    finally:
        await link.close()
    assert reading["grid_power_w"] == pytest.approx(site.physics.grid_w(NOON), abs=0.05)


async def test_a_deye_discharge_current_written_over_modbus_stops_the_battery(
    site: SimulatedSite, clock: FakeClock, deye: ModbusDevice
) -> None:
    clock.now = NIGHT
    assert site.plant.sunspec is not None  # it covers the house first: drain it
    site.plant.sunspec.battery.soc_pct = site.plant.sunspec.battery.soc_min_pct
    site.step()
    before = await values(deye)
    discharging = number(before["battery_power_w"])
    assert discharging > 0
    result = await deye.write("battery_discharge_current_max_a", 0)
    assert result.read_back == 0
    after = await values(deye)
    assert after["battery_power_w"] == 0
    assert site.physics.battery.power_w == 0
    # The grid takes over what the battery covered.
    assert number(after["grid_power_w"]) == pytest.approx(
        number(before["grid_power_w"]) + discharging, abs=2
    )


async def test_a_deye_export_limit_written_over_modbus_curtails_pv(
    site: SimulatedSite, deye: ModbusDevice
) -> None:
    site.physics.battery.soc_pct = 100.0  # full: the noon surplus goes to the grid
    site.step()
    assert number((await values(deye))["grid_power_w"]) < -1000
    await deye.write("grid_export_limit_w", 800)
    assert (await values(deye))["grid_power_w"] == pytest.approx(-800, abs=2)
    assert site.plant.flows is not None
    assert site.plant.flows.pv_curtailed_w > 0
    await deye.write("grid_export_enabled", 0)  # zero export to the CT
    assert (await values(deye))["grid_power_w"] == pytest.approx(0, abs=2)


async def test_a_deye_time_of_use_slot_charges_from_the_grid(
    site: SimulatedSite, clock: FakeClock, deye: ModbusDevice
) -> None:
    clock.now = NIGHT  # slot 1 runs from 00:00 to 04:00
    site.step()
    for metric, value in (
        ("tou_slot1_soc_pct", 100), ("tou_slot1_power_w", 3000),
        ("battery_grid_charge_current_a", 50), ("battery_grid_charge_enabled", 1),
        ("tou_enabled", 255),
    ):  # fmt: skip
        await deye.write(metric, value)
    battery = site.physics.battery
    assert battery.current_a == pytest.approx(-50, rel=0.05)  # the grid charge current
    reading = await values(deye)
    assert reading["battery_power_w"] == round(battery.power_w)
    assert number(reading["grid_power_w"]) > 2000


async def test_a_deye_in_selling_first_sells_at_the_slot_power(
    site: SimulatedSite, clock: FakeClock, deye: ModbusDevice
) -> None:
    clock.now = NIGHT
    assert site.plant.sunspec is not None  # it covers the house first: drain it
    site.plant.sunspec.battery.soc_pct = site.plant.sunspec.battery.soc_min_pct
    site.step()
    for metric, value in (
        ("tou_slot1_power_w", 2000), ("tou_enabled", 255), ("work_mode", "selling_first"),
    ):  # fmt: skip
        await deye.write(metric, value)
    reading = await values(deye)
    assert reading["battery_power_w"] == 2000
    assert number(reading["grid_power_w"]) == pytest.approx(
        number(reading["load_power_w"]) - 2000, abs=2
    )
    await deye.write("work_mode", "zero_export_to_ct")
    reading = await values(deye)
    assert 0 < number(reading["battery_power_w"]) < 2000  # back to covering the house


async def test_the_deye_keeps_its_settings_within_limits_and_its_live_data_read_only(
    site: SimulatedSite, gateway: ModbusLink, deye: ModbusDevice
) -> None:
    assert site.deye_map is not None
    soc = site.deye_map.points["soc_pct"]
    await gateway.write("raw", site.endpoints.deye_unit, soc.address, [7], single=False)
    assert (await values(deye))["soc_pct"] == round(site.physics.battery.soc_pct)
    mode = site.deye_map.points["work_mode"]
    await gateway.write("raw", site.endpoints.deye_unit, mode.address, [9], single=False)
    assert (await values(deye))["work_mode"] == "zero_export_to_ct"  # held at its maximum, 2


async def test_the_sdm630_takes_no_settings(
    site: SimulatedSite, gateway: ModbusLink, sdm630: ModbusDevice
) -> None:
    assert site.meter_map is not None
    address = site.meter_map.points["device_modbus_address"]
    unit = site.endpoints.meter_unit
    await gateway.write("raw", unit, address.address, [0x4120, 0], single=False)  # 10.0
    assert (await values(sdm630))["device_modbus_address"] == unit


async def test_a_sunspec_battery_setpoint_takes_effect_and_reverts_on_its_timer(
    site: SimulatedSite, monotonic: FakeClock, sunspec: SunSpecDevice
) -> None:
    hybrid = site.plant.sunspec
    assert hybrid is not None
    await sunspec.write("control_revert_timeout_s", 60)
    result = await sunspec.write("battery_power_setpoint_w", 1500)
    assert result.read_back == 1500
    assert hybrid.battery.power_w == 1500  # noon: it would charge, the setpoint discharges
    reading = await values(sunspec)
    assert reading["battery_power_w"] == 1500
    assert reading["battery_power_setpoint_w"] == 1500
    monotonic.advance(61)
    site.step()
    reading = await values(sunspec)
    assert reading["battery_power_setpoint_w"] is None
    assert hybrid.battery.power_w < 0


async def test_a_sunspec_power_limit_caps_the_inverter(
    site: SimulatedSite, sunspec: SunSpecDevice
) -> None:
    await sunspec.write("battery_power_setpoint_w", 0)
    await sunspec.write("active_power_limit_pct", 20)
    await sunspec.write("active_power_limit_enabled", True)
    reading = await values(sunspec)
    assert reading["ac_power_w"] == pytest.approx(1000, abs=1)  # 20 % of 5 kW
    assert reading["inverter_state"] == "throttled"


async def test_sunspec_measurements_are_read_only(
    site: SimulatedSite, sunspec: SunSpecDevice
) -> None:
    endpoints = site.endpoints
    assert endpoints.sunspec_port is not None
    assert site.sunspec is not None
    before = await values(sunspec)
    link = ModbusLink(TcpEndpoint(endpoints.host, endpoints.sunspec_port), PATIENT)
    try:
        await link.write("raw", endpoints.sunspec_unit or 1, 40002, [0xFFFF], single=False)
    finally:
        await link.close()
    assert site.sunspec.image.read(RegisterSpace.HOLDING, 40002, 1) == [1]
    assert (await values(sunspec))["soc_pct"] == before["soc_pct"]


async def test_the_site_ticks_by_itself(clock: FakeClock) -> None:
    config = dataclasses.replace(MODBUS_ONLY, tick=0.05)
    async with SimulatedSite(config, clock=clock) as running:
        clock.advance(DAY / 2)

        async def latest() -> float | None:
            flows = running.plant.flows
            return None if flows is None else flows.timestamp

        await eventually(latest, lambda seen: seen == clock.now)
