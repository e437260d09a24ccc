"""Read-back verification: a repair when a device does not hold what it was leased.

Every two minutes the site compares each leased command with the device's latest reading of
it (the library's ``Site.deviations``). A deviation seen at two checks in a row (so a write
in flight or one slow poll does not count) raises a repair naming the device, the command
and both values; it goes once the device holds the value again or the lease ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval

from edge_ems.site import Site

from .const import DOMAIN
from .models import EdgeEmsConfigEntry

CHECK_EVERY = timedelta(minutes=2)
STRIKES = 2
ISSUE = "device_not_following"


def issue_id(entry_id: str, device_id: str, command: str) -> str:
    """The repair of one device that does not hold one command."""
    return f"{ISSUE}_{entry_id}_{device_id}_{command}"


class FollowWatch:
    """Raises and clears one site's repairs about devices that do not follow."""

    def __init__(self, hass: HomeAssistant, entry: EdgeEmsConfigEntry, site: Site) -> None:
        self._hass = hass
        self._entry = entry
        self._site = site
        self._strikes: dict[tuple[str, str], int] = {}

    @callback
    def async_start(self) -> None:
        """Check every two minutes until the site unloads."""
        self._entry.async_on_unload(async_track_time_interval(self._hass, self._check, CHECK_EVERY))
        self._entry.async_on_unload(self._clear_all)

    @callback
    def _check(self, _now: datetime) -> None:
        entry_id = self._entry.entry_id
        seen = {}
        for deviation in self._site.deviations():
            key = (deviation.device_id, deviation.command)
            seen[key] = self._strikes.get(key, 0) + 1
            if seen[key] < STRIKES:
                continue
            member = self._site.devices.get(deviation.device_id)
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                issue_id(entry_id, *key),
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key=ISSUE,
                translation_placeholders={
                    "device": member.name if member else deviation.device_id,
                    "command": deviation.command,
                    "expected": str(deviation.expected),
                    "actual": str(deviation.actual),
                },
            )
        for key in self._strikes.keys() - seen.keys():
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(entry_id, *key))
        self._strikes = seen

    @callback
    def _clear_all(self) -> None:
        for key in self._strikes:
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(self._entry.entry_id, *key))
        self._strikes = {}
