"""Constants of the Edge EMS integration: the domain, config keys and defaults."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "edge_ems"

# Site entry data.
CONF_SITE_ID: Final = "site_id"
CONF_SITE_NAME: Final = "site_name"

# Site entry options (the control policy; see edge_ems.dispatch.ControlPolicy).
CONF_ENABLE_CONTROL: Final = "enable_control"
CONF_DRY_RUN: Final = "dry_run"
CONF_LEASE_TTL: Final = "lease_ttl"
CONF_EEPROM_DAILY_WRITES: Final = "eeprom_daily_writes"
CONF_BATTERIES: Final = "batteries"
"""Options: per-battery limits, by device id (the subentry id)."""
CONF_MAX_CHARGE_W: Final = "max_charge_w"
CONF_MAX_DISCHARGE_W: Final = "max_discharge_w"
CONF_CAPACITY_WH: Final = "capacity_wh"

# Site entry options: the link to an Edge EMS hub (see hub_link.py).
CONF_HUB: Final = "hub"
"""``host:port`` of the hub's gRPC gateway; several, comma-separated, for failover."""
CONF_HUB_TOKEN: Final = "hub_token"  # noqa: S105 - the option's key, not a token
CONF_HUB_AGENT_ID: Final = "hub_agent_id"
"""The agent the hub knows the token by; each site links as ``<agent>/<site id>``."""
DEFAULT_HUB_AGENT_ID: Final = "homeassistant"
"""The agent the app creates a token for and announces through discovery."""

DEFAULT_ENABLE_CONTROL: Final = False
DEFAULT_DRY_RUN: Final = True
DEFAULT_LEASE_TTL: Final = 60.0
DEFAULT_EEPROM_DAILY_WRITES: Final = 100

# Device subentries: one subentry type per device kind.
SUBENTRY_SUNSPEC: Final = "sunspec"
SUBENTRY_MODBUS: Final = "modbus"
SUBENTRY_MQTT_BMS: Final = "mqtt_bms"
SUBENTRY_CAN_BMS: Final = "can_bms"
SUBENTRY_OPCUA: Final = "opcua"

# Device subentry data.
CONF_KIND: Final = "kind"
CONF_SERIAL: Final = "serial"
CONF_UNIT_ID: Final = "unit_id"
CONF_BASE_ADDRESS: Final = "base_address"
"""SunSpec base address; absent means detect it."""
CONF_POINT_MAP: Final = "point_map"
CONF_TRANSPORT: Final = "transport"
CONF_SERIAL_PORT: Final = "serial_port"
CONF_BAUDRATE: Final = "baudrate"
CONF_PARITY: Final = "parity"
CONF_TOPIC_MAP: Final = "topic_map"
CONF_VARIABLES: Final = "variables"
"""MQTT topic-map placeholders (topic prefix, portal id...)."""
CONF_INTERFACE: Final = "interface"
CONF_CHANNEL: Final = "channel"
CONF_URL: Final = "url"
CONF_NODE_MAP: Final = "node_map"
CONF_SECURITY: Final = "security"
"""OPC UA message security: ``none`` or ``<policy>_<mode>``."""
CONF_CERTIFICATE: Final = "certificate"
CONF_PRIVATE_KEY: Final = "private_key"
CONF_APPLICATION_URI: Final = "application_uri"
SECURITY_NONE: Final = "none"

TRANSPORT_TCP: Final = "tcp"
TRANSPORT_RTU: Final = "rtu"
TRANSPORT_RTU_OVER_TCP: Final = "rtu_over_tcp"

SCAN_INTERVAL_SECONDS: Final = 10

# Where entity writes come from, in audit records.
SOURCE_HA_ENTITY: Final = "ha_entity"

EVENT_AUDIT: Final = "edge_ems_audit"
