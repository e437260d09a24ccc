"""Telemetry end to end: register, batches in seq order, acks only once the sink says durable,
and after link failures everything arrives exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from edge_ems.readings import Reading

from .conftest import Hub, HubFactory, MemorySink, Proxy, SiteFactory, eventually


def readings(
    second: int, assets: tuple[str, ...] = ("bess-1", "bess-2")
) -> dict[str, dict[str, Reading]]:
    timestamp = 1_700_000_000 + second
    return {
        asset: {
            "soc_pct": Reading("soc_pct", 50.0 + second / 100, timestamp),
            "battery_power_w": Reading("battery_power_w", float(second), timestamp),
            "battery_state": Reading("battery_state", "idle", timestamp),
        }
        for asset in assets
    }


async def test_register_then_telemetry_is_acked_only_when_durable(
    hub_factory: HubFactory, site_factory: SiteFactory
) -> None:
    sink = MemorySink()
    hub = await hub_factory(sink=sink)
    site = await site_factory(hub.address, flush_interval=3600)
    assert hub.server.connected_agents() == ["agent-1"]

    site.agent.publish(readings(0))
    await site.agent.flush()
    await eventually(lambda: sink.seqs("agent-1") == [1])
    assert len(sink.samples("agent-1")) == 6
    await asyncio.sleep(0.2)
    assert site.agent.stats().durable_seq == 0  # accepted, not durable: not acknowledged
    assert site.agent.stats().buffer.memory_batches == 1

    sink.make_durable()
    await eventually(lambda: site.agent.stats().durable_seq == 1)
    assert site.agent.stats().buffer.memory_batches == 0


async def test_batches_keep_their_order_and_seq(hub: Hub, site_factory: SiteFactory) -> None:
    site = await site_factory(hub.address, flush_interval=3600)
    for second in range(20):
        site.agent.publish(readings(second))
        await site.agent.flush()
    await eventually(lambda: len(hub.sink.seqs("agent-1")) == 20)
    assert hub.sink.seqs("agent-1") == list(range(1, 21))
    assert hub.server.stats().points == 20 * 6
    await eventually(lambda: site.agent.stats().durable_seq == 20)


async def test_a_full_batch_is_cut_early(hub: Hub, site_factory: SiteFactory) -> None:
    site = await site_factory(hub.address, flush_interval=3600, max_batch_points=100)
    site.agent.publish_series("bess-1", "soc_pct", list(range(150)), [50.0] * 150)
    await eventually(lambda: len(hub.sink.samples("agent-1")) == 150)


async def test_resend_after_link_failures_loses_and_duplicates_nothing(
    hub_factory: HubFactory,
    site_factory: SiteFactory,
    proxy_factory: Callable[[int], Awaitable[Proxy]],
) -> None:
    sink = MemorySink()
    hub = await hub_factory(sink=sink)
    proxy = await proxy_factory(hub.port)
    site = await site_factory(proxy.address, flush_interval=3600)
    sent = 0

    async def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            site.agent.publish(readings(sent))
            sent += 1
            await site.agent.flush()

    await send(5)
    await eventually(lambda: len(sink.seqs("agent-1")) == 5)
    sink.make_durable()
    await send(5)  # accepted by the sink, never made durable before the link breaks
    await eventually(lambda: len(sink.seqs("agent-1")) == 10)

    proxy.stall()
    await send(5)  # stuck in the stalled link
    await proxy.drop()
    proxy.resume()
    await send(5)  # while reconnecting
    await eventually(lambda: site.agent.connected and sink.accepted.get("agent-1") == 20)

    await proxy.drop()  # and once more, now with nothing durable past seq 5
    await send(5)
    await eventually(lambda: site.agent.connected and sink.accepted.get("agent-1") == 25)
    sink.make_durable()
    await eventually(lambda: site.agent.stats().durable_seq == 25)

    samples = sink.samples("agent-1")
    assert len(samples) == 25 * 6
    assert max(Counter(samples).values()) == 1
    assert sink.seqs("agent-1") == list(range(1, 26))
    assert site.agent.stats().sessions >= 3


async def test_a_store_restart_gets_the_undurable_batches_again(
    hub_factory: HubFactory, site_factory: SiteFactory
) -> None:
    sink = MemorySink()
    first = await hub_factory(sink=sink)
    site = await site_factory(first.address, flush_interval=3600)
    for second in range(4):
        site.agent.publish(readings(second))
        await site.agent.flush()
    await eventually(lambda: len(sink.seqs("agent-1")) == 4)
    sink.durable["agent-1"] = 2  # only the first two reached the disk
    await first.server.stop()
    sink.forget_undurable()

    second = await hub_factory(sink=sink, port=first.port)
    await eventually(lambda: site.agent.connected and sink.accepted.get("agent-1") == 4, within=60)
    assert second.server.connected_agents() == ["agent-1"]
    assert sink.seqs("agent-1") == [1, 2, 3, 4]
    assert max(Counter(sink.samples("agent-1")).values()) == 1


async def test_disconnected_agent_buffers_on_disk_and_survives_a_restart(
    hub_factory: HubFactory, site_factory: SiteFactory, buffer_dir: Path
) -> None:
    hub = await hub_factory()
    await hub.server.stop()  # the hub is down
    site = await site_factory(
        hub.address, buffer_dir=buffer_dir, flush_interval=3600, connect=False
    )
    for second in range(6):
        site.agent.publish(readings(second))
        await site.agent.flush()
    await site.agent.stop()  # an agent restart while the hub is away
    assert list(buffer_dir.glob("*.seg"))

    restarted = await site_factory(
        hub.address, buffer_dir=buffer_dir, flush_interval=3600, connect=False
    )
    restarted.agent.publish(readings(6))
    await restarted.agent.flush()
    back = await hub_factory(port=hub.port, sink=hub.sink)
    await eventually(lambda: restarted.agent.stats().durable_seq == 7, within=60)
    assert back.sink.seqs("agent-1") == list(range(1, 8))
    assert len(back.sink.samples("agent-1")) == 7 * 6
    await eventually(lambda: not list(buffer_dir.glob("*.seg")))


async def test_durability_reported_from_a_store_thread_is_acknowledged(
    hub_factory: HubFactory, site_factory: SiteFactory
) -> None:
    sink = MemorySink()
    hub = await hub_factory(sink=sink)
    site = await site_factory(hub.address, flush_interval=3600)
    site.agent.publish(readings(0))
    await site.agent.flush()
    await eventually(lambda: sink.seqs("agent-1") == [1])
    await asyncio.to_thread(sink.make_durable)  # as a store's writer thread would
    await eventually(lambda: site.agent.stats().durable_seq == 1)
