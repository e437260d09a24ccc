"""The simulated Deye hybrid inverter: how the settings in its registers steer its battery.

The settings live where a real Deye keeps them, in the holding registers of its register
image (60-499, written with function 16), so a setpoint written over Modbus is what the next
tick acts on. The behaviour follows Deye's manual for the SG04LP3 family:

* Energy pattern "load first": PV serves the load, the surplus charges the battery, the
  battery covers a shortfall down to its floor. "Battery first": while the sun shines PV
  charges the battery first and the grid makes up the load.
* The time-of-use programme (``tou_enabled`` bit 0, and the bit of the day, 1 = Monday) runs
  six slots from their start times (148-153): a slot's power caps the battery's discharge,
  its SOC is the floor the battery discharges to, and with grid charge in the slot (172-177)
  and the grid-charge switch on (130) the battery charges from the grid up to that SOC.
  "Selling first" discharges the battery into the grid at the slot's power.
* Charge and discharge currents (108, 109, 128) cap battery power at the battery's voltage.
* Export: "selling first" exports up to the max sell power (143); the zero-export modes
  export only with solar sell (145) on, else nothing. Above the limit the inverter curtails
  its PV, then its battery's discharge.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..pointmap.codec import decode_raw, orders, to_value
from ..pointmap.model import PointMap, RegisterSpace
from ..readings import Value
from .physics import Battery
from .storage import self_consumption_w

if TYPE_CHECKING:
    from .modbus_server import UnitImage

MAP_ID = "deye_sun_sg_hybrid"
SETTINGS = (60, 499)
"""Holding registers a Deye accepts writes to; identity and live data are read only."""
SLOTS = 6
SLOT_START, SLOT_POWER, SLOT_SOC, SLOT_CHARGE = 148, 154, 166, 172
"""First register of each time-of-use column; slot n (0-5) is at first + n."""
GRID_CHARGE_BIT = 0b01


INITIAL_SETTINGS: Mapping[str, Value] = MappingProxyType(
    {
        "battery_charge_current_max_a": 100,
        "battery_discharge_current_max_a": 100,
        "battery_grid_charge_current_a": 40,
        "battery_grid_charge_enabled": 0,
        "energy_management_mode": "load_first",
        "work_mode": "zero_export_to_ct",
        "grid_export_limit_w": 8000,
        "grid_export_enabled": 1,
        "tou_enabled": 0,
    }
)
"""Settings as the installer left them: self-consumption, surplus sold, own programme off."""
INITIAL_SLOTS = ((0, 5000, 20, 1), (400, 5000, 20, 1), (800, 5000, 20, 1),
                 (1200, 5000, 20, 1), (1600, 5000, 20, 1), (2000, 5000, 20, 1))  # fmt: skip
"""Each slot as (start HHMM, power W, SOC %, charge bits): Deye's factory times."""


@dataclass(frozen=True, slots=True)
class TouSlot:
    """One time-of-use slot."""

    start: int
    """Start time as hours * 100 + minutes."""
    power_w: float
    soc_pct: float
    grid_charge: bool


