"""Real gRPC on loopback: a hub (``GatewayServer``) with an in-memory sink, agents, a proxy.

The sink stands in for the minute store behind the ``TelemetrySink`` contract: it records
every batch it accepts and makes them durable when told to (or at once with ``auto``), so
tests decide when the hub may acknowledge. Waits are generous (the suite runs on a loaded
two-core machine) and poll a condition instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_ems.agent import Agent, AgentConfig, TelemetryBuffer
from edge_ems.dispatch import AuditRecord, ControlPolicy, Dispatcher
from edge_ems.gateway import AssetInfo
from edge_ems.gateway.model import DeviceStatus, TelemetryBatch
from edge_ems.hub.gateway import GatewayServer, GatewaySettings
from edge_ems.hub.telemetry import DurableCallback
from edge_ems.sim.bess import SimulatedBess
from edge_ems.sim.physics import Battery

TOKEN = "s3cret-token"
WAIT = 30.0
LIVE = ControlPolicy(enable_control=True, dry_run=False)


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    """Wait until ``condition()`` holds, polling; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - conditions on state other parts change
            await asyncio.sleep(0.01)


class MemorySink:
    """A ``TelemetrySink`` in memory: durable when ``make_durable`` says so."""

    def __init__(self, *, auto: bool = False) -> None:
        self.auto = auto
        self.batches: list[TelemetryBatch] = []
        self.accepted: dict[str, int] = {}
        self.durable: dict[str, int] = {}
        self._callbacks: list[DurableCallback] = []

    def durable_seq(self, agent_id: str) -> int:
        return self.durable.get(agent_id, 0)

    async def resume(self, agent_id: str) -> int:
        return self.durable_seq(agent_id)

    async def accept(self, batch: TelemetryBatch) -> None:
        if batch.seq <= self.durable_seq(batch.agent_id):
            return
        self.batches.append(batch)
        self.accepted[batch.agent_id] = max(self.accepted.get(batch.agent_id, 0), batch.seq)
        if self.auto:
            self.make_durable(batch.agent_id)

    def subscribe(self, callback: DurableCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def make_durable(self, agent_id: str | None = None) -> None:
        for agent in [agent_id] if agent_id else list(self.accepted):
            seq = self.accepted.get(agent, 0)
            if seq > self.durable_seq(agent):
                self.durable[agent] = seq
                for callback in list(self._callbacks):
                    callback(agent, seq)

    def forget_undurable(self) -> None:
        """What a store restart does: open aggregates are lost, durable data stays."""
        self.batches = [b for b in self.batches if b.seq <= self.durable_seq(b.agent_id)]
        self.accepted = dict(self.durable)

    def samples(self, agent_id: str | None = None) -> list[tuple[str, str, int, float | str]]:
        """Every sample accepted, in order."""
        found: list[tuple[str, str, int, float | str]] = []
        for batch in self.batches:
            if agent_id is not None and batch.agent_id != agent_id:
                continue
            for series in batch.series:
                found += zip(
                    [series.asset_id] * len(series.values),
                    [series.metric] * len(series.values),
                    series.timestamps_ms,
                    series.values,
                    strict=True,
                )
            found += [(t.asset_id, t.metric, t.timestamp_ms, t.value) for t in batch.texts]
        return found

    def seqs(self, agent_id: str) -> list[int]:
        return [batch.seq for batch in self.batches if batch.agent_id == agent_id]


@dataclass
class Hub:
    server: GatewayServer
    sink: MemorySink
    port: int
    audits: list[tuple[str, AuditRecord]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def hub_factory() -> AsyncIterator[HubFactory]:
    started: list[GatewayServer] = []

    async def start(
        tokens: dict[str, str] | None = None,
        *,
        sink: MemorySink | None = None,
        settings: GatewaySettings | None = None,
        port: int = 0,
        **options: object,
    ) -> Hub:
        sink = sink if sink is not None else MemorySink(auto=True)
        audits: list[tuple[str, AuditRecord]] = []
        server = GatewayServer(
            sink,
            tokens if tokens is not None else {f"agent-{i}": TOKEN for i in range(1, 6)},
            settings=settings,
            on_audit=lambda agent, record: audits.append((agent, record)),
            **options,  # type: ignore[arg-type]
        )
        bound = await server.start(f"127.0.0.1:{port}")
        started.append(server)
        return Hub(server, sink, bound, audits)

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> Hub:
    return await hub_factory()


@dataclass
class Site:
    agent: Agent
    dispatcher: Dispatcher
    batteries: dict[str, SimulatedBess]
    local_audits: list[AuditRecord]


SiteFactory = Callable[..., Awaitable[Site]]


def batteries(count: int = 2) -> dict[str, SimulatedBess]:
    """Batteries of 10, 20, ... kWh with 5, 10, ... kW limits."""
    return {
        f"bess-{i}": SimulatedBess(
            f"bess-{i}",
            Battery(
                capacity_wh=10_000 * i, max_charge_w=5000 * i, max_discharge_w=5000 * i, soc_pct=50
            ),
            name=f"Battery {i}",
        )
        for i in range(1, count + 1)
    }


@pytest.fixture
async def site_factory() -> AsyncIterator[SiteFactory]:
    started: list[Site] = []

    async def start(
        hubs: list[str] | str,
        *,
        agent_id: str = "agent-1",
        site_id: str = "farm",
        token: str = TOKEN,
        devices: dict[str, SimulatedBess] | None = None,
        policy: ControlPolicy = LIVE,
        buffer_dir: Path | None = None,
        memory_limit: int = 4 * 1024 * 1024,
        connect: bool = True,
        device_status: Callable[[], Sequence[DeviceStatus]] | None = None,
        **config: object,
    ) -> Site:
        devices = batteries() if devices is None else devices
        local: list[AuditRecord] = []
        agent_box: list[Agent] = []

        def audit(record: AuditRecord) -> None:
            local.append(record)
            if agent_box:
                agent_box[0].report_audit(record)

        dispatcher = Dispatcher(site_id, policy, audit)
        assets = []
        for asset_id, bess in devices.items():
            dispatcher.add_device(asset_id, bess, bess.limits)
            limits = bess.limits
            assets.append(
                AssetInfo(
                    asset_id,
                    bess.name,
                    "battery",
                    limits.capacity_wh,
                    limits.max_charge_w,
                    limits.max_discharge_w,
                    tuple(bess.commands),
                )
            )
        options: dict[str, object] = {
            "site_name": site_id.title(),
            "gateway_id": agent_id,
            "reconnect_base": 0.05,
            "reconnect_cap": 0.5,
        }
        settings = AgentConfig(
            agent_id=agent_id,
            site_id=site_id,
            token=token,
            hubs=tuple([hubs] if isinstance(hubs, str) else hubs),
            **options | config,  # type: ignore[arg-type]
        )
        buffer = TelemetryBuffer(buffer_dir, memory_limit=memory_limit)
        agent = Agent(
            settings,
            dispatcher,
            assets,
            buffer=buffer,
            rng=random.Random(4),
            device_status=device_status,
        )
        agent_box.append(agent)
        site = Site(agent, dispatcher, devices, local)
        started.append(site)
        await agent.start()
        if connect:
            async with asyncio.timeout(WAIT):
                await agent.wait_connected()
        return site

    yield start
    for site in started:
        await site.agent.stop()
        await site.dispatcher.close(release=False)


class Proxy:
    """A loopback TCP proxy in front of the hub that can cut or stall the link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stall(self) -> None:
        """Stop moving bytes; connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def drop(self) -> None:
        """Cut every connection (new ones are accepted)."""
        links, self._links = set(self._links), set()
        for task in links:
            task.cancel()
        for task in links:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(reader, upstream_writer))
                group.create_task(self._pipe(upstream_reader, writer))
        except* (ConnectionError, OSError):
            pass
        finally:
            for stream in (writer, upstream_writer):
                stream.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.close()


@pytest.fixture
async def proxy_factory() -> AsyncIterator[Callable[[int], Awaitable[Proxy]]]:
    proxies: list[Proxy] = []

    async def start(port: int) -> Proxy:
        proxy = Proxy(port)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.stop()


@pytest.fixture
def buffer_dir(tmp_path: Path) -> Path:
    return tmp_path / "buffer"
