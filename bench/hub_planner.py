"""The hub's planner at work on many sites: what one 15-minute cycle costs per site.

Each site has a battery, a week of history in a real SQLite minute store (load, grid, PV,
battery power and SOC every 5 minutes), prices from a replayed price file with a tariff,
a replayed PV forecast; the gateway is a link that answers every setpoint at once, so what
is measured is the planner's own work. Per site and cycle: the re-plan (state and series
from the store, the problem, the HiGHS solve, the plan document, its row in the planner's
tables), the dispatch of the step's setpoints, and the audit of the step before (its means
from the store, the report, the day's cost). The first re-plan of a site also builds its
load baseline from the week of history; that is reported apart.

    scripts/in-env python bench/hub_planner.py [--sites 1 10 50] [--cycles 8]

Last line: one JSON object with the figures per number of sites.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np

from _common import emit, median, progress
from edge_ems.gateway.model import (
    AssetInfo,
    PlanUpdate,
    SeriesSamples,
    SetpointResult,
    TelemetryBatch,
)
from edge_ems.hub.planning.config import parse_planner_config
from edge_ems.hub.planning.leader import SoleLeadership
from edge_ems.hub.planning.parts import StoreReader
from edge_ems.hub.planning.records import PlannerRecords, open_database
from edge_ems.hub.planning.service import PlannerService
from edge_ems.hub.store import open_store
from edge_ems.readings import Value

EXAMPLES = Path(__file__).parents[1] / "examples" / "planner"
PRAGUE = ZoneInfo("Europe/Prague")
START = datetime(2026, 6, 16, 10, 0, tzinfo=PRAGUE)
STEP = timedelta(minutes=15)
FIVE = 300_000


class Clock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now


class Link:
    """Registers one battery per site and answers every setpoint at once."""

    def __init__(self, sites: list[str]) -> None:
        self.sites = set(sites)
        self.setpoints = 0

    def site_assets(self, site_id: str) -> dict[str, AssetInfo]:
        battery = AssetInfo("battery", "Battery", "battery", 10_000, 5000, 5000,
                            ("battery_power_setpoint_w",))  # fmt: skip
        return {"battery": battery} if site_id in self.sites else {}

    async def send_setpoint(
        self, site_id: str, asset_id: str, command: str, value: Value, *, ttl_s: float
    ) -> SetpointResult:
        self.setpoints += 1
        return SetpointResult("cmd", "agent")

    def send_plan(self, site_id: str, update: PlanUpdate) -> int:
        json.dumps(update.plan)  # what the gateway would encode
        return 1


def section(sites: list[str]) -> dict[str, Any]:
    return {
        "time_zone": "Europe/Prague",
        "prices": {"source": "file", "path": str(EXAMPLES / "prices-cz.json"), "area": "CZ",
                   "market_time_zone": "Europe/Prague", "replay": True},
        "tariff": str(EXAMPLES / "tariff-d57d.yaml"),
        "pv_forecast": {"source": "file", "path": str(EXAMPLES / "pv-june.json"),
                        "replay": True},
        "sites": [
            {"site_id": site, "baseline": {"weeks": 1},
             "measure": {"grid": [{"asset_id": "meter", "metric": "grid_power_w"}],
                         "pv": [{"asset_id": "inverter", "metric": "pv_power_w"}],
                         "load": [{"asset_id": "inverter", "metric": "load_power_w"}]}}
            for site in sites
        ],
    }  # fmt: skip


def samples(
    site: str, seq: int, rng: np.random.Generator, begin: datetime, end: datetime
) -> TelemetryBatch:
    """Every 5 minutes in ``[begin, end)``: a daily load curve with noise, PV by day."""
    stamps = list(range(round(begin.timestamp() * 1000), round(end.timestamp() * 1000), FIVE))
    hours = np.array([(datetime.fromtimestamp(t / 1000, UTC).astimezone(PRAGUE).hour) for t in
                      stamps])  # fmt: skip
    load = 400 + 600 * ((hours >= 17) & (hours < 22)) + rng.normal(0, 50, len(stamps))
    pv = np.clip(np.sin((hours - 6) / 14 * np.pi), 0, None) * 4000
    battery = rng.normal(0, 300, len(stamps))
    grid = load - pv - battery
    soc = np.full(len(stamps), 45.0)
    series = {("inverter", "load_power_w"): load, ("inverter", "pv_power_w"): pv,
              ("meter", "grid_power_w"): grid, ("battery", "battery_power_w"): battery,
              ("battery", "soc_pct"): soc}  # fmt: skip
    return TelemetryBatch(
        f"agent-{site}", site, seq,
        [SeriesSamples(asset, metric, stamps, [float(v) for v in values])
         for (asset, metric), values in series.items()],
    )  # fmt: skip


async def run(count: int, cycles: int, root: Path) -> dict[str, Any]:
    sites = [f"site-{i:03d}" for i in range(count)]
    clock = Clock()
    database = root / f"hub-{count}.db"
    store = open_store(database, clock=clock)
    await store.open()
    records = PlannerRecords(await open_database(database))
    rng = np.random.default_rng(1)
    began = time.perf_counter()
    week = START - timedelta(days=7)
    for seq, site in enumerate(sites, start=1):
        await store.accept(samples(site, seq, rng, week, START + timedelta(minutes=2)))
    await store.flush(full=True)
    progress(f"{count} sites: a week of history stored in {time.perf_counter() - began:.1f} s")
    link = Link(sites)
    async with aiohttp.ClientSession() as session:
        service = PlannerService(
            parse_planner_config(section(sites)), records=records, store=StoreReader(store),
            link=link, session=session, leadership=SoleLeadership("bench"), audit=lambda r: None,
            clock=clock,
        )  # fmt: skip
        await service.prepare()
        await service.refresh_prices(service.now())
        for site in sites:
            await service.refresh_forecast(site, service.now())
        first, replan, solve, dispatch, audit, cycle = [], [], [], [], [], []
        for number in range(cycles):
            clock.now = (START + number * STEP + timedelta(seconds=160)).timestamp()
            now = service.now()
            if number:  # what the sites sent meanwhile
                for seq, site in enumerate(sites, start=1):
                    batch = samples(site, number * count + seq + count, rng,
                                    now - STEP, now)  # fmt: skip
                    await store.accept(batch)
                await store.flush(full=True)
            began = time.perf_counter()
            for site in sites:
                mark = time.perf_counter()
                result = await service.replan(site, "bench", now)
                took = (time.perf_counter() - mark) * 1000
                assert result.error is None, result.error
                (first if number == 0 else replan).append(took)
                solve.append(result.solve_ms or 0.0)
                mark = time.perf_counter()
                await service.dispatch(site, now)
                dispatch.append((time.perf_counter() - mark) * 1000)
                mark = time.perf_counter()
                done = await service.audit_due(site, now)
                if done:
                    audit.append((time.perf_counter() - mark) * 1000)
            cycle.append(time.perf_counter() - began)
        assert audit, "no step was audited"
    await records.close()
    await store.close()

    def p95(values: list[float]) -> float:
        return round(float(np.percentile(values, 95)), 2)

    return {
        "sites": count,
        "cycles": cycles,
        "first_replan_with_baseline_median_ms": round(median(first), 2),
        "replan_median_ms": round(median(replan), 2),
        "replan_p95_ms": p95(replan),
        "solve_median_ms": round(median(solve), 2),
        "dispatch_median_ms": round(median(dispatch), 3),
        "audit_median_ms": round(median(audit), 2),
        "cycle_median_s": round(statistics.median(cycle[1:] or cycle), 3),
        "setpoints": link.setpoints,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--cycles", type=int, default=8)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as root:
        for count in args.sites:
            found = asyncio.run(run(count, args.cycles, Path(root)))
            progress(
                f"{count} sites: re-plan {found['replan_median_ms']} ms median "
                f"(p95 {found['replan_p95_ms']}), solve {found['solve_median_ms']} ms, "
                f"dispatch {found['dispatch_median_ms']} ms, audit "
                f"{found['audit_median_ms']} ms, a cycle of all sites {found['cycle_median_s']} s"
            )
            results.append(found)
    emit({"bench": "hub_planner", "shapes": results})


if __name__ == "__main__":
    main()