@dataclass(frozen=True, slots=True)
class DeyeSettings:
    """The settings that decide what the inverter does with its battery and its export."""

    charge_current_a: float = 100.0
    discharge_current_a: float = 100.0
    grid_charge_current_a: float = 40.0
    grid_charge: bool = False
    battery_first: bool = False
    work_mode: str = "zero_export_to_ct"
    export_limit_w: float = 8000.0
    solar_sell: bool = True
    tou: int = 0
    """``tou_enabled``: bit 0 switches the programme on, bits 1-7 choose Monday..Sunday."""
    slots: tuple[TouSlot, ...] = ()

    def slot(self, timestamp: float) -> TouSlot | None:
        """The time-of-use slot in force at ``timestamp``, or ``None`` if none is."""
        moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
        if not self.tou & 1 or not self.tou & (1 << (moment.weekday() + 1)):
            return None
        now = moment.hour * 100 + moment.minute
        valid = sorted(
            (slot for slot in self.slots if slot.start // 100 < 24 and slot.start % 100 < 60),
            key=lambda slot: slot.start,
        )
        started = [slot for slot in valid if slot.start <= now]
        if started:
            return started[-1]
        return valid[-1] if valid else None  # the last slot runs on past midnight


@dataclass(frozen=True, slots=True)
class DeyeDecision:
    """What the inverter does this tick."""

    battery_w: float
    """The battery's power (+ discharge), as the battery can deliver it."""
    pv_limit_w: float | None
    """PV curtailment; ``None`` takes all the sun offers."""


def deye_decide(
    settings: DeyeSettings, *, timestamp: float, pv_w: float, load_w: float, battery: Battery
) -> DeyeDecision:
    """Command ``battery`` as the inverter would for ``pv_w`` available and ``load_w`` to
    cover (the CT's view: the house net of other assets), and curtail PV beyond the export
    limit."""
    volts = battery.voltage_v
    charge_cap = min(battery.max_charge_w, settings.charge_current_a * volts)
    discharge_cap = min(battery.max_discharge_w, settings.discharge_current_a * volts)
    slot = settings.slot(timestamp)
    floor = battery.soc_min_pct
    if slot is not None:
        floor = max(floor, slot.soc_pct)
        discharge_cap = min(discharge_cap, slot.power_w)
    if settings.battery_first and pv_w > 0:
        wish = -min(pv_w, charge_cap)
    else:
        wish = max(-charge_cap, min(self_consumption_w(load_w - pv_w), discharge_cap))
        if wish > 0 and battery.soc_pct <= floor:
            wish = 0.0
    if slot is not None and battery.soc_pct < slot.soc_pct:
        if slot.grid_charge and settings.grid_charge:
            grid_charge = min(charge_cap, settings.grid_charge_current_a * volts)
            wish = min(wish, -grid_charge)
        wish = min(wish, 0.0)
    elif slot is not None and settings.work_mode == "selling_first":
        wish = max(wish, discharge_cap)
    actual = battery.command(wish)
    selling = settings.work_mode == "selling_first" or settings.solar_sell
    export_cap = settings.export_limit_w if selling else 0.0
    excess = -(load_w - pv_w - actual) - export_cap
    if excess <= 0:
        return DeyeDecision(actual, None)
    if excess > pv_w and actual > 0:
        actual = battery.command(max(0.0, actual - (excess - pv_w)))
    return DeyeDecision(actual, max(0.0, pv_w - excess))


def _read(image: UnitImage, point_map: PointMap, metric: str) -> Value:
    point = point_map.points[metric]
    registers = image.read(point.space, point.address, point.registers)
    word_order, byte_order = orders(point, point_map.device)
    value, _ = to_value(point, decode_raw(point, registers, word_order, byte_order))
    return value


def _number(value: Value, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def read_settings(image: UnitImage, point_map: PointMap) -> DeyeSettings:
    """The settings the image holds now."""

    def get(metric: str) -> Value:
        return _read(image, point_map, metric)

    def column(first: int) -> list[int]:
        return image.read(RegisterSpace.HOLDING, first, SLOTS)

    slots = tuple(
        TouSlot(start, power, soc, bool(charge & GRID_CHARGE_BIT))
        for start, power, soc, charge in zip(
            column(SLOT_START), column(SLOT_POWER), column(SLOT_SOC), column(SLOT_CHARGE),
            strict=True,
        )
    )  # fmt: skip
    defaults = DeyeSettings()
    return DeyeSettings(
        charge_current_a=_number(get("battery_charge_current_max_a"), defaults.charge_current_a),
        discharge_current_a=_number(
            get("battery_discharge_current_max_a"), defaults.discharge_current_a
        ),
        grid_charge_current_a=_number(
            get("battery_grid_charge_current_a"), defaults.grid_charge_current_a
        ),
        grid_charge=get("battery_grid_charge_enabled") == 1,
        battery_first=get("energy_management_mode") == "battery_first",
        work_mode=str(get("work_mode") or defaults.work_mode),
        export_limit_w=_number(get("grid_export_limit_w"), defaults.export_limit_w),
        solar_sell=get("grid_export_enabled") == 1,
        tou=int(_number(get("tou_enabled"), 0)),
        slots=slots,
    )


def install_settings(image: UnitImage) -> None:
    """Put the installer's settings into a fresh image."""
    for metric, value in INITIAL_SETTINGS.items():
        image.set(metric, value)
    for index, (start, power, soc, charge) in enumerate(INITIAL_SLOTS):
        for first, raw in zip(
            (SLOT_START, SLOT_POWER, SLOT_SOC, SLOT_CHARGE),
            (start, power, soc, charge),
            strict=True,
        ):
            image.write(RegisterSpace.HOLDING, first + index, [raw])


def accept_write(image: UnitImage, point_map: PointMap, address: int, count: int) -> None:
    """What the inverter makes of a write that landed in ``image``: registers outside its
    settings are cleared for the next refresh to restore, and settings are held within the
    limits the map gives them."""
    last = address + count - 1
    low, high = SETTINGS
    for outside in range(address, last + 1):
        if not low <= outside <= high:
            image.write(RegisterSpace.HOLDING, outside, [0])
    for point in point_map.points.values():
        if point.write is None or point.end < address or point.address > last:
            continue
        word_order, byte_order = orders(point, point_map.device)
        raw = decode_raw(point, image.read(point.space, point.address, point.registers),
                         word_order, byte_order)  # fmt: skip
        assert isinstance(raw, int)
        value = raw * point.scale + point.offset
        minimum = -math.inf if point.write.minimum is None else point.write.minimum
        maximum = math.inf if point.write.maximum is None else point.write.maximum
        if not minimum <= value <= maximum:
            image.set(point.metric, min(max(value, minimum), maximum))
