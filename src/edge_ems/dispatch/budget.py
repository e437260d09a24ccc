"""Write budgets: EEPROM wears out, and devices should not be flooded."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def _utc_day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).date().isoformat()


@dataclass(slots=True)
class EepromBudget:
    """A daily cap on EEPROM-backed writes per device; the day is the UTC calendar day.

    The state survives restarts through :meth:`state` and :meth:`restore`, so a restart does
    not hand out a fresh budget.
    """

    daily_writes: int
    clock: Callable[[], float] = time.time
    _day: str = ""
    _spent: dict[str, int] = field(default_factory=dict)

    def _roll(self) -> None:
        today = _utc_day(self.clock())
        if today != self._day:
            self._day = today
            self._spent.clear()

    def remaining(self, device_id: str) -> int:
        """Writes left today for ``device_id``."""
        self._roll()
        return max(0, self.daily_writes - self._spent.get(device_id, 0))

    def spend(self, device_id: str) -> None:
        """Count one write."""
        self._roll()
        self._spent[device_id] = self._spent.get(device_id, 0) + 1

    def state(self) -> dict[str, Any]:
        """What to persist."""
        self._roll()
        return {"day": self._day, "spent": dict(self._spent)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back persisted state; another day's counts are dropped."""
        self._day = str(state.get("day", ""))
        self._spent = {str(key): int(value) for key, value in dict(state.get("spent", {})).items()}
        self._roll()


@dataclass(slots=True)
class RateLimiter:
    """At most ``per_minute`` requested writes per device in any sliding minute."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _times: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, device_id: str) -> bool:
        """Count a write if the rate allows it; return whether it does."""
        now = self.clock()
        times = self._times.setdefault(device_id, deque())
        while times and now - times[0] >= 60.0:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now)
        return True
