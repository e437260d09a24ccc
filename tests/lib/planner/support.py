"""Small problems built by hand for the planner tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from edge_ems.planner.problem import (
    Battery,
    Deferrable,
    Ev,
    Grid,
    HeatPump,
    Hold,
    Horizon,
    Problem,
    Pv,
    series,
)

DATA = Path(__file__).with_name("data")
EXAMPLES = (DATA / "scenario_s7_30min.json", DATA / "scenario_s7_15min.json")
ZONE = ZoneInfo("Europe/Prague")
START = datetime(2026, 3, 2, tzinfo=ZONE)


def problem(
    *,
    load: Sequence[float] | float = 500.0,
    pv: Sequence[float] | float = 0.0,
    buy: Sequence[float] | float = 0.2,
    sell: Sequence[float] | float = 0.05,
    n: int = 8,
    step_minutes: int = 60,
    grid: Grid | None = None,
    curtailable: bool = False,
    batteries: Sequence[Battery] = (),
    deferrables: Sequence[Deferrable] = (),
    evs: Sequence[Ev] = (),
    heat_pumps: Sequence[HeatPump] = (),
    simultaneous: bool = False,
    holds: Sequence[Hold] = (),
) -> Problem:
    """A problem over ``n`` steps from :data:`START`; scalars repeat."""
    return Problem(
        horizon=Horizon(START, step_minutes, n),
        load_w=series(load, n, "load"),
        import_price=series(buy, n, "buy"),
        export_price=series(sell, n, "sell"),
        pv=Pv(series(pv, n, "pv"), curtailable=curtailable),
        grid=grid or Grid(),
        batteries=tuple(batteries),
        deferrables=tuple(deferrables),
        evs=tuple(evs),
        heat_pumps=tuple(heat_pumps),
        simultaneous_charge_discharge_allowed=simultaneous,
        holds=tuple(holds),
    )


def battery(**overrides: object) -> Battery:
    """A 10 kWh, 5 kW battery at half charge; ``overrides`` change any field."""
    values: dict[str, object] = {
        "id": "battery",
        "capacity_wh": 10_000.0,
        "charge_max_w": 5000.0,
        "discharge_max_w": 5000.0,
        "soc_initial": 0.5,
        "charge_efficiency": 0.95,
        "discharge_efficiency": 0.95,
        "soc_min": 0.1,
        "soc_max": 1.0,
    }
    values.update(overrides)
    return Battery(**values)  # type: ignore[arg-type]


def on_steps(power: np.ndarray) -> list[int]:
    """The steps a power series is on."""
    return [int(step) for step in np.flatnonzero(power > 1.0)]
