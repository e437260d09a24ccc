"""A simulated battery energy storage system: a :class:`~edge_ems.device.Device` that dispatch
can drive, over :class:`~edge_ems.sim.physics.Battery`.

It offers what a remotely controlled BESS does: a power setpoint (+ discharge, - charge) and
a revert timer. Once armed, the timer returns the battery to idle when it is not re-armed in
time, the device's own safety net should its controller vanish. Time comes from ``clock``, so
tests can step it; state of charge integrates the power between reads.

    bess = SimulatedBess("bess-1", Battery(capacity_wh=20_000))
    dispatcher.add_device("bess-1", bess, bess.limits)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ..device import AssetType, Command, DeviceIdentity, Health, HealthTracker, WriteResult
from ..dispatch import AssetLimits
from ..exceptions import DeviceConnectionError, WriteRefusedError
from ..metrics import BATTERY_POWER
from ..readings import Reading, Readings, Value
from ..resilience import CircuitBreaker
from .physics import Battery

REVERT_TIMER = "control_revert_timeout_s"
BATTERY_STATES = ("idle", "charging", "discharging")
_METRICS = frozenset(
    {
        "battery_power_w", "ac_power_w", "soc_pct", "battery_voltage_v", "battery_current_a",
        "battery_temperature_c", "battery_charge_energy_wh", "battery_discharge_energy_wh",
        "battery_capacity_wh", "battery_state", BATTERY_POWER, REVERT_TIMER,
    }
)  # fmt: skip
_MAX_REVERT_S = 3600


class SimulatedBess:
    """A simulated BESS implementing ``Device`` and what ``DispatchDevice`` adds to it."""

    def __init__(
        self,
        asset_id: str,
        battery: Battery | None = None,
        *,
        name: str | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.asset_id = asset_id
        self.battery = battery if battery is not None else Battery()
        self._name = name or asset_id
        self._clock = clock
        self._health = HealthTracker(breaker or CircuitBreaker(self._name), wall_clock=clock)
        self._identity: DeviceIdentity | None = None
        self._revert_at: float | None = None
        self._revert_s = 0
        self.online = True
        """Set ``False`` to make the device unreachable (fault injection)."""
        self._commands = MappingProxyType(
            {
                BATTERY_POWER: Command(
                    BATTERY_POWER,
                    -self.battery.max_charge_w,
                    self.battery.max_discharge_w,
                    allow_write=True,
                    eeprom=False,
                    lease=True,
                ),
                REVERT_TIMER: Command(
                    REVERT_TIMER, 0, _MAX_REVERT_S, allow_write=True, eeprom=False
                ),
            }
        )

    @property
    def name(self) -> str:
        """The asset's name."""
        return self._name

    @property
    def asset_type(self) -> AssetType:
        """A battery."""
        return AssetType.BATTERY

    @property
    def identity(self) -> DeviceIdentity | None:
        """Known once connected."""
        return self._identity

    @property
    def commands(self) -> Mapping[str, Command]:
        """The power setpoint and the revert timer."""
        return self._commands

    @property
    def health(self) -> Health:
        """Connection and error state now."""
        return self._health.snapshot()

    @property
    def declared_metrics(self) -> frozenset[str]:
        """What every read reports."""
        return _METRICS

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """The battery's states."""
        return BATTERY_STATES if metric == "battery_state" else None

    @property
    def learned(self) -> Mapping[str, Any]:
        """Nothing: a simulation has nothing to find out."""
        return {}

    async def register_dump(self) -> dict[str, Any] | None:
        """None: a simulation has no registers."""
        return None

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """Idle: no power commanded."""
        return {BATTERY_POWER: 0}

    @property
    def revert_timer(self) -> str | None:
        """The device's own revert timer."""
        return REVERT_TIMER

    @property
    def limits(self) -> AssetLimits:
        """The battery's power limits and capacity, for site dispatch."""
        return AssetLimits(
            self.battery.max_charge_w, self.battery.max_discharge_w, self.battery.capacity_wh
        )

    async def connect(self) -> DeviceIdentity:
        """Identify the simulated device."""

        async def identify() -> DeviceIdentity:
            self._check_online()
            self._advance()
            return DeviceIdentity("Edge EMS", "Simulated BESS", serial=self.asset_id)

        self._identity = await self._health.run(identify)
        return self._identity

    async def read(self) -> Readings:
        """Every metric of the battery, now."""

        async def sample() -> Readings:
            self._check_online()
            return self._readings()

        return await self._health.run(sample)

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Command power or arm the revert timer; read back what the device now holds."""
        command = self._commands.get(metric)
        if command is None or not command.allow_write:
            raise WriteRefusedError(f"{self._name} has no command {metric}", reason="not_writable")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise WriteRefusedError(f"{metric}: {value!r} is not a number", reason="invalid_value")
        low, high = command.minimum or 0.0, command.maximum or 0.0
        if not low <= value <= high:
            message = f"{metric}: {value} is outside {low}..{high}"
            raise WriteRefusedError(message, reason="out_of_range")

        async def apply() -> WriteResult:
            self._check_online()
            self._advance()
            if metric == BATTERY_POWER:
                self.battery.command(float(value))
                read_back: Value = self.battery.command_w
            else:
                self._revert_s = int(value)
                self._revert_at = self._clock() + value if value > 0 else None
                read_back = self._revert_s
            return WriteResult(metric, value, value, read_back, self._clock())

        return await self._health.run(apply)

    async def close(self) -> None:
        """Nothing to release; the device may be connected again."""
        self._health.connected = False

    def _check_online(self) -> None:
        if not self.online:
            raise DeviceConnectionError(f"{self._name} does not answer")

    def _advance(self) -> None:
        now = self._clock()
        if self._revert_at is not None and now >= self._revert_at:
            # The controller went quiet: integrate up to the deadline, then go idle.
            self.battery.advance(self._revert_at)
            self.battery.command(0.0)
            self._revert_at = None
        self.battery.advance(now)

    def _readings(self) -> Readings:
        self._advance()
        now, battery = self._clock(), self.battery
        state = BATTERY_STATES[0]
        if battery.power_w > 0:
            state = "discharging"
        elif battery.power_w < 0:
            state = "charging"
        values: dict[str, Value] = {
            "battery_power_w": round(battery.power_w, 1),
            "ac_power_w": round(battery.power_w * battery.efficiency, 1),
            "soc_pct": round(battery.soc_pct, 2),
            "battery_voltage_v": battery.voltage_v,
            "battery_current_a": battery.current_a,
            "battery_temperature_c": round(battery.temperature_c, 2),
            "battery_charge_energy_wh": round(battery.charge_energy_wh, 1),
            "battery_discharge_energy_wh": round(battery.discharge_energy_wh, 1),
            "battery_capacity_wh": battery.capacity_wh,
            "battery_state": state,
            BATTERY_POWER: battery.command_w,
            REVERT_TIMER: self._revert_s,
        }
        return {metric: Reading(metric, value, now) for metric, value in values.items()}
