"""The ``planner:`` section: every option read, every mistake named by its key."""

from __future__ import annotations

import math
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_ems.exceptions import ConfigError
from edge_ems.hub.planning.config import parse_planner_config

FULL = """
time_zone: Europe/Prague
step_minutes: 15
horizon_hours: 36
replan_minutes: 15
daily_plan_at: "15:00"
mip_gap: 0.02
time_limit_s: 5
prices:
  source: entsoe
  area: 10YCZ-CEPS-----N
  market_time_zone: Europe/Prague
  token_file: entsoe.token
  fetch_times: ["13:30", "14:00", "00:05"]
tariff: tariff.yaml
pv_forecast:
  source: open_meteo
  latitude: 50.08
  longitude: 14.42
  planes: [{tilt_deg: 35, azimuth_deg: -20, kwp: 6.5}, {tilt_deg: 35, azimuth_deg: 70, kwp: 3}]
  inverter_max_w: 8000
dispatch: {resend_s: 30, lease_margin_s: 90}
audit: {delay_s: 120, keep_days: 30}
leader: {heartbeat_s: 2, fence_s: 10, server_timeout_s: 15}
sites:
  - site_id: farm
    batteries:
      - asset_id: battery-inverter
        soc_min: 0.15
        cycle_cost_per_kwh: 0.03
        power: [{asset_id: battery-inverter, metric: ac_power_w}]
    grid: {import_max_w: 17000, fuse_a: 25, phases: 3}
    pv_curtailable: true
    evs:
      - asset_id: ev-charger
        energy_needed_wh: 20000
        departure: "07:30"
        phases: [1, 3]
    heat_pumps:
      - asset_id: heat-pump
        max_power_w: 3000
        comfort_min_c: 20
        comfort_max_c: 23
        cop_curve: [[-7, 2.7], [7, 4.5]]
    deferrable_loads:
      - asset_id: dishwasher
        power_w: 1800
        duration_minutes: 90
        from: "09:00"
        to: "17:00"
        single_block: true
    measure:
      grid: [{asset_id: meter, metric: grid_power_w}]
      pv: [{asset_id: deye, metric: pv_power_w}]
      load: [{asset_id: deye, metric: load_power_w}]
    baseline: {weeks: 3, fallback_w: 400}
"""


def section(text: str = FULL, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(text)
    data.update(changes)
    return data


def test_the_full_example_is_read(tmp_path: Path) -> None:
    config = parse_planner_config(section(), base_dir=tmp_path)
    assert config.zone.key == "Europe/Prague"
    assert (config.horizon_hours, config.mip_gap, config.time_limit_s) == (36, 0.02, 5)
    assert config.prices.source == "entsoe"
    assert config.prices.token_file == tmp_path / "entsoe.token"
    assert config.prices.fetch_times == (time(0, 5), time(13, 30), time(14, 0))
    assert config.tariff == tmp_path / "tariff.yaml"
    assert config.pv_forecast.planes == ((35, -20, 6.5), (35, 70, 3))
    assert config.leader.fence_s == 10
    [site] = config.sites
    assert not site.all_batteries
    battery = site.battery("battery-inverter")
    assert battery is not None
    assert (battery.soc_min, battery.soc_max, battery.cycle_cost_per_kwh) == (0.15, 1.0, 0.03)
    assert site.battery("another") is None  # only the listed ones
    assert site.grid.fuse_a == 25
    assert math.isinf(site.grid.export_max_w)
    [ev] = site.evs
    assert (ev.departure, ev.phases) == (time(7, 30), (1, 3))
    [heat_pump] = site.heat_pumps
    assert heat_pump.cop_curve == ((-7, 2.7), (7, 4.5))
    assert site.planned_ids == {"ev-charger", "heat-pump", "dishwasher"}
    assert site.baseline.fallback_w == 400


def test_defaults_plan_every_registered_battery() -> None:
    config = parse_planner_config(
        {"time_zone": "Europe/Berlin", "prices": {"source": "ote"}, "sites": [{"site_id": "a"}]}
    )
    assert (config.step_minutes, config.replan_minutes, config.horizon_hours) == (15, 15, 48)
    assert config.daily_plan_at == time(15, 0)
    assert config.dispatch.resend_s == 60
    assert config.pv_forecast.source == "none"
    battery = config.sites[0].battery("anything")
    assert battery is not None
    assert (battery.soc_min, battery.charge_efficiency) == (0.1, 0.95)


def test_a_departure_may_be_one_moment() -> None:
    data = section()
    data["sites"][0]["evs"][0]["departure"] = "2026-06-17T07:30:00+02:00"
    config = parse_planner_config(data)
    assert isinstance(config.sites[0].evs[0].departure, datetime)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "planner.time_zone: unknown time zone 'Mars/Olympus'"),
        ({"step_minutes": 20}, "planner.step_minutes"),
        ({"replan_minutes": 7}, "planner.replan_minutes: 7 does not fit steps of 15 minutes"),
        ({"sites": []}, "planner.sites"),
        ({"colour": "blue"}, "planner.colour: unknown key"),
        ({"prices": {"source": "entsoe", "area": "X"}}, "planner.prices.market_time_zone"),
        ({"prices": {"source": "none"}}, "planner.prices.currency: without a price source"),
        ({"prices": {"source": "file", "area": "CZ", "market_time_zone": "Europe/Prague"}},
         "planner.prices.path: the file source needs it"),
        ({"prices": {"source": "ote", "fetch_times": ["25:00"]}}, "planner.prices.fetch_times.0"),
        ({"leader": {"fence_s": 30, "server_timeout_s": 20}}, "planner.leader.fence_s"),
        ({"pv_forecast": {"source": "open_meteo"}}, "planner.sites.0.pv_forecast: open_meteo"),
    ],
)  # fmt: skip
def test_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    data = section()
    data.update(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_planner_config(data, source="hub.yaml")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("evs", 0, "departure"), "half past seven", "planner.sites.0.evs.0.departure"),
        (("evs", 0, "max_current_a"), 4, "planner.sites.0.evs.0.max_current_a: is below"),
        (("heat_pumps", 0, "comfort_min_c"), 30, "comfort_min_c: is above comfort_max_c"),
        (("batteries", 0, "soc_min"), 1.5, "planner.sites.0.batteries.0.soc_min"),
        (("measure", "grid", 0, "metric"), "grid_watts", "'grid_watts' is not a metric"),
        (("deferrable_loads", 0, "on_off"), False, "single_block: a single block needs on_off"),
    ],
)
def test_site_mistakes_are_named(path: tuple[Any, ...], value: Any, message: str) -> None:
    data = section()
    target = data["sites"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_planner_config(data, source="hub.yaml")


def test_a_site_listed_twice_is_refused() -> None:
    data = section()
    data["sites"].append(dict(data["sites"][0]))
    with pytest.raises(ConfigError, match="site 'farm' is listed twice"):
        parse_planner_config(data)
