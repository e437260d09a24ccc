"""The hub's background tasks, kept running: a task that fails is logged, shown in
``/health`` and ``/metrics``, and started again after a backoff, never left ended silently.

A task counts as failing from its failure until it has run ``stable`` seconds again; its
last error stays visible after that, with how many times it failed and was restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..resilience import Backoff
from .redact import without_userinfo

_LOGGER = logging.getLogger(__name__)

type TaskFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """One task for ``/health`` and ``/metrics``."""

    running: bool
    failing: bool
    """Failed, and not yet running ``stable`` seconds since."""
    failures: int
    restarts: int
    last_error: str | None
    last_failure: float | None
    """Seconds since the epoch."""


@dataclass(slots=True)
class _State:
    running: bool = False
    failures: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_failure: float | None = None
    since: float = 0.0
    """Loop time the current run started."""


class Supervisor:
    """Runs named coroutines until :meth:`stop`, restarting each that fails."""

    def __init__(
        self,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        stable: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base, self._cap, self._stable = backoff_base, backoff_cap, stable
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, _State] = {}

    def spawn(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory()`` as ``name``; run it again whenever it fails or ends."""
        if name in self._tasks:
            raise ValueError(f"a task {name!r} runs already")
        self._states[name] = _State()
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._keep(name, factory), name=f"edge_ems {name}"
        )

    async def stop(self) -> None:
        """Cancel every task and wait for it to end."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self) -> dict[str, TaskStatus]:
        """Every task's state, by name."""
        now = asyncio.get_running_loop().time()
        return {
            name: TaskStatus(
                running=state.running,
                failing=state.failures > 0
                and (not state.running or now - state.since < self._stable),
                failures=state.failures,
                restarts=state.restarts,
                last_error=state.last_error,
                last_failure=state.last_failure,
            )
            for name, state in sorted(self._states.items())
        }

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        loop = asyncio.get_running_loop()
        state = self._states[name]
        backoff = Backoff(self._base, self._cap)
        while True:
            state.running, state.since = True, loop.time()
            try:
                await factory()
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as err:  # whatever it was, it must show and not end the task
                error = without_userinfo(f"{type(err).__name__}: {err}")
                _LOGGER.error(
                    "Background task %s failed: %s", name, error, exc_info=err, extra={"task": name}
                )
            else:
                error = "ended on its own"
                _LOGGER.error("Background task %s ended on its own", name, extra={"task": name})
            state.running = False
            state.failures += 1
            state.last_error, state.last_failure = error, self._clock()
            if loop.time() - state.since >= self._stable:
                backoff.reset()  # it had run well for a while: this is a new trouble
            delay = backoff.delay()
            _LOGGER.warning("Restarting %s in %.1f s", name, delay, extra={"task": name})
            await asyncio.sleep(delay)
            state.restarts += 1
