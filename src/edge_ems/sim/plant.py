"""The physical site behind every simulated device, and how its power flows each tick.

The site is a :class:`~edge_ems.sim.physics.Site` seen from the Deye hybrid inverter: the
Deye's PV and battery, the grid at its CT, and as "load" everything else on the site bus:
the house minus what the AC-coupled assets deliver (the SunSpec hybrid inverter with its own
PV and battery, the BESS behind OPC UA and the battery inverter on Modbus). So
:meth:`Site.grid_w` is the grid power every meter of the site measures, and the site's energy
counters are the meters' counters.

Each tick settles the flows in the order the controllers act: the SunSpec hybrid covers the
house from its own PV and battery within its storage controls, the BESS and the battery
inverter deliver whatever their setpoints (OPC UA, Modbus) ask, the EV charger and the heat
pump draw what their settings and surroundings ask (the Deye's CT sees them as load), and the
Deye balances the rest against its CT under its own settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

from .ambient import ThermalLag, outdoor_temperature
from .battery_inverter import BatteryInverter
from .config import SiteConfig
from .deye import DeyeSettings, deye_decide
from .ev_charger import EvCharger, Vehicle
from .heat_pump import HeatPump, HeatPumpSettings
from .physics import Battery, HouseLoad, PvArray, Site
from .storage import StorageControls, self_consumption_w

_DAY = 86_400.0
# Lifetime counters of a site that has run for about a year, so the simulated devices start
# where installed ones are: SunSpec reads a counter at 0 as "not accumulated".
LIFETIME_WH = MappingProxyType(
    {
        "pv": 6_543_210.0, "house": 4_321_000.0, "grid_import": 2_345_600.0,
        "grid_export": 1_876_500.0, "battery_charge": 1_234_500.0,
        "battery_discharge": 1_111_000.0, "sunspec_ac_out": 3_210_000.0,
        "sunspec_ac_in": 120_000.0,
    }
)  # fmt: skip


@dataclass(slots=True)
class CurtailablePv(PvArray):
    """A PV array whose inverter can hold its output below what the sun offers."""

    limit_w: float | None = None
    """Most power the inverter takes from the array now; ``None`` for all of it."""

    def available_w(self, timestamp: float) -> float:
        """What the array could deliver now."""
        return PvArray.power_w(self, timestamp)

    def power_w(self, timestamp: float) -> float:
        """What the array delivers now: the available power, curtailed to the limit."""
        available = self.available_w(timestamp)
        if self.limit_w is None:
            return available
        return round(min(available, max(0.0, self.limit_w)), 1)


@dataclass(slots=True)
class SiteLoad(HouseLoad):
    """The house as the Deye's CT sees it: consumption net of the AC-coupled assets."""

    others_w: float = 0.0
    """What the other assets deliver to the site bus now (+ delivers)."""

    def house_w(self, timestamp: float) -> float:
        """The house's own consumption."""
        return HouseLoad.power_w(self, timestamp)

    def power_w(self, timestamp: float) -> float:
        """Consumption left for the Deye and the grid to cover."""
        return round(self.house_w(timestamp) - self.others_w, 1)


@dataclass(slots=True)
class Hybrid:
    """An AC-coupled hybrid inverter's own PV and battery (the SunSpec inverter)."""

    pv: CurtailablePv
    battery: Battery
    rated_w: float
    ac_w: float = 0.0
    ac_energy_out_wh: float = 0.0
    ac_energy_in_wh: float = 0.0
    heatsink: ThermalLag = field(default_factory=lambda: ThermalLag(20.0))
    cabinet: ThermalLag = field(default_factory=lambda: ThermalLag(20.0, 2400.0))


@dataclass(frozen=True, slots=True)
class Flows:
    """The site's power flows settled at one tick, in watts (+ delivers to the site bus)."""

    timestamp: float
    house_w: float
    deye_ac_w: float
    sunspec_ac_w: float
    bess_w: float
    grid_w: float
    """+ import; what every meter of the site measures."""
    pv_curtailed_w: float
    """PV the Deye holds back to keep the export within its limit."""
    ev_w: float = 0.0
    """The EV charger's power (- while the car charges)."""
    heat_pump_w: float = 0.0
    """The heat pump's electrical power (- while it runs)."""
    battery_inverter_w: float = 0.0
    """The battery inverter's AC power (+ while its battery discharges)."""


