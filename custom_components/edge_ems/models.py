"""What a loaded Edge EMS site entry holds at runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

from edge_ems.modbus import LinkRegistry

if TYPE_CHECKING:
    from edge_ems.device import Device
    from edge_ems.dispatch import Dispatcher

    from .audit import AuditLog
    from .coordinator import EdgeEmsCoordinator
    from .hub_link import HubLink


@dataclass
class EdgeEmsDevice:
    """One configured device: its subentry, the library device and its coordinator."""

    subentry_id: str
    device_id: str
    """Stable id of the device within the site: its subentry id."""
    name: str
    device: Device
    coordinator: EdgeEmsCoordinator


@dataclass
class EdgeEmsData:
    """The runtime data of one site entry."""

    site_id: str
    site_name: str
    dispatcher: Dispatcher
    audit: AuditLog
    devices: dict[str, EdgeEmsDevice] = field(default_factory=dict)
    """By device id."""
    links: LinkRegistry = field(default_factory=LinkRegistry)
    """The site's Modbus links: devices behind one gateway share its connection."""
    hub: HubLink | None = None
    """The site's agent, when the options link the site to a hub."""


type EdgeEmsConfigEntry = ConfigEntry[EdgeEmsData]
