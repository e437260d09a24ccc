"""The planner on the hub's real gateway with a real agent over gRPC: the plan reaches the
site, its setpoints reach the site's batteries as leases through the agent's guarded
Dispatcher, the site's requests are answered and its series taken, and when the planner
stops sending the leases lapse and the batteries return to their safe mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_ems.dispatch import AuditRecord, Outcome, Reason
from edge_ems.gateway.errors import GatewayError
from edge_ems.gateway.model import PlanInputs, PlanRequest
from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.planning.config import parse_planner_config
from edge_ems.hub.planning.parts import PlannerParts, open_planner
from edge_ems.hub.store import MinuteStore, open_store
from edge_ems.planner.site_plan import SitePlan

from ..gateway.conftest import TOKEN, SiteFactory, eventually
from .conftest import SITE, minutes, price_document, write_json

PRAGUE = ZoneInfo("Europe/Prague")
POWER = "battery_power_setpoint_w"


def now_prague() -> datetime:
    return datetime.now(UTC).astimezone(PRAGUE)


@dataclass
class Hub:
    store: MinuteStore
    gateway: GatewayServer
    planner: PlannerParts
    audits: list[AuditRecord]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    port: int = 0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    now = now_prague()
    hours = [80.0] * 24
    hours[now.hour] = -40.0  # energy pays now: charge
    prices = write_json(tmp_path / "prices.json", price_document({now.date(): hours}))
    section: dict[str, Any] = {
        "time_zone": "Europe/Prague",
        "prices": {"source": "file", "path": str(prices), "area": "CZ",
                   "market_time_zone": "Europe/Prague", "replay": True},
        "dispatch": {"resend_s": 1, "lease_s": 2},
        "sites": [{"site_id": SITE}],
    }  # fmt: skip
    store = open_store(tmp_path / "store.db")
    await store.open()
    gateway = GatewayServer(store, {"agent-1": TOKEN})
    port = await gateway.start("127.0.0.1:0")
    audits: list[AuditRecord] = []
    planner = await open_planner(
        parse_planner_config(section), database=tmp_path / "store.db", instance="test",
        store=store, gateway=gateway, audit=audits.extend,
    )  # fmt: skip
    yield Hub(store, gateway, planner, audits, port)
    await planner.close()
    await gateway.stop()
    await store.close()


async def feed_soc(hub: Hub, soc: float = 50.0) -> None:
    now = now_prague()
    from edge_ems.gateway.model import SeriesSamples, TelemetryBatch

    samples = [
        SeriesSamples(asset, "soc_pct", [round(t.timestamp() * 1000) for t, _ in points],
                      [v for _, v in points])
        for asset in ("bess-1", "bess-2")
        if (points := minutes(now - timedelta(minutes=5), now, soc))
    ]  # fmt: skip
    await hub.store.accept(TelemetryBatch("feeder", SITE, 1, samples))


async def test_plan_setpoints_requests_and_inputs_over_the_gateway(
    hub: Hub, site_factory: SiteFactory
) -> None:
    site = await site_factory(hub.address, agent_id="agent-1", site_id=SITE)
    service = hub.planner.service
    await feed_soc(hub)
    await service.refresh_prices(service.now())
    result = await service.replan(SITE, "test")
    assert result.error is None, result.error
    # The plan reaches the site, as a document it reads.
    await eventually(lambda: site.agent.plan is not None)
    assert site.agent.plan is not None
    plan = SitePlan.parse(site.agent.plan.plan)
    assert plan.version == 1
    power = plan.battery_power_at(datetime.now(UTC))
    assert power is not None
    assert power < 0  # charging while energy pays
    # Its setpoints reach the batteries through the agent's Dispatcher, as leases.
    answers = await service.dispatch(SITE)
    assert [a.error for a in answers] == [None, None]
    assert {r.outcome for a in answers for r in a.records} == {Outcome.APPLIED}
    leases = site.dispatcher.leases()
    assert set(leases) == {"bess-1", "bess-2"}
    assert all(0 < left <= 2 for _, left in leases.values())
    assert site.batteries["bess-1"].battery.command_w < 0

    # The site asks: an override is taken and audited, a wrong one refused with its reason.
    end = round((datetime.now(UTC) + timedelta(minutes=30)).timestamp() * 1000)
    await site.agent.request_plan(
        PlanRequest("o1", "override", "ann", asset_id="bess-1", command=POWER, value=1000,
                    end_ms=end)
    )  # fmt: skip
    with pytest.raises(GatewayError, match="site 'farm' has no such asset"):
        await site.agent.request_plan(
            PlanRequest("o2", "override", "ann", asset_id="toaster", command=POWER, value=1,
                        end_ms=end)
        )  # fmt: skip
    assert [(r.outcome, r.reason, r.device_id) for r in hub.audits] == [
        (Outcome.APPLIED, Reason.WRITTEN, "bess-1"),
        (Outcome.REFUSED, Reason.UNKNOWN_DEVICE, "toaster"),
    ]
    await service.replan(SITE, "override")
    await service.dispatch(SITE)
    assert site.batteries["bess-1"].battery.command_w == 1000

    # A series the site knows is checked and kept.
    start = round(datetime.now(UTC).timestamp() // 3600 * 3600 * 1000)
    site.agent.send_plan_inputs(
        PlanInputs("spot_price", start, 3600, (0.1,) * 24, "EUR/kWh", "sensor.nordpool")
    )

    async def kept() -> bool:
        return "spot_price" in await hub.planner.records.inputs(SITE)

    async with asyncio.timeout(30):
        while not await kept():  # noqa: ASYNC110 - the state is in the database
            await asyncio.sleep(0.05)

    # The planner stops: nothing renews the leases, the batteries go back to safe mode.
    await eventually(lambda: not site.dispatcher.leases(), within=10)
    released = [r for r in site.local_audits if r.reason is Reason.LEASE_EXPIRED]
    assert {r.device_id for r in released} == {"bess-1", "bess-2"}
    assert site.batteries["bess-1"].battery.command_w == 0


async def test_a_site_that_connects_gets_its_plan(hub: Hub, site_factory: SiteFactory) -> None:
    service = hub.planner.service
    await feed_soc(hub)
    await service.refresh_prices(service.now())
    await service.replan(SITE, "before the site connects")
    site = await site_factory(hub.address, agent_id="agent-1", site_id=SITE)
    await eventually(lambda: site.agent.plan is not None)
    assert site.agent.plan is not None
    assert site.agent.plan.version == 1
