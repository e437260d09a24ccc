"""Agent sessions and registrations into the store, and the other hubs' agents out of it.

The gateway keeps sessions in memory; the store keeps them across restarts (and ends the
ones a crashed hub left open when it next opens). The gateway has no hook for sessions, so
the log compares the registry's recent sessions with what it saved, every few seconds and
once more on stop: a session seen opening and ending within one interval is saved ended.

Hubs sharing one database (a fleet headend on TimescaleDB) see every site that way: each
saves what its agents registered and whether they are connected, notes that it is alive,
and reads back what the others serve into its registry (``/assets``, ``/agents``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..gateway.model import Registration
from .sessions import SessionRecord, SessionRegistry
from .store.backend import Backend
from .store.errors import StoreError
from .store.minute_store import HUB_SILENCE

_LOGGER = logging.getLogger(__name__)


class SessionLog:
    """Saves the sessions and registrations of ``registry`` to ``backend`` as hub process
    ``instance``, and gives the registry what the other hubs there serve."""

    def __init__(
        self,
        registry: SessionRegistry,
        backend: Backend,
        *,
        instance: str = "",
        interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        on_remote_connect: Callable[[str], None] | None = None,
    ):
        """``on_remote_connect(site_id)`` is told when an agent of the site connects to
        another hub."""
        self._on_remote_connect = on_remote_connect
        self._registry = registry
        self._backend = backend
        self._instance = instance
        self._interval = interval
        self._clock = clock
        self._saved: dict[str, SessionRecord] = {}
        self._registered: dict[str, tuple[Registration, bool]] = {}
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
        """Save what changed and read what the other hubs serve; return how many sessions
        were written."""
        changed = self.changed()
        for record in changed:
            await self._backend.save_session(record, self._instance)
            self._saved[record.session_id] = record
        registered = self._registry.local_registrations()
        news = [
            entry for agent, entry in registered.items() if self._registered.get(agent) != entry
        ]
        if news:
            await self._backend.save_registrations(self._instance, news)
        self._registered = registered
        now = self._clock()
        await self._backend.beat(self._instance, now)
        stored = await self._backend.registrations(now - HUB_SILENCE)
        joined = self._registry.set_remote(
            (row.registration, row.connected, row.hub)
            for row in stored
            if row.hub != self._instance
        )
        if self._on_remote_connect is not None:
            for site_id in sorted(joined):
                self._on_remote_connect(site_id)
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
            except Exception:  # a bug must not end the log: the next pass tries again
                _LOGGER.exception("Syncing agent sessions failed; retrying")
