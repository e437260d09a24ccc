"""The planner's parts put together for a hub: its tables and connections, the leader lease
(alone on SQLite, shared on PostgreSQL), the HTTP session its sources share, the service.
The hub runs :meth:`PlannerParts.jobs` as background tasks and closes the parts on stop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ...planner.store_reader import StoreMinuteReader
from ..gateway import GatewayServer
from ..store import MinuteStore, is_database_url
from ..store.model import Latest, SeriesFilter, SeriesKey
from .config import PlannerConfig
from .leader import Leadership, PostgresLeadership, SoleLeadership
from .link import GatewayLink
from .records import PlannerRecords, open_database
from .service import AuditSink, PlannerService

type Job = Callable[[], Coroutine[Any, Any, None]]


class StoreReader(StoreMinuteReader):
    """The minute store as the planner reads it: means, latest values, its series."""

    def __init__(self, store: MinuteStore) -> None:
        super().__init__(store)
        self._minutes = store

    async def latest(self, selection: SeriesFilter | None = None) -> list[Latest]:
        """The newest value of each matching series."""
        return await self._minutes.latest(selection)

    async def series(self, selection: SeriesFilter | None = None) -> list[SeriesKey]:
        """The stored series matching ``selection``."""
        return await self._minutes.series(selection)


@dataclass(slots=True)
class PlannerParts:
    """A hub's planner and what it holds open."""

    service: PlannerService
    leadership: Leadership
    records: PlannerRecords
    session: aiohttp.ClientSession

    def jobs(self) -> Sequence[tuple[str, Job]]:
        """The background tasks, by name: the lease and the planner's own jobs."""
        return (("planner lease", self.leadership.run), ("planner", self.service.run))

    async def close(self) -> None:
        """Close the connections (the jobs are stopped already)."""
        with contextlib.suppress(Exception):
            await self.records.close()
        await self.session.close()


async def open_planner(
    config: PlannerConfig,
    *,
    database: str | Path,
    instance: str,
    store: MinuteStore,
    gateway: GatewayServer,
    audit: AuditSink,
) -> PlannerParts:
    """The planner on the hub's database, wired to its store and gateway."""
    records = PlannerRecords(await open_database(database))
    leadership: Leadership
    if is_database_url(database):
        leadership = PostgresLeadership(str(database), instance, config.leader)
    else:
        leadership = SoleLeadership(instance)
    session = aiohttp.ClientSession()
    service = PlannerService(
        config,
        records=records,
        store=StoreReader(store),
        link=GatewayLink(gateway),
        session=session,
        leadership=leadership,
        audit=audit,
    )
    try:
        await service.prepare()
    except BaseException:
        await session.close()
        await records.close()
        raise
    gateway.planner = service
    return PlannerParts(service, leadership, records, session)
