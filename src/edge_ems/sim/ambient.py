"""What every simulated device shares with its surroundings: the grid's voltage and frequency,
how power splits over three phases, the outdoor temperature, and how hardware warms up.

Functions of time only (seconds since the epoch, solar time taken as UTC as in
:mod:`edge_ems.sim.physics`), so every device of a site sees the same grid at the same moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..metrics import PHASES

NOMINAL_V = 230.0
NOMINAL_HZ = 50.0
_DAY = 86_400.0
_PHASE_SHIFT = {phase: index * 2.0 for index, phase in enumerate(PHASES)}
# Houses load their phases unevenly; the shares wander slowly around these.
_PHASE_SHARE = {"l1": 0.37, "l2": 0.33, "l3": 0.30}


def phase_voltage(timestamp: float, phase: str) -> float:
    """Line-to-neutral voltage of ``phase``: a few volts around nominal, drifting slowly."""
    shift = _PHASE_SHIFT[phase]
    drift = 3.0 * math.sin(timestamp / 1800.0 + shift) + 0.8 * math.sin(timestamp / 41.0 + shift)
    return round(NOMINAL_V + drift, 1)


def line_voltage(timestamp: float, first: str, second: str) -> float:
    """Line-to-line voltage between two phases 120 degrees apart."""
    a, b = phase_voltage(timestamp, first), phase_voltage(timestamp, second)
    return round(math.sqrt(a * a + b * b + a * b), 1)


def frequency(timestamp: float) -> float:
    """Grid frequency: within a few tens of millihertz of nominal."""
    return round(
        NOMINAL_HZ + 0.03 * math.sin(timestamp / 97.0) + 0.01 * math.sin(timestamp / 7.0), 3
    )


def phase_shares(timestamp: float) -> dict[str, float]:
    """How a three-phase flow splits over the phases now; the shares add up to 1."""
    wobble = 0.03 * math.sin(timestamp / 600.0)
    shares = {"l1": _PHASE_SHARE["l1"] + wobble, "l2": _PHASE_SHARE["l2"] - wobble}
    shares["l3"] = 1.0 - shares["l1"] - shares["l2"]
    return shares


def power_factor(timestamp: float) -> float:
    """Displacement power factor of a household connection: inductive, close to 1."""
    return round(0.96 + 0.03 * math.sin(timestamp / 1300.0), 3)


def outdoor_temperature(timestamp: float) -> float:
    """Outdoor air temperature: coolest before sunrise, warmest mid-afternoon."""
    hour = (timestamp % _DAY) / 3600.0
    return round(14.0 + 7.0 * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0), 2)


@dataclass(slots=True)
class ThermalLag:
    """A temperature that follows its target with a first-order lag (a heatsink, a cabinet)."""

    temperature_c: float
    time_constant_s: float = 1200.0
    _last: float | None = None

    def advance(self, timestamp: float, target_c: float) -> float:
        """Move towards ``target_c`` for the time since the last call; return the temperature."""
        if self._last is not None and timestamp > self._last:
            share = 1.0 - math.exp(-(timestamp - self._last) / self.time_constant_s)
            self.temperature_c += (target_c - self.temperature_c) * share
        self._last = timestamp
        return round(self.temperature_c, 1)
