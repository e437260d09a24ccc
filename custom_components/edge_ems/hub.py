"""Whether the site reaches its hub: a repair once it has not for a while, gone on reconnect.

The site's agent (the library's) says once in the log that it cannot reach the hub and once
that it registered again; telemetry waits on disk meanwhile. A hub out of reach for longer
than :data:`UNREACHABLE_AFTER` is worth a repair: setpoints from the hub cannot arrive.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from edge_ems.site import Site

from .const import DOMAIN
from .models import EdgeEmsConfigEntry

UNREACHABLE_AFTER = timedelta(minutes=10)
"""A hub restarting (an app update, say) is back well within this."""
CHECK_EVERY = timedelta(minutes=1)
ISSUE = "hub_unreachable"


def issue_id(entry_id: str) -> str:
    """The repair issue of one site whose hub is out of reach."""
    return f"{ISSUE}_{entry_id}"


class HubWatch:
    """Raises and clears one site's repair about its hub."""

    def __init__(self, hass: HomeAssistant, entry: EdgeEmsConfigEntry, site: Site) -> None:
        self._hass = hass
        self._entry = entry
        self._site = site

    @callback
    def async_start(self) -> None:
        """Check now, every minute, and whenever the link comes up or goes down."""
        entry = self._entry
        entry.async_on_unload(self._site.on_hub_change(self._check))
        entry.async_on_unload(async_track_time_interval(self._hass, self._check_at, CHECK_EVERY))
        entry.async_on_unload(self._clear)
        self._check()

    @callback
    def _check_at(self, _now: datetime) -> None:
        self._check()

    @callback
    def _check(self) -> None:
        agent, hub = self._site.agent, self._site.description.hub
        if agent is None or hub is None or agent.connected:
            self._clear()
            return
        down_since = agent.down_since
        if down_since is None:
            return
        since = dt_util.utc_from_timestamp(down_since)
        if dt_util.utcnow() - since < UNREACHABLE_AFTER:
            return
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            issue_id(self._entry.entry_id),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE,
            translation_placeholders={
                "site": self._entry.title,
                "hub": ", ".join(hub.hubs),
                "since": since.isoformat(timespec="minutes"),
                "error": agent.last_error or "no answer",
            },
        )

    @callback
    def _clear(self) -> None:
        ir.async_delete_issue(self._hass, DOMAIN, issue_id(self._entry.entry_id))
