"""A whole site without Home Assistant: what ``edge-ems agent`` runs.

Devices come from the site file (simulated BESS assets, OPC UA assets), dispatch goes through
the site's guarded :class:`Dispatcher`, and a read loop publishes every asset's readings to
the :class:`Agent` (and, for ``telemetry_write_sim`` assets, to their OPC UA nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..device import Device
from ..dispatch import AuditRecord, Dispatcher
from ..exceptions import DeviceConnectionError, DeviceError
from ..gateway.model import AssetInfo
from ..gateway.tls import ClientTls
from ..opcua import NodeMap, OpcUaDevice, load_catalog, load_node_map
from ..readings import Readings
from ..sim.bess import SimulatedBess
from ..sim.physics import Battery
from .buffer import TelemetryBuffer
from .client import Agent, AgentConfig
from .opcua_mirror import OpcUaTelemetryWriter
from .site import SiteAsset, SiteFile

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubLink:
    """Where the hub is and how the agent proves who it is."""

    hubs: tuple[str, ...]
    token: str
    tls: ClientTls | None = None
    reconnect_cap: float = 30.0
    max_batch_points: int = 10_000


class SiteRunner:
    """One site: its devices, its dispatcher, its agent and its read loop."""

    def __init__(
        self,
        site: SiteFile,
        link: HubLink,
        *,
        buffer: TelemetryBuffer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self._link = link
        self._clock = clock
        self.devices: dict[str, Device] = {}
        self._mirrors: dict[str, OpcUaTelemetryWriter] = {}
        self.dispatcher = Dispatcher(site.site_id, site.policy, self._audit, clock=clock)
        self._buffer = buffer or TelemetryBuffer(site.buffer_dir)
        self.agent: Agent | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Build and connect the devices, start the agent and the read loop."""
        maps = await asyncio.to_thread(_node_maps, self.site)
        for asset in self.site.assets:
            self._add(asset, maps)
        for asset_id, device in self.devices.items():
            try:
                await device.connect()
            except DeviceError as err:
                _LOGGER.warning("%s: not connected yet: %s", asset_id, err)
        config = AgentConfig(
            agent_id=self.site.agent_id,
            site_id=self.site.site_id,
            token=self._link.token,
            hubs=self._link.hubs,
            site_name=self.site.site_name,
            gateway_id=self.site.gateway_id,
            tls=self._link.tls,
            flush_interval=self.site.flush_interval,
            reconnect_cap=self._link.reconnect_cap,
            max_batch_points=self._link.max_batch_points,
        )
        assets = [_info(asset, self.devices[asset.asset_id]) for asset in self.site.assets]
        self.agent = Agent(config, self.dispatcher, assets, buffer=self._buffer, clock=self._clock)
        await self.agent.start()
        self._loop_task = asyncio.get_running_loop().create_task(
            self._read_loop(), name=f"edge_ems site {self.site.site_id} reads"
        )

    async def stop(self) -> None:
        """Stop reading, release leased devices, stop the agent, disconnect."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self.dispatcher.close()
        if self.agent is not None:
            await self.agent.stop()
        for mirror in self._mirrors.values():
            await mirror.close()
        for device in self.devices.values():
            await device.close()

    async def read_once(self) -> None:
        """Read every device once and publish what came back."""
        published: dict[str, Readings] = {}
        for asset_id, device in self.devices.items():
            try:
                readings = await device.read()
            except DeviceConnectionError:
                with contextlib.suppress(DeviceError):
                    await device.connect()  # OPC UA devices that were never reached
                continue
            except DeviceError as err:
                _LOGGER.debug("%s: read failed: %s", asset_id, err)
                continue
            self.dispatcher.observe(asset_id, readings)
            published[asset_id] = readings
            mirror = self._mirrors.get(asset_id)
            if mirror is not None:
                await mirror.write(readings)
        if self.agent is not None and published:
            self.agent.publish(published)

    async def _read_loop(self) -> None:
        while True:
            await self.read_once()
            await asyncio.sleep(self.site.read_interval)

    def _add(self, asset: SiteAsset, maps: Mapping[str, NodeMap]) -> None:
        source = asset.opcua
        if asset.simulated:
            battery = Battery(
                capacity_wh=asset.capacity_wh,
                max_charge_w=asset.max_charge_w,
                max_discharge_w=asset.max_discharge_w,
                soc_pct=asset.soc_pct,
            )
            bess = SimulatedBess(asset.asset_id, battery, name=asset.name, clock=self._clock)
            self.devices[asset.asset_id] = bess
            self.dispatcher.add_device(asset.asset_id, bess, bess.limits)
            if source is not None:
                self._mirrors[asset.asset_id] = OpcUaTelemetryWriter(
                    asset.name,
                    maps[source.node_map],
                    url=source.url,
                    username=source.username,
                    password=source.password,
                )
            return
        assert source is not None
        device = OpcUaDevice(
            asset.name,
            maps[source.node_map],
            url=source.url,
            username=source.username,
            password=source.password,
            clock=self._clock,
        )
        self.devices[asset.asset_id] = device
        limits = _info(asset, device).limits
        self.dispatcher.add_device(asset.asset_id, device, limits)

    def _audit(self, record: AuditRecord) -> None:
        _LOGGER.info(
            "Dispatch %s %s=%s on %s by %s: %s (%s)",
            record.outcome,
            record.command,
            record.applied,
            record.device_id,
            record.requested_by,
            record.reason,
            record.message,
        )
        if self.agent is not None:
            self.agent.report_audit(record)


def _info(asset: SiteAsset, device: Device) -> AssetInfo:
    allowed = tuple(sorted(m for m, c in device.commands.items() if c.allow_write))
    return AssetInfo(
        asset_id=asset.asset_id,
        name=asset.name,
        type=asset.type,
        capacity_wh=asset.capacity_wh,
        max_charge_w=asset.max_charge_w,
        max_discharge_w=asset.max_discharge_w,
        commands=allowed,
    )


def _node_maps(site: SiteFile) -> dict[str, NodeMap]:
    """The node maps the site's OPC UA assets name: bundled ids or files (blocking)."""
    wanted = {asset.opcua.node_map for asset in site.assets if asset.opcua is not None}
    if not wanted:
        return {}
    catalog = load_catalog()
    return {
        name: catalog[name] if name in catalog else load_node_map(Path(name)) for name in wanted
    }
