"""Edge EMS: a site's energy devices as entities, written only through guarded dispatch."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.device_registry import DeviceEntry
from homeassistant.helpers.typing import ConfigType

from edge_ems.exceptions import ConfigError
from edge_ems.site import Site
from edge_ems.site.keys import PARITIES

from .audit import AuditLog
from .const import CONF_PARITY, CONF_SECURITY, DOMAIN
from .coordinator import EdgeEmsCoordinator
from .follow import FollowWatch
from .frontend import async_register_cards
from .hub import HubWatch
from .models import EdgeEmsConfigEntry, EdgeEmsData, EdgeEmsDevice
from .plan import PlanCoordinator
from .plan_inputs import PlanInputsFeed
from .services import async_setup_services
from .site import (
    HaLearnedStore,
    async_get_catalog,
    async_remove_site_files,
    background_spawner,
    device_factories,
    site_description,
)

_LOGGER = logging.getLogger(__name__)

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
RELOAD_COOLDOWN = 1.0
"""Seconds of quiet after a change of the site's options or devices before it reloads."""
FIRST_READ_WAIT = 5.0
"""Seconds the site waits for its devices' first reads before its entities are added."""


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, once for every site, and the Lovelace cards."""
    async_setup_services(hass)
    await async_register_cards(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> bool:
    """1.1 to 1.2: serial parity and OPC UA security are kept as lowercase keys (``none``,
    ``even``, ``odd``; ``basic256sha256_sign``), as selectors require."""
    if entry.version > 1:
        return False  # a newer release's entry: this one cannot read it
    if entry.minor_version < 2:
        parities = {letter: name for name, letter in PARITIES.items()}
        for subentry in list(entry.subentries.values()):
            data = dict(subentry.data)
            if data.get(CONF_PARITY) in parities:
                data[CONF_PARITY] = parities[data[CONF_PARITY]]
            if isinstance(data.get(CONF_SECURITY), str):
                data[CONF_SECURITY] = data[CONF_SECURITY].lower()
            if data != subentry.data:
                hass.config_entries.async_update_subentry(entry, subentry, data=data)
        hass.config_entries.async_update_entry(entry, minor_version=2)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> bool:
    """Start the site, read every device once, then add their entities.

    A device that does not answer keeps none of the others from loading: its entities are
    there (from what it reported before) but unavailable until it answers again.
    """
    # First of all: a device added while this setup runs must set the site up again. The
    # first change reloads at once; more within the cooldown make one more reload.
    reload = Debouncer(
        hass,
        _LOGGER,
        cooldown=RELOAD_COOLDOWN,
        immediate=True,
        function=partial(hass.config_entries.async_schedule_reload, entry.entry_id),
    )
    entry.async_on_unload(reload.async_shutdown)
    entry.async_on_unload(entry.add_update_listener(lambda _hass, _entry: reload.async_call()))
    catalog = await async_get_catalog(hass)
    audit = AuditLog(hass, entry.entry_id)
    await audit.async_load()
    learned = HaLearnedStore(hass, entry.entry_id)
    site = Site(
        site_description(hass, entry),
        catalog,
        factories=device_factories(hass),
        learned_store=learned,
        audit_sinks=[audit.record],
        spawn=background_spawner(hass, entry),
    )
    try:
        await site.start(poll=False)
    except ConfigError as err:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="setup_failed",
            translation_placeholders={"site": entry.title, "error": str(err)},
        ) from err
    data = EdgeEmsData(site, audit, learned)
    for device_id, member in site.devices.items():
        coordinator = EdgeEmsCoordinator(hass, entry, site=site, member=member)
        data.devices[device_id] = EdgeEmsDevice(member, coordinator)
    if site.description.hub is not None:
        data.plan = PlanCoordinator(hass, entry, site)
        data.plan.async_start()
        PlanInputsFeed(hass, entry, site).async_start()
    entry.runtime_data = data
    # Every device gets its first read at once; a failure marks only that device, and one
    # that is slow to answer (a timeout, a long RTU line) reads on after the site is up.
    first_reads = [
        entry.async_create_background_task(
            hass, device.coordinator.async_refresh(), f"edge_ems first read {device.name}"
        )
        for device in data.devices.values()
    ]
    if first_reads:
        await asyncio.wait(first_reads, timeout=FIRST_READ_WAIT)
    _async_check_dry_run(hass, entry)
    HubWatch(hass, entry, site).async_start()
    FollowWatch(hass, entry, site).async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> bool:
    """Unload the entities, return leased devices to safe mode and close every link."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.site.stop(release=True)
        await entry.runtime_data.learned.async_flush()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: EdgeEmsConfigEntry) -> None:
    """Forget the site's audit log, what its devices learned and its telemetry buffer."""
    ir.async_delete_issue(hass, DOMAIN, f"{DRY_RUN_ISSUE}_{entry.entry_id}")
    await AuditLog(hass, entry.entry_id).async_remove()
    await async_remove_site_files(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: EdgeEmsConfigEntry, device: DeviceEntry
) -> bool:
    """Let a device go once no subentry describes it any more."""
    return not any(
        identifier[0] == DOMAIN and identifier[1] in entry.subentries
        for identifier in device.identifiers
    )


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
