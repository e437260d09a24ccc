"""``edge-ems diagnostics``: one JSON document with what support needs to know about a hub.

    edge-ems diagnostics -o diagnostics.json

Health, agents and their sessions, assets, devices, the latest audit records, the metrics
and this client's versions. Tokens never appear in it; a part that fails is recorded with
its error instead of ending the report.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from .hubapi import HubApi, HubApiError, add_api_arguments, api_from_args

SECTIONS = {
    "health": "/health",
    "agents": "/agents",
    "assets": "/assets",
    "devices": "/devices",
    "audit": "/audit?limit=50",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diagnostics`` subcommand."""
    parser = subparsers.add_parser("diagnostics", help="gather the hub's state for support")
    add_api_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.set_defaults(handler=_diagnostics)


async def gather(api: HubApi) -> dict[str, Any]:
    """Every section, each the hub's answer or ``{"error": ...}``."""
    report: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hub": api.url,
        "client": {
            "edge_ems": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    }
    for name, path in SECTIONS.items():
        try:
            report[name] = await api.get(path)
        except HubApiError as err:
            report[name] = {"error": str(err)}
    try:
        metrics = await api.get_text("/metrics")
        report["metrics"] = [line for line in metrics.splitlines() if not line.startswith("#")]
    except HubApiError as err:
        report["metrics"] = {"error": str(err)}
    return report


def _diagnostics(args: argparse.Namespace) -> int:
    url, token = api_from_args(args)

    async def run() -> dict[str, Any]:
        api = HubApi(url, token, timeout=args.timeout)
        try:
            return await gather(api)
        finally:
            await api.close()

    report = asyncio.run(run())
    text = json.dumps(report, indent=1) + "\n"
    if token:
        text = text.replace(token, "<redacted>")
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    reached = "error" not in report["health"]
    return 0 if reached else 2
