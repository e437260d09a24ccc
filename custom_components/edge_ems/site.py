"""The library's Site as Home Assistant describes it: the entry, its subentries, its options.

A site entry's device subentries hold the same settings a site file gives
(:mod:`edge_ems.site.keys`), so the library builds every device; Home Assistant adds only
what is its own: MQTT batteries read through its MQTT connection, what devices learned kept
in its storage, the telemetry buffer under ``.storage``, its task tracking.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import STORAGE_DIR, Store

from edge_ems.bms import TopicMapDecoder
from edge_ems.device import Device
from edge_ems.dispatch import AssetLimits, ControlPolicy
from edge_ems.gateway.transport import parse_addresses
from edge_ems.site import (
    FACTORIES,
    BuildContext,
    Catalog,
    DeviceFactory,
    DeviceKind,
    DeviceSpec,
    HubSettings,
    Learned,
    SiteDescription,
    Spawn,
    load_catalog,
)
from edge_ems.site import keys as site_keys

from .actuator import actuator_factory
from .const import (
    CONF_BATTERIES,
    CONF_CAPACITY_WH,
    CONF_DRY_RUN,
    CONF_EEPROM_DAILY_WRITES,
    CONF_ENABLE_CONTROL,
    CONF_HUB,
    CONF_HUB_AGENT_ID,
    CONF_HUB_TOKEN,
    CONF_LEASE_TTL,
    CONF_MAX_CHARGE_W,
    CONF_MAX_DISCHARGE_W,
    CONF_SITE_ID,
    CONF_SITE_NAME,
    DEFAULT_DRY_RUN,
    DEFAULT_EEPROM_DAILY_WRITES,
    DEFAULT_ENABLE_CONTROL,
    DEFAULT_HUB_AGENT_ID,
    DEFAULT_LEASE_TTL,
    DOMAIN,
    SUBENTRY_ACTUATOR,
)
from .models import EdgeEmsConfigEntry
from .mqtt_bms import HaMqttBmsDevice

_CATALOG_KEY = "edge_ems_catalog"
LEARNED_VERSION = 1
LEARNED_SAVE_DELAY = 10.0
"""Seconds to gather what devices learned before writing it (flash storage on small hosts)."""


async def async_get_catalog(hass: HomeAssistant) -> Catalog:
    """The bundled point, topic and node maps (file reads run in the executor, once)."""
    catalog: Catalog | None = hass.data.get(_CATALOG_KEY)
    if catalog is None:
        catalog = hass.data[_CATALOG_KEY] = await hass.async_add_executor_job(load_catalog)
    return catalog


def control_policy(options: Mapping[str, Any]) -> ControlPolicy:
    """The site's control policy from the entry's options."""
    return ControlPolicy(
        enable_control=options.get(CONF_ENABLE_CONTROL, DEFAULT_ENABLE_CONTROL),
        dry_run=options.get(CONF_DRY_RUN, DEFAULT_DRY_RUN),
        lease_ttl=float(options.get(CONF_LEASE_TTL, DEFAULT_LEASE_TTL)),
        eeprom_daily_writes=int(options.get(CONF_EEPROM_DAILY_WRITES, DEFAULT_EEPROM_DAILY_WRITES)),
    )


def battery_limits(options: Mapping[str, Any], device_id: str) -> AssetLimits | None:
    """A battery's limits from the options; ``None`` for devices that are no battery asset."""
    limits = options.get(CONF_BATTERIES, {}).get(device_id)
    if limits is None:
        return None
    return AssetLimits(
        max_charge_w=float(limits[CONF_MAX_CHARGE_W]),
        max_discharge_w=float(limits[CONF_MAX_DISCHARGE_W]),
        capacity_wh=float(limits[CONF_CAPACITY_WH]),
    )


