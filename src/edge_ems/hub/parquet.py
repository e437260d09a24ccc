"""Hourly Parquet: each closed hour of minute data, one file per site.

Files are hive-partitioned, ``<root>/site=<site>/date=<YYYY-MM-DD>/<HH>.parquet`` (UTC), so
DuckDB (``hive_partitioning``), pandas and Spark read the tree as it is and get ``site`` and
``date`` from the path. Columns: ``asset_id`` and ``metric`` (dictionary-encoded), ``minute``
(UTC timestamp, ms), ``avg``, ``min``, ``max``, ``last``, ``samples``; zstd-compressed
(``bench/parquet_size.py``: under a tenth of the same rows as CSV).

Each file is written to a temporary name beside its place, fsynced, renamed over it and its
directory fsynced: a reader or a crash sees the old file or the new one, never half of one.
Exporting an hour again writes the same rows to the same name, so re-export is idempotent.
:meth:`ParquetExporter.run` exports every closed hour after the store's ``parquet`` mark,
then moves the mark; after a crash the hour in progress is simply written again.
Samples that reach the store after their hour was exported (an agent offline for longer,
a resend after a crash) are recorded by the store as late; the next pass exports those
hours again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from .store import MinuteStore, SeriesFilter, SeriesRange, StoreError

_LOGGER = logging.getLogger(__name__)

HOUR_MS = 3_600_000
MARK = "parquet_next_hour"
"""The store mark: the start (ms) of the first hour not yet exported."""
LATE_MARK = "parquet_late_seq"
"""The store mark: the store's late seq up to which late hours are exported again."""

