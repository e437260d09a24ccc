"""Readings: timestamped metric values with a quality, what every device produces."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

type Value = float | int | str | bool | None
"""A decoded, scaled value. ``None`` means the device does not implement the point."""


class Quality(StrEnum):
    """How far a reading can be trusted."""

    GOOD = "good"
    STALE = "stale"
    """The source stopped updating; the value is the last one seen."""
    INVALID = "invalid"
    """The device answered, but with a value outside what the point allows."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One metric's value at one moment, from one device."""

    metric: str
    value: Value
    timestamp: float
    """Seconds since the epoch (UTC) when the value was read."""
    quality: Quality = Quality.GOOD


type Readings = dict[str, Reading]
"""One read of a device: readings by metric name."""