def _battery(capacity_wh: float, max_power_w: float, soc_pct: float) -> Battery:
    return Battery(
        capacity_wh=capacity_wh,
        max_charge_w=max_power_w,
        max_discharge_w=max_power_w,
        soc_pct=soc_pct,
        charge_energy_wh=capacity_wh / 10_000.0 * LIFETIME_WH["battery_charge"],
        discharge_energy_wh=capacity_wh / 10_000.0 * LIFETIME_WH["battery_discharge"],
    )


class Plant:
    """Every physical part of one simulated site, advanced together."""

    def __init__(self, config: SiteConfig) -> None:
        deye = config.deye
        self.physics = Site(
            pv=CurtailablePv(peak_w=deye.pv_peak_w, strings=2, energy_wh=LIFETIME_WH["pv"]),
            load=SiteLoad(base_w=config.load_base_w),
            battery=_battery(deye.capacity_wh, deye.max_power_w, deye.soc_pct),
            grid_import_wh=LIFETIME_WH["grid_import"],
            grid_export_wh=LIFETIME_WH["grid_export"],
            self_consumption=False,  # the Deye's settings command the battery
        )
        sunspec = config.sunspec
        self.sunspec = (
            None
            if sunspec is None
            else Hybrid(
                pv=CurtailablePv(peak_w=sunspec.pv_peak_w, strings=2, string_voltage_v=420.0),
                battery=_battery(sunspec.capacity_wh, sunspec.max_power_w, sunspec.soc_pct),
                rated_w=sunspec.rated_w,
                ac_energy_out_wh=LIFETIME_WH["sunspec_ac_out"],
                ac_energy_in_wh=LIFETIME_WH["sunspec_ac_in"],
            )
        )
        bess = config.bess
        self.bess = (
            None if bess is None else _battery(bess.capacity_wh, bess.max_power_w, bess.soc_pct)
        )
        ev = config.ev_charger
        self.ev = (
            None
            if ev is None
            else EvCharger(
                Vehicle(capacity_wh=ev.capacity_wh, max_power_w=ev.max_power_w,
                        soc_pct=ev.soc_pct),
                fallback_current_a=ev.fallback_current_a, validity_s=ev.validity_s,
                period_h=ev.period_h, stay_h=ev.stay_h, arrival_soc_pct=ev.arrival_soc_pct,
            )
        )  # fmt: skip
        pump = config.heat_pump
        self.heat_pump = (
            None
            if pump is None
            else HeatPump(
                heat_max_w=pump.heat_max_w, house_ua_w_k=pump.house_ua_w_k, room_c=pump.room_c,
                dhw_c=pump.dhw_c,
            )
        )  # fmt: skip
        inverter = config.battery_inverter
        self.battery_inverter = (
            None
            if inverter is None
            else BatteryInverter(
                _battery(inverter.capacity_wh, inverter.max_power_w, inverter.soc_pct),
                watchdog_s=inverter.watchdog_s,
            )
        )
        self.house_energy_wh = LIFETIME_WH["house"]
        self.deye_heatsink = ThermalLag(20.0)
        self.deye_dc_side = ThermalLag(20.0, 1800.0)
        self._pv_midnight: tuple[int, float] = (0, 0.0)
        self._last: float | None = None
        self.flows: Flows | None = None
        """The flows of the latest tick; ``None`` before the first."""

    @property
    def pv(self) -> CurtailablePv:
        """The Deye's PV array."""
        pv = self.physics.pv
        assert isinstance(pv, CurtailablePv)
        return pv

    @property
    def load(self) -> SiteLoad:
        """The load the Deye balances: the house net of the other assets."""
        load = self.physics.load
        assert isinstance(load, SiteLoad)
        return load

    def pv_energy_today_wh(self) -> float:
        """What the Deye's PV produced since midnight (solar time)."""
        return self.pv.energy_wh - self._pv_midnight[1]

    def step(
        self,
        timestamp: float,
        deye: DeyeSettings,
        storage: StorageControls | None,
        *,
        heat_pump: HeatPumpSettings | None = None,
        monotonic: float | None = None,
    ) -> Flows:
        """Settle the flows at ``timestamp`` and advance every part to it.

        ``monotonic`` times the EV charger's validity and the battery inverter's watchdog
        (``timestamp`` if not given)."""
        house = self.load.house_w(timestamp)
        sunspec_ac = 0.0 if self.sunspec is None else self._step_sunspec(timestamp, house, storage)
        bess = 0.0 if self.bess is None else self.bess.power_w
        monotonic = timestamp if monotonic is None else monotonic
        inverter = 0.0
        if self.battery_inverter is not None:
            inverter = self.battery_inverter.step(timestamp, monotonic)
        ev = 0.0
        if self.ev is not None:
            ev = -self.ev.step(timestamp, monotonic)
        pump = 0.0
        if self.heat_pump is not None:
            outdoor_now = outdoor_temperature(timestamp)
            pump = -self.heat_pump.step(timestamp, outdoor_now, heat_pump or HeatPumpSettings())
        self.load.others_w = sunspec_ac + bess + inverter + ev + pump
        available = self.pv.available_w(timestamp)
        decision = deye_decide(
            deye,
            timestamp=timestamp,
            pv_w=available,
            load_w=self.load.power_w(timestamp),
            battery=self.physics.battery,
        )
        self.pv.limit_w = decision.pv_limit_w
        self.physics.advance(timestamp)
        self._integrate(timestamp, house)
        deye_ac = self.pv.power_w(timestamp) + self.physics.battery.power_w
        outdoor = outdoor_temperature(timestamp)
        self.deye_heatsink.advance(timestamp, outdoor + 6.0 + 3.0 * abs(deye_ac) / 1000.0)
        dc_load = self.pv.power_w(timestamp) + abs(self.physics.battery.power_w)
        self.deye_dc_side.advance(timestamp, outdoor + 8.0 + 2.5 * dc_load / 1000.0)
        self.flows = Flows(
            timestamp=timestamp,
            house_w=house,
            deye_ac_w=round(deye_ac, 1),
            sunspec_ac_w=round(sunspec_ac, 1),
            bess_w=round(bess, 1),
            grid_w=self.physics.grid_w(timestamp),
            pv_curtailed_w=round(available - self.pv.power_w(timestamp), 1),
            ev_w=round(ev, 1),
            heat_pump_w=round(pump, 1),
            battery_inverter_w=round(inverter, 1),
        )
        return self.flows

    def _step_sunspec(
        self, timestamp: float, house: float, storage: StorageControls | None
    ) -> float:
        """The SunSpec hybrid covers the house from its own PV and battery; returns its AC."""
        hybrid = self.sunspec
        assert hybrid is not None
        controls = storage or StorageControls()
        pv = hybrid.pv.available_w(timestamp)
        wish = controls.battery_w(self_consumption_w(house - pv), hybrid.battery)
        battery = hybrid.battery.command(wish)
        ac_limit = controls.ac_limit_w(hybrid.rated_w)
        excess = pv + battery - ac_limit
        hybrid.pv.limit_w = None if excess <= 0 else max(0.0, pv - excess)
        if excess > pv and battery > 0:
            battery = hybrid.battery.command(max(0.0, battery - (excess - pv)))
        hybrid.pv.advance(timestamp)
        hybrid.battery.advance(timestamp)
        hybrid.ac_w = round(hybrid.pv.power_w(timestamp) + hybrid.battery.power_w, 1)
        outdoor = outdoor_temperature(timestamp)
        hybrid.heatsink.advance(timestamp, outdoor + 5.0 + 4.0 * abs(hybrid.ac_w) / 1000.0)
        hybrid.cabinet.advance(timestamp, outdoor + 4.0 + 1.5 * abs(hybrid.ac_w) / 1000.0)
        return hybrid.ac_w

    def _integrate(self, timestamp: float, house: float) -> None:
        day = math.floor(timestamp / _DAY)
        if day != self._pv_midnight[0]:
            self._pv_midnight = (day, self.pv.energy_wh)
        if self._last is not None and timestamp > self._last:
            hours = (timestamp - self._last) / 3600.0
            self.house_energy_wh += house * hours
            if self.sunspec is not None:
                ac = self.sunspec.ac_w
                if ac > 0:
                    self.sunspec.ac_energy_out_wh += ac * hours
                else:
                    self.sunspec.ac_energy_in_wh += -ac * hours
        self._last = timestamp
