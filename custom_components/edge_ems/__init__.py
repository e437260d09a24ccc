"""Edge EMS: a site's energy devices as entities, written only through guarded dispatch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.device_registry import DeviceEntry
from homeassistant.helpers.typing import ConfigType

from edge_ems.dispatch import AssetLimits, ControlPolicy, Dispatcher
from edge_ems.exceptions import ConfigError

from .audit import AuditLog
from .const import (
    CONF_BATTERIES,
    CONF_CAPACITY_WH,
    CONF_DRY_RUN,
    CONF_EEPROM_DAILY_WRITES,
    CONF_ENABLE_CONTROL,
    CONF_LEASE_TTL,
    CONF_MAX_CHARGE_W,
    CONF_MAX_DISCHARGE_W,
    CONF_SITE_ID,
    CONF_SITE_NAME,
    DEFAULT_DRY_RUN,
    DEFAULT_EEPROM_DAILY_WRITES,
    DEFAULT_ENABLE_CONTROL,
    DEFAULT_LEASE_TTL,
    DOMAIN,
)
from .coordinator import EdgeEmsCoordinator
from .descriptions import describe
from .devices import async_get_catalog, build_device, declared_metrics
from .hub_link import HubLink, hub_settings
from .models import EdgeEmsConfigEntry, EdgeEmsData, EdgeEmsDevice
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]
DRY_RUN_ISSUE = "control_in_dry_run"


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, once for every site."""
    async_setup_services(hass)
    return True


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


async def async_setup_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> bool:
    """Connect every device of the site, then add their entities."""
    catalog = await async_get_catalog(hass)
    audit = AuditLog(hass, entry.entry_id)
    await audit.async_load()
    site_id = entry.data[CONF_SITE_ID]
    dispatcher = Dispatcher(site_id, control_policy(entry.options), audit=audit.record)
    site = EdgeEmsData(site_id, entry.data[CONF_SITE_NAME], dispatcher, audit)
    try:
        for subentry_id, subentry in entry.subentries.items():
            device = build_device(
                hass,
                subentry.subentry_type,
                subentry.data,
                name=subentry.title,
                catalog=catalog,
                links=site.links,
            )
            coordinator = EdgeEmsCoordinator(
                hass, entry, device=device, device_id=subentry_id, dispatcher=dispatcher
            )
            site.devices[subentry_id] = EdgeEmsDevice(
                subentry_id, subentry_id, subentry.title, device, coordinator
            )
            limits = battery_limits(entry.options, subentry_id)
            dispatcher.add_device(subentry_id, device, limits)
        # Every device gets its chance before the first failure is reported; none is left
        # running when setup gives up.
        outcomes = await asyncio.gather(
            *(
                member.coordinator.async_config_entry_first_refresh()
                for member in site.devices.values()
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    except ConfigError as err:
        await _async_close(site)
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="setup_failed",
            translation_placeholders={"site": entry.title, "error": str(err)},
        ) from err
    except BaseException:
        await _async_close(site)
        raise
    for member in site.devices.values():
        member.coordinator.descriptions = describe(
            member.device, member.coordinator.data, declared_metrics(member.device)
        )
    entry.runtime_data = site
    _async_check_dry_run(hass, entry)
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if (settings := hub_settings(entry.options, site_id)) is not None:
        site.hub = HubLink(hass, entry, site, settings, entry.options.get(CONF_BATTERIES, {}))
        await site.hub.async_start()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> bool:
    """Unload the entities, return leased devices to safe mode and close every link."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        # Release first, so the hub hears of the safe-mode return too.
        await entry.runtime_data.dispatcher.close(release=True)
        if entry.runtime_data.hub is not None:
            await entry.runtime_data.hub.async_stop()
        await _async_close(entry.runtime_data)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> None:
    """Forget the site's audit log with the site."""
    ir.async_delete_issue(hass, DOMAIN, f"{DRY_RUN_ISSUE}_{entry.entry_id}")
    await AuditLog(hass, entry.entry_id).async_remove()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: EdgeEmsConfigEntry, device: DeviceEntry
) -> bool:
    """Let a device go once no subentry describes it any more."""
    return not any(
        identifier[0] == DOMAIN and identifier[1] in entry.subentries
        for identifier in device.identifiers
    )


async def _async_reload(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> None:
    """Options or devices changed: set the site up again."""
    hass.config_entries.async_schedule_reload(entry.entry_id)


async def _async_close(site: EdgeEmsData) -> None:
    for member in site.devices.values():
        await member.device.close()
    await site.links.close()


def _async_check_dry_run(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> None:
    """Control switched on while dry run is still on writes nothing: say so."""
    issue_id = f"{DRY_RUN_ISSUE}_{entry.entry_id}"
    policy = entry.runtime_data.dispatcher.policy
    if policy.enable_control and policy.dry_run:
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=DRY_RUN_ISSUE,
            translation_placeholders={"site": entry.title},
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
