"""The plant's physics and its controllers, without any server: flows, SOC, settings."""

from __future__ import annotations

import dataclasses

import pytest

from edge_ems.metrics import BATTERY_POWER
from edge_ems.pointmap import catalog_paths, load_point_map
from edge_ems.sim.config import BessConfig, SiteConfig
from edge_ems.sim.deye import DeyeSettings, TouSlot, deye_decide
from edge_ems.sim.deye_readings import READINGS
from edge_ems.sim.meter import grid_meter_values
from edge_ems.sim.physics import Battery
from edge_ems.sim.plant import Plant
from edge_ems.sim.storage import IMPORT_MARGIN_W, StorageControls

from .conftest import DAY, MIDNIGHT, NIGHT, NOON

SETTINGS = DeyeSettings()
ALL_DAY_SLOTS = tuple(TouSlot(start, 3000, 30, True) for start in (0, 400, 800, 1200, 1600, 2000))


def test_pv_is_dark_at_night_and_near_its_peak_at_noon() -> None:
    plant = Plant(SiteConfig())
    plant.step(NIGHT, SETTINGS, None)
    assert plant.pv.power_w(NIGHT) == 0
    plant.step(NOON, SETTINGS, None)
    # Passing clouds take up to 30 % (physics.PvArray).
    assert 0.6 * plant.pv.peak_w < plant.pv.available_w(NOON) <= plant.pv.peak_w


def test_every_flow_balances_through_the_grid() -> None:
    plant = Plant(SiteConfig())
    plant.bess = Battery(power_w=1200.0)  # as its OPC UA setpoint left it
    inverter = plant.battery_inverter
    assert inverter is not None
    inverter.watchdog_s = DAY  # its setpoint holds all day
    inverter.accept({BATTERY_POWER: -300}, NIGHT, setpoint_written=True)
    for timestamp in (NIGHT, NOON - 3 * 3600, NOON, NOON + 7 * 3600):
        flows = plant.step(timestamp, SETTINGS, None)
        assert flows.battery_inverter_w == -300
        delivered = (
            flows.deye_ac_w
            + flows.sunspec_ac_w
            + flows.bess_w
            + flows.battery_inverter_w
            + flows.ev_w
            + flows.heat_pump_w
        )
        assert flows.grid_w == pytest.approx(flows.house_w - delivered, abs=0.5)
        assert flows.grid_w == plant.physics.grid_w(timestamp)


def test_soc_integrates_battery_power_and_counters_accumulate() -> None:
    plant = Plant(SiteConfig(sunspec=None, ev_charger=None, heat_pump=None, battery_inverter=None))
    plant.step(NOON, SETTINGS, None)
    battery = plant.physics.battery
    soc, charged, imported = battery.soc_pct, battery.charge_energy_wh, plant.physics.grid_export_wh
    power = battery.power_w
    assert power < 0  # the noon sun charges it
    plant.step(NOON + 600, SETTINGS, None)
    stored = -power * 600 / 3600 * battery.efficiency
    assert battery.soc_pct == pytest.approx(soc + 100 * stored / battery.capacity_wh, rel=1e-6)
    assert battery.charge_energy_wh == pytest.approx(charged - power * 600 / 3600)
    assert plant.physics.grid_export_wh > imported


def test_self_consumption_covers_the_house_at_night_with_a_little_import() -> None:
    plant = Plant(SiteConfig(sunspec=None, ev_charger=None, heat_pump=None, battery_inverter=None))
    flows = plant.step(NIGHT, SETTINGS, None)
    assert plant.physics.battery.power_w == pytest.approx(flows.house_w - IMPORT_MARGIN_W)
    assert flows.grid_w == pytest.approx(IMPORT_MARGIN_W, abs=0.2)


def test_storing_a_morning_surplus_keeps_the_grid_at_the_import_margin() -> None:
    plant = Plant(SiteConfig(ev_charger=None, heat_pump=None, battery_inverter=None))
    morning = MIDNIGHT + 9.5 * 3600
    flows = plant.step(morning, SETTINGS, None)
    assert 0 < -plant.physics.battery.power_w < plant.physics.battery.max_charge_w
    assert flows.grid_w == pytest.approx(IMPORT_MARGIN_W, abs=0.2)


def test_the_sunspec_hybrid_serves_the_house_first_and_the_deye_the_rest() -> None:
    plant = Plant(SiteConfig(ev_charger=None, heat_pump=None, battery_inverter=None))
    flows = plant.step(NIGHT, SETTINGS, None)
    assert plant.sunspec is not None
    assert flows.sunspec_ac_w == pytest.approx(flows.house_w - IMPORT_MARGIN_W)
    assert plant.physics.battery.power_w == 0  # nothing left for the Deye's battery


def _battery(soc: float = 50.0) -> Battery:
    return Battery(soc_pct=soc, capacity_wh=10_000, max_charge_w=5000, max_discharge_w=5000)


