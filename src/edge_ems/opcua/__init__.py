"""OPC UA devices: node maps and an asyncua client with polling, subscriptions and reconnect."""

from .device import MODES, POLICIES, OpcUaDevice, OpcUaSecurity
from .nodemap import (
    NodeDevice,
    NodeMap,
    NodePoint,
    NodeWrite,
    ReadMode,
    catalog_paths,
    load_catalog,
    load_node_map,
    parse_node_map,
    validate_node_map,
)

__all__ = [
    "MODES",
    "POLICIES",
    "NodeDevice",
    "NodeMap",
    "NodePoint",
    "NodeWrite",
    "OpcUaDevice",
    "OpcUaSecurity",
    "ReadMode",
    "catalog_paths",
    "load_catalog",
    "load_node_map",
    "parse_node_map",
    "validate_node_map",
]
