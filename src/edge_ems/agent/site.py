"""The site file of ``edge-ems agent``: a site, its agent and its assets, in YAML.

::

    site: {id: farm, name: The farm}
    agent: {id: farm-gw, read_interval: 5, flush_interval: 10, buffer_dir: /var/lib/edge-ems}
    control: {enable_control: true, dry_run: false, lease_ttl: 60}
    assets:
      - id: bess-1                 # a simulated BESS (edge_ems.sim.bess)
        name: Barn battery
        capacity_wh: 200000
        max_charge_w: 100000
        max_discharge_w: 100000
        soc_pct: 60
      - id: bess-2                 # telemetry read from an OPC UA server
        capacity_wh: 100000
        max_charge_w: 50000
        max_discharge_w: 50000
        opcua:
          url: opc.tcp://10.0.0.5:4840/bess
          node_map: sim_bess       # a bundled node map, or a file
          telemetry_write_sim: false

With ``telemetry_write_sim: true`` the asset is simulated and its simulated telemetry is
written to the OPC UA nodes instead (seed 002's commissioning mode). The agent's id defaults
to the site's, and so does the gateway id: one agent serves the whole site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from ..dispatch import ControlPolicy
from ..exceptions import ConfigError

_ID = vol.All(str, vol.Length(min=1))
_WATTS = vol.All(vol.Coerce(float), vol.Range(min=0))
_SECONDS = vol.All(vol.Coerce(float), vol.Range(min=0.05))

_OPCUA = vol.Schema(
    {
        vol.Required("url"): _ID,
        vol.Required("node_map"): _ID,
        vol.Optional("telemetry_write_sim", default=False): bool,
        vol.Optional("username"): str,
        vol.Optional("password"): str,
    }
)
_ASSET = vol.Schema(
    {
        vol.Required("id"): _ID,
        vol.Optional("name", default=""): str,
        vol.Optional("type", default="battery"): str,
        vol.Optional("capacity_wh", default=10_000.0): _WATTS,
        vol.Optional("max_charge_w", default=5000.0): _WATTS,
        vol.Optional("max_discharge_w", default=5000.0): _WATTS,
        vol.Optional("soc_pct", default=50.0): vol.All(vol.Coerce(float), vol.Range(0, 100)),
        vol.Optional("opcua"): _OPCUA,
    }
)
_SITE = vol.Schema(
    {
        vol.Required("site"): {vol.Required("id"): _ID, vol.Optional("name", default=""): str},
        vol.Optional("agent", default={}): {
            vol.Optional("id"): _ID,
            vol.Optional("gateway_id"): str,
            vol.Optional("read_interval", default=5.0): _SECONDS,
            vol.Optional("flush_interval", default=10.0): _SECONDS,
            vol.Optional("buffer_dir"): str,
        },
        vol.Optional("control", default={}): {
            vol.Optional("enable_control", default=False): bool,
            vol.Optional("dry_run", default=True): bool,
            vol.Optional("lease_ttl", default=60.0): _SECONDS,
        },
        vol.Required("assets"): vol.All([_ASSET], vol.Length(min=1)),
    }
)


@dataclass(frozen=True, slots=True)
class OpcUaSource:
    """An asset's OPC UA server and the node map that describes it."""

    url: str
    node_map: str
    """A bundled node map's id, or a file."""
    telemetry_write_sim: bool = False
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class SiteAsset:
    """One asset of the site file."""

    asset_id: str
    name: str
    type: str
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    soc_pct: float
    """Initial state of charge of a simulated battery."""
    opcua: OpcUaSource | None = None

    @property
    def simulated(self) -> bool:
        """The agent simulates this asset (possibly writing its telemetry to OPC UA)."""
        return self.opcua is None or self.opcua.telemetry_write_sim


@dataclass(frozen=True, slots=True)
class SiteFile:
    """A validated site file."""

    site_id: str
    site_name: str
    agent_id: str
    gateway_id: str
    policy: ControlPolicy
    read_interval: float
    flush_interval: float
    buffer_dir: Path | None
    assets: tuple[SiteAsset, ...]


def parse_site(data: Any, *, source: str = "<site file>") -> SiteFile:
    """Validate a site file's content; :class:`ConfigError` names the key and the reason."""
    try:
        valid = _SITE(data)
    except vol.Invalid as err:
        where = ".".join(str(part) for part in err.path) or "(top)"
        raise ConfigError(f"{source}: {where}: {err.msg}") from None
    ids = [asset["id"] for asset in valid["assets"]]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: assets: ids must be unique")
    agent, control = valid["agent"], valid["control"]
    agent_id = agent.get("id", valid["site"]["id"])
    buffer_dir = agent.get("buffer_dir")
    return SiteFile(
        site_id=valid["site"]["id"],
        site_name=valid["site"]["name"],
        agent_id=agent_id,
        gateway_id=agent.get("gateway_id", agent_id),
        policy=ControlPolicy(
            enable_control=control["enable_control"],
            dry_run=control["dry_run"],
            lease_ttl=control["lease_ttl"],
        ),
        read_interval=agent["read_interval"],
        flush_interval=agent["flush_interval"],
        buffer_dir=None if buffer_dir is None else Path(buffer_dir),
        assets=tuple(_asset(asset) for asset in valid["assets"]),
    )


def load_site(path: str | Path) -> SiteFile:
    """Read and validate a site file (blocking: call it before the loop or in an executor)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return parse_site(data, source=str(path))


def _asset(spec: dict[str, Any]) -> SiteAsset:
    opcua = spec.get("opcua")
    return SiteAsset(
        asset_id=spec["id"],
        name=spec["name"] or spec["id"],
        type=spec["type"],
        capacity_wh=spec["capacity_wh"],
        max_charge_w=spec["max_charge_w"],
        max_discharge_w=spec["max_discharge_w"],
        soc_pct=spec["soc_pct"],
        opcua=None if opcua is None else OpcUaSource(**opcua),
    )