def test_deye_discharge_current_caps_the_battery() -> None:
    battery = _battery()
    capped = dataclasses.replace(SETTINGS, discharge_current_a=0)
    decision = deye_decide(capped, timestamp=NIGHT, pv_w=0, load_w=2000, battery=battery)
    assert decision.battery_w == 0
    decision = deye_decide(SETTINGS, timestamp=NIGHT, pv_w=0, load_w=2000, battery=battery)
    assert decision.battery_w == pytest.approx(2000 - IMPORT_MARGIN_W)


def test_deye_export_limit_curtails_pv() -> None:
    battery = _battery(soc=100)  # full: the surplus can only be exported
    limited = dataclasses.replace(SETTINGS, export_limit_w=1000)
    decision = deye_decide(limited, timestamp=NOON, pv_w=6000, load_w=500, battery=battery)
    assert decision.pv_limit_w == pytest.approx(1500)
    zero_export = dataclasses.replace(SETTINGS, solar_sell=False)
    decision = deye_decide(zero_export, timestamp=NOON, pv_w=6000, load_w=500, battery=battery)
    assert decision.pv_limit_w == pytest.approx(500)


def test_deye_time_of_use_charges_from_the_grid_up_to_the_slot_soc() -> None:
    battery = _battery(soc=25)
    tou = dataclasses.replace(SETTINGS, tou=0xFF, slots=ALL_DAY_SLOTS, grid_charge=True)
    volts = battery.voltage_v
    decision = deye_decide(tou, timestamp=NIGHT, pv_w=0, load_w=800, battery=battery)
    assert decision.battery_w == pytest.approx(-40 * volts)
    without_switch = dataclasses.replace(tou, grid_charge=False)
    decision = deye_decide(without_switch, timestamp=NIGHT, pv_w=0, load_w=800, battery=battery)
    assert decision.battery_w == 0  # below the slot's SOC: hold


def test_deye_time_of_use_sells_at_slot_power_in_selling_first() -> None:
    battery = _battery(soc=80)
    selling = dataclasses.replace(
        SETTINGS, tou=0xFF, slots=ALL_DAY_SLOTS, work_mode="selling_first"
    )
    decision = deye_decide(selling, timestamp=NIGHT, pv_w=0, load_w=500, battery=battery)
    assert decision.battery_w == 3000


def test_deye_time_of_use_follows_the_day_bits_and_slot_times() -> None:
    wednesday_off = dataclasses.replace(SETTINGS, tou=0xFF & ~(1 << 3), slots=ALL_DAY_SLOTS)
    assert wednesday_off.slot(NIGHT) is None
    tou = dataclasses.replace(SETTINGS, tou=0xFF, slots=ALL_DAY_SLOTS)
    assert tou.slot(MIDNIGHT + 5 * 3600) == ALL_DAY_SLOTS[1]
    assert tou.slot(MIDNIGHT + 23 * 3600) == ALL_DAY_SLOTS[5]


def test_deye_battery_first_charges_from_pv_before_the_load() -> None:
    battery = _battery()
    first = dataclasses.replace(SETTINGS, battery_first=True)
    decision = deye_decide(first, timestamp=NOON, pv_w=2000, load_w=1500, battery=battery)
    assert decision.battery_w == -2000


def test_storage_window_pins_a_setpoint_and_the_limit_caps_output() -> None:
    battery = _battery()
    pinned = StorageControls(base_w=5000, mode=0b11, discharge_pct=-40, charge_pct=40)
    assert pinned.battery_w(1500, battery) == -2000
    assert StorageControls().battery_w(1500, battery) == 1500
    limited = StorageControls(limit_pct=20, limit_enabled=True)
    assert limited.ac_limit_w(5000) == 1000


def test_the_bess_counts_in_the_balance() -> None:
    plant = Plant(SiteConfig(sunspec=None, bess=BessConfig()))
    quiet = plant.step(NIGHT, SETTINGS, None)
    assert plant.bess is not None
    plant.bess.command(-3000)
    charging = plant.step(NIGHT + 1, SETTINGS, None)
    # The Deye covers the extra load the BESS makes, up to its own limits.
    assert charging.bess_w == -3000
    assert plant.physics.battery.power_w > quiet.house_w


def test_every_read_only_point_of_the_maps_is_simulated() -> None:
    paths = catalog_paths()
    deye = load_point_map(paths["deye_sun_sg_hybrid"])
    meter = load_point_map(paths["eastron_sdm630"])
    assert set(READINGS) == {point.metric for point in deye.points.values() if not point.write}
    plant = Plant(SiteConfig(ev_charger=None, heat_pump=None, battery_inverter=None))
    plant.step(NOON, SETTINGS, None)
    assert set(meter.points) <= set(grid_meter_values(plant))