SCHEMA = pa.schema(
    [
        ("asset_id", pa.dictionary(pa.int32(), pa.string())),
        ("metric", pa.dictionary(pa.int32(), pa.string())),
        ("minute", pa.timestamp("ms", tz="UTC")),
        ("avg", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("last", pa.float64()),
        ("samples", pa.int64()),
    ]
)


class ExportError(StoreError):
    """An hour could not be exported (the disk, or the store, refused)."""


@dataclass(frozen=True, slots=True)
class ExportStatus:
    """The exporter for ``/health`` and ``/metrics``."""

    root: str
    next_hour_ms: int | None
    """The first hour not yet exported (``None``: nothing stored yet)."""
    last_export: float | None
    last_error: str | None
    files_written: int
    rows_written: int


def partition_path(root: Path, site_id: str, hour_start_ms: int) -> Path:
    """Where the file of ``site_id``'s hour starting at ``hour_start_ms`` goes."""
    when = datetime.fromtimestamp(hour_start_ms / 1000, UTC)
    site = quote(site_id, safe="")  # a site id never escapes its partition
    return root / f"site={site}" / f"date={when:%Y-%m-%d}" / f"{when:%H}.parquet"


class ParquetExporter:
    """Writes the store's closed hours as Parquet under ``root``."""

    def __init__(
        self,
        store: MinuteStore,
        root: Path,
        *,
        grace: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.root = Path(root)
        self._grace = grace
        """Seconds after an hour ends before it is exported: its last minute must be flushed."""
        self._clock = clock
        self._next_hour: int | None = None
        self._last_export: float | None = None
        self._last_error: str | None = None
        self._files = self._rows = 0

    async def export_hour(self, hour_start_ms: int) -> list[Path]:
        """Write (or rewrite) one file per site with data in the hour; return their paths."""
        if hour_start_ms % HOUR_MS:
            raise ExportError(f"{hour_start_ms} is not the start of an hour")
        end = hour_start_ms + HOUR_MS
        sites = sorted({key.site_id for key in await self._store.series()})
        written: list[Path] = []
        for site in sites:
            found = await self._store.query(
                SeriesFilter(sites={site}), hour_start_ms, end, written_only=True
            )
            if not any(series.points for series in found):
                continue
            path = partition_path(self.root, site, hour_start_ms)
            try:
                rows = await asyncio.to_thread(_export, found, path)
            except OSError as err:
                raise ExportError(f"cannot write {path}: {err}") from err
            written.append(path)
            self._files += 1
            self._rows += rows
        self._last_export = self._clock()
        return written

    async def export_pending(self) -> int:
        """Export every closed hour after the mark, and again every exported hour that late
        samples reached; return how many hours were exported."""
        closed = self._closed_before()
        if closed is None:
            return 0
        next_hour = await self._store.backend.get_mark(MARK)
        if next_hour is None:
            first = await self._store.backend.first_minute()
            if first is None:
                return 0
            next_hour = first * 60_000 // HOUR_MS * HOUR_MS
        hours = 0
        while next_hour + HOUR_MS <= closed:
            await self.export_hour(next_hour)
            next_hour += HOUR_MS
            await self._store.backend.set_mark(MARK, next_hour)
            self._next_hour = next_hour
            hours += 1
        self._next_hour = next_hour
        return hours + await self._reexport_late(next_hour)

    async def _reexport_late(self, exported_before: int) -> int:
        backend = self._store.backend
        after = await backend.get_mark(LATE_MARK) or 0
        windows, seq = await backend.late_windows(after)
        hours = sorted({minute * 60_000 // HOUR_MS * HOUR_MS for minute in windows})
        late = [hour for hour in hours if hour < exported_before]
        for hour in late:
            await self.export_hour(hour)
        if seq > after:
            await backend.set_mark(LATE_MARK, seq)
        return len(late)

    def _closed_before(self) -> int | None:
        """Hours ending before this (ms) are complete in the store."""
        flushed = self._store.flushed_through_ms
        if flushed is None:
            return None
        return min(flushed, round((self._clock() - self._grace) * 1000))

    async def run(self) -> None:
        """Export closed hours as they close, until cancelled; failures are retried."""
        while True:
            try:
                await self.export_pending()
                self._last_error = None
            except StoreError as err:
                self._last_error = str(err)
                _LOGGER.warning("Parquet export failed (retried in a minute): %s", err)
                await asyncio.sleep(60)
                continue
            now = self._clock()
            next_hour_end = (now - self._grace) // 3600 * 3600 + 3600 + self._grace
            await asyncio.sleep(max(1.0, next_hour_end - now))

    def status(self) -> ExportStatus:
        """State and counters since start."""
        return ExportStatus(
            root=str(self.root),
            next_hour_ms=self._next_hour,
            last_export=self._last_export,
            last_error=self._last_error,
            files_written=self._files,
            rows_written=self._rows,
        )


def _export(found: list[SeriesRange], path: Path) -> int:
    """Build and write one file (in a worker thread); return its rows."""
    table = hour_table(found)
    write_atomically(table, path)
    rows: int = table.num_rows
    return rows


def hour_table(found: list[SeriesRange]) -> pa.Table:
    """The rows of an hour's series, in :data:`SCHEMA`."""
    assets: list[str] = []
    metrics: list[str] = []
    columns: list[list[float | int]] = [[], [], [], [], [], []]
    for series in found:
        count = len(series.points)
        assets += [series.key.asset_id] * count
        metrics += [series.key.metric] * count
        for point in series.points:
            for column, value in zip(columns, point, strict=True):
                column.append(value)
    starts, avgs, mins, maxs, lasts, samples = columns
    return pa.table(
        [
            pa.array(assets, pa.string()).dictionary_encode(),
            pa.array(metrics, pa.string()).dictionary_encode(),
            pa.array(starts, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(avgs, pa.float64()),
            pa.array(mins, pa.float64()),
            pa.array(maxs, pa.float64()),
            pa.array(lasts, pa.float64()),
            pa.array(samples, pa.int64()),
        ],
        schema=SCHEMA,
    )


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary file, fsynced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            pq.write_table(
                table,
                handle,
                # Level 9: a tenth smaller than the default for a third of the speed, which
                # an hourly file of a few thousand rows per series can afford.
                compression="zstd",
                compression_level=9,
                # Ids, and the hour's 60 minutes and few counts, as dictionaries; the floats
                # rarely repeat and stay plain.
                use_dictionary=["asset_id", "metric", "minute", "samples"],
                write_statistics=True,
            )
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
