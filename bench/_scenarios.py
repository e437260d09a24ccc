"""Seeded scenarios for the planner benchmarks, in the ``planner-bench-scenario/1`` format.

Every figure comes from ``numpy.random.default_rng(seed)``, so a seed names a scenario. The
days look like European homes in any season: a PV array whose output follows the sun with
clouds that persist through the day, a house load with a base, a morning and an evening
peak and appliance spikes, and day-ahead import prices with the morning and evening peaks
and the midday solar dip (export earns ``min(0.5 x import, 0.15)`` as in the examples).
``full`` scenarios add what the benchmark format leaves out: a second battery that starts
empty, an EV that wants more than its window allows, a heat pump and negative-price days.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ZONE = ZoneInfo("Europe/Paris")
GENERATOR = "edge-ems-bench/1"


def _day_fraction(times: list[datetime]) -> np.ndarray:
    return np.array([(t.hour * 60 + t.minute) / 1440 for t in times])


def solar(times: list[datetime], rng: np.random.Generator, peak_w: float) -> np.ndarray:
    """PV power: a sine from sunrise to sunset (season from the date), clouds per day and
    passing clouds within it."""
    month = times[0].month
    season = math.cos((month - 6.5) / 12 * 2 * math.pi)  # 1 in midsummer, -1 in midwinter
    sunrise, sunset = 0.27 - 0.06 * season, 0.73 + 0.07 * season
    f = _day_fraction(times)
    shape = np.clip(np.sin(np.pi * (f - sunrise) / (sunset - sunrise)), 0, None) ** 1.3
    days = np.array([(t.date() - times[0].date()).days for t in times])
    clear = rng.uniform(0.25, 1.0, size=days.max() + 1)[days]
    passing = np.clip(1 - np.abs(rng.normal(0, 0.25, size=len(times))), 0.2, 1)
    smooth = np.convolve(passing, np.ones(3) / 3, mode="same")
    strength = 0.55 + 0.45 * (season + 1) / 2
    return np.round(peak_w * strength * shape * clear * smooth, 1)


def house_load(times: list[datetime], rng: np.random.Generator) -> np.ndarray:
    """House load: base, morning and evening peaks, random appliance spikes."""
    f = _day_fraction(times) * 24
    base = rng.uniform(250, 450)
    morning = rng.uniform(300, 900) * np.exp(-(((f - rng.uniform(6.5, 8)) / 1.0) ** 2))
    evening = rng.uniform(700, 1600) * np.exp(-(((f - rng.uniform(18, 20.5)) / 1.6) ** 2))
    spikes = rng.random(len(times)) < 0.05
    load = base + morning + evening + spikes * rng.uniform(500, 2000, size=len(times))
    load *= rng.normal(1.0, 0.06, size=len(times))
    return np.round(np.clip(load, 150, None), 1)


def import_prices(
    times: list[datetime], rng: np.random.Generator, *, negative_days: int = 0
) -> np.ndarray:
    """Day-ahead-like import prices per kWh (EUR), peaks morning and evening, solar dip."""
    f = _day_fraction(times) * 24
    days = np.array([(t.date() - times[0].date()).days for t in times])
    level = rng.uniform(0.10, 0.2, size=days.max() + 1)[days]
    morning = rng.uniform(0.03, 0.1) * np.exp(-(((f - 8) / 1.5) ** 2))
    evening = rng.uniform(0.06, 0.18) * np.exp(-(((f - 19) / 2.0) ** 2))
    dip = rng.uniform(0.02, 0.1) * np.exp(-(((f - 13.5) / 2.5) ** 2))
    night = -0.03 * np.exp(-(((f - 3.5) / 2.0) ** 2))
    noise = rng.normal(0, 0.01, size=len(times))
    price = np.clip(level + morning + evening - dip + night + noise, 0.05, 0.4)
    if negative_days:
        for day in rng.choice(days.max() + 1, size=negative_days, replace=False):
            midday = (days == day) & (f > 10.5) & (f < 15.5)
            price[midday] = rng.uniform(-0.08, -0.005, size=int(midday.sum()))
    return np.round(price, 5)


def scenario(
    seed: int,
    *,
    step_minutes: int,
    n_steps: int,
    single_block: bool,
    battery_export: bool,
    full: bool = False,
) -> dict[str, Any]:
    """One scenario document."""
    rng = np.random.default_rng(seed)
    day = datetime(2025, 1, 1, tzinfo=ZONE) + timedelta(days=int(rng.integers(0, 365)))
    start = day.replace(hour=0, minute=0)
    step = timedelta(minutes=step_minutes)
    utc = start.astimezone(UTC)
    times = [(utc + k * step).astimezone(ZONE) for k in range(n_steps)]
    pv = solar(times, rng, rng.uniform(3000, 8000))
    load = house_load(times, rng)
    price = import_prices(times, rng, negative_days=1 if full else 0)
    export = np.round(np.minimum(0.5 * price, 0.15), 5)
    if full:
        export = np.where(price < 0, price, export)
    capacity = float(rng.choice([5000.0, 7500.0, 10000.0, 13500.0, 15000.0]))
    power = float(round(capacity * rng.uniform(0.3, 0.6), -2))
    soc_min = float(round(rng.uniform(0.05, 0.2), 2))
    soc_max = float(round(rng.uniform(0.9, 1.0), 2))
    soc_initial = float(round(rng.uniform(soc_min, soc_max), 3))
    steps_per_hour = 60 // step_minutes
    deferrables = []
    for index in range(2):
        power_w = float(rng.choice([1000.0, 1500.0, 2000.0, 2500.0, 3000.0]))
        hours = int(rng.integers(1, 5))
        required = hours * steps_per_hour
        if rng.random() < 0.5:
            earliest, latest = 0, n_steps
        else:
            length = int(rng.integers(required + steps_per_hour, n_steps // 2))
            earliest = int(rng.integers(0, n_steps - length))
            latest = earliest + length
        deferrables.append(
            {
                "name": f"def{index}_{power_w / 1000:g}kw_{hours}h".replace(".", "p"),
                "power_w": power_w,
                "duration_hours": float(hours),
                "energy_wh": power_w * hours,
                "required_steps": required,
                "on_off": True,
                "single_block": single_block,
                "earliest_start_step": earliest,
                "latest_end_step": latest,
            }
        )
    document: dict[str, Any] = {
        "schema": "planner-bench-scenario/1",
        "generator": GENERATOR,
        "seed": seed,
        "time_zone": "Europe/Paris",
        "start": start.isoformat(),
        "step_minutes": step_minutes,
        "n_steps": n_steps,
        "horizon_hours": n_steps * step_minutes // 60,
        "currency": "EUR",
        "timestamps": [t.isoformat() for t in times],
        "pv_w": pv.tolist(),
        "load_w": load.tolist(),
        "import_price_per_kwh": price.tolist(),
        "export_price_per_kwh": export.tolist(),
        "battery": {
            "capacity_wh": capacity,
            "charge_power_max_w": power,
            "discharge_power_max_w": power,
            "power_limits_side": "ac",
            "charge_efficiency": float(round(rng.uniform(0.9, 0.97), 3)),
            "discharge_efficiency": float(round(rng.uniform(0.9, 0.97), 3)),
            "soc_min": soc_min,
            "soc_max": soc_max,
            "soc_initial": soc_initial,
            "soc_final": soc_initial,
            "soc_final_rule": "equal",
        },
        "grid": {
            "import_max_w": float(rng.choice([9000.0, 11000.0, 17000.0])),
            "export_max_w": float(rng.choice([5000.0, 7000.0, 10000.0])),
        },
        "deferrable_loads": deferrables,
        "policy": {
            "battery_export_allowed": battery_export,
            "battery_grid_charge_allowed": True,
            "pv_curtailment_allowed": False,
            "simultaneous_import_export_allowed": False,
            "simultaneous_charge_discharge_allowed": False,
        },
    }
    if full:
        _add_full(document, rng, times)
    return document


def _add_full(document: dict[str, Any], rng: np.random.Generator, times: list[datetime]) -> None:
    """Two batteries (the second empty), an EV that cannot get all it wants, a heat pump,
    a single-block and a minimum on/off deferrable, curtailable PV."""
    n, step_minutes = document["n_steps"], document["step_minutes"]
    steps_per_hour = 60 // step_minutes
    document["policy"]["pv_curtailment_allowed"] = True
    document["batteries"] = [
        {
            "name": "second",
            "capacity_wh": 5000.0,
            "charge_power_max_w": 2500.0,
            "discharge_power_max_w": 2500.0,
            "charge_efficiency": 0.95,
            "discharge_efficiency": 0.95,
            "soc_min": 0.1,
            "soc_max": 1.0,
            "soc_initial": 0.0,
            "soc_final": 0.5,
            "soc_final_rule": "at_least",
            "cycle_cost_per_kwh": 0.02,
        }
    ]
    document["deferrable_loads"][0]["single_block"] = True
    second = document["deferrable_loads"][1]
    second["single_block"] = False
    second["min_on_steps"] = steps_per_hour
    second["min_off_steps"] = steps_per_hour
    arrive = int(rng.integers(steps_per_hour * 16, steps_per_hour * 20))
    depart = arrive + int(rng.integers(steps_per_hour * 4, steps_per_hour * 8))
    document["ev"] = {
        "name": "car",
        # More than the window can hold at full power: a shortfall is certain.
        "energy_needed_wh": 11000.0 * (depart - arrive) / steps_per_hour * 1.3,
        "arrive_step": arrive,
        "depart_step": min(depart, n),
        "phases": [1, 3],
        "min_current_a": 6.0,
        "max_current_a": 16.0,
    }
    f = _day_fraction(times)
    outdoor = np.round(rng.uniform(-5, 8) + 5 * np.sin(2 * np.pi * (f - 0.4)), 2)
    document["heat_pump"] = {
        "name": "heat_pump",
        "max_power_w": 3000.0,
        "min_power_w": 700.0,
        "outdoor_temp_c": outdoor.tolist(),
        "comfort_min_c": 20.0,
        "comfort_max_c": 23.0,
        "indoor_temp_c": float(round(rng.uniform(19.5, 22), 2)),
        "heat_capacity_kwh_per_k": 8.0,
        "heat_loss_w_per_k": 180.0,
    }
