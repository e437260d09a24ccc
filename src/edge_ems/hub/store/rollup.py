"""Which 5-minute and hourly buckets a flush recomputes, and the retention horizons.

Rollups are incremental and idempotent. Each kind has a watermark (a minute: every bucket
before it is rolled up). A flush rolls up the buckets its closed minutes completed, moving
the watermark, and recomputes the older buckets its late minutes touched; a 5-minute bucket
is recomputed from its minutes, an hour from its 5-minute buckets, replacing what was there.
The plan is carried out in the flush's own transaction, so rollups, minutes and watermarks
never disagree, whatever crash comes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .model import Resolution

type Span = tuple[int, int]
"""Minutes ``[start, end)``, aligned to the rollup's bucket."""

FIVE = Resolution.FIVE_MINUTES.minutes
HOUR = Resolution.HOUR.minutes
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class Watermarks:
    """Per rollup, the minute before which every bucket is rolled up (``None``: none yet)."""

    five_minutes: int | None = None
    hour: int | None = None


@dataclass(frozen=True, slots=True)
class RollupPlan:
    """The spans to recompute, in order, and the watermarks once they are."""

    five_minutes: tuple[Span, ...]
    hours: tuple[Span, ...]
    watermarks: Watermarks


def plan_rollups(minutes: Iterable[int], closed: int, current: Watermarks) -> RollupPlan:
    """Plan the rollups of a flush writing ``minutes``, every minute before ``closed`` final."""
    written = sorted(set(minutes))
    five_from = current.five_minutes
    if five_from is None:
        five_from = _floor(min(written[0], closed) if written else closed, FIVE)
    five_to = max(five_from, _floor(closed, FIVE))
    late_fives = {_floor(minute, FIVE) for minute in written if minute < five_from}
    five_spans = _coalesce([(five_from, five_to), *((b, b + FIVE) for b in late_fives)])

    hour_from = current.hour
    if hour_from is None:
        hour_from = _floor(min([five_from, *late_fives]), HOUR)
    hour_to = max(hour_from, _floor(five_to, HOUR))
    late_hours = {
        hour
        for start, end in five_spans
        for hour in range(_floor(start, HOUR), min(end, hour_from), HOUR)
    }
    hour_spans = _coalesce([(hour_from, hour_to), *((h, h + HOUR) for h in late_hours)])
    return RollupPlan(five_spans, hour_spans, Watermarks(five_to, hour_to))


def retention_horizon(now_minute: int, days: float) -> int:
    """The first minute kept by a retention of ``days``, aligned to the hour.

    Whole hours keep every rollup bucket either complete or gone.
    """
    return _floor(now_minute - round(days * DAY), HOUR)


def _floor(minute: int, size: int) -> int:
    return minute - minute % size


def _coalesce(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sort ``spans``, drop empty ones, merge those that touch or overlap."""
    merged: list[Span] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
