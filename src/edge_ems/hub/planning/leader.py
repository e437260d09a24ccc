"""Who plans and dispatches: exactly one hub among those sharing a database.

On SQLite a hub is alone: it leads. On PostgreSQL the leader holds a session advisory lock
on a connection of its own (:class:`PostgresLeadership`):

- every ``heartbeat_s`` the leader checks on that connection that it still holds the lock;
  a standby tries to take it;
- a leader that has not confirmed its lock for ``fence_s`` counts itself a standby at once
  (:attr:`is_leader` looks at the time of the last confirmation, so a stuck heartbeat fences
  too) and drops the connection;
- the connection carries ``idle_session_timeout = server_timeout_s``: a leader that went
  silent (a frozen process, a network cut) loses its session, and so the lock, on the
  server's side after ``server_timeout_s``, longer than ``fence_s``. A leader that dies
  outright loses it as soon as the server sees the connection close.

So two hubs never lead at once (the old one stops at ``fence_s``, the lock is free only
after ``server_timeout_s``), and a standby takes over within ``server_timeout_s`` plus a
heartbeat (25 s with the defaults).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg
from psycopg import AsyncConnection

from .config import LeaderConfig

_LOGGER = logging.getLogger(__name__)

LEADER_LOCK = 0x6564_6765_4C44  # "edgeLD"
"""The advisory lock the leading planner holds."""


class Leadership(Protocol):
    """Whether this hub plans and dispatches now."""

    @property
    def is_leader(self) -> bool:
        """This hub leads now."""

    @property
    def leader(self) -> str | None:
        """The leading hub's name, as far as known."""

    async def run(self) -> None:
        """Keep the lease (or try to take it) until cancelled."""

    async def wait_change(self) -> None:
        """Return when leadership may have changed."""


class SoleLeadership:
    """A hub on its own database: always the leader."""

    def __init__(self, name: str = "") -> None:
        self._name = name

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def leader(self) -> str | None:
        return self._name or None

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def wait_change(self) -> None:
        await asyncio.Event().wait()


class PostgresLeadership:
    """The leader lease as an advisory lock on a shared PostgreSQL database."""

    def __init__(
        self,
        url: str,
        name: str,
        config: LeaderConfig | None = None,
        *,
        key: int = LEADER_LOCK,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self.name = name
        self._config = config or LeaderConfig()
        self._key = key
        self._monotonic = monotonic
        self._confirmed: float | None = None
        """When the lock was last confirmed held (monotonic), ``None`` while standing by."""
        self._leader_name: str | None = None
        self._changed = asyncio.Event()
        self.takeovers = 0

    @property
    def is_leader(self) -> bool:
        confirmed = self._confirmed
        return confirmed is not None and self._monotonic() - confirmed < self._config.fence_s

    @property
    def leader(self) -> str | None:
        return self.name if self.is_leader else self._leader_name

    async def wait_change(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def _set(self, confirmed: float | None) -> None:
        was = self.is_leader
        self._confirmed = confirmed
        if was != self.is_leader:
            self._changed.set()
            if self.is_leader:
                self.takeovers += 1
                _LOGGER.warning("Planner: this hub (%s) leads now", self.name)
            else:
                _LOGGER.warning("Planner: this hub (%s) no longer leads", self.name)

    async def run(self) -> None:
        beat = self._config.heartbeat_s
        while True:
            try:
                await self._session()
            except (psycopg.Error, OSError, TimeoutError) as err:
                _LOGGER.warning("Planner lease: %s; trying again in %.0f s", _short(err), beat)
            finally:
                self._set(None)
            await asyncio.sleep(beat)

    async def _session(self) -> None:
        config = self._config
        beat = config.heartbeat_s
        async with asyncio.timeout(beat * 2):
            db = await AsyncConnection.connect(
                self._url,
                autocommit=True,
                application_name=f"edge-ems planner {self.name}"[:63],
                keepalives=1,
                keepalives_idle=max(1, round(beat)),
                keepalives_interval=max(1, round(beat)),
                keepalives_count=3,
            )
        try:
            async with asyncio.timeout(beat * 2):
                # The server ends a silent session, and so frees a lock nobody confirms.
                timeout_ms = round(config.server_timeout_s * 1000)
                await db.execute(f"SET idle_session_timeout = {timeout_ms:d}")
            while True:
                began = self._monotonic()
                async with asyncio.timeout(beat * 2):
                    held = await self._try(db)
                if held:
                    self._set(began)
                else:
                    self._set(None)
                    async with asyncio.timeout(beat * 2):
                        self._leader_name = await self._holder(db)
                await asyncio.sleep(max(0.0, beat - (self._monotonic() - began)))
                if self._confirmed is not None and not self.is_leader:
                    # Fenced: too long since the last confirmation. Start afresh.
                    raise TimeoutError("the lease was not confirmed in time")
        finally:
            self._set(None)
            with contextlib.suppress(psycopg.Error, OSError):
                await db.close()

    async def _try(self, db: AsyncConnection[tuple[Any, ...]]) -> bool:
        """Take the lock, or confirm it is still held (a session lock taken again by its
        holder is counted twice: let go of the extra)."""
        cursor = await db.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
        row = await cursor.fetchone()
        held = bool(row and row[0])
        if held and self._confirmed is not None:
            await db.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        return held

    async def _holder(self, db: AsyncConnection[tuple[Any, ...]]) -> str | None:
        cursor = await db.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = %s AND l.objid = %s",
            ((self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF),
        )
        row = await cursor.fetchone()
        if not row or not row[0]:
            return None
        name = str(row[0])
        return name.removeprefix("edge-ems planner ")


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
