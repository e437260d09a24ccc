"""The open minutes: samples folded into per-minute aggregates in memory until a flush.

An aggregate keeps what merges exactly: sum, count, min, max, and the last value with its
timestamp. So a partial minute can be written now and the rest of it merged later (late
and replayed data upsert into the stored row), and the order samples arrive in does not
matter. Text readings are not aggregated: only the newest per series is kept.

Folding works on runs, not samples: a series' timestamps are sorted, so ``bisect`` finds
where each minute ends and ``sum``/``min``/``max`` take the whole run in C.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ...gateway.model import TelemetryBatch
from .model import MINUTE_MS, Point, SeriesFilter, SeriesKey


@dataclass(slots=True)
class MinuteAggregate:
    """Everything a minute's samples of one series reduce to."""

    sum: float
    count: int
    min: float
    max: float
    last: float
    last_ms: int
    """When ``last`` was sampled, ms since the epoch."""

    def merge(self, other: MinuteAggregate) -> None:
        """Fold ``other`` (of the same series and minute) into this one."""
        self.sum += other.sum
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.last_ms >= self.last_ms:
            self.last, self.last_ms = other.last, other.last_ms


def combined(held: MinuteAggregate, other: MinuteAggregate) -> MinuteAggregate:
    """A new aggregate of both (neither is changed)."""
    newer = other.last_ms >= held.last_ms
    return MinuteAggregate(
        held.sum + other.sum,
        held.count + other.count,
        min(held.min, other.min),
        max(held.max, other.max),
        other.last if newer else held.last,
        other.last_ms if newer else held.last_ms,
    )


@dataclass(frozen=True, slots=True)
class TextValue:
    """The newest text of a series."""

    timestamp_ms: int
    value: str


type Minutes = dict[int, dict[SeriesKey, MinuteAggregate]]
"""Aggregates by minute (whole minutes since the epoch), then by series."""


@dataclass(slots=True)
class Taken:
    """What a flush takes out of the aggregator: closed minutes and their texts."""

    minutes: Minutes = field(default_factory=dict)
    texts: dict[SeriesKey, TextValue] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Minute rows to write."""
        return sum(len(series) for series in self.minutes.values())


@dataclass(frozen=True, slots=True)
class Folded:
    """What one batch added."""

    samples: int
    dropped: int
    """Samples refused: not finite, older than ``horizon`` or stamped from ``until_ms`` on."""
    last_minute: int | None
    """The newest minute the batch touched (``None`` if it brought nothing)."""
    future: int = 0
    """Of the dropped, those stamped from ``until_ms`` on (a clock far ahead, a corrupt
    stamp): kept, one would be its series' latest value for good."""


