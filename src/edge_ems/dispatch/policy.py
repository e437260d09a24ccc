"""A site's control policy and the asset limits dispatch clamps to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ControlPolicy:
    """What a site allows. Controls are off by default: both switches must be turned."""

    enable_control: bool = False
    dry_run: bool = True
    lease_ttl: float = 60.0
    """Seconds a setpoint holds unless renewed; then the device returns to its safe mode."""
    eeprom_daily_writes: int = 100
    """Writes per device and UTC day to registers backed by EEPROM or flash."""
    writes_per_minute: int = 30
    """Requested writes per device and minute (lease refreshes do not count)."""


@dataclass(frozen=True, slots=True)
class AssetLimits:
    """Power limits of one battery asset. Unknown limits are 0 W: nothing is dispatched."""

    max_charge_w: float = 0.0
    max_discharge_w: float = 0.0
    capacity_wh: float = 0.0

    def clamp(self, power_w: float) -> float:
        """Clamp a power (+ discharge, - charge) to these limits."""
        return max(-self.max_charge_w, min(self.max_discharge_w, power_w))
