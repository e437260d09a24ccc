"""Simulated time: the wall clock, shifted to a chosen moment and sped up."""

from __future__ import annotations

import time
from collections.abc import Callable


def scaled_clock(
    speed: float = 1.0,
    start: float | None = None,
    *,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> Callable[[], float]:
    """A clock (seconds since the epoch) that starts at ``start`` (default: now) and runs
    ``speed`` times as fast as real time; ``speed`` 720 replays a day in two minutes."""
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed}")
    origin, begin = monotonic(), wall() if start is None else start
    return lambda: begin + speed * (monotonic() - origin)


def today_at(hhmm: str, *, wall: Callable[[], float] = time.time) -> float:
    """Seconds since the epoch of ``HH:MM`` (UTC, the simulators' solar time) today."""
    hours, _, minutes = hhmm.partition(":")
    try:
        hour, minute = int(hours), int(minutes or 0)
    except ValueError:
        raise ValueError(f"not a time of day HH:MM: {hhmm!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"not a time of day HH:MM: {hhmm!r}")
    now = wall()
    return now - now % 86_400 + hour * 3600 + minute * 60
