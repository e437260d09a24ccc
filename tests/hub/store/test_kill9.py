"""Loses nothing: kill -9 the hub (gateway and store in another process) while a real agent
streams, restart it, and every sample is stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge_ems.agent import Agent, AgentConfig, TelemetryBuffer
from edge_ems.dispatch import ControlPolicy, Dispatcher
from edge_ems.gateway import AssetInfo
from edge_ems.hub.store import SeriesFilter, open_store

TOKEN = "kill-test-token"
WAIT = 90.0
HUB = Path(__file__).with_name("hub_process.py")
BATCHES = 150
SAMPLES = 40
STEP_MS = 250
METRICS = ("ac_power_w", "soc_pct")


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the agent's tasks change what is polled
            await asyncio.sleep(0.02)


class HubProcess:
    def __init__(self, database: str | Path, journal: Path | None) -> None:
        self.database = database
        self.journal = journal
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, port: int = 0) -> int:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HUB),
            str(self.database),
            str(port),
            TOKEN,
            *([] if self.journal is None else [str(self.journal)]),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            line = await self.process.stdout.readline()
        assert line.startswith(b"ready "), line
        return int(line.split()[1])

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no flush, no goodbye
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(WAIT):
                await self.process.wait()


@pytest.fixture(params=["journal", "no_journal"])
async def hub(
    database: str | Path, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[HubProcess]:
    """The hub acknowledging once batches are journaled, or once their minutes are written."""
    process = HubProcess(database, tmp_path / "journal" if request.param == "journal" else None)
    yield process
    if process.process is not None and process.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            await process.kill()


async def test_a_hub_killed_mid_stream_stores_every_sample_exactly_once(
    hub: HubProcess, tmp_path: Path
) -> None:
    port = await hub.start()
    config = AgentConfig(
        agent_id="agent-1",
        site_id="farm",
        token=TOKEN,
        hubs=(f"127.0.0.1:{port}",),
        flush_interval=3600,  # batches are cut by the test
        reconnect_base=0.05,
        reconnect_cap=0.5,
        spill_interval=0.2,
    )
    dispatcher = Dispatcher("farm", ControlPolicy(), lambda record: None)
    asset = AssetInfo("bess-1", "Battery", "battery", 10_000, 5000, 5000, ())
    buffer = TelemetryBuffer(tmp_path / "agent", memory_limit=1024 * 1024)
    agent = Agent(config, dispatcher, [asset], buffer=buffer)
    await agent.start()
    # Samples from an hour ago on: minutes close at once, so flushes write them while
    # batches of the same minutes are still arriving.
    base = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000
    sent = 0

    async def publish(first: int, last: int) -> None:
        nonlocal sent
        for n in range(first, last):
            stamps = [base + (n * SAMPLES + k) * STEP_MS for k in range(SAMPLES)]
            for metric in METRICS:
                agent.publish_series("bess-1", metric, stamps, [float(n)] * SAMPLES)
            await agent.flush()
            sent = n + 1
            await asyncio.sleep(0.005)

    try:
        async with asyncio.timeout(WAIT):
            await agent.wait_connected()
        await publish(0, 50)
        await eventually(lambda: agent.stats().durable_seq >= 10)
        # Typically a dozen batches are folded or in flight, not yet written: the agent
        # resends them from its durable mark to the restarted hub.
        await hub.kill()
        await publish(50, 100)  # the hub is down: the agent buffers, on disk
        await hub.start(port)
        await publish(100, BATCHES)
        await eventually(lambda: agent.stats().durable_seq == BATCHES)
    finally:
        await agent.stop()
        await hub.stop()
    assert sent == BATCHES

    async with open_store(hub.database) as store:
        end = base + BATCHES * SAMPLES * STEP_MS
        found = await store.query(SeriesFilter(), base, end)
    assert [series.key.metric for series in found] == sorted(METRICS)
    for series in found:
        assert sum(p.samples for p in series.points) == BATCHES * SAMPLES
        total = sum(p.avg * p.samples for p in series.points)
        assert total == pytest.approx(sum(float(n) * SAMPLES for n in range(BATCHES)))
        per_minute = 60_000 // STEP_MS
        assert [p.samples for p in series.points[:-1]] == [per_minute] * (len(series.points) - 1)
