"""What a plan's step tells each asset to do, in the metric vocabulary's commands.

The one place that says which commands a planned battery, EV, heat pump and deferrable load
get: the plan the hub made (:func:`.execute.setpoints`) and a published plan document
(:meth:`.site_plan.SitePlan.setpoints_at`, which a standby hub carries out for the sites
connected to it) both come through here. No numpy: a site reads plan documents without the
solver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..metrics import BATTERY_POWER


@dataclass(frozen=True, slots=True)
class Setpoint:
    """One command for one asset, as the metric vocabulary names it."""

    asset_id: str
    command: str
    value: float | int | bool


@dataclass(frozen=True, slots=True)
class EvStep:
    """An EV's step: the power it draws, at which current and on how many phases."""

    power_w: float
    current_a: float
    phases: int


def step_setpoints(
    batteries: Mapping[str, float],
    evs: Mapping[str, EvStep],
    heat_pumps: Mapping[str, float],
    loads: Mapping[str, float],
) -> list[Setpoint]:
    """The commands of one step, from each asset's planned power (batteries: + discharge,
    - charge): each battery's power, each EV's permission to charge with its current and
    phases, each heat pump's power limit, whether each deferrable load runs."""
    found = [Setpoint(asset, BATTERY_POWER, round(power, 1)) for asset, power in batteries.items()]
    for asset, ev in evs.items():
        charging = ev.power_w > 0
        found.append(Setpoint(asset, "ev_charging_enabled", charging))
        if charging:
            found.append(Setpoint(asset, "ev_current_limit_a", round(ev.current_a, 2)))
            found.append(Setpoint(asset, "ev_phases", ev.phases))
    found += [
        Setpoint(asset, "heat_pump_power_limit_w", round(power, 1))
        for asset, power in heat_pumps.items()
    ]
    found += [Setpoint(asset, "load_enabled", power > 0) for asset, power in loads.items()]
    return found
