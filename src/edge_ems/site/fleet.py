"""Many simulated sites in one process, each with its own agent and stream to the hub: what
``edge-ems launcher`` runs, to try a hub with a fleet and to benchmark it.

Each site ``<prefix>-<n>`` has simulated batteries and an agent ``<prefix>-<n>`` that reads
them every ``read_interval``. With a :class:`Flood`, every agent also sends synthetic
telemetry as fast as its link takes it (``metrics`` series of ``samples`` points per batch,
at most ``window`` batches queued), which is how the ingest benchmark loads the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..agent import TelemetryBuffer
from ..dispatch import AssetLimits, ControlPolicy
from ..metrics import METRICS, Category, MetricKind
from . import keys
from .description import DeviceSpec, HubSettings, SiteDescription
from .factory import Catalog
from .site import Site


@dataclass(frozen=True, slots=True)
class Flood:
    """Synthetic telemetry as fast as the link takes it."""

    metrics: int = 10
    samples: int = 50
    """Points per metric and batch."""
    window: int = 4
    """Batches queued per agent before it waits for its link."""


@dataclass(frozen=True, slots=True)
class FleetStats:
    """What the fleet did."""

    agents: int
    connected: int
    flooded_points: int
    durable_batches: int
    dropped_points: int


def simulated_site(
    index: int,
    *,
    prefix: str = "sim",
    assets: int = 2,
    read_interval: float = 5.0,
    flush_interval: float = 5.0,
    live: bool = True,
) -> SiteDescription:
    """Site ``<prefix>-<index>``: ``assets`` simulated 10 kWh / 5 kW batteries."""
    site_id = f"{prefix}-{index:04d}"
    battery = {keys.CAPACITY_WH: 10_000.0, keys.MAX_CHARGE_W: 5000.0, keys.MAX_DISCHARGE_W: 5000.0}
    return SiteDescription(
        site_id=site_id,
        name=f"Simulated site {index}",
        devices=tuple(
            DeviceSpec(
                f"{site_id}-bess-{n}",
                f"Battery {n}",
                keys.DeviceKind.SIM_BESS,
                {**battery, keys.SOC_PCT: 50.0},
                AssetLimits(5000.0, 5000.0, 10_000.0),
            )
            for n in range(1, assets + 1)
        ),
        policy=ControlPolicy(enable_control=live, dry_run=not live),
        poll_interval=read_interval,
        gateway_id=site_id,
        flush_interval=flush_interval,
    )


def flood_metrics(count: int) -> list[str]:
    """``count`` numeric battery and AC metrics of the vocabulary, in a stable order."""
    names = sorted(
        metric.name
        for metric in METRICS.values()
        if metric.kind is MetricKind.MEASUREMENT
        and metric.category in (Category.BATTERY, Category.AC)
    )
    return names[:count]


class Fleet:
    """``count`` simulated sites, one agent each, in this process."""

    def __init__(
        self,
        sites: Sequence[SiteDescription],
        hub: HubSettings,
        *,
        flood: Flood | None = None,
        memory_limit: int = 64 * 1024 * 1024,
    ) -> None:
        # Each site's agent is named for its site; simulated batteries need no maps.
        self.sites = [
            Site(
                dataclasses.replace(site, hub=dataclasses.replace(hub, agent_id=site.site_id)),
                Catalog(),
                buffer=TelemetryBuffer(memory_limit=memory_limit),
            )
            for site in sites
        ]
        self._flood = flood
        self._tasks: list[asyncio.Task[None]] = []
        self.flooded_points = 0

    async def start(self) -> None:
        """Start every site; return at once (agents connect in the background)."""
        for site in self.sites:
            await site.start()
        if self._flood is not None:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._flood_site(site, self._flood)) for site in self.sites
            ]

    async def stop(self) -> None:
        """Stop every site."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(site.stop() for site in self.sites))

    def stats(self) -> FleetStats:
        """Figures now."""
        agents = [site.agent for site in self.sites if site.agent is not None]
        stats = [agent.stats() for agent in agents]
        return FleetStats(
            agents=len(self.sites),
            connected=sum(s.connected for s in stats),
            flooded_points=self.flooded_points,
            durable_batches=sum(s.durable_seq for s in stats),
            dropped_points=sum(s.buffer.dropped_points for s in stats),
        )

    async def _flood_site(self, site: Site, flood: Flood) -> None:
        agent = site.agent
        assert agent is not None
        asset = site.description.devices[0].device_id
        metrics = flood_metrics(flood.metrics)
        values = [float(n % 100) for n in range(flood.samples)]
        while True:
            await agent.backlog_below(flood.window)
            end_ms = round(time.time() * 1000)
            timestamps = range(end_ms - flood.samples, end_ms)
            for metric in metrics:
                agent.publish_series(asset, metric, timestamps, values)
            await agent.flush()
            self.flooded_points += len(metrics) * flood.samples
