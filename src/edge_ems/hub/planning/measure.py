"""What the minute store says a site did: the state a re-plan starts from (each battery's
SOC, whether a car is connected and how much it took, temperatures, how long a load ran),
and the mean power of each part of the site over a step, for the audit.

An asset's power is read from the terms the configuration gives, or else from the first of
its usual series the store has (``battery_power_w``, ``ac_power_w``, the three phases'
``ac_power_l*_w``), each with the site's sign: positive delivers to the site.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from ...planner.baseline import MinuteReader, Term
from ..store.model import Latest, SeriesFilter, SeriesKey
from .config import SiteConfig
from .site_problem import SOC_MAX_AGE_MS, SiteState, window

BATTERY_SERIES: tuple[tuple[str, ...], ...] = (
    ("battery_power_w",),
    ("ac_power_w",),
    ("ac_power_l1_w", "ac_power_l2_w", "ac_power_l3_w"),
)
"""Where a battery's power (+ discharge) may be, in order of preference."""
CONSUMER_SERIES: tuple[tuple[str, ...], ...] = (
    ("ac_power_w",),
    ("ac_power_l1_w", "ac_power_l2_w", "ac_power_l3_w"),
)
"""Where an EV charger's or heat pump's power (- consuming) may be."""
STATE_METRICS = ("soc_pct", "ev_connected", "ev_session_energy_wh")
TRUE_TEXTS = frozenset({"true", "on", "yes", "1", "connected", "charging"})


class StoreReader(MinuteReader, Protocol):
    """What the planner reads of the minute store."""

    async def latest(self, selection: SeriesFilter | None = None) -> list[Latest]:
        """The newest value of each matching series."""

    async def series(self, selection: SeriesFilter | None = None) -> list[SeriesKey]:
        """The stored series matching ``selection``."""


def _flag(value: float | str) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUE_TEXTS
    return bool(value)


async def read_state(
    store: StoreReader,
    site: SiteConfig,
    *,
    now: datetime,
    zone: ZoneInfo,
    battery_ids: Iterable[str],
) -> SiteState:
    """The site's latest readings as the state a plan starts from."""
    now_ms = round(now.timestamp() * 1000)
    metrics = set(STATE_METRICS)
    for heat_pump in site.heat_pumps:
        metrics.update((heat_pump.indoor_metric, heat_pump.outdoor_metric))
    found = await store.latest(SeriesFilter(sites=[site.site_id], metrics=metrics))
    latest = {(item.key.asset_id, item.key.metric): item for item in found}
    soc = {}
    for battery_id in battery_ids:
        reading = latest.get((battery_id, "soc_pct"))
        if (
            reading is not None
            and isinstance(reading.value, float | int)
            and now_ms - reading.timestamp_ms <= SOC_MAX_AGE_MS
        ):
            soc[battery_id] = float(reading.value) / 100.0
    connected, session = {}, {}
    for ev in site.evs:
        flag = latest.get((ev.asset_id, "ev_connected"))
        if flag is not None:
            connected[ev.asset_id] = _flag(flag.value)
        energy = latest.get((ev.asset_id, "ev_session_energy_wh"))
        if energy is not None and isinstance(energy.value, float | int):
            session[ev.asset_id] = float(energy.value)
    values = {
        key: float(item.value)
        for key, item in latest.items()
        if isinstance(item.value, float | int) and math.isfinite(item.value)
    }
    ran = {}
    for load in site.deferrables:
        if not load.power:
            continue
        opens, _ = window(load, now, zone)
        start_ms = round(opens.timestamp() * 1000)
        if start_ms >= now_ms:
            continue
        buckets = await _sum_buckets(store, site.site_id, load.power, start_ms, now_ms)
        running = [start for start, power in buckets.items() if -power >= load.power_w / 2]
        ran[load.asset_id] = 5.0 * len(running)
    return SiteState(soc, connected, session, values, ran)


async def _sum_buckets(
    reader: MinuteReader, site_id: str, terms: Sequence[Term], start_ms: int, end_ms: int
) -> dict[int, float]:
    """The weighted sum of ``terms`` per stored bucket (buckets where every term has data)."""
    total: dict[int, float] = {}
    seen: dict[int, int] = {}
    for term in terms:
        for start, value in await reader.mean_power(
            site_id, term.asset_id, term.metric, start_ms, end_ms
        ):
            if math.isfinite(value):
                total[start] = total.get(start, 0.0) + term.weight * value
                seen[start] = seen.get(start, 0) + 1
    return {start: value for start, value in total.items() if seen[start] == len(terms)}


async def mean_power(
    reader: MinuteReader, site_id: str, terms: Sequence[Term], start_ms: int, end_ms: int
) -> float | None:
    """The mean over ``[start_ms, end_ms)`` of the weighted sum of ``terms`` (``None``
    without terms or without data)."""
    if not terms:
        return None
    buckets = await _sum_buckets(reader, site_id, terms, start_ms, end_ms)
    if not buckets:
        return None
    return sum(buckets.values()) / len(buckets)


async def power_terms(
    store: StoreReader,
    site_id: str,
    asset_id: str,
    configured: Sequence[Term],
    candidates: Sequence[Sequence[str]],
) -> tuple[Term, ...]:
    """The terms of an asset's power: the configured ones, else the first candidate set
    of series the store holds for it (empty if none)."""
    if configured:
        return tuple(configured)
    stored = {
        key.metric for key in await store.series(SeriesFilter(sites=[site_id], assets=[asset_id]))
    }
    for metrics in candidates:
        if all(metric in stored for metric in metrics):
            return tuple(Term(asset_id, metric) for metric in metrics)
    return ()


def negated(terms: Iterable[Term]) -> tuple[Term, ...]:
    """The same series with the opposite sign (site sign to consumption, and back)."""
    return tuple(Term(t.asset_id, t.metric, -t.weight) for t in terms)


def consumption_terms(resolved: Mapping[str, Sequence[Term]]) -> tuple[Term, ...]:
    """Every controllable consumer's power, as consumption (positive)."""
    return tuple(term for terms in resolved.values() for term in negated(terms))
