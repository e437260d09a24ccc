"""Telemetry points per second through real gRPC into the hub: with 1, 100 and 1000 agents
sending flat out, and with 10,000 agents connected at once at a steady rate.

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

The fleet case: ``FLEET`` agents connected at once, each on its own connection (a TCP
connection and a stream, as real sites), multiplexed ``FLEET // CLIENTS`` to a client
process (this file run with ``client``): lean raw gRPC clients, not whole agents, so the two
cores go to the hub. The fleet connects first (a steady 1,000 a second), then each agent
sends a batch of ``METRICS`` x ``SAMPLES`` points every ``FLEET_INTERVAL`` seconds (a steady
``FLEET * 500 / FLEET_INTERVAL`` points/s offered, stamped with the time they are sent) and
answers the hub's pings. The store runs as the hub runs it: each accepted batch goes to
the ingest journal, a group commit every ``FLEET_JOURNAL`` s writes (and fsyncs) what came
and acknowledges it, and the minutes are written once a minute, after they close; the
collector is set as the hub's process sets it (``edge_ems.hub.heap``). Figures:
the points/s the hub took per window (median), the hub process's resident memory at the end
(peak), and the p99 of the time from a batch's send to the ack that covers it, per window
(median, and the worst), over a minute of windows; targets >= 1,000,000 points/s, <= 1 GB
and < 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from _common import emit, median, progress
from edge_ems.gateway.model import TelemetryBatch
from edge_ems.gateway.proto import gateway_pb2 as pb
from edge_ems.gateway.transport import SERVICE_METHOD, auth_metadata, client_options
from edge_ems.hub.gateway import GatewayServer, GatewaySettings
from edge_ems.hub.heap import keep_heap_frozen, tune_collector
from edge_ems.hub.store import StoreSettings, open_store
from edge_ems.hub.telemetry import DurableCallback, TelemetrySink
from edge_ems.metrics import METRICS as VOCABULARY
from edge_ems.metrics import MetricKind

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
FLEET = 10_000
CLIENTS = 2
"""Client processes the fleet is multiplexed from: the machine has two cores."""
FLEET_INTERVAL = 5.0
"""Seconds between one agent's batches (the agents' default): 10,000 agents offer 1 M
points/s."""
FLEET_JOURNAL = 0.05
"""Seconds a journal group commit gathers batches for."""
FLEET_WINDOW = 10.0
FLEET_REPEATS = 6
"""A minute of windows: one of them always holds the store's minute flush (100,000 series
written at once)."""
FLEET_CONNECT_TIMEOUT = 300.0
FLEET_ACK_WAIT = 10.0
"""Seconds after the last window for its batches' acks to come in (later ones count as
never acknowledged)."""
FLEET_STALL = 30.0
"""Measure anyway once no agent has joined for this long (the figures say how many did)."""
CONNECT_PAUSE = 0.2
"""Seconds between each client's groups of 100 new connections (1,000 a second in all)."""
FLEET_TARGETS = {"points_per_s": 1_000_000, "hub_rss_mb": 1024, "ack_p99_ms": 250}


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


async def measure(agents: int, directory: Path) -> tuple[list[float], int, int]:
    """Points/s per window, the minute rows the store wrote meanwhile, and how many agents
    were connected."""
    settings = StoreSettings(flush_interval=FLUSH_EVERY, max_ack_delay=FLUSH_EVERY)
    async with open_store(directory / f"store-{agents}.db", settings) as store:
        store.start()
        rates, connected = await _measure(agents, store)
        return rates, store.status().rows_written, connected


async def _measure(agents: int, store: TelemetrySink) -> tuple[list[float], int]:
    tokens = {f"sim-{n:04d}": TOKEN for n in range(1, agents + 1)}
    server = GatewayServer(store, tokens)
    port = await server.start("127.0.0.1:0")
    processes = [
        await launch(first, min(PER_PROCESS, agents - first + 1), port)
        for first in range(1, agents + 1, PER_PROCESS)
    ]
    try:
        # A launcher's agents share one HTTP/2 connection; once some of them flood it, the
        # others' registrations can wait behind that traffic. Measure as far as it got
        # once no agent has joined for a while (the figures say how many).
        started = grown = time.monotonic()
        most = 0
        while (connected := len(server.connected_agents())) < agents:
            now = time.monotonic()
            if connected > most:
                most, grown = connected, now
            if now - grown > FLEET_STALL or now - started > 120:
                break
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        progress(f"  {connected} of {agents} agents connected in {elapsed:.1f} s")
        await asyncio.sleep(WARM_UP)
        rates = []
        for _ in range(REPEATS):
            before, t0 = server.stats().points, time.perf_counter()
            await asyncio.sleep(WINDOW)
            rates.append((server.stats().points - before) / (time.perf_counter() - t0))
            progress(f"  {agents} agents: {rates[-1]:,.0f} points/s")
        return rates, connected
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in processes:
            await process.wait()
        await server.stop()


