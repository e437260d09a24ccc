"""The hub's planner on a real minute store (SQLite in a tmp dir, or the PostgreSQL +
TimescaleDB server the store tests start), with the gateway stood in for by a link that
records what the planner sends, and time fixed by the test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from edge_ems.dispatch import AuditRecord
from edge_ems.gateway.model import (
    AssetInfo,
    PlanUpdate,
    SeriesSamples,
    SetpointResult,
    TelemetryBatch,
)
from edge_ems.hub.planning.config import PlannerConfig, parse_planner_config
from edge_ems.hub.planning.leader import SoleLeadership
from edge_ems.hub.planning.records import PlannerRecords, open_database
from edge_ems.hub.planning.service import PlannerService
from edge_ems.hub.store import MinuteStore, open_store
from edge_ems.planner.store_reader import StoreMinuteReader
from edge_ems.readings import Value

from ...lib.planner.conftest import services  # noqa: F401 - recorded answers on loopback
from ..gateway.conftest import site_factory  # noqa: F401 - agents with simulated batteries
from ..store.conftest import postgres_url  # noqa: F401 - the session's PostgreSQL server

PRAGUE = ZoneInfo("Europe/Prague")
T0 = datetime(2026, 6, 16, 10, 0, tzinfo=PRAGUE)
"""A Tuesday morning in summer; tests start their clocks here."""
SITE = "farm"
BATTERY = "battery-inverter"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    @property
    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def price_document(
    days: Mapping[date, Sequence[float]], *, area: str = "CZ", zone: str = "Europe/Prague"
) -> dict[str, Any]:
    """An ``edge-ems-prices/1`` document of hourly prices per day."""
    return {
        "schema": "edge-ems-prices/1",
        "market": "OTE-CR",
        "area": area,
        "time_zone": zone,
        "currency": "EUR",
        "resolution_minutes": 60,
        "days": [
            {"day": day.isoformat(), "prices_mwh": list(values)} for day, values in days.items()
        ],
    }


def cheap_now_prices(first: date, days: int = 2) -> dict[date, list[float]]:
    """Hourly prices: negative from 10:00 to 11:00, cheap to 12:00, dear in the evening."""
    hours = [80.0] * 24
    hours[10], hours[11] = -40.0, 20.0
    for hour in range(17, 21):
        hours[hour] = 300.0
    return {first + timedelta(days=k): list(hours) for k in range(days)}


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


FLAT_TARIFF = """\
name: "Flat network charge (test)"
currency: EUR
time_zone: Europe/Prague
vat: 0.2
import:
  supplier_margin_per_kwh: 0.02
  bands: {flat: 0.05}
  default_band: flat
export:
  fee_per_kwh: 0.01
"""


def planner_section(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A planner section: a price file, a flat tariff, one site with the registered battery
    and measured grid, PV and load."""
    prices = write_json(tmp_path / "prices.json", price_document(cheap_now_prices(T0.date())))
    (tmp_path / "tariff.yaml").write_text(FLAT_TARIFF)
    section: dict[str, Any] = {
        "time_zone": "Europe/Prague",
        "prices": {
            "source": "file",
            "path": str(prices),
            "area": "CZ",
            "market_time_zone": "Europe/Prague",
        },
        "tariff": str(tmp_path / "tariff.yaml"),
        "dispatch": {"resend_s": 60, "lease_margin_s": 120},
        "sites": [
            {
                "site_id": SITE,
                "battery_defaults": {"soc_min": 0.1, "soc_max": 0.95},
                "measure": {
                    "grid": [{"asset_id": "meter", "metric": "grid_power_w"}],
                    "pv": [{"asset_id": "deye", "metric": "pv_power_w"}],
                    "load": [{"asset_id": "deye", "metric": "load_power_w"}],
                },
            }
        ],
    }
    section.update(changes)
    return section


