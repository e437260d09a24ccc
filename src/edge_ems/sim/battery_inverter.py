"""The simulated battery inverter: a Victron MultiPlus-II in ESS mode 3, behind a GX device.

It serves the ``victron_vebus_ess`` map's registers, as the GX's VE.Bus unit does. The Multi
takes from its AC input (+) or feeds into it (-) what the ESS setpoint (37) asks, within its
rating and what the battery's state of charge allows; nothing hangs on its AC output, so
that is the battery's power. A written setpoint holds while a master keeps rewriting it: when
nobody did for ``watchdog_s`` seconds (monotonic time) the Multi drops it to 0 W and passes
the grid through, and the register reads 0 again. The switch (33) in charger-only mode stops
discharging, in inverter-only mode charging, and off both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..metrics import BATTERY_POWER
from ..pointmap.codec import decode_raw, orders, to_value
from ..pointmap.model import PointMap
from ..readings import Value
from .ambient import frequency, phase_voltage
from .physics import Battery

if TYPE_CHECKING:
    from .modbus_server import UnitImage

MAP_ID = "victron_vebus_ess"
SETTINGS: Mapping[str, Value] = MappingProxyType({BATTERY_POWER: 0, "work_mode": "on"})
"""The writable points and what the Multi holds at start."""
ABSORPTION_FROM_PCT = 90.0
"""Above this state of charge the charger reports absorption rather than bulk."""


@dataclass(slots=True)
class BatteryInverter:
    """The Multi, its watchdog and its battery."""

    battery: Battery
    watchdog_s: float = 60.0
    """How long a written setpoint holds without being written again."""
    setpoint_w: float = 0.0
    """The setpoint last written, in the site's sign (+ discharges)."""
    written_at: float | None = None
    """Monotonic time of that write; ``None`` before any."""
    mode: str = "on"

    def remaining_s(self, monotonic: float) -> float:
        """Seconds before the watchdog drops the written setpoint."""
        if self.written_at is None:
            return 0.0
        return max(0.0, self.watchdog_s - (monotonic - self.written_at))

    def setpoint(self, monotonic: float) -> float:
        """The setpoint in force: the written one until the watchdog fires, then 0 W."""
        return self.setpoint_w if self.remaining_s(monotonic) > 0 else 0.0

    def wanted_w(self, monotonic: float) -> float:
        """What the Multi asks of its battery now (+ discharges), before the battery's limits."""
        power = self.setpoint(monotonic)
        if power > 0 and self.mode in ("off", "charger_only"):
            return 0.0
        if power < 0 and self.mode in ("off", "inverter_only"):
            return 0.0
        return power

    def accept(
        self, settings: Mapping[str, Value], monotonic: float, *, setpoint_written: bool
    ) -> None:
        """Take what the image's settings hold; a written setpoint restarts the watchdog."""
        setpoint = settings.get(BATTERY_POWER)
        if setpoint_written and isinstance(setpoint, int | float) and math.isfinite(setpoint):
            self.setpoint_w, self.written_at = float(setpoint), monotonic
        mode = settings.get("work_mode")
        if isinstance(mode, str):
            self.mode = mode

    def step(self, timestamp: float, monotonic: float) -> float:
        """Advance to ``timestamp``; return the battery's power (+ discharges)."""
        self.battery.command(self.wanted_w(monotonic))
        self.battery.advance(timestamp)
        return self.battery.power_w

    def state(self) -> str:
        """The VE.Bus state, as the map names it."""
        power = self.battery.power_w
        if self.mode == "off":
            return "off"
        if power > 0:
            return "inverting"
        if power < 0:
            return "absorption" if self.battery.soc_pct >= ABSORPTION_FROM_PCT else "bulk"
        return "passthru"


def install_settings(image: UnitImage) -> None:
    """Put the Multi's start values in the image's writable registers."""
    for metric, value in SETTINGS.items():
        image.set(metric, value)


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


def inverter_values(
    inverter: BatteryInverter, timestamp: float, monotonic: float
) -> dict[str, Value]:
    """The registers the Multi sets itself, the setpoint in force among them."""
    battery = inverter.battery
    power = round(battery.power_w, 1)
    volts = phase_voltage(timestamp, "l1")
    values: dict[str, Value] = {
        BATTERY_POWER: round(inverter.setpoint(monotonic)),
        "ac_voltage_l1_v": volts,
        "ac_current_l1_a": round(abs(power) / volts, 1),
        "ac_frequency_hz": frequency(timestamp),
        # The map reads 10 W steps.
        "ac_power_l1_w": round(power, -1),
        "battery_voltage_v": battery.voltage_v,
        "battery_current_a": round(battery.current_a, 1),
        "soc_pct": round(battery.soc_pct, 1),
        "battery_temperature_c": round(battery.temperature_c, 1),
        "inverter_state": inverter.state(),
        "fault_code": 0,
    }
    # Single phase: the other phases' registers read 0, as the GX answers for them.
    for phase in ("l2", "l3"):
        values[f"ac_voltage_{phase}_v"] = 0.0
        values[f"ac_current_{phase}_a"] = 0.0
        values[f"ac_power_{phase}_w"] = 0.0
    return values
