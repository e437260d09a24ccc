"""``edge-ems replay FILE.parquet``: feed recorded telemetry back through an agent.

    edge-ems replay /share/edge_ems/parquet/site=farm --hub 127.0.0.1:50051 \\
        --agent-id farm-replay --token-file token --shift-to-now

Reads the hub's hourly Parquet files (one file, or a directory of them), registers their
assets with the hub as one agent and sends each bucket's value (``avg`` unless
``--value`` says otherwise) as a sample at the bucket's start. ``--shift-to-now`` moves the
whole recording so its newest minute is the last closed one (the store keeps minutes for a
limited time, and a recording of last month would fall outside it). The command returns
once the hub has stored everything durably, so a replay is complete when it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..agent import Agent, AgentConfig, TelemetryBuffer
from ..dispatch import ControlPolicy, Dispatcher
from ..exceptions import ConfigError
from ..gateway.model import AssetInfo
from .agent import add_link_arguments, hub_from_args, run_until_signalled

_LOGGER = logging.getLogger(__name__)

VALUES = ("avg", "last", "min", "max")
MINUTE_MS = 60_000
BACKLOG = 8
"""Batches allowed to wait for the link before reading on (memory stays bounded)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` subcommand."""
    parser = subparsers.add_parser(
        "replay", help="send recorded telemetry (the hub's Parquet files) through an agent"
    )
    parser.add_argument("source", type=Path, help="a Parquet file or a directory of them")
    parser.add_argument("--agent-id", required=True, help="the agent id the hub knows")
    parser.add_argument("--site", help="site id (default: from a site=... path part)")
    parser.add_argument("--value", choices=VALUES, default="avg", help="which column to send")
    parser.add_argument("--shift-to-now", action="store_true", help="end at the last minute")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the hub to store it"
    )
    add_link_arguments(parser)
    parser.set_defaults(handler=_replay)


@dataclass(frozen=True, slots=True)
class Recording:
    """Samples per (asset, metric), oldest first."""

    site_id: str
    series: dict[tuple[str, str], tuple[list[int], list[float]]]

    @property
    def samples(self) -> int:
        """How many samples in all."""
        return sum(len(values) for _, values in self.series.values())

    @property
    def assets(self) -> list[str]:
        """The assets, sorted."""
        return sorted({asset for asset, _ in self.series})

    def shifted(self, offset_ms: int) -> Recording:
        """The recording moved in time by ``offset_ms``."""
        return Recording(
            self.site_id,
            {
                key: ([t + offset_ms for t in stamps], values)
                for key, (stamps, values) in self.series.items()
            },
        )


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(source.rglob("*.parquet"))
    if source.is_file():
        return [source]
    raise ConfigError(f"{source}: no such file or directory")


def _site_from_path(path: Path) -> str | None:
    for part in reversed(path.parts):
        if part.startswith("site="):
            return unquote(part.removeprefix("site="))
    return None


def load_recording(source: Path, *, site: str | None, value: str) -> Recording:
    """Read the Parquet files under ``source`` (blocking: call it before the loop)."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    files = _files(source)
    if not files:
        raise ConfigError(f"{source}: no .parquet files")
    sites = {site} if site else {_site_from_path(path) for path in files}
    if None in sites or len(sites) != 1:
        raise ConfigError(f"{source}: give --site (the files name {len(sites)} sites or none)")
    site_id = sites.pop()
    assert site_id is not None
    series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for path in files:
        try:
            table = pq.read_table(path, columns=["asset_id", "metric", "minute", value])
        except (OSError, pa.ArrowException) as err:
            raise ConfigError(f"{path}: not a readable Edge EMS Parquet file: {err}") from None
        minutes = table.column("minute").cast(pa.int64()).to_pylist()
        for asset, metric, minute, number in zip(
            table.column("asset_id").to_pylist(),
            table.column("metric").to_pylist(),
            minutes,
            table.column(value).to_pylist(),
            strict=True,
        ):
            if number is None:
                continue
            stamps, values = series.setdefault((asset, metric), ([], []))
            stamps.append(minute)
            values.append(float(number))
    for stamps, values in series.values():
        order = sorted(range(len(stamps)), key=stamps.__getitem__)
        stamps[:] = [stamps[i] for i in order]
        values[:] = [values[i] for i in order]
    return Recording(site_id, series)


def shift_to_now(recording: Recording, now_ms: int) -> Recording:
    """Move the recording so its newest sample falls in the last closed minute."""
    newest = max((stamps[-1] for stamps, _ in recording.series.values() if stamps), default=None)
    if newest is None:
        return recording
    target = now_ms // MINUTE_MS * MINUTE_MS - MINUTE_MS
    return recording.shifted(target - newest // MINUTE_MS * MINUTE_MS)


async def replay(agent: Agent, recording: Recording) -> int:
    """Send every sample; return once the hub holds them durably; return the last seq."""
    await agent.wait_connected()
    for (asset, metric), (stamps, values) in sorted(recording.series.items()):
        agent.publish_series(asset, metric, stamps, values)
        await agent.flush()
        await agent.backlog_below(BACKLOG)
    await agent.flush()
    last = agent.stats().buffer.next_seq - 1
    # The hub acknowledges once its store has flushed (at most a minute or so).
    while agent.stats().durable_seq < last:  # noqa: ASYNC110 - the agent has no event for it
        await asyncio.sleep(0.2)
    return last


async def _within[T](work: Coroutine[Any, Any, T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await work


def _replay(args: argparse.Namespace) -> int:
    link = hub_from_args(args, args.agent_id)
    assert link is not None  # --hub is required
    recording = load_recording(args.source, site=args.site, value=args.value)
    if args.shift_to_now:
        recording = shift_to_now(recording, round(time.time() * 1000))

    async def main(stop: asyncio.Event) -> int:
        config = AgentConfig(
            agent_id=args.agent_id,
            site_id=recording.site_id,
            token=link.token,
            hubs=link.hubs,
            gateway_id=args.agent_id,
            tls=link.tls,
            reconnect_cap=link.reconnect_cap,
            max_batch_points=link.max_batch_points,
        )
        # A replaying agent serves no devices: every setpoint is refused and audited.
        dispatcher = Dispatcher(recording.site_id, ControlPolicy(), lambda record: None)
        assets: Sequence[AssetInfo] = [AssetInfo(asset) for asset in recording.assets]
        agent = Agent(config, dispatcher, assets, buffer=TelemetryBuffer(None))
        await agent.start()
        work = asyncio.ensure_future(_within(replay(agent, recording), args.timeout))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            await agent.stop()
        if not work.done():
            work.cancel()
            return 130
        try:
            last = work.result()
        except TimeoutError:
            _LOGGER.error("The hub did not store the replay within %s s", args.timeout)
            return 1
        summary = {
            "site_id": recording.site_id,
            "assets": len(recording.assets),
            "series": len(recording.series),
            "samples": recording.samples,
            "last_seq": last,
        }
        print(json.dumps(summary), flush=True)  # noqa: T201
        return 0

    return run_until_signalled(main)