@dataclass
class FakeLink:
    """The gateway as the planner sees it: registered assets, setpoints and plans sent."""

    assets: dict[str, dict[str, AssetInfo]] = field(default_factory=dict)
    setpoints: list[tuple[str, str, str, Value, float]] = field(default_factory=list)
    plans: list[tuple[str, PlanUpdate]] = field(default_factory=list)
    refuse: str | None = None
    elsewhere: set[str] = field(default_factory=set)
    """Assets whose agent is connected to another hub; every other one is served here."""

    def site_assets(self, site_id: str) -> dict[str, AssetInfo]:
        return dict(self.assets.get(site_id, {}))

    async def send_setpoint(
        self, site_id: str, asset_id: str, command: str, value: Value, *, ttl_s: float
    ) -> SetpointResult:
        self.setpoints.append((site_id, asset_id, command, value, ttl_s))
        return SetpointResult("cmd", "agent", (), self.refuse)

    def send_plan(self, site_id: str, update: PlanUpdate) -> int:
        self.plans.append((site_id, update))
        return 1

    def serves(self, asset_id: str) -> bool:
        return asset_id not in self.elsewhere

    def served_elsewhere(self, asset_id: str) -> bool:
        return asset_id in self.elsewhere

    def last(self, asset_id: str, command: str) -> tuple[Value, float]:
        for _, asset, name, value, ttl in reversed(self.setpoints):
            if (asset, name) == (asset_id, command):
                return value, ttl
        raise AssertionError(f"no {command} sent to {asset_id}")


def battery_asset(asset_id: str = BATTERY) -> AssetInfo:
    return AssetInfo(
        asset_id, "Battery", "battery", 10_000.0, 4000.0, 4000.0,
        ("battery_power_setpoint_w",),
    )  # fmt: skip


class Store(StoreMinuteReader):
    """The minute store as the planner reads it (mean power, latest values, series)."""

    def __init__(self, store: MinuteStore) -> None:
        super().__init__(store)
        self.store = store
        self._seq = 0

    async def latest(self, selection: Any = None) -> Any:
        return await self.store.latest(selection)

    async def series(self, selection: Any = None) -> Any:
        return await self.store.series(selection)

    async def feed(
        self,
        samples: Mapping[tuple[str, str], Sequence[tuple[datetime, float]]],
        site: str = SITE,
    ) -> None:
        """Samples of ``{(asset, metric): [(time, value), ...]}``, written at once."""
        self._seq += 1
        await self.store.accept(
            TelemetryBatch(
                "agent-1",
                site,
                self._seq,
                [
                    SeriesSamples(
                        asset,
                        metric,
                        [round(t.timestamp() * 1000) for t, _ in values],
                        [v for _, v in values],
                    )
                    for (asset, metric), values in samples.items()
                ],
            )
        )
        await self.store.flush(full=True)


def minutes(start: datetime, end: datetime, value: float) -> list[tuple[datetime, float]]:
    """One sample a minute in ``[start, end)``."""
    count = int((end - start) / timedelta(minutes=1))
    return [(start + timedelta(minutes=k), value) for k in range(count)]


@dataclass
class Planner:
    service: PlannerService
    store: Store
    link: FakeLink
    clock: Clock
    audits: list[AuditRecord]
    records: PlannerRecords


PlannerMaker = Callable[..., Awaitable[Planner]]


@pytest.fixture
async def make_planner(tmp_path: Path) -> AsyncIterator[PlannerMaker]:
    opened: list[tuple[MinuteStore, PlannerRecords, aiohttp.ClientSession]] = []

    async def make(
        section: dict[str, Any] | None = None,
        *,
        database: str | Path | None = None,
        clock: Clock | None = None,
        config: PlannerConfig | None = None,
    ) -> Planner:
        clock = clock or Clock(T0 + timedelta(minutes=1))
        where = database or tmp_path / "store.db"
        store = open_store(where, clock=clock)
        await store.open()
        records = PlannerRecords(await open_database(where))
        session = aiohttp.ClientSession()
        opened.append((store, records, session))
        config = config or parse_planner_config(section or planner_section(tmp_path))
        link = FakeLink({SITE: {BATTERY: battery_asset()}})
        audits: list[AuditRecord] = []
        reader = Store(store)
        service = PlannerService(
            config, records=records, store=reader, link=link, session=session,
            leadership=SoleLeadership("test"), audit=audits.extend, clock=clock,
        )  # fmt: skip
        await service.prepare()
        return Planner(service, reader, link, clock, audits, records)

    yield make
    for store, records, session in opened:
        await session.close()
        await records.close()
        await store.close()
