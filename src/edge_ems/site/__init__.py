"""One site: devices built from a description, polled, dispatched through one guarded path,
audited, and linked to the hub. Home Assistant and ``edge-ems agent`` both run a
:class:`Site`."""

from . import keys
from .description import DEFAULT_POLL_INTERVAL, DeviceSpec, HubSettings, SiteDescription
from .factory import (
    FACTORIES,
    SECURITY_CHOICES,
    BuildContext,
    Catalog,
    DeviceFactory,
    build_device,
    catalog_for,
    load_catalog,
    modbus_endpoint,
    opcua_security,
)
from .file import HubFileSettings, SiteFile, load_site_file, parse_site_file
from .follow import Deviation
from .keys import DeviceKind
from .learned import JsonFileStore, Learned, LearnedStore
from .site import Site, SiteDevice, Spawn

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "FACTORIES",
    "SECURITY_CHOICES",
    "BuildContext",
    "Catalog",
    "Deviation",
    "DeviceFactory",
    "DeviceKind",
    "DeviceSpec",
    "HubFileSettings",
    "HubSettings",
    "JsonFileStore",
    "Learned",
    "LearnedStore",
    "Site",
    "SiteDescription",
    "SiteDevice",
    "SiteFile",
    "Spawn",
    "build_device",
    "catalog_for",
    "keys",
    "load_catalog",
    "load_site_file",
    "modbus_endpoint",
    "opcua_security",
    "parse_site_file",
]
