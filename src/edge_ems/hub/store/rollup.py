"""5-minute and hourly rollups as merges of what each flush adds, and retention horizons.

An aggregate (sum, count, min, max, last by time) merges exactly, so a coarser bucket is
the merge of the minute aggregates inside it, in any order and in any split. A flush
therefore folds the minute aggregates it writes (new samples only: each sample is in
exactly one flush) into 5-minute buckets, those into hours, and upserts all three with the
same merge in one transaction. Rollups are never recomputed from stored minutes: late and
replayed samples, and partial minutes written early, merge into the coarser rows exactly as
into the minute row, and the three tables cannot disagree whatever crash comes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .aggregate import MinuteAggregate, Minutes
from .model import Resolution, SeriesKey

HOUR = Resolution.HOUR.minutes
DAY = 24 * HOUR


def roll_up(buckets: Mapping[int, Mapping[SeriesKey, MinuteAggregate]], size: int) -> Minutes:
    """Merge ``buckets`` (keyed by start minute) into buckets of ``size`` minutes."""
    merged: Minutes = {}
    for start, series in buckets.items():
        target = merged.setdefault(start - start % size, {})
        for key, aggregate in series.items():
            held = target.get(key)
            if held is None:
                # A copy: the flush still writes the original.
                target[key] = MinuteAggregate(
                    aggregate.sum,
                    aggregate.count,
                    aggregate.min,
                    aggregate.max,
                    aggregate.last,
                    aggregate.last_ms,
                )
            else:
                held.merge(aggregate)
    return merged


def retention_horizon(now_minute: int, days: float) -> int:
    """The first minute kept by a retention of ``days``, aligned to the hour.

    Whole hours keep every rollup bucket either complete or gone.
    """
    start = now_minute - math.ceil(days * DAY)
    return start - start % HOUR
