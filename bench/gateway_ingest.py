"""Telemetry points per second through real gRPC into the hub, with 1, 100 and 1000 agents.

Run: ``scripts/in-env python bench/gateway_ingest.py``. This process runs the hub
(:class:`edge_ems.hub.gateway.GatewayServer`). Its sink is a stand-in for the minute store
(``edge_ems.hub.store``, not written yet): it folds nothing and acknowledges every batch as
durable at the next half-second tick, as a store flushing twice a second would, so the
figures are the gateway's own ceiling; the JSON says ``"sink": "tick_sink"``. The agents
run in separate processes (``edge-ems launcher N --flood``): each sends batches of
``METRICS`` series of ``SAMPLES`` points, as fast as its stream takes them, keeping at most
four batches queued. Once every agent is connected and a warm-up has passed, the points the
sink accepted are counted over ``REPEATS`` windows of ``WINDOW`` seconds; the figure per
fleet size is their median. The target is 100,000 points/s with 1000 agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable

from _common import emit, median, progress
from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.telemetry import DurableCallback, TelemetryBatch, TelemetrySink

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


class TickSink:
    """A stand-in for the minute store: accepts every batch, durable at the next tick."""

    def __init__(self, tick: float = 0.5) -> None:
        self._tick = tick
        self._accepted: dict[str, int] = {}
        self._durable: dict[str, int] = {}
        self._callbacks: list[DurableCallback] = []
        self._task: asyncio.Task[None] | None = None

    def durable_seq(self, agent_id: str) -> int:
        return self._durable.get(agent_id, 0)

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


async def measure(agents: int, sink: TelemetrySink) -> list[float]:
    tokens = {f"sim-{n:04d}": TOKEN for n in range(1, agents + 1)}
    server = GatewayServer(sink, tokens)
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
    result: dict[str, object] = {"bench": "gateway_ingest", "sink": "tick_sink"}
    rate = 0.0
    for agents in FLEETS:
        progress(f"{agents} agent(s), batches of {METRICS} x {SAMPLES} points")
        rate = median(await measure(agents, TickSink()))
        label = "1_agent" if agents == 1 else f"{agents}_agents"
        result[f"points_per_s_{label}"] = round(rate)
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
