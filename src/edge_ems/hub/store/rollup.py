"""5-minute and hourly rollups as merges of what each flush adds, and retention horizons.

An aggregate (sum, count, min, max, last by time) merges exactly, so a coarser bucket is
the merge of the minute aggregates inside it, in any order and in any split. Rollups never
change an aggregate in place (a merge makes a new one), so buckets share them freely. Each flush
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

from .aggregate import MinuteAggregate, Minutes, bucket_points, combined
from .model import Point, Resolution, SeriesFilter, SeriesKey

HOUR = Resolution.HOUR.minutes
DAY = 24 * HOUR
ROLLUPS = (Resolution.FIVE_MINUTES, Resolution.HOUR)
MARKS = {Resolution.FIVE_MINUTES: "rollup_5m_through", Resolution.HOUR: "rollup_1h_through"}
"""Store marks: the start minute before which every bucket of the resolution is written."""


def roll_up(buckets: Mapping[int, Mapping[SeriesKey, MinuteAggregate]], size: int) -> Minutes:
    """Merge ``buckets`` (keyed by start minute) into new buckets of ``size`` minutes.

    The new buckets share aggregates with ``buckets`` where one alone makes a bucket's
    series, and a merge makes a new one: aggregates here are never changed in place, so
    sharing them is safe, and a flush with a row per series (a fleet's, flushed often)
    copies nothing.
    """
    merged: Minutes = {}
    for start, series in buckets.items():
        target = merged.get(start - start % size)
        if target is None:
            merged[start - start % size] = dict(series)
            continue
        get = target.get
        for key, a in series.items():
            held = get(key)
            target[key] = a if held is None else combined(held, a)
    return merged


@dataclass(frozen=True, slots=True)
class RollupWrite:
    """What a flush writes of the rollups, and what changes once it has."""

    buckets: dict[Resolution, Minutes]
    """Per resolution, the buckets to merge into its table."""
    marks: dict[str, int]
    updates: dict[Resolution, Minutes]
    """Per resolution, the open buckets' series this flush changes, with their new aggregates."""
    closing: dict[Resolution, frozenset[int]]
    """Per resolution, the open buckets this flush writes (they stop being open)."""
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
        is final. Nothing here changes until :meth:`commit`: the changes are kept apart
        (an open bucket holds every series of a fleet; copying it each flush would cost more
        than the flush)."""
        write: dict[Resolution, Minutes] = {}
        updates: dict[Resolution, Minutes] = {}
        closing: dict[Resolution, frozenset[int]] = {}
        through: dict[Resolution, int | None] = {}
        deltas = minutes
        for resolution in ROLLUPS:
            size = resolution.minutes
            deltas = roll_up(deltas, size)
            mark = self._through[resolution]
            opened = self._open[resolution]
            buckets: Minutes = {}
            changed: Minutes = {}
            for start, series in deltas.items():
                if mark is not None and start < mark:
                    buckets[start] = series  # late: merges into the written row
                    continue
                current = opened.get(start)
                if current is None:
                    changed[start] = series
                    continue
                held = current.get
                changed[start] = {
                    key: aggregate if (before := held(key)) is None else combined(before, aggregate)
                    for key, aggregate in series.items()
                }
            boundary = closed - closed % size
            new_mark = boundary if mark is None else max(mark, boundary)
            ending = frozenset(start for start in (*opened, *changed) if start < new_mark)
            for start in ending:
                buckets[start] = {**opened.get(start, {}), **changed.get(start, {})}
            write[resolution], updates[resolution] = buckets, changed
            closing[resolution], through[resolution] = ending, new_mark
        marks = {MARKS[r]: mark for r, mark in through.items() if mark is not None}
        return RollupWrite(write, marks, updates, closing, through, deltas)

    def commit(self, written: RollupWrite) -> None:
        """The flush that wrote ``written`` committed."""
        for resolution in ROLLUPS:
            opened = self._open[resolution]
            ending = written.closing[resolution]
            for start, changes in written.updates[resolution].items():
                if start in ending:
                    continue
                bucket = opened.get(start)
                if bucket is None:
                    opened[start] = changes
                else:
                    bucket.update(changes)
            for start in ending:
                opened.pop(start, None)
        self._through = written.through

    def points(
        self, resolution: Resolution, selection: SeriesFilter, start: int, end: int
    ) -> dict[SeriesKey, list[Point]]:
        """The open buckets of ``resolution`` in minutes ``[start, end)``, by series."""
        return bucket_points(self._open[resolution], selection, start, end)


def retention_horizon(now_minute: int, days: float) -> int:
    """The first minute kept by a retention of ``days``, aligned to the hour.

    Whole hours keep every rollup bucket either complete or gone.
    """
    start = now_minute - math.ceil(days * DAY)
    return start - start % HOUR


def merge_points(
    stored: Iterable[tuple[SeriesKey, list[Point]]], extra: Mapping[SeriesKey, list[Point]]
) -> dict[SeriesKey, list[Point]]:
    """Stored points of each series with those of ``extra`` (open buckets) at the buckets
    the stored lack, in time order. A bucket in both (late samples for one written before)
    shows as stored: the next flush merges the rest into it."""
    merged = {key: list(points) for key, points in stored}
    for key, points in extra.items():
        held = merged.setdefault(key, [])
        known = {point.start_ms for point in held}
        added = [point for point in points if point.start_ms not in known]
        if added:
            later = not held or added[0].start_ms > held[-1].start_ms
            held.extend(added)
            if not later:
                held.sort(key=lambda point: point.start_ms)
    return merged
