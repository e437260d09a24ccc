"""Setpoint round trip: POST /dispatch -> hub -> gRPC -> agent -> guarded dispatch -> ack.

Run: ``scripts/in-env python bench/setpoint_latency.py``. The hub runs as it does in the
app (``python -m edge_ems.hub`` with a SQLite store, in its own process) and the agents run
in a third (``edge-ems launcher``), each with simulated batteries behind the guarded
:class:`~edge_ems.dispatch.Dispatcher` (control on, not a dry run), which writes the
setpoint and arms the battery's revert timer, reads both back and audits the attempt before
acking; the hub writes the audit records to its store before it answers. The benchmark is
the REST client: ``COMMANDS`` setpoints one after another over a kept-alive connection,
round-robin over every asset (so no asset is asked more often than the dispatcher's write
rate allows), after ``WARM_UP`` unmeasured ones. The target is a p99 below 50 ms on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from _common import emit, median, progress

AGENTS = 20
ASSETS = 2
COMMANDS = 1000
WARM_UP = 50
TARGET_P99_MS = 50.0
AGENT_TOKEN = "bench-agent-token-0123456789"
API_TOKEN = "bench-api-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_for_agents(http: aiohttp.ClientSession, url: str) -> list[str]:
    async with asyncio.timeout(120):
        while True:
            try:
                async with http.get(url + "/agents") as response:
                    rows = (await response.json())["agents"] if response.status == 200 else []
            except aiohttp.ClientConnectionError:
                rows = []
            if len(rows) == AGENTS * ASSETS and all(row["connected"] for row in rows):
                return [row["asset_id"] for row in rows]
            await asyncio.sleep(0.2)


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="edge-ems-bench-"))
    api_port, grpc_port = free_port(), free_port()
    config = {
        "api_token": API_TOKEN,
        "api_port": api_port,
        "grpc_port": grpc_port,
        "store_path": str(workdir / "store.db"),
        "agents": [{"id": f"sim-{n:04d}", "token": AGENT_TOKEN} for n in range(1, AGENTS + 1)],
        "rate_limit": 1_000_000,
        "rate_burst": 1_000_000,
        "log_level": "warning",
    }
    (workdir / "hub.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMS_")}
    hub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_ems.hub", "--config", str(workdir / "hub.json"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_ems.cli", "launcher", str(AGENTS),
        "--assets", str(ASSETS), "--hub", f"127.0.0.1:{grpc_port}", "--interval", "5",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env=env | {"EDGE_EMS_TOKEN": AGENT_TOKEN},
    )  # fmt: skip
    url = f"http://127.0.0.1:{api_port}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            assets = await wait_for_agents(http, url)
            progress(f"{AGENTS} agents with {len(assets)} assets connected to the hub process")
            latencies_ms: list[float] = []
            not_applied = 0
            for n in range(WARM_UP + COMMANDS):
                body = {"asset_id": assets[n % len(assets)], "power_w": 500 * (n % 9) - 2000}
                body |= {"ttl_s": 60, "requested_by": "bench"}
                started = time.perf_counter()
                async with http.post(url + "/dispatch", json=body) as response:
                    answer = await response.json()
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"dispatch failed: {response.status} {answer}")
                if n >= WARM_UP:
                    latencies_ms.append(elapsed_ms)
                    not_applied += not answer["applied"]
            async with http.get(url + "/audit", params={"limit": "1"}) as response:
                audited = bool((await response.json())["records"])
    finally:
        for process in (launcher, hub):
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    p50, p99 = median(latencies_ms), cuts[98]
    progress(f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies_ms):.2f} ms")
    emit(
        {
            "bench": "setpoint_latency",
            "entry": "rest.dispatch",
            "commands": COMMANDS,
            "agents": AGENTS,
            "assets": AGENTS * ASSETS,
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "max_ms": round(max(latencies_ms), 2),
            "target_p99_ms": TARGET_P99_MS,
            "p99_ratio_to_target": round(p99 / TARGET_P99_MS, 2),
            "not_applied": not_applied,
            "audited": audited,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
