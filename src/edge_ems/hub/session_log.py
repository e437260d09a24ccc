"""Agent sessions into the store: the gateway keeps them in memory, the store keeps them
across restarts (and ends the ones a crashed hub left open when it next opens).

The gateway has no hook for sessions, so the log compares the registry's recent sessions
with what it saved, every few seconds and once more on stop: a session seen opening and
ending within one interval is saved ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .sessions import SessionRecord, SessionRegistry
from .store.backend import Backend
from .store.errors import StoreError

_LOGGER = logging.getLogger(__name__)


class SessionLog:
    """Saves new and ended sessions of ``registry`` to ``backend``."""

    def __init__(self, registry: SessionRegistry, backend: Backend, *, interval: float = 5.0):
        self._registry = registry
        self._backend = backend
        self._interval = interval
        self._saved: dict[str, SessionRecord] = {}
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> list[SessionRecord]:
        """Sessions not saved as they are now."""
        current = {
            record.session_id: record for row in self._registry.agents() for record in row.sessions
        }
        # Forget what the registry no longer holds, so the map stays as small as it.
        self._saved = {key: record for key, record in self._saved.items() if key in current}
        return [record for key, record in current.items() if self._saved.get(key) != record]

    async def sync(self) -> int:
        """Save what changed; return how many records were written."""
        changed = self.changed()
        for record in changed:
            await self._backend.save_session(record)
            self._saved[record.session_id] = record
        return len(changed)

    def start(self) -> None:
        """Sync every ``interval`` seconds until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="edge_ems session log"
            )

    async def stop(self) -> None:
        """Stop syncing and save what changed since the last sync."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.sync()
        except StoreError:
            _LOGGER.exception("Could not save the agent sessions on stop")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
            except StoreError:
                _LOGGER.exception("Saving agent sessions failed; retrying")