# The fleet case: the hub here, lean clients in other processes.


def rss_mb() -> float:
    """This process's resident memory now, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def measure_fleet(directory: Path) -> dict[str, object]:
    """Connect ``FLEET`` agents at a steady rate; points/s, hub RSS and ack p99."""
    settings = StoreSettings(journal_interval=FLEET_JOURNAL)
    journal = directory / "store-fleet.journal"
    async with open_store(directory / "store-fleet.db", settings, journal=journal) as store:
        store.start()
        tokens = {f"fleet-{n:05d}": TOKEN for n in range(FLEET)}
        server = GatewayServer(store, tokens, settings=GatewaySettings(register_timeout=120))
        port = await server.start("127.0.0.1:0")
        tune_collector()
        heap = asyncio.get_running_loop().create_task(keep_heap_frozen())
        per_client = FLEET // CLIENTS
        clients = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "client",
                "--port",
                str(port),
                "--first",
                str(n * per_client),
                "--count",
                str(per_client),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for n in range(CLIENTS)
        ]
        try:
            started = shown = grown = time.monotonic()
            most = 0
            while (connected := len(server.connected_agents())) < FLEET:
                now = time.monotonic()
                if connected > most:
                    most, grown = connected, now
                if now - grown > FLEET_STALL or now - started > FLEET_CONNECT_TIMEOUT:
                    break  # measured as far as it got; the figures say how many
                if now - shown > 10:
                    shown = now
                    progress(f"  {connected} agents connected after {now - started:.0f} s")
                await asyncio.sleep(0.5)
            connect_s = time.monotonic() - started
            progress(f"  {connected} of {FLEET} agents connected in {connect_s:.1f} s")
            for client in clients:
                client.send_signal(signal.SIGUSR1)  # now the fleet sends
            await asyncio.sleep(WARM_UP + FLEET_INTERVAL)  # every agent has sent by then
            rates: list[float] = []
            windows: list[tuple[float, float]] = []
            peak_rss = rss_mb()
            batches, cpu = server.stats().batches, time.process_time()
            hub_lags: list[float] = []
            lagging = asyncio.get_running_loop().create_task(loop_lag(hub_lags))
            for _ in range(FLEET_REPEATS):
                before, t0, wall = server.stats().points, time.perf_counter(), time.time()
                await asyncio.sleep(FLEET_WINDOW)
                rates.append((server.stats().points - before) / (time.perf_counter() - t0))
                windows.append((wall, time.time()))
                peak_rss = max(peak_rss, rss_mb())
                progress(f"  {FLEET} agents: {rates[-1]:,.0f} points/s, hub {peak_rss:,.0f} MiB")
            # The hub's CPU per batch (this process: the hub's threads, the store's writer):
            # what one free core would take, whatever the clients take of the other.
            cpu_per_batch = (time.process_time() - cpu) / (server.stats().batches - batches)
            lagging.cancel()
            await asyncio.sleep(FLEET_ACK_WAIT)  # the last windows' acks come in
            connected_at_end = len(server.connected_agents())
        finally:
            for client in clients:
                with contextlib.suppress(ProcessLookupError):
                    client.send_signal(signal.SIGTERM)
            outputs = [await client.communicate() for client in clients]
            heap.cancel()
            await server.stop()
        rows = store.status().rows_written
    acks: list[tuple[float, float]] = []
    reconnects = 0
    client_lags: list[float] = []
    for output, _ in outputs:
        lines = output.decode().splitlines()
        if lines:
            report = json.loads(lines[-1])
            acks += [(sent, lag) for sent, lag in report["acks"]]
            acks += [(sent, math.inf) for sent in report["unacked"]]  # never acknowledged
            reconnects += report["reconnects"]
            client_lags += report["loop_lags"]
    p99s = [_p99([lag for sent, lag in acks if start <= sent < end]) for start, end in windows]
    progress("  ack p99 per window: " + ", ".join(f"{p * 1000:.0f} ms" for p in p99s))
    ack_p99 = median(p99s)
    return {
        "fleet_agents": FLEET,
        "fleet_client_processes": CLIENTS,
        "fleet_connected": connected,
        "fleet_connected_at_end": connected_at_end,
        "fleet_connect_s": round(connect_s, 1),
        "fleet_client_reconnects": reconnects,
        "fleet_offered_points_per_s": round(FLEET * METRICS * SAMPLES / FLEET_INTERVAL),
        "points_per_s_10000_agents": round(median(rates)),
        "hub_rss_mb_10000_agents": round(peak_rss),
        "ack_p99_ms_10000_agents": _ms(ack_p99),
        "ack_p99_ms_worst_window_10000_agents": _ms(max(p99s)),
        "fleet_window_s": FLEET_WINDOW,
        "fleet_windows": FLEET_REPEATS,
        "fleet_batches_sent_in_windows": sum(
            1 for sent, _ in acks if any(start <= sent < end for start, end in windows)
        ),
        "fleet_batches_unacked_in_windows": sum(
            1
            for sent, lag in acks
            if math.isinf(lag) and any(start <= sent < end for start, end in windows)
        ),
        "fleet_journal_commit_every_s": FLEET_JOURNAL,
        "hub_cpu_us_per_batch_10000_agents": round(cpu_per_batch * 1e6),
        # Where an ack's wait goes: the hub's event loop, and the load generators' own.
        "hub_loop_lag_p99_ms_10000_agents": round(_p99(hub_lags) * 1000),
        "fleet_client_loop_lag_p99_ms": round(_p99(client_lags) * 1000),
        "hub_points_per_cpu_s_10000_agents": round(METRICS * SAMPLES / cpu_per_batch),
        "store_rows_written_10000_agents": rows,
        "fleet_targets": FLEET_TARGETS,
    }


def _ms(seconds: float) -> int | None:
    return round(seconds * 1000) if math.isfinite(seconds) else None


async def loop_lag(lags: list[float], period: float = 0.1) -> None:
    """Note how late the event loop wakes a sleeper, every ``period`` seconds: how long
    anything ready waits for its turn."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        lags.append(loop.time() - due)


