"""A site as plain data: its devices, its control policy and its link to the hub.

The same description comes from a site file (``edge-ems agent``) or from Home Assistant's
config entry and its device subentries; :class:`~edge_ems.site.Site` is built from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dispatch import AssetLimits, ControlPolicy
from ..gateway.tls import ClientTls

DEFAULT_POLL_INTERVAL = 10.0
"""Seconds between reads of a device unless its description says otherwise."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One device of the site."""

    device_id: str
    """Stable within the site: the hub, the store and the audit know the device by it."""
    name: str
    kind: str
    """A :class:`~edge_ems.site.keys.DeviceKind`, or a kind a host adds a factory for."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Where and how the device is reached, in the keys of :mod:`edge_ems.site.keys`."""
    limits: AssetLimits | None = None
    """Set for a battery the site's power dispatch may use."""
    poll_interval: float | None = None
    """Seconds between reads; ``None`` takes the site's."""


@dataclass(frozen=True, slots=True)
class HubSettings:
    """Where the hub is and how the site's agent proves who it is."""

    hubs: tuple[str, ...]
    """``host:port`` of each hub, tried in order."""
    token: str
    agent_id: str
    tls: ClientTls | None = None
    reconnect_cap: float = 30.0
    max_batch_points: int = 10_000


@dataclass(frozen=True, slots=True)
class SiteDescription:
    """A whole site."""

    site_id: str
    name: str
    devices: tuple[DeviceSpec, ...] = ()
    policy: ControlPolicy = field(default_factory=ControlPolicy)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    hub: HubSettings | None = None
    gateway_id: str = ""
    """How the site's agent names itself to the hub in gateway mode (default: its id)."""
    flush_interval: float = 5.0
    """Seconds between telemetry batches to the hub."""
    buffer_dir: Path | None = None
    """Where telemetry waits while the hub is away; ``None`` keeps it in memory."""

    def device(self, device_id: str) -> DeviceSpec:
        """The device called ``device_id``; :class:`KeyError` if the site has none."""
        for spec in self.devices:
            if spec.device_id == device_id:
                return spec
        raise KeyError(device_id)

    def interval(self, spec: DeviceSpec) -> float:
        """Seconds between reads of ``spec``."""
        return spec.poll_interval if spec.poll_interval is not None else self.poll_interval
