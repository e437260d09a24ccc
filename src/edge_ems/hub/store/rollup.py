"""5-minute and hourly rollups as merges of what each flush adds, and retention horizons.

An aggregate (sum, count, min, max, last by time) merges exactly, so a coarser bucket is
the merge of the minute aggregates inside it, in any order and in any split. Each flush
folds the minute aggregates it writes (new samples only: each sample is in exactly one
flush) into 5-minute buckets and those into hours. Rollups are never recomputed from
stored minutes, so late and replayed samples and partial minutes written early merge into
the coarser rows exactly as into the minute row.

A coarser bucket is written once it closes, not at every flush: on an SD card, upserting
500 five-minute and 500 hourly rows every minute would more than double the pages each
flush dirties. Until then :class:`OpenRollups` holds it in memory, and a per-resolution
mark (written in the flush's transaction) says that every bucket before it is in its table.
Late samples for a bucket before the mark merge straight into its row. After a restart the
open buckets are rebuilt from the minutes stored since the marks, so a crash loses nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .aggregate import MinuteAggregate, Minutes, combined
from .model import MINUTE_MS, Point, Resolution, SeriesFilter, SeriesKey

HOUR = Resolution.HOUR.minutes
DAY = 24 * HOUR
ROLLUPS = (Resolution.FIVE_MINUTES, Resolution.HOUR)
MARKS = {Resolution.FIVE_MINUTES: "rollup_5m_through", Resolution.HOUR: "rollup_1h_through"}
"""Store marks: the start minute before which every bucket of the resolution is written."""


def _copy(aggregate: MinuteAggregate) -> MinuteAggregate:
    return MinuteAggregate(
        aggregate.sum,
        aggregate.count,
        aggregate.min,
        aggregate.max,
        aggregate.last,
        aggregate.last_ms,
    )


def roll_up(buckets: Mapping[int, Mapping[SeriesKey, MinuteAggregate]], size: int) -> Minutes:
    """Merge ``buckets`` (keyed by start minute) into new buckets of ``size`` minutes."""
    merged: Minutes = {}
    for start, series in buckets.items():
        target = merged.get(start - start % size)
        if target is None:
            merged[start - start % size] = {key: _copy(a) for key, a in series.items()}
            continue
        get = target.get
        for key, a in series.items():
            held = get(key)
            if held is None:
                target[key] = _copy(a)
                continue
            # MinuteAggregate.merge, inlined: this loop runs for every row a flush writes.
            held.sum += a.sum
            held.count += a.count
            held.min = min(held.min, a.min)
            held.max = max(held.max, a.max)
            if a.last_ms >= held.last_ms:
                held.last, held.last_ms = a.last, a.last_ms
    return merged


@dataclass(frozen=True, slots=True)
class RollupWrite:
    """What a flush writes of the rollups, and the state once it has."""

    buckets: dict[Resolution, Minutes]
    """Per resolution, the buckets to merge into its table."""
    marks: dict[str, int]
    open: dict[Resolution, Minutes]
    through: dict[Resolution, int | None]
    added: Minutes
    """What the flush adds to each hour (its newest values are the flush's newest)."""


class OpenRollups:
    """The rollup buckets not yet written, and up to where each table is complete."""

    def __init__(self) -> None:
        self._open: dict[Resolution, Minutes] = {resolution: {} for resolution in ROLLUPS}
        self._through: dict[Resolution, int | None] = dict.fromkeys(ROLLUPS)

    def restore(self, marks: Mapping[Resolution, int | None], minutes: Minutes) -> None:
        """Rebuild the open buckets from the minutes stored since the marks (on open)."""
        self._through = dict(marks)
        for resolution in ROLLUPS:
            mark = marks[resolution]
            since = {m: series for m, series in minutes.items() if mark is not None and m >= mark}
            self._open[resolution] = roll_up(since, resolution.minutes)

    def plan(self, minutes: Minutes, closed: int) -> RollupWrite:
        """The rollups of a flush writing ``minutes`` when every minute before ``closed``
        is final. Nothing here changes until :meth:`commit`."""
        write: dict[Resolution, Minutes] = {}
        opened: dict[Resolution, Minutes] = {}
        through: dict[Resolution, int | None] = {}
        deltas = minutes
        for resolution in ROLLUPS:
            size = resolution.minutes
            deltas = roll_up(deltas, size)
            mark = self._through[resolution]
            buckets: Minutes = {}
            held = dict(self._open[resolution])  # copied where touched: a failed write keeps it
            for start, series in deltas.items():
                if mark is not None and start < mark:
                    buckets[start] = series  # late: merges into the written row
                    continue
                current = held.get(start)
                if current is None:
                    held[start] = series
                    continue
                # Open aggregates are never changed in place, only replaced: until the
                # write commits, the committed state must stay as it was.
                merged = dict(current)
                for key, aggregate in series.items():
                    before = merged.get(key)
                    merged[key] = aggregate if before is None else combined(before, aggregate)
                held[start] = merged
            boundary = closed - closed % size
            new_mark = boundary if mark is None else max(mark, boundary)
            for start in [start for start in held if start < new_mark]:
                buckets[start] = held.pop(start)
            write[resolution], opened[resolution], through[resolution] = buckets, held, new_mark
        marks = {MARKS[r]: mark for r, mark in through.items() if mark is not None}
        return RollupWrite(write, marks, opened, through, deltas)

    def commit(self, written: RollupWrite) -> None:
        """The flush that wrote ``written`` committed."""
        self._open = written.open
        self._through = written.through

    def points(
        self, resolution: Resolution, selection: SeriesFilter, start: int, end: int
    ) -> dict[SeriesKey, list[Point]]:
        """The open buckets of ``resolution`` in minutes ``[start, end)``, by series."""
        found: dict[SeriesKey, list[Point]] = {}
        for bucket, series in sorted(self._open[resolution].items()):
            if not start <= bucket < end:
                continue
            for key, a in series.items():
                if selection.matches(key):
                    point = Point(
                        bucket * MINUTE_MS, a.sum / a.count, a.min, a.max, a.last, a.count
                    )
                    found.setdefault(key, []).append(point)
        return found


def retention_horizon(now_minute: int, days: float) -> int:
    """The first minute kept by a retention of ``days``, aligned to the hour.

    Whole hours keep every rollup bucket either complete or gone.
    """
    start = now_minute - math.ceil(days * DAY)
    return start - start % HOUR


def merge_points(
    stored: Iterable[tuple[SeriesKey, list[Point]]], extra: Mapping[SeriesKey, list[Point]]
) -> dict[SeriesKey, list[Point]]:
    """Stored points of each series with ``extra`` (later buckets) after them."""
    merged = {key: list(points) for key, points in stored}
    for key, points in extra.items():
        merged.setdefault(key, []).extend(points)
    return merged
