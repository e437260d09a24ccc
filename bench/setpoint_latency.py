"""Setpoint round trip: hub routing call -> gRPC -> agent -> guarded dispatch -> ack.

Run: ``scripts/in-env python bench/setpoint_latency.py``. The REST API does not exist yet, so
the round trip starts at the hub's routing call, :meth:`GatewayServer.dispatch`, instead of
``POST /dispatch`` (the JSON says ``"entry": "gateway.dispatch"``): it sends a ``Setpoint`` to
the agent owning the asset and waits for its ``SetpointAck``. The agents run in another
process (``edge-ems launcher``), each with simulated batteries behind the guarded
:class:`~edge_ems.dispatch.Dispatcher` (control on, not a dry run), which writes the setpoint
and arms the battery's revert timer, reads both back and audits the attempt before acking.
``COMMANDS`` setpoints go one after another, round-robin over every asset (so no asset is
asked more often than the dispatcher's write rate allows), after ``WARM_UP`` unmeasured ones.
The target is a p99 below 50 ms on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import sys
import time

from _common import emit, median, progress
from edge_ems.dispatch import Outcome
from edge_ems.hub.gateway import GatewayServer
from gateway_ingest import TickSink

AGENTS = 20
ASSETS = 2
COMMANDS = 1000
WARM_UP = 50
TARGET_P99_MS = 50.0
TOKEN = "bench-token"


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    tokens = {f"sim-{n:04d}": TOKEN for n in range(1, AGENTS + 1)}
    server = GatewayServer(TickSink(), tokens)
    port = await server.start("127.0.0.1:0")
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_ems.cli",
        "launcher",
        str(AGENTS),
        "--assets",
        str(ASSETS),
        "--hub",
        f"127.0.0.1:{port}",
        "--interval",
        "5",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=os.environ | {"EDGE_EMS_TOKEN": TOKEN},
    )
    try:
        async with asyncio.timeout(60):
            while len(server.connected_agents()) < AGENTS:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.1)
        assets = [row.asset_id for row in server.registry.assets()]
        progress(f"{AGENTS} agents with {len(assets)} assets connected")
        latencies_ms = []
        refused = 0
        for n in range(WARM_UP + COMMANDS):
            asset_id = assets[n % len(assets)]
            power = float(500 * (n % 9) - 2000)
            started = time.perf_counter()
            result = await server.dispatch(power, asset_id=asset_id, issued_by="bench", ttl=60)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if n >= WARM_UP:
                latencies_ms.append(elapsed_ms)
                refused += any(r.outcome is not Outcome.APPLIED for r in result.records)
        cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
        p50, p99 = median(latencies_ms), cuts[98]
        progress(f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies_ms):.2f} ms")
    finally:
        with contextlib.suppress(ProcessLookupError):
            launcher.terminate()
        await launcher.wait()
        await server.stop()
    emit(
        {
            "bench": "setpoint_latency",
            "entry": "gateway.dispatch",
            "commands": COMMANDS,
            "agents": AGENTS,
            "assets": AGENTS * ASSETS,
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "max_ms": round(max(latencies_ms), 2),
            "target_p99_ms": TARGET_P99_MS,
            "p99_ratio_to_target": round(p99 / TARGET_P99_MS, 2),
            "not_applied": refused,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