class MinuteAggregator:
    """Open aggregates by minute and series, and the newest text per series."""

    def __init__(self) -> None:
        self._minutes: Minutes = {}
        self._texts: dict[SeriesKey, TextValue] = {}
        self._rows = 0
        self._keys: dict[SeriesKey, SeriesKey] = {}
        """One key object per series: every batch decodes new strings, and a dict finds a key
        it holds by identity before comparing strings (folding, rollups, the backend's ids).
        Its strings are interned: a fleet's series share a few metric names, and an asset's
        series its id (13 MB of a 10,000-agent hub's 100,000 series)."""

    @property
    def rows(self) -> int:
        """Open aggregates held."""
        return self._rows

    def add(self, batch: TelemetryBatch, *, horizon: int, until_ms: int | None = None) -> Folded:
        """Fold ``batch`` in; samples of minutes before ``horizon``, and those stamped at or
        after ``until_ms``, are dropped."""
        samples = dropped = future = 0
        newest = -1
        limit = _NO_LIMIT if until_ms is None else until_ms
        for series in batch.series:
            key = SeriesKey(batch.site_id, series.asset_id, series.metric)
            known = self._keys.get(key)
            if known is None:
                known = self._keys[key] = SeriesKey(*map(sys.intern, key))
            folded, refused, ahead, last = self._fold(
                known, series.timestamps_ms, series.values, horizon, limit
            )
            samples += folded
            dropped += refused
            future += ahead
            newest = max(newest, last)
        for text in batch.texts:
            minute = text.timestamp_ms // MINUTE_MS
            if minute < horizon or text.timestamp_ms >= limit:
                dropped += 1
                future += text.timestamp_ms >= limit
                continue
            key = SeriesKey(batch.site_id, text.asset_id, text.metric)
            held = self._texts.get(key)
            if held is None or text.timestamp_ms >= held.timestamp_ms:
                self._texts[key] = TextValue(text.timestamp_ms, text.value)
            samples += 1
            newest = max(newest, minute)
        return Folded(samples, dropped, newest if newest >= 0 else None, future)

    def _fold(
        self,
        key: SeriesKey,
        stamps: Sequence[int],
        readings: Sequence[float],
        horizon: int,
        limit: int,
    ) -> tuple[int, int, int, int]:
        timestamps, values = list(stamps), list(readings)
        if timestamps != sorted(timestamps):  # the contract says oldest first; do not rely on it
            pairs = sorted(zip(timestamps, values, strict=True))
            timestamps, values = [t for t, _ in pairs], [v for _, v in pairs]
        if not timestamps:
            return 0, 0, 0, -1
        first, last = timestamps[0], timestamps[-1]
        minute = first // MINUTE_MS
        if minute == last // MINUTE_MS and minute >= horizon and last < limit:
            # One minute, nothing too old or too new: the usual batch of a live agent.
            total = sum(values)
            if math.isfinite(total):
                aggregate = MinuteAggregate(
                    total, len(values), min(values), max(values), values[-1], last
                )
                self._merge(key, minute, aggregate)
                return len(values), 0, 0, minute
        start = bisect_left(timestamps, horizon * MINUTE_MS)
        folded = 0
        newest = -1
        end = len(timestamps)
        if last >= limit:
            end = bisect_left(timestamps, limit, start)
        ahead = len(timestamps) - end
        while start < end:
            minute = timestamps[start] // MINUTE_MS
            stop = bisect_left(timestamps, (minute + 1) * MINUTE_MS, start, end)
            run = values[start:stop]
            total = sum(run)
            if not math.isfinite(total):  # a NaN or infinity poisons every aggregate it joins
                run = [value for value in run if math.isfinite(value)]
                total = sum(run)
            if run:
                last_ms = timestamps[stop - 1]
                if len(run) < stop - start:
                    last_ms = _last_finite(timestamps, values, start, stop)
                aggregate = MinuteAggregate(total, len(run), min(run), max(run), run[-1], last_ms)
                self._merge(key, minute, aggregate)
                folded += len(run)
                newest = minute
            start = stop
        return folded, len(timestamps) - folded, ahead, newest

    def _merge(self, key: SeriesKey, minute: int, aggregate: MinuteAggregate) -> None:
        series = self._minutes.get(minute)
        if series is None:
            series = self._minutes[minute] = {}
        held = series.get(key)
        if held is None:
            series[key] = aggregate
            self._rows += 1
        else:
            held.merge(aggregate)

    def take(self, boundary: int | None) -> Taken:
        """Remove and return the minutes before ``boundary`` (all of them if ``None``)."""
        taken = Taken()
        for minute in [m for m in self._minutes if boundary is None or m < boundary]:
            series = self._minutes.pop(minute)
            taken.minutes[minute] = series
            self._rows -= len(series)
        for key, text in list(self._texts.items()):
            if boundary is None or text.timestamp_ms // MINUTE_MS < boundary:
                taken.texts[key] = self._texts.pop(key)
        return taken

    def put_back(self, taken: Taken) -> None:
        """Return what a failed flush took; it merges with whatever arrived meanwhile."""
        for minute, series in taken.minutes.items():
            for key, aggregate in series.items():
                self._merge(key, minute, aggregate)
        for key, text in taken.texts.items():
            held = self._texts.get(key)
            if held is None or text.timestamp_ms >= held.timestamp_ms:
                self._texts[key] = text

    def series(self, selection: SeriesFilter) -> set[SeriesKey]:
        """The matching series with an open minute."""
        return {
            key for series in self._minutes.values() for key in series if selection.matches(key)
        }

    def points(self, selection: SeriesFilter, start: int, end: int) -> dict[SeriesKey, list[Point]]:
        """The open minutes ``[start, end)`` of the matching series, as they stand."""
        return bucket_points(self._minutes, selection, start, end)

    def newest(self) -> Iterator[tuple[SeriesKey, int, float | str]]:
        """The newest open value of every series: ``(key, timestamp_ms, value)``."""
        for key, aggregate in newest_by_series(self._minutes).items():
            yield key, aggregate.last_ms, aggregate.last
        for key, text in self._texts.items():
            yield key, text.timestamp_ms, text.value


_NO_LIMIT = 2**63
"""Later than any int64 timestamp the protocol carries."""


def _last_finite(timestamps: Sequence[int], values: Sequence[float], start: int, stop: int) -> int:
    """The timestamp of the last finite value in ``values[start:stop]``."""
    for index in range(stop - 1, start - 1, -1):
        if math.isfinite(values[index]):
            return timestamps[index]
    raise ValueError("no finite value in the run")


def bucket_points(
    buckets: Minutes, selection: SeriesFilter, start: int, end: int
) -> dict[SeriesKey, list[Point]]:
    """The buckets (by their first minute) in ``[start, end)`` of the matching series, as
    points, oldest first."""
    found: dict[SeriesKey, list[Point]] = {}
    for bucket, series in sorted(buckets.items()):
        if not start <= bucket < end:
            continue
        for key, a in series.items():
            if selection.matches(key):
                point = Point(bucket * MINUTE_MS, a.sum / a.count, a.min, a.max, a.last, a.count)
                found.setdefault(key, []).append(point)
    return found


def newest_by_series(
    minutes: Mapping[int, Mapping[SeriesKey, MinuteAggregate]],
) -> dict[SeriesKey, MinuteAggregate]:
    """The aggregate with the newest ``last`` of each series in ``minutes``."""
    newest: dict[SeriesKey, MinuteAggregate] = {}
    for series in minutes.values():
        for key, aggregate in series.items():
            held = newest.get(key)
            if held is None or aggregate.last_ms > held.last_ms:
                newest[key] = aggregate
    return newest
