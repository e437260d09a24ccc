"""``edge-ems launcher N``: N simulated sites, each with its own agent, in one process.

    edge-ems launcher 100 --hub 127.0.0.1:50051 --token "$TOKEN"

Agents are ``sim-0001`` ... (``--prefix``, ``--first``), every one with the same token, so the
hub needs that token for each of them. ``--flood`` makes each agent also send synthetic
telemetry as fast as its link allows (the ingest benchmark). At the end (``--duration`` or
SIGINT/SIGTERM) it prints one line of JSON with what the fleet did.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys

from ..site.fleet import Fleet, Flood, simulated_site
from .agent import add_link_arguments, hub_from_args, run_until_signalled


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``launcher`` subcommand."""
    parser = subparsers.add_parser(
        "launcher", help="run N simulated sites, one agent each (test harness)"
    )
    parser.add_argument("count", type=int, help="how many agents")
    parser.add_argument("--prefix", default="sim", help="agent and site ids: PREFIX-0001 ...")
    parser.add_argument("--first", type=int, default=1, help="number of the first agent")
    parser.add_argument("--assets", type=int, default=2, help="simulated batteries per site")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between reads")
    parser.add_argument("--dry-run", action="store_true", help="dispatch in dry run only")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--flood", action="store_true", help="send synthetic telemetry flat out")
    parser.add_argument("--metrics", type=int, default=10, help="flood: series per batch")
    parser.add_argument("--samples", type=int, default=50, help="flood: points per series")
    add_link_arguments(parser)
    parser.set_defaults(handler=_launch)


def _launch(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("edge-ems launcher: COUNT must be at least 1", file=sys.stderr)  # noqa: T201
        return 2
    hub = hub_from_args(args, agent_id=args.prefix)
    assert hub is not None  # --hub is required
    hub = dataclasses.replace(hub, reconnect_cap=5.0)
    sites = [
        simulated_site(
            args.first + offset,
            prefix=args.prefix,
            assets=args.assets,
            read_interval=args.interval,
            flush_interval=args.interval,
            live=not args.dry_run,
        )
        for offset in range(args.count)
    ]
    flood = Flood(args.metrics, args.samples) if args.flood else None

    async def main(stop: asyncio.Event) -> int:
        fleet = Fleet(sites, hub, flood=flood)
        await fleet.start()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration):
                    await stop.wait()
            stats = fleet.stats()
        finally:
            await fleet.stop()
        print(json.dumps(dataclasses.asdict(stats)), flush=True)  # noqa: T201
        return 0

    return run_until_signalled(main)