def _p99(values: Sequence[float]) -> float:
    """The 99th percentile; infinite when more than 1 % were never acknowledged."""
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


class FleetAgent:
    """One agent of a client process: registers, sends a batch every ``FLEET_INTERVAL``,
    answers pings, and notes how long each batch waited for its durable ack."""

    def __init__(
        self, agent_id: str, channel: grpc.aio.Channel, acks: list[list[float]], go: asyncio.Event
    ) -> None:
        self.agent_id = agent_id
        self.go = go
        self.channel = channel
        self.acks = acks
        self.sent: deque[tuple[int, float]] = deque()
        self.writing = asyncio.Lock()
        """A stream takes one write at a time: batches and heartbeats take turns."""
        self.reconnects = 0
        self.lost: list[float] = []
        self.state = "new"
        self.last_error = ""
        self.metrics = sorted(
            name for name, metric in VOCABULARY.items() if metric.kind is MetricKind.MEASUREMENT
        )[:METRICS]

    async def run(self, offset: float) -> None:
        """Keep a session up: connect again (after a pause) whenever one ends."""
        while True:
            try:
                await self._session(offset)
            except grpc.aio.AioRpcError as err:
                self.reconnects += 1
                self.last_error = f"{err.code().name} while {self.state}"
            except asyncio.InvalidStateError:
                self.reconnects += 1
                self.last_error = "InvalidStateError"
            offset = 0.0
            await asyncio.sleep(1.0)

    async def _session(self, offset: float) -> None:
        connect = self.channel.stream_stream(
            SERVICE_METHOD,
            request_serializer=pb.AgentMessage.SerializeToString,
            response_deserializer=pb.HubMessage.FromString,
        )
        # wait_for_ready: a connect that failed under load is tried again by gRPC.
        call = connect(metadata=auth_metadata(self.agent_id, TOKEN), wait_for_ready=True)
        asset = pb.Asset(asset_id=f"{self.agent_id}-meter", type="meter")
        register = pb.Register(
            protocol_version=1, agent_id=self.agent_id, site_id=self.agent_id, assets=[asset]
        )
        self.state = "connecting"
        await call.write(pb.AgentMessage(register=register))
        self.state = "registering"
        first = await call.read()
        self.state = "sending"
        if not isinstance(first, pb.HubMessage) or not first.HasField("register_ack"):
            raise RuntimeError(f"{self.agent_id} was not registered: {first!r}")
        self.lost += [sent for _, sent in self.sent]  # a broken session's batches never got acks
        self.sent.clear()
        reader = asyncio.get_running_loop().create_task(self._read(call))
        try:
            await self.go.wait()  # the whole fleet connects first, then sends
            await asyncio.sleep(offset)
            seq = first.register_ack.durable_seq
            while not reader.done():
                seq += 1
                now = time.time()
                stamps = [round(now * 1000) - (SAMPLES - n) * 80 for n in range(SAMPLES)]
                values = [float(n) for n in range(SAMPLES)]
                series = [
                    pb.Series(
                        asset_id=asset.asset_id, metric=metric, timestamps_ms=stamps, values=values
                    )
                    for metric in self.metrics
                ]
                self.sent.append((seq, now))
                async with self.writing:
                    await call.write(
                        pb.AgentMessage(telemetry=pb.Telemetry(seq=seq, series=series))
                    )
                await asyncio.sleep(FLEET_INTERVAL - (time.time() - now))
        finally:
            reader.cancel()
            call.cancel()

    async def _read(self, call: grpc.aio.StreamStreamCall[pb.AgentMessage, pb.HubMessage]) -> None:
        while isinstance(message := await call.read(), pb.HubMessage):
            if message.HasField("telemetry_ack"):
                durable, now = message.telemetry_ack.durable_seq, time.time()
                while self.sent and self.sent[0][0] <= durable:
                    _, sent = self.sent.popleft()
                    self.acks.append([sent, now - sent])
            elif message.HasField("ping"):
                beat = pb.Heartbeat(ping_nonce=message.ping.nonce)
                async with self.writing:
                    await call.write(pb.AgentMessage(heartbeat=beat))


