"""Loses nothing: ``kill -9`` the hub process mid-stream, restart it, and every sample the
agent produced is stored exactly once (the agent keeps what was not acknowledged as durable
and resends it; the store drops what it already holds)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import pytest

from edge_ems.agent import Agent, AgentConfig, TelemetryBuffer
from edge_ems.dispatch import ControlPolicy, Dispatcher
from edge_ems.gateway import AssetInfo
from tests.lib.bms.support import free_port

from .gateway.conftest import eventually
from .test_app_process import API_TOKEN, WAIT, Api, Launch, launch, stop

__all__ = ["launch"]  # the fixture, imported for the test below

pytestmark = pytest.mark.slow

AGENT_TOKEN = "crash-agent-token-0123456789"
MINUTE = 60_000


async def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    launch: Launch, tmp_path: Path
) -> None:
    api_port, grpc_port = free_port(), free_port()
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"api_token: {API_TOKEN}\napi_port: {api_port}\ngrpc_port: {grpc_port}\n"
        f"store_path: {tmp_path / 'store.db'}\n"
        f"agents: [{{id: meter-gw, token: {AGENT_TOKEN}}}]\n"
    )
    agent = Agent(
        AgentConfig(
            agent_id="meter-gw",
            site_id="plant",
            token=AGENT_TOKEN,
            hubs=(f"127.0.0.1:{grpc_port}",),
            gateway_id="meter-gw",
            reconnect_base=0.05,
            reconnect_cap=0.5,
        ),
        Dispatcher("plant", ControlPolicy(), lambda record: None),
        [AssetInfo("meter-1", type="meter")],
        buffer=TelemetryBuffer(tmp_path / "buffer"),
        rng=random.Random(9),
    )
    # Samples a second apart over the last closed hours: 20 per batch, 300 batches.
    first = (round(time.time() * 1000) // MINUTE - 200) * MINUTE
    stamps = [first + n * 1000 for n in range(6000)]
    hub = await launch("-m", "edge_ems.hub", "--config", str(config), log="hub.log")
    await agent.start()
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, api_port)
            await api.up()
            for batch in range(300):
                chunk = slice(batch * 20, batch * 20 + 20)
                agent.publish_series("meter-1", "ac_power_w", stamps[chunk], [1.0] * 20)
                await agent.flush()
                if batch == 100:
                    hub.kill()  # SIGKILL: nothing is flushed, the agent's link breaks
                    await hub.wait()
                    hub = await launch(
                        "-m", "edge_ems.hub", "--config", str(config), log="hub2.log"
                    )
                    await api.up()
                await asyncio.sleep(0)
            last = agent.stats().buffer.next_seq - 1
            # A clean stop flushes what the hub accepted; a batch still in flight then
            # is resent to the next hub, so restart until the agent sees all durable.
            for _ in range(5):
                async with asyncio.timeout(WAIT):
                    await agent.backlog_below(1)
                sessions = agent.stats().sessions
                assert await stop(hub) == 0
                hub = await launch("-m", "edge_ems.hub", "--config", str(config), log="hub3.log")
                await api.up()
                await eventually(
                    lambda before=sessions: agent.stats().sessions > before and agent.connected
                )
                if agent.stats().durable_seq >= last:
                    break
            assert agent.stats().durable_seq == last
            # Durable is journaled; a clean stop writes it all, and the next hub serves it.
            assert await stop(hub) == 0
            hub = await launch("-m", "edge_ems.hub", "--config", str(config), log="hub4.log")
            await api.up()
            measured = await api.get(
                "/measurements",
                asset="meter-1",
                **{"from": str(first), "to": str(first + 101 * MINUTE)},
            )
            [series] = measured["series"]
            counts = {point[0]: point[5] for point in series["points"]}
            assert counts == {first + n * MINUTE: 60 for n in range(100)}
            assert {point[1] for point in series["points"]} == {1.0}
            assert await stop(hub) == 0
    finally:
        await agent.stop()
