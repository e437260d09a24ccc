"""Who serves what: the hub's asset inventory, the agents that registered, their sessions.

The inventory is the hub's configuration (a YAML list of assets with their sites); agents add
what they register. The two merge by asset id, the configured names winning. Behind the REST
API's ``/assets`` (:meth:`SessionRegistry.assets`) and ``/agents``
(:meth:`SessionRegistry.agents`: one row per asset, with its agent's peer, whether it is
connected, and its recent sessions). Hubs sharing one database also show the agents the
others serve (:meth:`SessionRegistry.set_remote`, fed from the store by the session log);
an agent connected here wins over what another hub says of it. Plain bookkeeping, no I/O:
the gateway drives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from ..exceptions import ConfigError
from ..gateway.model import AssetInfo, DeviceStatus, Registration


@dataclass(frozen=True, slots=True)
class InventoryAsset:
    """One configured asset."""

    asset_id: str
    site_id: str
    name: str = ""
    site_name: str = ""
    type: str = ""
    capacity_wh: float = 0.0
    max_charge_w: float = 0.0
    max_discharge_w: float = 0.0
    agent_id: str = ""
    """The configured agent (a token's owner) whose agents alone may register the asset;
    empty: whichever credential registers it first."""


_LIMIT = vol.All(vol.Coerce(float), vol.Range(min=0))
_ASSET = vol.Schema(
    {
        vol.Required("asset_id"): vol.All(str, vol.Length(min=1)),
        vol.Required("site_id"): vol.All(str, vol.Length(min=1)),
        vol.Optional("name", default=""): str,
        vol.Optional("site_name", default=""): str,
        vol.Optional("type", default=""): str,
        vol.Optional("capacity_wh", default=0.0): _LIMIT,
        vol.Optional("max_charge_w", default=0.0): _LIMIT,
        vol.Optional("max_discharge_w", default=0.0): _LIMIT,
        vol.Optional("agent_id", default=""): str,
    }
)
_INVENTORY = vol.Schema({vol.Required("assets"): [_ASSET]})


def parse_inventory(data: Any, *, source: str = "<inventory>") -> tuple[InventoryAsset, ...]:
    """Validate an inventory: ``{"assets": [...]}`` or the bare list."""
    if isinstance(data, list):
        data = {"assets": data}
    try:
        valid = _INVENTORY(data)
    except vol.Invalid as err:
        where = ".".join(str(part) for part in err.path)
        raise ConfigError(f"{source}: {where}: {err.msg}") from None
    assets = tuple(InventoryAsset(**asset) for asset in valid["assets"])
    ids = [asset.asset_id for asset in assets]
    if len(set(ids)) != len(ids):
        repeated = sorted({asset_id for asset_id in ids if ids.count(asset_id) > 1})
        raise ConfigError(f"{source}: asset ids repeated: {', '.join(repeated)}")
    return assets


def load_inventory(path: str | Path) -> tuple[InventoryAsset, ...]:
    """Read an inventory file (blocking: call it from an executor or before the loop runs)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return parse_inventory(data, source=str(path))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stream of one agent."""

    session_id: str
    agent_id: str
    peer: str
    started: float
    """Seconds since the epoch."""
    ended: float | None = None
    end_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AssetRow:
    """A row of ``/assets``."""

    asset_id: str
    name: str
    site_id: str
    site_name: str
    type: str
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    configured: bool
    """In the hub's inventory (otherwise only registered by an agent)."""
    agent_id: str | None
    connected: bool

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AgentRow:
    """A row of ``/agents``: one per asset, with the agent that serves it."""

    asset_id: str
    asset_name: str
    site_id: str
    site_name: str
    agent_id: str | None
    peer: str | None
    connected: bool
    last_seen: float | None
    buffered_batches: int
    dropped_points: int
    sessions: tuple[SessionRecord, ...]
    """Most recent first."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class _Agent:
    registration: Registration
    current: SessionRecord | None = None
    history: tuple[SessionRecord, ...] = ()
    """Newest first. A tuple, not a bounded deque: a deque's first block is some 600 bytes,
    6 MB of a 10,000-agent hub for a session or two each."""
    last_seen: float | None = None
    buffered_batches: int = 0
    dropped_points: int = 0
    devices: dict[str, ReportedStatus] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportedStatus:
    """A device's polling status as its agent last reported it, and when (seconds)."""

    status: DeviceStatus
    reported: float


class SessionRegistry:
    """The inventory, the agents' registrations and their sessions."""

    def __init__(
        self,
        inventory: Iterable[InventoryAsset] = (),
        *,
        clock: Callable[[], float] = time.time,
        history: int = 10,
    ) -> None:
        self._inventory = {asset.asset_id: asset for asset in inventory}
        self._clock = clock
        self._history = history
        self._agents: dict[str, _Agent] = {}
        self._owners: dict[str, str] = {}
        """Asset id to the agent that registered it last."""
        self._remote: dict[str, tuple[Registration, bool, str]] = {}
        """Agents of other hubs on a shared database: registration, connected, hub."""
        self._remote_owners: dict[str, str] = {}

    def open(self, registration: Registration, session_id: str, peer: str) -> SessionRecord:
        """Record a new session of ``registration.agent_id`` (its previous one must be closed)."""
        agent_id = registration.agent_id
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = self._agents[agent_id] = _Agent(registration)
        else:
            for asset_id in agent.registration.asset_ids - registration.asset_ids:
                if self._owners.get(asset_id) == agent_id:
                    del self._owners[asset_id]
            agent.registration = registration
        for asset_id in registration.asset_ids:
            self._owners[asset_id] = agent_id
        record = SessionRecord(session_id, agent_id, peer, self._clock())
        agent.current = record
        agent.last_seen = record.started
        agent.history = (record, *agent.history)[: self._history]
        return record

    def close(self, record: SessionRecord, reason: str) -> None:
        """Record the end of a session."""
        agent = self._agents.get(record.agent_id)
        if agent is None:
            return
        ended = SessionRecord(
            record.session_id, record.agent_id, record.peer, record.started, self._clock(), reason
        )
        agent.history = tuple(
            ended if past.session_id == record.session_id else past for past in agent.history
        )
        if agent.current is not None and agent.current.session_id == record.session_id:
            agent.current = None

    def seen(
        self,
        agent_id: str,
        *,
        buffered_batches: int | None = None,
        dropped: int = 0,
        devices: Iterable[DeviceStatus] = (),
    ) -> None:
        """Note a message from ``agent_id`` (with a heartbeat's figures, when it was one: its
        buffer and how polling its devices goes, kept for the assets it registered)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.last_seen = self._clock()
        if buffered_batches is not None:
            agent.buffered_batches, agent.dropped_points = buffered_batches, dropped
        own = agent.registration.asset_ids
        for status in devices:
            if status.asset_id in own:
                agent.devices[status.asset_id] = ReportedStatus(status, agent.last_seen)

    def device_status(self, asset_id: str) -> ReportedStatus | None:
        """How polling ``asset_id`` goes, as the agent serving it here last reported."""
        agent = self._agents.get(self._owners.get(asset_id, ""))
        return None if agent is None else agent.devices.get(asset_id)

    def forget(self, agent_id: str) -> None:
        """Drop a disconnected agent and its assets' rows (they come back if it registers)."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        for asset_id in agent.registration.asset_ids:
            if self._owners.get(asset_id) == agent_id:
                del self._owners[asset_id]

    def agent_ids(self) -> list[str]:
        """Every agent that registered since the hub started, sorted."""
        return sorted(self._agents)

    def last_seen(self, agent_id: str) -> float | None:
        """When ``agent_id`` last sent anything (seconds since the epoch)."""
        agent = self._agents.get(agent_id)
        return None if agent is None else agent.last_seen

    def configured(self, asset_id: str) -> InventoryAsset | None:
        """The inventory's entry of ``asset_id``."""
        return self._inventory.get(asset_id)

    def configured_site_agents(self, site_id: str) -> list[str]:
        """The agents the inventory names for assets of ``site_id``, sorted."""
        return sorted(
            {
                asset.agent_id
                for asset in self._inventory.values()
                if asset.site_id == site_id and asset.agent_id
            }
        )

    def registration(self, agent_id: str) -> Registration | None:
        """What ``agent_id`` registered last."""
        agent = self._agents.get(agent_id)
        return None if agent is None else agent.registration

    def connected(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has a session now."""
        agent = self._agents.get(agent_id)
        return agent is not None and agent.current is not None

    def owner(self, asset_id: str) -> str | None:
        """The agent that serves ``asset_id`` (connected or not), if any registered it here."""
        return self._owners.get(asset_id)

    def set_remote(self, agents: Iterable[tuple[Registration, bool, str]]) -> set[str]:
        """What other hubs on the shared database serve: each agent's registration, whether
        it is connected there, and that hub's name (replaces what was set before). Returns
        the sites of the agents connected there since the last call."""
        before = self._remote
        self._remote = {
            registration.agent_id: (registration, connected, hub)
            for registration, connected, hub in agents
        }
        joined = {
            registration.site_id
            for agent_id, (registration, connected, _) in self._remote.items()
            if connected and not (agent_id in before and before[agent_id][1])
        }
        self._remote_owners = {
            asset_id: agent_id
            for agent_id, (registration, _, _) in sorted(self._remote.items())
            for asset_id in registration.asset_ids
        }
        return joined

    def remote_owner(self, asset_id: str) -> tuple[str, str] | None:
        """The agent serving ``asset_id`` through another hub, and that hub, if connected."""
        agent_id = self._remote_owners.get(asset_id)
        if agent_id is None or not self._remote[agent_id][1] or self.connected(agent_id):
            return None
        return agent_id, self._remote[agent_id][2]

    def local_registrations(self) -> dict[str, tuple[Registration, bool]]:
        """Every agent registered here: its registration and whether it is connected."""
        return {
            agent_id: (agent.registration, agent.current is not None)
            for agent_id, agent in self._agents.items()
        }

    def site_agents(self, site_id: str) -> list[str]:
        """Agents registered for ``site_id``, sorted."""
        return sorted(
            agent_id
            for agent_id, agent in self._agents.items()
            if agent.registration.site_id == site_id
        )

    def remote_site_registrations(self, site_id: str) -> list[Registration]:
        """What the agents of ``site_id`` registered at other hubs on the shared database,
        sorted by agent."""
        return [
            registration
            for _, (registration, _, _) in sorted(self._remote.items())
            if registration.site_id == site_id
        ]

    def knows_asset(self, asset_id: str) -> bool:
        """Configured or registered (here or at another hub)."""
        return (
            asset_id in self._inventory
            or asset_id in self._owners
            or asset_id in self._remote_owners
        )

    def knows_site(self, site_id: str) -> bool:
        """Configured or registered."""
        return any(asset.site_id == site_id for asset in self._inventory.values()) or bool(
            self.site_agents(site_id)
        )

    def assets(self) -> list[AssetRow]:
        """Every configured or registered asset, by site and id."""
        rows = [self._asset_row(asset_id) for asset_id in self._asset_ids()]
        return sorted(rows, key=lambda row: (row.site_id, row.asset_id))

    def agents(self) -> list[AgentRow]:
        """One row per configured or registered asset, by site and id."""
        rows = []
        for asset in self.assets():
            agent = self._agents.get(asset.agent_id or "")
            current = agent.current if agent is not None else None
            rows.append(
                AgentRow(
                    asset_id=asset.asset_id,
                    asset_name=asset.name,
                    site_id=asset.site_id,
                    site_name=asset.site_name,
                    agent_id=asset.agent_id,
                    peer=None if current is None else current.peer,
                    connected=asset.connected,
                    last_seen=None if agent is None else agent.last_seen,
                    buffered_batches=0 if agent is None else agent.buffered_batches,
                    dropped_points=0 if agent is None else agent.dropped_points,
                    sessions=() if agent is None else agent.history,
                )
            )
        return rows

    def _asset_ids(self) -> set[str]:
        return set(self._inventory) | set(self._owners) | set(self._remote_owners)

    def _serving(self, asset_id: str) -> tuple[str | None, Registration | None, bool]:
        """The agent serving ``asset_id``, its registration and whether it is connected: the
        agent here, unless it is not connected and another hub's agent is."""
        agent_id = self._owners.get(asset_id)
        registration = self.registration(agent_id) if agent_id is not None else None
        local = (agent_id, registration, agent_id is not None and self.connected(agent_id))
        remote_id = self._remote_owners.get(asset_id)
        if remote_id is None or local[2] or self.connected(remote_id):
            return local
        remote, connected, _ = self._remote[remote_id]
        if agent_id is not None and not connected:
            return local
        return remote_id, remote, connected

    def _asset_row(self, asset_id: str) -> AssetRow:
        agent_id, registration, connected = self._serving(asset_id)
        registered = _registered(registration, asset_id)
        configured = self._inventory.get(asset_id) or InventoryAsset(
            asset_id, registration.site_id if registration is not None else ""
        )
        return AssetRow(
            asset_id=asset_id,
            name=configured.name or registered.name,
            site_id=configured.site_id,
            site_name=configured.site_name
            or (registration.site_name if registration is not None else ""),
            type=configured.type or registered.type,
            capacity_wh=configured.capacity_wh or registered.capacity_wh,
            max_charge_w=configured.max_charge_w or registered.max_charge_w,
            max_discharge_w=configured.max_discharge_w or registered.max_discharge_w,
            configured=asset_id in self._inventory,
            agent_id=agent_id,
            connected=connected,
        )


def _registered(registration: Registration | None, asset_id: str) -> AssetInfo:
    """What the agent registered about ``asset_id`` (an empty record if nothing)."""
    if registration is not None:
        for asset in registration.assets:
            if asset.asset_id == asset_id:
                return asset
    return AssetInfo(asset_id)
