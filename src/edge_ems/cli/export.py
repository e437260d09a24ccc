"""``edge-ems export``: measurements (or the latest snapshot) from the hub as CSV or JSON.

    edge-ems export --asset bess-1 --from 2026-12-01T00:00Z --resolution 5m -o bess.csv
    edge-ems export --snapshot --format json

CSV has one row per bucket: site, asset, metric, unit, start (ISO 8601, UTC), avg, min,
max, last, samples.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path
from typing import Any

from .hubapi import HubApi, add_api_arguments, api_from_args

CSV_HEADER = (
    "site_id",
    "asset_id",
    "metric",
    "unit",
    "start",
    "avg",
    "min",
    "max",
    "last",
    "samples",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser("export", help="export measurements from the hub (CSV/JSON)")
    add_api_arguments(parser)
    parser.add_argument("--site", action="append", default=[], help="site id (repeatable)")
    parser.add_argument("--asset", action="append", default=[], help="asset id (repeatable)")
    parser.add_argument("--metric", action="append", default=[], help="metric (repeatable)")
    parser.add_argument("--from", dest="start", help="start: ISO 8601 or ms (default: 1 h ago)")
    parser.add_argument("--to", dest="end", help="end: ISO 8601 or ms (default: now)")
    parser.add_argument("--resolution", default="minute", choices=("minute", "5m", "1h"))
    parser.add_argument("--snapshot", action="store_true", help="the newest values instead")
    parser.add_argument("--format", default="csv", choices=("csv", "json"))
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.set_defaults(handler=_export)


def measurements_csv(answer: dict[str, Any]) -> str:
    """``/measurements``' answer as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for series in answer["series"]:
        for start_ms, avg, low, high, last, count in series["points"]:
            start = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).isoformat()
            writer.writerow(
                (series["site_id"], series["asset_id"], series["metric"], series["unit"] or "",
                 start, avg, low, high, last, count)
            )  # fmt: skip
    return out.getvalue()


def snapshot_csv(answer: dict[str, Any]) -> str:
    """``/export/snapshot``'s answer as CSV: one row per series."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("site_id", "asset_id", "metric", "unit", "timestamp", "value"))
    for asset in answer["assets"]:
        for metric, value in sorted(asset["values"].items()):
            stamp = dt.datetime.fromtimestamp(value["timestamp_ms"] / 1000, dt.UTC).isoformat()
            writer.writerow(
                (asset["site_id"], asset["asset_id"], metric, value["unit"] or "", stamp,
                 value["value"])
            )  # fmt: skip
    return out.getvalue()


def _export(args: argparse.Namespace) -> int:
    url, token = api_from_args(args)
    params: list[tuple[str, str]] = [("resolution", args.resolution)]
    params += [("site", site) for site in args.site]
    params += [("asset", asset) for asset in args.asset]
    params += [("metric", metric) for metric in args.metric]
    if args.start:
        params.append(("from", args.start))
    if args.end:
        params.append(("to", args.end))

    async def fetch() -> dict[str, Any]:
        api = HubApi(url, token, timeout=args.timeout)
        try:
            if args.snapshot:
                answer: dict[str, Any] = await api.get("/export/snapshot")
            else:
                answer = await api.get("/measurements", params)
            return answer
        finally:
            await api.close()

    answer = asyncio.run(fetch())
    if args.format == "json":
        text = json.dumps(answer, indent=1) + "\n"
    else:
        text = snapshot_csv(answer) if args.snapshot else measurements_csv(answer)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
