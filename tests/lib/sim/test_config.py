"""Site descriptions and simulated time."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.sim.clock import scaled_clock, today_at
from edge_ems.sim.config import (
    BatteryInverterConfig,
    SiteConfig,
    SunSpecConfig,
    load_site_config,
    site_config,
)

from .conftest import DAY, MIDNIGHT, FakeClock


def test_an_empty_description_is_the_default_site() -> None:
    assert site_config(None) == SiteConfig()
    assert site_config({}) == SiteConfig()
    assert site_config({"can_bms": {"channel": "bus"}}).can_channel == "bus"


def test_sections_set_sizes_and_false_leaves_devices_out() -> None:
    config = site_config(
        {
            "load": {"base_w": 500},
            "deye": {"unit_id": 3, "pv_peak_w": 10_000, "soc_pct": 80},
            "meter": {"unit_id": 4},
            "sunspec": {"capacity_wh": 7500},
            "bess": False,
            "mqtt_bms": {"topic_map": "venus_os_battery"},
            "can_bms": False,
            "tick": 0.5,
        }
    )
    assert config.load_base_w == 500
    assert (config.deye.unit_id, config.deye.pv_peak_w, config.deye.soc_pct) == (3, 10_000, 80)
    assert config.deye.capacity_wh == SiteConfig().deye.capacity_wh
    assert config.meter_unit_id == 4
    assert config.sunspec == SunSpecConfig(capacity_wh=7500)
    assert config.bess is None
    assert config.mqtt_bms == "venus_os_battery"
    assert not config.can_bms
    assert config.tick == 0.5


def test_the_battery_inverter_takes_its_section_or_false() -> None:
    config = site_config({"battery_inverter": {"unit_id": 100, "capacity_wh": 5000}})
    assert config.battery_inverter == BatteryInverterConfig(unit_id=100, capacity_wh=5000)
    assert site_config({"battery_inverter": False}).battery_inverter is None
    with pytest.raises(ConfigError, match="battery_inverter"):
        site_config({"battery_inverter": {"watchdog_s": 0}})


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"deye": {"soc_pct": 140}}, "deye.soc_pct"),
        ({"meter": {"unit_id": 300}}, "meter.unit_id"),
        ({"bess": {"capacity_wh": -1}}, "bess"),
        ({"tick": 0}, "tick"),
        ({"solar": {}}, "solar"),
        ({"deye": {"unit_id": 2}}, "unit id 2"),
    ],
)
def test_invalid_descriptions_name_the_key(data: object, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        site_config(data, source="site.yaml")


def test_a_site_file_is_read_and_its_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("deye: {pv_peak_w: 6000}\nbess: false\n", encoding="utf-8")
    config = load_site_config(path)
    assert config.deye.pv_peak_w == 6000
    assert config.bess is None
    path.write_text("deye: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=str(path)):
        load_site_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_site_config(tmp_path / "missing.yaml")


def test_simulated_time_starts_where_asked_and_runs_faster() -> None:
    real = FakeClock(0.0)
    clock = scaled_clock(720.0, MIDNIGHT, wall=real, monotonic=real)
    assert clock() == MIDNIGHT
    real.advance(120)
    assert clock() == MIDNIGHT + DAY  # a day in two minutes
    with pytest.raises(ValueError, match="positive"):
        scaled_clock(0)


def test_today_at_is_a_time_of_day_in_solar_utc() -> None:
    wall = FakeClock(MIDNIGHT + 5 * 3600 + 17)
    assert today_at("13:30", wall=wall) == MIDNIGHT + 13.5 * 3600
    assert today_at("7", wall=wall) == MIDNIGHT + 7 * 3600
    for bad in ("24:00", "12:60", "noon"):
        with pytest.raises(ValueError, match="HH:MM"):
            today_at(bad, wall=wall)
