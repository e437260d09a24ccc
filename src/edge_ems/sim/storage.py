"""What a SunSpec inverter's immediate controls do to its battery and its output.

Model 124 bounds battery power by a window of percentages of ``WChaMax``: with its charge
limit active (``StorCtl_Mod`` bit 0) the battery charges at most ``InWRte``, with its
discharge limit active (bit 1) it discharges at most ``OutWRte``. A negative rate pushes the
other bound past zero, so a window of ``OutWRte = P`` and ``InWRte = -P`` pins the battery
at ``P`` (how :mod:`edge_ems.sunspec` writes a battery power setpoint). Model 123 limits
the inverter's AC output to ``WMaxLimPct`` of its rating while ``WMaxLim_Ena`` is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .physics import Battery

CHARGE_LIMIT = 0b01
DISCHARGE_LIMIT = 0b10
IMPORT_MARGIN_W = 30.0
"""The grid power self-consumption aims at: a little import, as real controllers hold a
grid setpoint just above zero so that their batteries never feed the grid."""


def self_consumption_w(shortfall_w: float) -> float:
    """Battery power (+ discharge) that leaves :data:`IMPORT_MARGIN_W` of import when the
    load exceeds PV by ``shortfall_w`` (negative: a surplus to store)."""
    if 0 <= shortfall_w <= IMPORT_MARGIN_W:
        return 0.0  # the grid covers a shortfall this small
    return shortfall_w - IMPORT_MARGIN_W


@dataclass(frozen=True, slots=True)
class StorageControls:
    """The controls of models 123 and 124 as the device holds them, in engineering units.

    The defaults are a device under its own control: no limit in force.
    """

    base_w: float = 0.0
    """``WChaMax``: the watts that 100 % of a rate stands for."""
    mode: int = 0
    """``StorCtl_Mod``: which limits are active."""
    discharge_pct: float = 100.0
    """``OutWRte``."""
    charge_pct: float = 100.0
    """``InWRte``."""
    limit_pct: float = 100.0
    """``WMaxLimPct``."""
    limit_enabled: bool = False
    """``WMaxLim_Ena``."""

    def battery_w(self, wish_w: float, battery: Battery) -> float:
        """The battery power the window allows when the inverter's own programme wants
        ``wish_w`` (+ discharge); the battery's own limits apply afterwards."""
        low, high = -battery.max_charge_w, battery.max_discharge_w
        if self.mode & CHARGE_LIMIT:
            low = max(low, -self.charge_pct * self.base_w / 100.0)
        if self.mode & DISCHARGE_LIMIT:
            high = min(high, self.discharge_pct * self.base_w / 100.0)
        return min(max(wish_w, low), high)

    def ac_limit_w(self, rated_w: float) -> float:
        """Most AC power the inverter may deliver now."""
        return rated_w * self.limit_pct / 100.0 if self.limit_enabled else math.inf
