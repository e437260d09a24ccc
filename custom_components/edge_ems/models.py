"""What a loaded Edge EMS site entry holds at runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

from .descriptions import DeviceDescriptions, describe

if TYPE_CHECKING:
    from edge_ems.dispatch import Dispatcher
    from edge_ems.site import Site, SiteDevice

    from .audit import AuditLog
    from .coordinator import EdgeEmsCoordinator
    from .plan import PlanCoordinator
    from .site import HaLearnedStore


@dataclass
class EdgeEmsDevice:
    """One configured device: its subentry, the site's device, its coordinator and the
    entities it has."""

    member: SiteDevice
    coordinator: EdgeEmsCoordinator
    descriptions: DeviceDescriptions = field(default_factory=DeviceDescriptions)
    """The device's entities, as far as what it reported so far shows."""
    described: frozenset[str] = frozenset()
    """The metrics ``descriptions`` were made from."""
    version: int = 0
    """Counts changes of ``descriptions``: each platform adds what a new version brings."""

    @property
    def device_id(self) -> str:
        """Stable id of the device within the site: its subentry id."""
        return self.member.device_id

    def refresh_descriptions(self) -> None:
        """Describe the device again when it reports metrics it had not (a new version)."""
        metrics = self.member.metrics
        if metrics != self.described:
            self.descriptions = describe(self.member)
            self.described = metrics
            self.version += 1

    @property
    def subentry_id(self) -> str:
        """The config subentry that describes the device."""
        return self.member.device_id

    @property
    def name(self) -> str:
        """The device's name (its subentry's title)."""
        return self.member.name


@dataclass
class EdgeEmsData:
    """The runtime data of one site entry."""

    site: Site
    audit: AuditLog
    learned: HaLearnedStore
    devices: dict[str, EdgeEmsDevice] = field(default_factory=dict)
    """By device id."""
    plan: PlanCoordinator | None = None
    """The site's plan, when a hub plans it."""

    @property
    def site_id(self) -> str:
        """The site's id."""
        return self.site.site_id

    @property
    def site_name(self) -> str:
        """The site's name."""
        return self.site.description.name

    @property
    def dispatcher(self) -> Dispatcher:
        """The site's guarded dispatch."""
        return self.site.dispatcher


type EdgeEmsConfigEntry = ConfigEntry[EdgeEmsData]