def hub_settings(options: Mapping[str, Any], site_id: str) -> HubSettings | None:
    """The hub link the options ask for, or ``None`` for a site without one.

    Each site links as ``<agent>/<site id>``: one token (the app's for Home Assistant)
    serves every site of this Home Assistant.
    """
    try:
        addresses = parse_addresses(str(options.get(CONF_HUB) or ""))
    except ValueError:
        return None  # the options flow refuses such an address; an old entry stays unlinked
    token = options.get(CONF_HUB_TOKEN)
    if not addresses or not token:
        return None
    agent = options.get(CONF_HUB_AGENT_ID) or DEFAULT_HUB_AGENT_ID
    return HubSettings(addresses, str(token), f"{agent}/{site_id}")


def telemetry_dir(hass: HomeAssistant, entry_id: str) -> Path:
    """Where a site's telemetry waits while the hub is away."""
    return Path(hass.config.path(STORAGE_DIR, DOMAIN, entry_id))


def site_description(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> SiteDescription:
    """The site the entry and its device subentries describe."""
    site_id = entry.data[CONF_SITE_ID]
    return SiteDescription(
        site_id=site_id,
        name=entry.data[CONF_SITE_NAME],
        devices=tuple(
            DeviceSpec(
                device_id=subentry_id,
                name=subentry.title,
                kind=subentry.subentry_type,
                settings=subentry.data,
                limits=battery_limits(entry.options, subentry_id),
            )
            for subentry_id, subentry in entry.subentries.items()
        ),
        policy=control_policy(entry.options),
        hub=hub_settings(entry.options, site_id),
        gateway_id=f"ha-{entry.entry_id}",
        buffer_dir=telemetry_dir(hass, entry.entry_id) / "telemetry",
    )


def device_factories(hass: HomeAssistant) -> Mapping[str, DeviceFactory]:
    """The library's factories, with MQTT batteries read through Home Assistant's MQTT, and
    the entities of other integrations that make up an actuator."""

    def mqtt_bms(spec: DeviceSpec, context: BuildContext) -> Device:
        topic_map = context.catalog.topic_maps.get(spec.settings[site_keys.TOPIC_MAP])
        if topic_map is None:
            return FACTORIES[DeviceKind.MQTT_BMS](spec, context)  # raises its ConfigError
        variables = dict(spec.settings.get(site_keys.VARIABLES) or {})
        return HaMqttBmsDevice(hass, spec.name, TopicMapDecoder(topic_map, variables))

    return {**FACTORIES, DeviceKind.MQTT_BMS: mqtt_bms, SUBENTRY_ACTUATOR: actuator_factory(hass)}


class HaLearnedStore:
    """What a site's devices learned, in Home Assistant's storage beside the entry."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[Learned] = Store(hass, LEARNED_VERSION, f"{DOMAIN}.learned.{entry_id}")
        self._latest: Learned = {}

    async def load(self) -> Learned:
        """What was kept; nothing for a new site."""
        stored = await self._store.async_load()
        return stored if isinstance(stored, dict) else {}

    async def save(self, learned: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep ``learned``, written a little later with whatever else changes meanwhile."""
        self._latest = {key: dict(value) for key, value in learned.items()}
        self._store.async_delay_save(lambda: self._latest, LEARNED_SAVE_DELAY)

    async def async_flush(self) -> None:
        """Write now what waits to be written (the site unloads)."""
        if self._latest:
            await self._store.async_save(self._latest)

    async def async_remove(self) -> None:
        """Forget everything (the site is removed)."""
        await self._store.async_remove()


def background_spawner(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> Spawn:
    """Start the site's background tasks as the entry's, so unloading ends them."""

    def spawn(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return entry.async_create_background_task(hass, coroutine, name)

    return spawn


async def async_remove_site_files(hass: HomeAssistant, entry_id: str) -> None:
    """Delete a removed site's telemetry buffer and what its devices learned."""
    await HaLearnedStore(hass, entry_id).async_remove()
    await hass.async_add_executor_job(shutil.rmtree, telemetry_dir(hass, entry_id), True)
