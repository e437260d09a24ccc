"""The newest reading of each metric from a device that pushes data, aged into ``stale``.

MQTT and CAN battery management systems publish on their own schedule; a read returns what
arrived last, and a value older than ``max_age`` says so through its quality.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..readings import Quality, Readings


@dataclass(slots=True)
class DecodeStats:
    """What became of the messages (MQTT) or frames (CAN) a device received."""

    accepted: int = 0
    """Decoded into readings."""
    rejected: int = 0
    """Meant for this device but not decodable: garbage payloads, frames of the wrong length."""
    ignored: int = 0
    """Not meant for this device, or carrying nothing it maps."""
    last_error: str | None = None
    """Why the last rejected message was rejected."""


class LatestReadings:
    """The newest reading per metric; readings older than ``max_age`` seconds read as stale."""

    def __init__(self, max_age: float, *, clock: Callable[[], float] = time.time) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age}")
        self.max_age = max_age
        self._clock = clock
        self._latest: Readings = {}

    def update(self, readings: Readings) -> None:
        """Keep ``readings`` as the newest of their metrics."""
        self._latest.update(readings)

    def newest(self) -> float | None:
        """Timestamp of the newest reading, or ``None`` before the first."""
        return max((reading.timestamp for reading in self._latest.values()), default=None)

    def fresh(self) -> bool:
        """Something arrived within ``max_age``."""
        newest = self.newest()
        return newest is not None and self._clock() - newest <= self.max_age

    def snapshot(self) -> Readings:
        """Every metric's newest reading, marked stale where it is too old."""
        oldest_fresh = self._clock() - self.max_age
        return {
            metric: reading
            if reading.timestamp >= oldest_fresh
            else dataclasses.replace(reading, quality=Quality.STALE)
            for metric, reading in self._latest.items()
        }
