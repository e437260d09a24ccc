"""Constants of the Edge EMS integration: the domain, config keys and defaults."""

from __future__ import annotations

from typing import Final

from edge_ems.site import DeviceKind, keys

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
CONF_MAX_CHARGE_W: Final = keys.MAX_CHARGE_W
CONF_MAX_DISCHARGE_W: Final = keys.MAX_DISCHARGE_W
CONF_CAPACITY_WH: Final = keys.CAPACITY_WH

# Site entry options: the link to an Edge EMS hub (see hub_link.py).
CONF_HUB: Final = "hub"
"""``host:port`` of the hub's gRPC gateway; several, comma-separated, for failover."""
CONF_HUB_TOKEN: Final = "hub_token"  # noqa: S105 - the option's key, not a token
CONF_HUB_AGENT_ID: Final = "hub_agent_id"
"""The agent the hub knows the token by; each site links as ``<agent>/<site id>``."""
DEFAULT_HUB_AGENT_ID: Final = "homeassistant"
"""The agent the app creates a token for and announces through discovery."""

# Site entry options: what Home Assistant gives the hub's planner (see plan_inputs.py).
CONF_PRICE_ENTITY: Final = "price_entity"
"""A sensor (or event) of another integration whose attributes list the day's prices."""
CONF_PRICE_KIND: Final = "price_kind"
PRICE_KIND_SPOT: Final = "spot"
"""The market price: the hub adds the site's tariff to it."""
PRICE_KIND_IMPORT: Final = "import"
"""What the home pays already (Tibber, Octopus): used as it is."""
CONF_SOLAR_FORECAST: Final = "solar_forecast"
"""Send the Energy dashboard's solar forecast."""

DEFAULT_ENABLE_CONTROL: Final = False
DEFAULT_DRY_RUN: Final = True
DEFAULT_LEASE_TTL: Final = 60.0
DEFAULT_EEPROM_DAILY_WRITES: Final = 100

# Device subentries: one subentry type per device kind, its data in the library's keys
# (edge_ems.site.keys), so a subentry is the same description a site file gives.
SUBENTRY_SUNSPEC: Final = DeviceKind.SUNSPEC.value
SUBENTRY_MODBUS: Final = DeviceKind.MODBUS.value
SUBENTRY_MQTT_BMS: Final = DeviceKind.MQTT_BMS.value
SUBENTRY_CAN_BMS: Final = DeviceKind.CAN_BMS.value
SUBENTRY_OPCUA: Final = DeviceKind.OPCUA.value
SUBENTRY_ACTUATOR: Final = "actuator"
"""Entities of another integration as one device (Home Assistant only: see actuator.py)."""

CONF_SERIAL: Final = "serial"
CONF_UNIT_ID: Final = keys.UNIT_ID
CONF_BASE_ADDRESS: Final = keys.BASE_ADDRESS
CONF_DEVICE_INDEX: Final = keys.DEVICE_INDEX
CONF_POINT_MAP: Final = keys.POINT_MAP
CONF_TRANSPORT: Final = keys.TRANSPORT
CONF_SERIAL_PORT: Final = keys.SERIAL_PORT
CONF_BAUDRATE: Final = keys.BAUDRATE
CONF_PARITY: Final = keys.PARITY
CONF_TOPIC_MAP: Final = keys.TOPIC_MAP
CONF_VARIABLES: Final = keys.VARIABLES
CONF_INTERFACE: Final = keys.INTERFACE
CONF_CHANNEL: Final = keys.CHANNEL
CONF_URL: Final = keys.URL
CONF_NODE_MAP: Final = keys.NODE_MAP
CONF_SECURITY: Final = keys.SECURITY
CONF_CERTIFICATE: Final = keys.CERTIFICATE
CONF_PRIVATE_KEY: Final = keys.PRIVATE_KEY
CONF_APPLICATION_URI: Final = keys.APPLICATION_URI
SECURITY_NONE: Final = keys.SECURITY_NONE

TRANSPORT_TCP: Final = keys.TRANSPORT_TCP
TRANSPORT_RTU: Final = keys.TRANSPORT_RTU
TRANSPORT_RTU_OVER_TCP: Final = keys.TRANSPORT_RTU_OVER_TCP


# Where entity writes come from, in audit records.
SOURCE_HA_ENTITY: Final = "ha_entity"

EVENT_AUDIT: Final = "edge_ems_audit"
