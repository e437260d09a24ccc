"""The one device contract every protocol implements.

A device connects and identifies itself, reads into timestamped metrics with a quality,
accepts writes only through :meth:`Device.write` (which enforces the point map's access,
limits and ``allow_write``, then reads back), and reports its health.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from .exceptions import DeviceError
from .readings import Readings, Value
from .resilience import BreakerState, CircuitBreaker

SHORT_NAME = 40
"""Characters a device's default name keeps at most."""
_ASIDE = re.compile(r"\s*\([^)]*\)")
_VARIANT = re.compile(r",| via | with | / ")


class AssetType(StrEnum):
    """What a device is, whatever its protocol: a point map's ``kind``, the hub's asset type."""

    INVERTER = "inverter"
    HYBRID_INVERTER = "hybrid_inverter"
    METER = "meter"
    BATTERY = "battery"
    BMS = "bms"
    """A battery's management system: read, never driven."""
    EV_CHARGER = "ev_charger"
    HEAT_PUMP = "heat_pump"
    WATER_HEATER = "water_heater"
    SWITCHABLE_LOAD = "switchable_load"
    TRACKER = "tracker"
    WEATHER_STATION = "weather_station"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who a device says it is."""

    manufacturer: str
    model: str
    serial: str | None = None
    firmware: str | None = None
    hardware: str | None = None

    def short_name(self, limit: int = SHORT_NAME) -> str:
        """Maker and model as a device's name: asides in parentheses, variants after a
        comma, "via", "with" or " / " left out, cut at a word within ``limit`` characters.
        (Entity ids are made from it: "JK-BMS", not "JK (Jikong) JK-BMS via ESPHome ...".)"""
        maker = _ASIDE.sub("", self.manufacturer).strip()
        model = _VARIANT.split(_ASIDE.sub("", self.model))[0].strip()
        # A model that starts with the maker's name ("JK-BMS" by "JK") says it already.
        named = re.split(r"[\s-]", model, maxsplit=1)[0].casefold() == maker.casefold()
        name = model if named else f"{maker} {model}"
        name = " ".join(name.split())
        # Whole words only, and at least the model's first.
        least = len(maker) + 1 + len(model.split(" ", 1)[0]) if model else 0
        cut = max(limit, least)
        if len(name) > cut:
            name = name[: cut + 1].rsplit(" ", 1)[0]
        return name or self.manufacturer


@dataclass(frozen=True, slots=True)
class Command:
    """A writable metric of a device, with the limits its point map gives."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None
    options: Mapping[int, str] | None = None
    """Named values for a mode or state; a write must use one of them."""
    allow_write: bool = False
    """The point map explicitly allows writing this command."""
    eeprom: bool = True
    """The register is backed by EEPROM/flash: write only on change, within a budget."""
    lease: bool = False
    """Written only as a lease with a time to live; when it lapses, the device's safe mode."""
    target: str | None = None
    """What carries the command when the device drives something else (another integration's
    entity); audit messages name it."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did."""

    metric: str
    requested: Value
    written: Value
    """The value as the device stores it (after scaling and rounding to its resolution)."""
    read_back: Value
    timestamp: float


@dataclass(frozen=True, slots=True)
class Health:
    """A device's health at one moment."""

    connected: bool
    last_seen: float | None
    """Seconds since the epoch of the last successful exchange."""
    error_streak: int
    breaker: BreakerState
    last_error: str | None


@runtime_checkable
class Device(Protocol):
    """What every device implementation offers, whatever its protocol."""

    @property
    def name(self) -> str:
        """A short name for logs and errors."""

    @property
    def identity(self) -> DeviceIdentity | None:
        """What :meth:`connect` found, or ``None`` before it."""

    @property
    def asset_type(self) -> AssetType:
        """What the device is (an inverter, a meter, an EV charger...)."""

    @property
    def commands(self) -> Mapping[str, Command]:
        """The writable metrics, by name."""

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """Commands written, in order, to hand the device back to its own control when a
        dispatch lease lapses; empty for a device that takes no commands."""

    @property
    def revert_timer(self) -> str | None:
        """The command of the device's own watchdog, refreshed instead of its setpoints."""

    @property
    def health(self) -> Health:
        """Connection and error state now."""

    @property
    def declared_metrics(self) -> frozenset[str]:
        """Every metric the device may report, known before it answers (its map's points,
        a protocol's frames, a SunSpec chain learned before)."""

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """The named states of an enum metric, or ``None`` where the device names none."""

    @property
    def learned(self) -> Mapping[str, Any]:
        """JSON-ready facts the device found out about the hardware (how much it may read
        at once, a model layout) that its next start can begin from; its constructor takes
        them back. Empty for a device that learns nothing."""

    async def register_dump(self) -> dict[str, Any] | None:
        """The raw registers the device's reads cover, for diagnostics a simulator can
        serve again, private points redacted; ``None`` for a device without registers."""

    async def connect(self) -> DeviceIdentity:
        """Open the link and identify the device."""

    async def read(self) -> Readings:
        """Read every metric once."""

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Write one command, then read it back."""

    async def close(self) -> None:
        """Release the link; the device may be connected again."""


@dataclass(slots=True)
class HealthTracker:
    """Error streak, last-seen time and circuit breaker, kept the same way by every device."""

    breaker: CircuitBreaker
    wall_clock: Callable[[], float] = time.time
    connected: bool = False
    last_seen: float | None = None
    error_streak: int = 0
    last_error: str | None = None

    async def run[T](self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one exchange with the device under the breaker, recording its outcome."""
        self.breaker.check()
        try:
            result = await operation()
        except DeviceError as err:
            self.record_failure(err)
            raise
        self.record_success()
        return result

    def record_success(self) -> None:
        """Note a successful exchange."""
        self.breaker.record_success()
        self.connected = True
        self.last_seen = self.wall_clock()
        self.error_streak = 0
        self.last_error = None

    def record_failure(self, error: BaseException) -> None:
        """Note a failed exchange."""
        self.breaker.record_failure()
        self.error_streak += 1
        self.last_error = str(error) or type(error).__name__

    def snapshot(self) -> Health:
        """Return the current health."""
        return Health(
            connected=self.connected,
            last_seen=self.last_seen,
            error_streak=self.error_streak,
            breaker=self.breaker.state,
            last_error=self.last_error,
        )
