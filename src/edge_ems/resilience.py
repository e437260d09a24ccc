"""Retry pacing and circuit breaking shared by every protocol client."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from .exceptions import CircuitOpenError


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation).

    ``delay()`` returns a uniformly random wait in ``[0, min(cap, base * 2**attempt)]``, so
    many clients that failed together do not retry together.
    """

    base: float = 0.5
    cap: float = 60.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self) -> float:
        """Return the next wait and count the attempt."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Start over after a success."""
        self.attempt = 0


class BreakerState(StrEnum):
    """The states of :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    """Stop hammering a device that keeps failing.

    After ``failure_threshold`` consecutive failures the breaker opens and :meth:`check`
    raises :class:`CircuitOpenError` until ``reset_timeout`` has passed; then one trial
    request is let through (half open). Its success closes the breaker, its failure opens it
    again for twice as long, up to ``max_reset_timeout``.
    """

    name: str
    failure_threshold: int = 5
    reset_timeout: float = 10.0
    max_reset_timeout: float = 300.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    current_timeout: float = 0.0
    on_change: Callable[[BreakerState], None] | None = None

    def check(self) -> None:
        """Raise :class:`CircuitOpenError` if a request must not be made now."""
        if self.state is BreakerState.OPEN:
            remaining = self.opened_at + self.current_timeout - self.clock()
            if remaining > 0:
                raise CircuitOpenError(
                    f"{self.name}: circuit open after {self.failures} failures; "
                    f"next try in {remaining:.1f} s",
                    retry_after=remaining,
                )
            self._set(BreakerState.HALF_OPEN)

    def record_success(self) -> None:
        """Note a successful request."""
        self.failures = 0
        self.current_timeout = 0.0
        if self.state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """Note a failed request; may open the breaker."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self.current_timeout = min(self.max_reset_timeout, self.current_timeout * 2)
            self._open()
        elif self.state is BreakerState.CLOSED and self.failures >= self.failure_threshold:
            self.current_timeout = self.reset_timeout
            self._open()

    def _open(self) -> None:
        self.opened_at = self.clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)
