"""The simulated heat pump: a Stiebel Eltron WPM behind its ISG, heating a house and its tank.

The house is one thermal mass losing heat to the outdoors (first order: ``C dT/dt = Q -
UA (T - T_out)``). The heat pump holds the room at its setpoint (the comfort temperature;
in programme mode 2 K lower at night) with a flow temperature from a heating curve, and
keeps the hot water tank within 5 K of its setpoint, hot water first. Its coefficient of
performance falls as the lift from outdoor to flow temperature grows (a share of Carnot's),
so its electrical power follows the outdoor temperature. Showers at 07:00 and 19:00 draw the
tank down.

SG Ready, when switched on over Modbus (4001), steers it as the label says: "block" stops
the compressor (unless the room falls below 16 degC), "boost" raises the room setpoint 1 K
and the tank's 5 K, "force" the room 2 K and the tank to 60 degC; "normal" is its own
control.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..pointmap.codec import decode_raw, orders, to_value
from ..pointmap.model import PointMap
from ..readings import Value

if TYPE_CHECKING:
    from .modbus_server import UnitImage

MAP_ID = "stiebel_eltron_isg"
_DAY = 86_400.0
SETTINGS: Mapping[str, Value] = MappingProxyType(
    {
        "heat_pump_mode": "program",
        "room_temperature_setpoint_c": 21.0,
        "dhw_temperature_setpoint_c": 48.0,
        "heat_pump_sg_ready_enabled": 1,
        "heat_pump_sg_ready": "normal",
    }
)
"""The writable points and what the installer left in them."""
SG_READY_STATES = MappingProxyType({"block": 1, "normal": 2, "boost": 3, "force": 4})
_NIGHT_SETBACK_K = 2.0
_DHW_HYSTERESIS_K = 5.0
_FROST_C = 16.0
_WATER_WH_PER_K_L = 1.163


@dataclass(frozen=True, slots=True)
class HeatPumpSettings:
    """What the manager's registers ask for."""

    mode: str = "program"
    room_setpoint_c: float = 21.0
    dhw_setpoint_c: float = 48.0
    sg_ready: str = "normal"
    """The SG Ready order in force ("normal" while SG Ready is switched off)."""


@dataclass(slots=True)
class HeatPump:
    """The house, its tank and the heat pump between them."""

    heat_max_w: float = 8000.0
    house_ua_w_k: float = 250.0
    """Heat loss per kelvin between inside and outside."""
    house_capacity_wh_k: float = 12_000.0
    tank_litres: float = 200.0
    room_c: float = 20.5
    dhw_c: float = 46.0
    flow_c: float = 30.0
    return_c: float = 27.0
    heat_w: float = 0.0
    power_w: float = 0.0
    """Electrical power drawn now (positive)."""
    cop: float = 0.0
    heating_dhw: bool = False
    sg_ready: str = "normal"
    _last: float | None = None

    def step(self, timestamp: float, outdoor_c: float, settings: HeatPumpSettings) -> float:
        """Advance to ``timestamp``; return the electrical power drawn (positive)."""
        hours = 0.0 if self._last is None else max(0.0, timestamp - self._last) / 3600.0
        self._integrate(hours, outdoor_c, timestamp)
        self.sg_ready = settings.sg_ready
        room_target, dhw_target = self._targets(timestamp, settings)
        tank_wh_k = self.tank_litres * _WATER_WH_PER_K_L
        if self.dhw_c < dhw_target - _DHW_HYSTERESIS_K:
            self.heating_dhw = True
        elif self.dhw_c >= dhw_target:
            self.heating_dhw = False
        blocked = settings.sg_ready == "block" and self.room_c >= _FROST_C
        if blocked:
            self.heating_dhw = False
            heat, flow = 0.0, self.room_c
        elif self.heating_dhw:
            heat = min(self.heat_max_w, (dhw_target - self.dhw_c) * tank_wh_k * 4.0 + 2000.0)
            flow = self.dhw_c + 7.0
        else:
            loss = self.house_ua_w_k * (room_target - outdoor_c)
            correction = 2000.0 * (room_target - self.room_c)
            heat = max(0.0, min(self.heat_max_w, loss + correction))
            flow = min(55.0, max(25.0, 20.0 + 0.6 * (20.0 - outdoor_c) + room_target - 20.0))
        self.heat_w = round(heat, 1)
        self.flow_c = round(flow if heat > 0 else self.room_c + 2.0, 1)
        self.return_c = round(self.flow_c - (5.0 if heat > 0 else 0.5), 1)
        self.cop = round(cop(outdoor_c, self.flow_c), 2) if heat > 0 else 0.0
        self.power_w = round(heat / self.cop, 1) if heat > 0 else 0.0
        self._last = timestamp
        return self.power_w

    def _targets(self, timestamp: float, settings: HeatPumpSettings) -> tuple[float, float]:
        room, dhw = settings.room_setpoint_c, settings.dhw_setpoint_c
        hour = timestamp % _DAY / 3600.0
        if settings.mode == "program" and not 6.0 <= hour < 22.0:
            room -= _NIGHT_SETBACK_K
        if settings.sg_ready == "boost":
            room, dhw = room + 1.0, dhw + 5.0
        elif settings.sg_ready == "force":
            room, dhw = room + 2.0, max(dhw, 60.0)
        return room, dhw

    def _integrate(self, hours: float, outdoor_c: float, timestamp: float) -> None:
        if hours <= 0:
            return
        house_heat = 0.0 if self.heating_dhw else self.heat_w
        loss = self.house_ua_w_k * (self.room_c - outdoor_c)
        self.room_c += (house_heat - loss) * hours / self.house_capacity_wh_k
        tank_wh_k = self.tank_litres * _WATER_WH_PER_K_L
        tank_heat = self.heat_w if self.heating_dhw else 0.0
        standing = 1.5 * (self.dhw_c - self.room_c)
        self.dhw_c += (tank_heat - standing - shower_w(timestamp)) * hours / tank_wh_k


