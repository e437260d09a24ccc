"""The physics behind every simulator: sun, PV, load, battery and the grid balance.

Time is passed in explicitly (seconds since the epoch), so simulators can run in real time
or replay a day in milliseconds, and tests are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_DAY = 86_400.0


def solar_elevation_factor(
    timestamp: float, *, sunrise_h: float = 6.0, sunset_h: float = 20.0
) -> float:
    """Clear-sky irradiance as a share of noon's: a half sine from sunrise to sunset, 0 at night.

    Local solar time is taken as UTC; simulators only need a plausible daily shape.
    """
    hour = (timestamp % _DAY) / 3600.0
    if not sunrise_h < hour < sunset_h:
        return 0.0
    return float(math.sin(math.pi * (hour - sunrise_h) / (sunset_h - sunrise_h)) ** 1.2)


@dataclass(slots=True)
class PvArray:
    """A PV array whose output follows the sun, with slow passing clouds."""

    peak_w: float = 8000.0
    strings: int = 2
    string_voltage_v: float = 580.0
    energy_wh: float = 0.0
    _last: float | None = None

    def irradiance_w_m2(self, timestamp: float) -> float:
        """Global horizontal irradiance now."""
        clouds = 0.85 + 0.15 * math.sin(timestamp / 900.0) * math.sin(timestamp / 317.0)
        return round(1000.0 * solar_elevation_factor(timestamp) * clouds, 1)

    def power_w(self, timestamp: float) -> float:
        """DC power now."""
        return round(self.peak_w * self.irradiance_w_m2(timestamp) / 1000.0, 1)

    def string_power_w(self, timestamp: float) -> list[float]:
        """Power per string; the strings share the array's output evenly."""
        share = self.power_w(timestamp) / self.strings
        return [round(share, 1)] * self.strings

    def string_voltage(self, timestamp: float) -> float:
        """String voltage: near open-circuit at dawn, at the maximum-power point by day."""
        return 0.0 if self.power_w(timestamp) <= 0 else self.string_voltage_v

    def advance(self, timestamp: float) -> None:
        """Accumulate produced energy up to ``timestamp``."""
        if self._last is not None and timestamp > self._last:
            self.energy_wh += self.power_w(timestamp) * (timestamp - self._last) / 3600.0
        self._last = timestamp


@dataclass(slots=True)
class HouseLoad:
    """A household load: base load, a morning and an evening peak."""

    base_w: float = 350.0

    def power_w(self, timestamp: float) -> float:
        """Consumption now (positive)."""
        hour = (timestamp % _DAY) / 3600.0
        morning = 900.0 * math.exp(-(((hour - 7.5) / 1.0) ** 2))
        evening = 1800.0 * math.exp(-(((hour - 19.0) / 1.5) ** 2))
        ripple = 60.0 * math.sin(timestamp / 47.0)
        return round(self.base_w + morning + evening + ripple, 1)


@dataclass(slots=True)
class Battery:
    """A battery whose state of charge integrates its power.

    Power follows the sign convention: positive discharges, negative charges. The command is
    clamped to the power limits and to what the state of charge allows.
    """

    capacity_wh: float = 10_000.0
    max_charge_w: float = 5000.0
    max_discharge_w: float = 5000.0
    soc_pct: float = 50.0
    soc_min_pct: float = 10.0
    soc_max_pct: float = 100.0
    nominal_voltage_v: float = 51.2
    efficiency: float = 0.95
    command_w: float = 0.0
    power_w: float = 0.0
    charge_energy_wh: float = 0.0
    discharge_energy_wh: float = 0.0
    temperature_c: float = 22.0
    alarms: int = 0
    """BMS protection alarm bits (Pylontech's layout: bit 3 over-temperature...) that its
    BMS reports; a test or a demo sets them to see the alarm travel."""
    _last: float | None = field(default=None)

    def command(self, power_w: float) -> float:
        """Ask for ``power_w``; return what the limits allow right now."""
        self.command_w = power_w
        self.power_w = self._allowed(power_w)
        return self.power_w

    def _allowed(self, power_w: float) -> float:
        power_w = max(-self.max_charge_w, min(self.max_discharge_w, power_w))
        if power_w > 0 and self.soc_pct <= self.soc_min_pct:
            return 0.0
        if power_w < 0 and self.soc_pct >= self.soc_max_pct:
            return 0.0
        return power_w

    @property
    def voltage_v(self) -> float:
        """Terminal voltage: rises with state of charge and sags under discharge."""
        open_circuit = self.nominal_voltage_v * (0.94 + 0.12 * self.soc_pct / 100.0)
        return round(open_circuit - 0.002 * self.power_w / self.nominal_voltage_v * 10.0, 2)

    @property
    def current_a(self) -> float:
        """Current with the power's sign (positive discharges)."""
        return round(self.power_w / self.voltage_v, 2)

    def advance(self, timestamp: float) -> None:
        """Integrate power into state of charge and energy counters up to ``timestamp``."""
        if self._last is not None and timestamp > self._last:
            hours = (timestamp - self._last) / 3600.0
            self.power_w = self._allowed(self.command_w)
            energy = self.power_w * hours
            if energy > 0:
                self.discharge_energy_wh += energy
                stored = energy / self.efficiency
            else:
                self.charge_energy_wh += -energy
                stored = energy * self.efficiency
            self.soc_pct = max(0.0, min(100.0, self.soc_pct - 100.0 * stored / self.capacity_wh))
            self.temperature_c += (22.0 + abs(self.power_w) / 1000.0 - self.temperature_c) * min(
                1.0, hours * 4
            )
        self._last = timestamp


@dataclass(slots=True)
class Site:
    """A site: PV, a house load, one battery and the grid that balances them.

    ``grid_w`` is positive on import. Energy counters accumulate as time advances.
    """

    pv: PvArray = field(default_factory=PvArray)
    load: HouseLoad = field(default_factory=HouseLoad)
    battery: Battery = field(default_factory=Battery)
    grid_import_wh: float = 0.0
    grid_export_wh: float = 0.0
    load_energy_wh: float = 0.0
    self_consumption: bool = True
    """Without a command the battery covers the gap between PV and load, as hybrids do."""
    _last: float | None = None

    def grid_w(self, timestamp: float) -> float:
        """Grid power now (positive imports)."""
        return round(
            self.load.power_w(timestamp) - self.pv.power_w(timestamp) - self.battery.power_w, 1
        )

    def advance(self, timestamp: float) -> None:
        """Move the whole site to ``timestamp``."""
        if self.self_consumption:
            self.battery.command_w = self.load.power_w(timestamp) - self.pv.power_w(timestamp)
        self.pv.advance(timestamp)
        self.battery.advance(timestamp)
        if self._last is not None and timestamp > self._last:
            hours = (timestamp - self._last) / 3600.0
            grid = self.grid_w(timestamp)
            if grid > 0:
                self.grid_import_wh += grid * hours
            else:
                self.grid_export_wh += -grid * hours
            self.load_energy_wh += self.load.power_w(timestamp) * hours
        self._last = timestamp
