"""``/measurements``' limits and encoding: the points cap, checked before the store is
queried, and a JSON encoder that leaves the event loop free while it works."""

from __future__ import annotations

from collections.abc import Sequence

from ...metrics import METRICS
from ..store.model import MINUTE_MS, Resolution, SeriesRange
from .errors import ApiError, dumps
from .params import MeasurementQuery

COLUMNS = ("start_ms", "avg", "min", "max", "last", "count")
SLICE = 2_000
"""Points per ``json.dumps`` call. The C encoder holds the GIL until it returns, so a large
answer is encoded in slices (a few ms each) and the event loop runs between them."""


def bucket_count(start_ms: int, end_ms: int, resolution: Resolution) -> int:
    """Buckets of ``resolution`` overlapping ``[start_ms, end_ms)``, aligned as the store
    aligns them (to whole buckets since the epoch)."""
    size = resolution.minutes * MINUTE_MS
    return -(-end_ms // size) - start_ms // size


def check_points(query: MeasurementQuery, series: int, max_points: int) -> None:
    """Refuse a request for more than ``max_points`` points (series times buckets), saying how
    many it asked for and what would fit."""
    buckets = bucket_count(query.start_ms, query.end_ms, query.resolution)
    asked = series * buckets
    if asked <= max_points:
        return
    coarser = [
        (resolution, series * bucket_count(query.start_ms, query.end_ms, resolution))
        for resolution in Resolution
        if resolution.minutes > query.resolution.minutes
    ]
    fits = next((f"{r.value} ({n:,} points)" for r, n in coarser if n <= max_points), None)
    hint = f"resolution {fits}" if fits else "a coarser resolution"
    raise ApiError(
        400,
        f"{series:,} series of {buckets:,} buckets of {query.resolution.value} is "
        f"{asked:,} points; one request returns at most {max_points:,}: "
        f"ask for {hint}, fewer series or a shorter range",
        code="too_many_points",
        extra={"points": asked, "max_points": max_points},
    )


def count_points(found: Sequence[SeriesRange]) -> int:
    """Points in an answer."""
    return sum(len(found_range.points) for found_range in found)


def encode(query: MeasurementQuery, found: list[SeriesRange]) -> list[bytes]:
    """The answer as JSON in pieces (one per series, never joined: a day of 500 series is
    67 MB, and copying it whole stalls whatever thread holds the GIL): the query, the
    columns, and each series' points as rows.

    Empties ``found`` as it goes: each series is freed once written, where this runs (a
    day of 500 series is millions of objects, 0.2 s to free, which must not be on the
    event loop), and one at a time, so the loop runs in between.
    """
    head = dumps(
        {
            "resolution": query.resolution.value,
            "from_ms": query.start_ms,
            "to_ms": query.end_ms,
            "columns": COLUMNS,
        }
    )
    chunks = [f'{head[:-1]},"series":['.encode()]
    found.reverse()
    while found:
        comma = "," if len(chunks) > 1 else ""
        chunks.append((comma + _series(found.pop())).encode())
    chunks.append(b"]}")
    return chunks


def _series(found_range: SeriesRange) -> str:
    key = found_range.key
    known = METRICS.get(key.metric)
    head = dumps(
        {
            "site_id": key.site_id,
            "asset_id": key.asset_id,
            "metric": key.metric,
            "unit": None if known is None else known.unit,
        }
    )
    points = found_range.points
    # Points are named tuples, which JSON writes as arrays: one row per bucket.
    rows = ",".join(dumps(points[i : i + SLICE])[1:-1] for i in range(0, len(points), SLICE))
    return f'{head[:-1]},"points":[{rows}]}}'
