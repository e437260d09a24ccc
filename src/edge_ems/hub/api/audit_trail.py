"""Audit records on their way into the store's audit table.

The gateway reports every record an agent sends (setpoint acks and local actions) through a
synchronous callback; the trail queues them and a task writes them in batches. ``/dispatch``
awaits :meth:`AuditTrail.flush` before answering, so the records it returns are already in
``/audit``. A failing write keeps the records and retries; the store ignores a record it
already holds (by id), so a retry never duplicates one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from ...dispatch import AuditRecord
from ..store.backend import Backend
from ..store.errors import StoreError

_LOGGER = logging.getLogger(__name__)

RETRY_DELAY = 5.0


class AuditTrail:
    """Queues audit records and writes them to the store."""

    def __init__(self, backend: Backend, *, max_pending: int = 100_000) -> None:
        self._backend = backend
        self._pending: list[AuditRecord] = []
        self._max_pending = max_pending
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    def report(self, agent_id: str, record: AuditRecord) -> None:
        """The gateway's ``on_audit`` callback."""
        self.add([record])

    def add(self, records: Sequence[AuditRecord]) -> None:
        """Queue records to write."""
        self._pending.extend(records)
        overflow = len(self._pending) - self._max_pending
        if overflow > 0:  # the store has been failing for a long time: keep the newest
            del self._pending[:overflow]
            self.dropped += overflow
        self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now; raises :class:`StoreError` if the store fails."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await self._backend.add_audit(batch)
            except StoreError as err:
                self._pending[:0] = batch
                self.last_error = str(err)
                raise
            self.written += len(batch)
            self.last_error = None

    def start(self) -> None:
        """Write queued records in the background until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="edge_ems audit trail"
            )

    async def stop(self) -> None:
        """Stop the background writer and write what is left (once)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except StoreError:
            _LOGGER.exception("Could not write %d audit records on stop", len(self._pending))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except StoreError:
                _LOGGER.exception("Writing audit records failed; retrying")
                await asyncio.sleep(RETRY_DELAY)
                self._wake.set()
