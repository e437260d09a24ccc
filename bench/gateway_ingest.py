"""Telemetry points per second through real gRPC into the hub, with 1, 100 and 1000 agents.

Run: ``scripts/in-env python bench/gateway_ingest.py``. This process runs the hub
(:class:`edge_ems.hub.gateway.GatewayServer`) on the real minute store (SQLite in WAL mode
in a temporary directory, ``edge_ems.hub.store``): every batch is folded into per-minute
aggregates and acknowledged only once written. The store flushes every ``FLUSH_EVERY``
seconds and writes open minutes too (partial aggregates that later flushes merge into),
which is more work than production's one flush a minute, so the figure is conservative and
covers the store's writes within the measured windows. The agents run in separate
processes (``edge-ems launcher N --flood``): each sends batches of ``METRICS`` series of
``SAMPLES`` points, as fast as its stream takes them, keeping at most four batches queued.
Once every agent is connected and a warm-up has passed, the points the hub accepted are
counted over ``REPEATS`` windows of ``WINDOW`` seconds; the figure per fleet size is their
median. The target is 100,000 points/s with 1000 agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import emit, median, progress
from edge_ems.gateway.model import TelemetryBatch
from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.store import StoreSettings, open_store
from edge_ems.hub.telemetry import DurableCallback, TelemetrySink

FLEETS = (1, 100, 1000)
METRICS = 10
SAMPLES = 50
WINDOW = 4.0
REPEATS = 3
WARM_UP = 3.0
TARGET = 100_000
TOKEN = "bench-token"
PER_PROCESS = 500
"""Agents per launcher process: a 1000-agent fleet runs in two."""
FLUSH_EVERY = 2.0


class TickSink:
    """A sink that folds nothing and makes every batch durable at the next tick.

    Not used here any more; ``bench/setpoint_latency.py`` runs its hub on it, where
    telemetry is not what is measured.
    """

    def __init__(self, tick: float = 0.5) -> None:
        self._tick = tick
        self._accepted: dict[str, int] = {}
        self._durable: dict[str, int] = {}
        self._callbacks: list[DurableCallback] = []
        self._task: asyncio.Task[None] | None = None

    def durable_seq(self, agent_id: str) -> int:
        return self._durable.get(agent_id, 0)

    async def resume(self, agent_id: str) -> int:
        return self.durable_seq(agent_id)

    async def accept(self, batch: TelemetryBatch) -> None:
        if batch.seq > self._accepted.get(batch.agent_id, 0):
            self._accepted[batch.agent_id] = batch.seq
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def subscribe(self, callback: DurableCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def _flush(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            for agent_id, seq in self._accepted.items():
                if seq > self._durable.get(agent_id, 0):
                    self._durable[agent_id] = seq
                    for callback in self._callbacks:
                        callback(agent_id, seq)


async def launch(first: int, count: int, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_ems.cli",
        "launcher",
        str(count),
        "--first",
        str(first),
        "--hub",
        f"127.0.0.1:{port}",
        "--interval",
        "60",
        "--flood",
        "--metrics",
        str(METRICS),
        "--samples",
        str(SAMPLES),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=os.environ | {"EDGE_EMS_TOKEN": TOKEN},
    )


async def measure(agents: int, directory: Path) -> tuple[list[float], int]:
    """Points/s per window, and the minute rows the store wrote meanwhile."""
    settings = StoreSettings(flush_interval=FLUSH_EVERY, max_ack_delay=FLUSH_EVERY)
    async with open_store(directory / f"store-{agents}.db", settings) as store:
        store.start()
        rates = await _measure(agents, store)
        return rates, store.status().rows_written


async def _measure(agents: int, store: TelemetrySink) -> list[float]:
    tokens = {f"sim-{n:04d}": TOKEN for n in range(1, agents + 1)}
    server = GatewayServer(store, tokens)
    port = await server.start("127.0.0.1:0")
    processes = [
        await launch(first, min(PER_PROCESS, agents - first + 1), port)
        for first in range(1, agents + 1, PER_PROCESS)
    ]
    try:
        started = time.monotonic()
        while len(server.connected_agents()) < agents:
            if time.monotonic() - started > 120:
                raise RuntimeError(f"only {len(server.connected_agents())} of {agents} connected")
            await asyncio.sleep(0.2)
        progress(f"  {agents} agents connected in {time.monotonic() - started:.1f} s")
        await asyncio.sleep(WARM_UP)
        rates = []
        for _ in range(REPEATS):
            before, t0 = server.stats().points, time.perf_counter()
            await asyncio.sleep(WINDOW)
            rates.append((server.stats().points - before) / (time.perf_counter() - t0))
            progress(f"  {agents} agents: {rates[-1]:,.0f} points/s")
        return rates
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in processes:
            await process.wait()
        await server.stop()


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    result: dict[str, object] = {
        "bench": "gateway_ingest",
        "sink": "minute_store_sqlite",
        "store_flush_every_s": FLUSH_EVERY,
    }
    rate = 0.0
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as directory:
        for agents in FLEETS:
            progress(f"{agents} agent(s), batches of {METRICS} x {SAMPLES} points")
            rates, rows = await measure(agents, Path(directory))
            rate = median(rates)
            label = "1_agent" if agents == 1 else f"{agents}_agents"
            result[f"points_per_s_{label}"] = round(rate)
            result[f"store_rows_written_{label}"] = rows
    result |= {
        "target_points_per_s_1000_agents": TARGET,
        "ratio_1000_agents_to_target": round(rate / TARGET, 2),
        "points_per_batch": METRICS * SAMPLES,
        "window_s": WINDOW,
        "repeats": REPEATS,
        "cpus": os.cpu_count(),
    }
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
