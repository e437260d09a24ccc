"""One coordinator per device: coalesced reads, retry pacing, repairs for long outages."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from edge_ems.device import DeviceIdentity
from edge_ems.exceptions import (
    CircuitOpenError,
    DeviceAuthenticationError,
    DeviceBusyError,
    DeviceError,
    IdentificationError,
)
from edge_ems.readings import Readings
from edge_ems.site import Site, SiteDevice

from .const import DOMAIN

if TYPE_CHECKING:
    from .models import EdgeEmsConfigEntry

_LOGGER = logging.getLogger(__name__)

UNREACHABLE_AFTER = timedelta(hours=2)
"""A device silent this long gets a repair issue: a blip is not worth one, a dead link is."""


def unreachable_issue_id(device_id: str) -> str:
    """The repair issue id for a device that stays unreachable."""
    return f"device_unreachable_{device_id}"


def map_mismatch_issue_id(device_id: str) -> str:
    """The repair issue id for a device that does not match its map."""
    return f"map_mismatch_{device_id}"


class EdgeEmsCoordinator(DataUpdateCoordinator[Readings]):
    """Asks the site to read one device every poll interval; repairs for long outages."""

    config_entry: EdgeEmsConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: EdgeEmsConfigEntry, *, site: Site, member: SiteDevice
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=member.name,
            update_interval=timedelta(seconds=site.description.interval(member.spec)),
        )
        self.site = site
        self.member = member
        self._last_success: datetime = dt_util.utcnow()
        self._identity: DeviceIdentity | None = member.identity

    @property
    def device_id(self) -> str:
        """The device's id within the site."""
        return self.member.device_id

    async def _async_update_data(self) -> Readings:
        try:
            readings = await self.site.poll(self.device_id)
        except IdentificationError as err:
            self._repair(
                map_mismatch_issue_id(self.device_id),
                "map_mismatch",
                ir.IssueSeverity.ERROR,
                error=str(err),
            )
            raise self._failed("device_unlike_map", err) from err
        except DeviceAuthenticationError as err:
            # The flow must know which device's credentials to ask for.
            self.config_entry.async_start_reauth(self.hass, data={"subentry_id": self.device_id})
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="auth_failed",
                translation_placeholders={"device": self.member.name, "error": str(err)},
            ) from err
        except (DeviceBusyError, CircuitOpenError) as err:
            self._note_failure()
            raise self._failed("device_busy", err, retry_after=err.retry_after) from err
        except DeviceError as err:
            self._note_failure()
            raise self._failed("update_failed", err) from err
        self._last_success = dt_util.utcnow()
        ir.async_delete_issue(self.hass, DOMAIN, unreachable_issue_id(self.device_id))
        ir.async_delete_issue(self.hass, DOMAIN, map_mismatch_issue_id(self.device_id))
        self._note_identity()
        return readings

    def _note_identity(self) -> None:
        """Keep the device registry up to date with what the device says it is.

        A CAN battery names its maker only in a frame of its own, some time after the bus
        opens; a device swapped for another of the same kind reports a new serial.
        """
        identity = self.member.device.identity
        if identity is None or identity == self._identity:
            return
        self._identity = identity
        registry = dr.async_get(self.hass)
        entry = registry.async_get_device_by_identifier(
            (DOMAIN, self.device_id), self.config_entry.entry_id
        )
        if entry is not None:
            registry.async_update_device(
                entry.id,
                manufacturer=identity.manufacturer,
                model=identity.model,
                serial_number=identity.serial,
                sw_version=identity.firmware,
                hw_version=identity.hardware,
            )

    def _failed(
        self, key: str, error: Exception, *, retry_after: float | None = None
    ) -> UpdateFailed:
        """The update's failure, translated where the translation exists."""
        # Home Assistant names the device in front of the message already: once is enough.
        cause = str(error)
        if cause.startswith(self.member.name):
            cause = cause.removeprefix(self.member.name).removeprefix(":").lstrip()
        return UpdateFailed(
            cause,
            retry_after=retry_after,
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"error": cause},
        )

    def _note_failure(self) -> None:
        """Raise a repair issue once the device has been unreachable for hours."""
        if dt_util.utcnow() - self._last_success < UNREACHABLE_AFTER:
            return
        self._repair(
            unreachable_issue_id(self.device_id),
            "device_unreachable",
            ir.IssueSeverity.WARNING,
            since=self._last_success.isoformat(timespec="minutes"),
        )

    def _repair(
        self, issue_id: str, key: str, severity: ir.IssueSeverity, **placeholders: str
    ) -> None:
        """Raise a repair issue about this device (the user fixes it outside Home Assistant)."""
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=severity,
            translation_key=key,
            translation_placeholders={"device": self.member.name, **placeholders},
        )