async def client_main(port: int, first: int, count: int) -> None:
    """Run agents ``first`` .. ``first + count - 1`` until SIGTERM: connect them, and on
    SIGUSR1 start sending; print their acks at the end."""
    stop, go = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    acks: list[list[float]] = []
    rng = random.Random(first)
    # Each agent on a connection of its own, as real sites are: gRPC would otherwise share
    # one connection among the channels of a process that dial the same address.
    options = [*client_options(), ("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(count)
    ]
    tasks, agents = [], []
    for n, channel in enumerate(channels):
        agent = FleetAgent(f"fleet-{first + n:05d}", channel, acks, go)
        agents.append(agent)
        tasks.append(asyncio.ensure_future(agent.run(rng.uniform(0, FLEET_INTERVAL))))
        if n % 100 == 99:
            # A steady trickle of new connections: of thousands dialled in one burst, many
            # failed and waited out gRPC's reconnect backoff.
            await asyncio.sleep(CONNECT_PAUSE)
    waiting = [asyncio.ensure_future(event.wait()) for event in (go, stop)]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiting:
        waiter.cancel()
    lags: list[float] = []
    lagging = asyncio.get_running_loop().create_task(loop_lag(lags))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await stop.wait()
        if os.environ.get("FLEET_DEBUG"):  # each client's agents by state, every 10 s
            states = Counter(agent.state for agent in agents)
            reconnects = sum(agent.reconnects for agent in agents)
            errors = Counter(agent.last_error for agent in agents if agent.last_error)
            print(f"client {first}: {dict(states)}, {reconnects} reconnects", file=sys.stderr)
            print(f"client {first}: {errors.most_common(4)}", file=sys.stderr)
    lagging.cancel()
    failed = [task for task in tasks if task.done() and task.exception() is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    reconnects = sum(agent.reconnects for agent in agents)
    unacked = [sent for agent in agents for sent in [*agent.lost, *(t for _, t in agent.sent)]]
    report = {
        "acks": acks,
        "unacked": unacked,
        "failed": len(failed),
        "reconnects": reconnects,
        "loop_lags": lags,
    }
    print(json.dumps(report), flush=True)
    for channel in channels:
        await channel.close(None)


async def main(*, fleet_only: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING)
    result: dict[str, object] = {
        "bench": "gateway_ingest",
        "sink": "minute_store_sqlite",
        "store_flush_every_s": FLUSH_EVERY,
    }
    rate = 0.0
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as directory:
        for agents in () if fleet_only else FLEETS:
            progress(f"{agents} agent(s), batches of {METRICS} x {SAMPLES} points")
            rates, rows, connected = await measure(agents, Path(directory))
            rate = median(rates)
            label = "1_agent" if agents == 1 else f"{agents}_agents"
            result[f"points_per_s_{label}"] = round(rate)
            result[f"store_rows_written_{label}"] = rows
            result[f"connected_{label}"] = connected
        progress(
            f"{FLEET} agents at once, a batch of {METRICS} x {SAMPLES} points each "
            f"every {FLEET_INTERVAL:g} s, from {CLIENTS} client processes"
        )
        fleet = await measure_fleet(Path(directory))
    if not fleet_only:
        result |= {
            "target_points_per_s_1000_agents": TARGET,
            "ratio_1000_agents_to_target": round(rate / TARGET, 2),
        }
    result |= {
        "points_per_batch": METRICS * SAMPLES,
        "window_s": WINDOW,
        "repeats": REPEATS,
        "cpus": os.cpu_count(),
    } | fleet
    emit(result)


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        parser = argparse.ArgumentParser(prog="gateway_ingest.py client")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--first", type=int, required=True)
        parser.add_argument("--count", type=int, required=True)
        arguments = parser.parse_args(sys.argv[2:])
        asyncio.run(client_main(arguments.port, arguments.first, arguments.count))
    else:
        parser = argparse.ArgumentParser(prog="gateway_ingest.py")
        parser.add_argument("--fleet-only", action="store_true", help="the 10,000-agent case only")
        asyncio.run(main(fleet_only=parser.parse_args().fleet_only))
