"""What agents send that the hub must not believe: samples stamped far in the future."""

from __future__ import annotations

from edge_ems.agent import Agent

from ..gateway.conftest import SiteFactory, eventually
from .conftest import LiveHub, now_ms

FAR_FUTURE_MS = 2**62


async def test_a_sample_from_the_future_is_dropped_and_counted_and_holds_no_ack(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm", flush_interval=3600)
    agent: Agent = site.agent
    minute_ago = (now_ms() // 60_000 - 2) * 60_000
    agent.publish_series("bess-1", "soc_pct", [minute_ago], [40.0])
    agent.publish_series("bess-1", "soc_pct", [FAR_FUTURE_MS], [99.0])
    agent.publish_series("bess-2", "soc_pct", [now_ms() + 3_600_000], [98.0])
    await agent.flush()
    await eventually(lambda: live.gateway.stats().batches == 1)

    telemetry = await live.json("/telemetry/bess-1")
    assert telemetry["values"]["soc_pct"]["value"] == 40.0
    assert telemetry["timestamp_ms"] == minute_ago
    assert "soc_pct" not in (await live.json("/telemetry/bess-2"))["values"]
    devices = {row["asset_id"]: row for row in (await live.json("/devices"))["devices"]}
    assert devices["bess-1"]["last_sample_ms"] == minute_ago
    snapshot = {row["asset_id"]: row for row in (await live.json("/export/snapshot"))["assets"]}
    assert snapshot["bess-1"]["values"]["soc_pct"]["timestamp_ms"] == minute_ago
    store = (await live.json("/health"))["store"]
    assert (store["future_samples"], store["dropped_samples"]) == (2, 2)

    # Only a closed minute is left in the batch: the next flush makes it durable.
    await live.store.flush()
    await eventually(lambda: agent.stats().durable_seq == 1)