def cop(outdoor_c: float, flow_c: float) -> float:
    """Coefficient of performance: 45 % of Carnot's between an evaporator 5 K below the
    outdoor air and a condenser 5 K above the flow, held within 1.5-6."""
    condenser, evaporator = flow_c + 5.0, outdoor_c - 5.0
    return max(1.5, min(6.0, 0.45 * (condenser + 273.15) / max(5.0, condenser - evaporator)))


def shower_w(timestamp: float) -> float:
    """Heat drawn from the tank by hot water use: two showers a day."""
    hour = timestamp % _DAY / 3600.0
    return sum(6000.0 * math.exp(-(((hour - peak) / 0.25) ** 2)) for peak in (7.0, 19.0))


def _read(image: UnitImage, point_map: PointMap, metric: str) -> Value:
    point = point_map.points[metric]
    registers = image.read(point.space, point.address, point.registers)
    value, _ = to_value(point, decode_raw(point, registers, *orders(point, point_map.device)))
    return value


def read_settings(image: UnitImage, point_map: PointMap) -> HeatPumpSettings:
    """The settings the image holds now."""
    defaults = HeatPumpSettings()
    values = {metric: _read(image, point_map, metric) for metric in SETTINGS}

    def number(metric: str, default: float) -> float:
        value = values[metric]
        return float(value) if isinstance(value, int | float) else default

    order = values["heat_pump_sg_ready"] if values["heat_pump_sg_ready_enabled"] == 1 else None
    return HeatPumpSettings(
        mode=str(values["heat_pump_mode"] or defaults.mode),
        room_setpoint_c=number("room_temperature_setpoint_c", defaults.room_setpoint_c),
        dhw_setpoint_c=number("dhw_temperature_setpoint_c", defaults.dhw_setpoint_c),
        sg_ready=str(order) if order in SG_READY_STATES else "normal",
    )


def install_settings(image: UnitImage, settings: Mapping[str, Value] = SETTINGS) -> None:
    """Put the installer's settings into a fresh image."""
    for metric, value in settings.items():
        image.set(metric, value)


def heat_pump_values(pump: HeatPump, outdoor_c: float) -> dict[str, Value]:
    """The read-only registers' values now."""
    return {
        "outdoor_temperature_c": round(outdoor_c, 2),
        "flow_temperature_c": pump.flow_c,
        "return_temperature_c": pump.return_c,
        "dhw_temperature_c": round(pump.dhw_c, 1),
        "room_temperature_c": round(pump.room_c, 1),
        "heat_pump_sg_ready_state": pump.sg_ready,
    }
