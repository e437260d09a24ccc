"""The site's link to the Edge EMS hub: the library's agent, fed by the coordinators.

When a site entry's options name a hub (typed in, or announced by the app through Supervisor
discovery), the site registers its devices with the hub as assets, streams every coordinator
update as telemetry, forwards the audit records made here (actions, entity writes, leases
lapsing), and carries out the hub's setpoints through the site's own guarded Dispatcher, so
a write from the hub passes the same guards and lands in the same audit log as one from HA.
While the hub is away telemetry waits in a buffer on disk under ``.storage``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.storage import STORAGE_DIR

from edge_ems.agent import Agent, AgentConfig, TelemetryBuffer
from edge_ems.dispatch import AuditRecord
from edge_ems.gateway.model import AssetInfo
from edge_ems.metrics import BATTERY_POWER

from .const import (
    CONF_CAPACITY_WH,
    CONF_HUB,
    CONF_HUB_AGENT_ID,
    CONF_HUB_TOKEN,
    CONF_MAX_CHARGE_W,
    CONF_MAX_DISCHARGE_W,
    DEFAULT_HUB_AGENT_ID,
    DOMAIN,
    EVENT_AUDIT,
)
from .models import EdgeEmsConfigEntry, EdgeEmsData

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubSettings:
    """Where the hub is and who this site is to it."""

    hubs: tuple[str, ...]
    token: str
    agent_id: str


def hub_addresses(text: str) -> tuple[str, ...]:
    """``host:port`` addresses from a comma-separated list; :class:`ValueError` if one is not."""
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not host:port: {address!r}")
    return addresses


def hub_settings(options: Mapping[str, Any], site_id: str) -> HubSettings | None:
    """The hub link the options ask for, or ``None`` for a site without one."""
    try:
        addresses = hub_addresses(str(options.get(CONF_HUB) or ""))
    except ValueError:
        _LOGGER.warning("Site %s: the hub address is not host:port; not linking", site_id)
        return None
    token = options.get(CONF_HUB_TOKEN)
    if not addresses or not token:
        return None
    agent = options.get(CONF_HUB_AGENT_ID) or DEFAULT_HUB_AGENT_ID
    return HubSettings(addresses, str(token), f"{agent}/{site_id}")


def asset_infos(site: EdgeEmsData, batteries: Mapping[str, Any]) -> list[AssetInfo]:
    """The site's devices as the hub's assets: batteries with their limits, the rest by name."""
    assets = []
    for device_id, member in sorted(site.devices.items()):
        commands = tuple(
            sorted(name for name, cmd in member.device.commands.items() if cmd.allow_write)
        )
        limits = batteries.get(device_id) or {}
        is_battery = BATTERY_POWER in commands and bool(limits)
        assets.append(
            AssetInfo(
                asset_id=device_id,
                name=member.name,
                type="battery" if is_battery else "device",
                capacity_wh=float(limits.get(CONF_CAPACITY_WH, 0.0)),
                max_charge_w=float(limits.get(CONF_MAX_CHARGE_W, 0.0)),
                max_discharge_w=float(limits.get(CONF_MAX_DISCHARGE_W, 0.0)),
                commands=commands,
            )
        )
    return assets


class HubLink:
    """One site's agent inside Home Assistant."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: EdgeEmsConfigEntry,
        site: EdgeEmsData,
        settings: HubSettings,
        batteries: Mapping[str, Any],
    ) -> None:
        self._hass = hass
        self._entry = entry
        self._site = site
        self._settings = settings
        self._batteries = batteries
        self._unsubscribe: list[Callable[[], None]] = []
        self.agent: Agent | None = None

    async def async_start(self) -> None:
        """Register with the hub and start streaming (the agent connects in the background)."""
        directory = Path(self._hass.config.path(STORAGE_DIR, DOMAIN, self._entry.entry_id))
        await self._hass.async_add_executor_job(_make_directory, directory)
        config = AgentConfig(
            agent_id=self._settings.agent_id,
            site_id=self._site.site_id,
            token=self._settings.token,
            hubs=self._settings.hubs,
            site_name=self._site.site_name,
            gateway_id=f"ha-{self._entry.entry_id}",
        )
        agent = Agent(
            config,
            self._site.dispatcher,
            asset_infos(self._site, self._batteries),
            buffer=TelemetryBuffer(directory / "telemetry"),
        )
        await agent.start()
        self.agent = agent
        for device_id, member in self._site.devices.items():
            self._unsubscribe.append(
                member.coordinator.async_add_listener(self._publisher(device_id))
            )
        self._unsubscribe.append(self._hass.bus.async_listen(EVENT_AUDIT, self._forward_audit))

    async def async_stop(self) -> None:
        """Stop streaming; what the hub has not confirmed stays on disk for next time."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.stop()

    def _publisher(self, device_id: str) -> Callable[[], None]:
        coordinator = self._site.devices[device_id].coordinator

        @callback
        def publish() -> None:
            if self.agent is not None and coordinator.last_update_success and coordinator.data:
                self.agent.publish({device_id: coordinator.data})

        return publish

    @callback
    def _forward_audit(self, event: Event[dict[str, Any]]) -> None:
        if self.agent is None or event.data.get("config_entry_id") != self._entry.entry_id:
            return
        self.agent.report_audit(AuditRecord.from_dict(event.data["record"]))


def _make_directory(path: Path) -> None:
    (path / "telemetry").mkdir(parents=True, exist_ok=True)
