"""The simulated EV charger: an Alfen Eve socket with a vehicle that comes, charges and goes.

The charger serves the ``alfen_eve`` point map's registers. What it offers the vehicle is
the maximum current a Modbus master wrote (1210) while that write is younger than the
station's validity time, and its own safe current otherwise (section 1.3.1 of Alfen's
document): so a controller that falls silent hands the socket back to its fallback current.
Writes of 1-5 A offer nothing (no vehicle charges below 6 A, IEC 61851-1), and the phases
register (1215) picks one or three phases.

The vehicle plugs in at the start of every ``period_h`` and stays ``stay_h`` hours (it is
there when the simulation starts), arriving with ``arrival_soc_pct``. It draws what it is
offered up to its on-board charger's limit, tapering above 80 % state of charge, and stops
when full: the socket goes A (no vehicle), B2 (plugged, not charging) and C2 (charging).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..pointmap.codec import decode_raw, orders, to_value
from ..pointmap.model import PointMap
from ..readings import Value
from .ambient import NOMINAL_V, frequency, phase_voltage

if TYPE_CHECKING:
    from .modbus_server import UnitImage

MAP_ID = "alfen_eve"
MIN_CURRENT_A = 6.0
"""Below this a vehicle does not charge (IEC 61851-1)."""
TAPER_FROM_PCT = 80.0
SETTINGS = frozenset({"ev_current_limit_a", "ev_phases"})
"""The points a master writes; the charger keeps them as written."""


@dataclass(slots=True)
class Vehicle:
    """The car behind the socket."""

    capacity_wh: float = 60_000.0
    max_power_w: float = 11_000.0
    """What its on-board charger takes at most."""
    soc_pct: float = 40.0
    plugged: bool = True

    def accepts_w(self, offered_w: float) -> float:
        """Power it draws when ``offered_w`` is on offer: tapering near full, none when full."""
        if not self.plugged or self.soc_pct >= 100.0:
            return 0.0
        ceiling = self.max_power_w
        if self.soc_pct > TAPER_FROM_PCT:
            ceiling *= max(0.05, (100.0 - self.soc_pct) / (100.0 - TAPER_FROM_PCT))
        return min(offered_w, ceiling)


@dataclass(slots=True)
class EvCharger:
    """The socket, its vehicle and its counters."""

    vehicle: Vehicle
    fallback_current_a: float = 10.0
    validity_s: float = 60.0
    """How long a written maximum current holds without being written again."""
    max_current_a: float = 32.0
    period_h: float = 8.0
    stay_h: float = 5.0
    arrival_soc_pct: float = 30.0
    limit_a: float | None = None
    """The maximum current last written; ``None`` before any master wrote one."""
    written_at: float | None = None
    """Monotonic time of that write."""
    phases: int = 3
    power_w: float = 0.0
    """What the vehicle draws now (positive)."""
    offered_a: float = 0.0
    session_energy_wh: float = 0.0
    energy_wh: float = 1_234_000.0
    _origin: float | None = None
    _last: float | None = None

    def remaining_s(self, monotonic: float) -> float:
        """Seconds before the written maximum current gives way to the fallback current."""
        if self.written_at is None:
            return 0.0
        return max(0.0, self.validity_s - (monotonic - self.written_at))

    def offered(self, monotonic: float) -> float:
        """The current on offer now: the master's while it is valid, else the fallback."""
        wanted = self.limit_a if self.remaining_s(monotonic) > 0 else None
        current = self.fallback_current_a if wanted is None else wanted
        current = min(current, self.max_current_a)
        return current if current >= MIN_CURRENT_A else 0.0

    def state(self) -> str:
        """IEC 61851 state, as Alfen's Mode 3 state names it."""
        if not self.vehicle.plugged:
            return "a"
        return "c2" if self.power_w > 0 else "b2"

    def step(self, timestamp: float, monotonic: float) -> float:
        """Advance to ``timestamp``; return the power drawn (positive)."""
        if self._origin is None:
            self._origin = timestamp
        hours = 0.0 if self._last is None else max(0.0, timestamp - self._last) / 3600.0
        self.energy_wh += self.power_w * hours
        self.session_energy_wh += self.power_w * hours
        vehicle = self.vehicle
        vehicle.soc_pct = min(
            100.0, vehicle.soc_pct + 100.0 * self.power_w * hours / vehicle.capacity_wh
        )
        plugged = (timestamp - self._origin) / 3600.0 % self.period_h < self.stay_h
        if plugged and not vehicle.plugged:
            vehicle.soc_pct = self.arrival_soc_pct
            self.session_energy_wh = 0.0
        vehicle.plugged = plugged
        self.offered_a = self.offered(monotonic)
        offered_w = self.phases * NOMINAL_V * self.offered_a
        self.power_w = round(vehicle.accepts_w(offered_w), 1)
        self._last = timestamp
        return self.power_w

    def accept(
        self, settings: Mapping[str, Value], monotonic: float, *, limit_written: bool
    ) -> None:
        """Take what the image's settings hold; a written limit restarts the validity time."""
        limit, phases = settings.get("ev_current_limit_a"), settings.get("ev_phases")
        if limit_written and isinstance(limit, int | float) and math.isfinite(limit):
            self.limit_a, self.written_at = float(limit), monotonic
        if phases in (1, 3):
            self.phases = int(phases)


def read_settings(image: UnitImage, point_map: PointMap) -> dict[str, Value]:
    """The writable points as the image holds them."""
    values: dict[str, Value] = {}
    for metric in SETTINGS:
        point = point_map.points[metric]
        registers = image.read(point.space, point.address, point.registers)
        value, _ = to_value(point, decode_raw(point, registers, *orders(point, point_map.device)))
        values[metric] = value
    return values


def written(point_map: PointMap, metric: str, address: int, count: int) -> bool:
    """Whether a write of ``count`` registers at ``address`` touched ``metric``."""
    point = point_map.points[metric]
    return address <= point.end and address + count - 1 >= point.address


def charger_values(charger: EvCharger, timestamp: float, monotonic: float) -> dict[str, Value]:
    """The read-only registers' values now (+ delivers: the socket's power is negative)."""
    per_phase = charger.power_w / charger.phases if charger.phases else 0.0
    values: dict[str, Value] = {
        "ev_state": charger.state(),
        "device_state": "operative",
        "ev_current_offered_a": charger.offered_a,
        "control_revert_remaining_s": round(charger.remaining_s(monotonic)),
        "ev_fallback_current_a": charger.fallback_current_a,
        "ac_power_w": -charger.power_w,
        "ac_energy_in_wh": round(charger.energy_wh, 1),
        "ac_frequency_hz": frequency(timestamp),
    }
    total_current = 0.0
    for index, phase in enumerate(("l1", "l2", "l3")):
        active = index < charger.phases
        volts = phase_voltage(timestamp, phase)
        current = round(per_phase / volts, 2) if active else 0.0
        total_current += current
        values[f"ac_voltage_{phase}_v"] = volts
        values[f"ac_current_{phase}_a"] = current
        values[f"ac_power_{phase}_w"] = -round(per_phase, 1) if active else 0.0
    values["ac_current_a"] = round(total_current, 2)
    return values
