"""Hourly Parquet against CSV of the same rows: bytes per row and write speed.

Run: ``scripts/in-env python bench/parquet_size.py``. ``HOURS`` hours of one site with
``ASSETS`` assets of ten metrics each (500 series), sampled every 5 s at the resolution the
devices report (power in W, energy in Wh, state of charge, voltage and temperature in
tenths) as random walks, go through the minute store; each hour is then written as the
exporter writes it (:func:`edge_ems.hub.parquet.hour_table` and ``write_atomically``:
zstd, dictionary-encoded ids, fsync, rename) and as CSV (the same columns, with site and
date, ``csv`` module, fsync). ``ratio_vs_csv`` is Parquet bytes over CSV bytes (target: at
most 0.1). Speeds are of the data as CSV (its size is the data's plain size) per second of
writing, medians over the hours.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import emit, median, progress
from edge_ems.gateway.model import SeriesSamples, TelemetryBatch
from edge_ems.hub.parquet import hour_table, partition_path, write_atomically
from edge_ems.hub.store import SeriesFilter, SeriesRange, StoreSettings, open_store

HOURS = 6
ASSETS = 50
T0 = 1_796_515_200_000  # 2026-12-06 00:00 UTC
MINUTE = 60_000
STEP = 5_000
TARGET_RATIO = 0.1
METRICS = {
    # metric: (start, step size of the walk, resolution)
    "ac_power_w": (2000.0, 40.0, 1.0),
    "dc_power_w": (2100.0, 40.0, 1.0),
    "battery_power_w": (-500.0, 60.0, 1.0),
    "grid_power_w": (300.0, 80.0, 1.0),
    "soc_pct": (55.0, 0.05, 0.1),
    "battery_voltage_v": (51.2, 0.05, 0.1),
    "ac_voltage_v": (230.0, 0.3, 0.1),
    "temperature_c": (25.0, 0.02, 0.1),
    "ac_frequency_hz": (50.0, 0.01, 0.01),
    "energy_export_wh": (1_250_000.0, 3.0, 1.0),
}


class Clock:
    def __init__(self) -> None:
        self.now = T0 / 1000

    def __call__(self) -> float:
        return self.now


def walks(rng: random.Random) -> dict[tuple[str, str], list[float]]:
    """Per series, its current value (kept between minutes)."""
    return {
        (f"asset-{a:02d}", metric): [start + rng.uniform(-1, 1) * step * 50]
        for a in range(ASSETS)
        for metric, (start, step, _) in METRICS.items()
    }


def minute_batch(
    seq: int, minute: int, state: dict[tuple[str, str], list[float]], rng: random.Random
) -> TelemetryBatch:
    start = T0 + minute * MINUTE
    stamps = list(range(start, start + MINUTE, STEP))
    series = []
    for (asset, metric), held in state.items():
        _, step, resolution = METRICS[metric]
        values = []
        for _ in stamps:
            move = abs(rng.gauss(0, step)) if metric.startswith("energy") else rng.gauss(0, step)
            held[0] += move
            values.append(round(round(held[0] / resolution) * resolution, 6))
        series.append(SeriesSamples(asset, metric, stamps, values))
    return TelemetryBatch("bench", "site-1", seq, series)


def write_csv(found: list[SeriesRange], site: str, path: Path) -> int:
    """The hour as CSV, fsynced; returns its rows."""
    rows = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["site", "date", "asset_id", "metric", "minute", "avg", "min", "max", "last", "samples"]
        )
        for series in found:
            for point in series.points:
                when = datetime.fromtimestamp(point.start_ms / 1000, UTC)
                writer.writerow(
                    [
                        site,
                        f"{when:%Y-%m-%d}",
                        series.key.asset_id,
                        series.key.metric,
                        when.isoformat(),
                        *point[1:],
                    ]
                )
                rows += 1
        handle.flush()
        os.fsync(handle.fileno())
    return rows


async def main() -> None:
    rng = random.Random(7)
    state = walks(rng)
    parquet_bytes = csv_bytes = rows = 0
    parquet_speeds: list[float] = []
    csv_speeds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as directory:
        root = Path(directory)
        clock = Clock()
        # The clock moves once all hours are fed: allow samples that far ahead of it.
        settings = StoreSettings(max_open_rows=10**7, max_future=7 * 86_400)
        async with open_store(root / "store.db", settings, clock=clock) as store:
            progress(f"{HOURS} h of {ASSETS * len(METRICS)} series, a sample every 5 s")
            for minute in range(HOURS * 60):
                await store.accept(minute_batch(minute + 1, minute, state, rng))
            clock.now = (T0 + HOURS * 60 * MINUTE) / 1000 + 11
            await store.flush()
            for hour in range(HOURS):
                start = T0 + hour * 60 * MINUTE
                found = await store.query(SeriesFilter(), start, start + 60 * MINUTE)
                path = partition_path(root / "parquet", "site-1", start)
                t0 = time.perf_counter()
                await asyncio.to_thread(write_atomically, hour_table(found), path)
                parquet_time = time.perf_counter() - t0
                csv_path = root / f"{hour:02d}.csv"
                t0 = time.perf_counter()
                count = await asyncio.to_thread(write_csv, found, "site-1", csv_path)
                csv_time = time.perf_counter() - t0
                size, plain = path.stat().st_size, csv_path.stat().st_size
                parquet_bytes += size
                csv_bytes += plain
                rows += count
                parquet_speeds.append(plain / parquet_time / 1e6)
                csv_speeds.append(plain / csv_time / 1e6)
                progress(
                    f"  hour {hour}: {count:,} rows, Parquet {size:,} B, CSV {plain:,} B, "
                    f"{parquet_speeds[-1]:.1f} / {csv_speeds[-1]:.1f} MB/s"
                )
    emit(
        {
            "bench": "parquet_size",
            "rows": rows,
            "parquet_bytes_per_row": round(parquet_bytes / rows, 2),
            "csv_bytes_per_row": round(csv_bytes / rows, 2),
            "ratio_vs_csv": round(parquet_bytes / csv_bytes, 3),
            "target_ratio_vs_csv": TARGET_RATIO,
            "parquet_write_mb_per_s": round(median(parquet_speeds), 1),
            "csv_write_mb_per_s": round(median(csv_speeds), 1),
            "cpus": os.cpu_count(),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
