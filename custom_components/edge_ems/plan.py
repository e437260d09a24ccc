"""The site's plan from the hub's planner, kept for the plan sensors, actions and card.

The hub sends a site a new plan after every (re-)plan; the site's agent hands it over here.
Nothing is fetched: the coordinator holds the latest plan that reads as a plan document and
tells its entities at every step boundary, when "now" moves to the plan's next step.
"""

from __future__ import annotations

import logging
from datetime import datetime

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from edge_ems.gateway.model import PlanUpdate
from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.site_plan import SitePlan
from edge_ems.site import Site

from .const import DOMAIN
from .models import EdgeEmsConfigEntry

_LOGGER = logging.getLogger(__name__)


def plan_device_info(entry: EdgeEmsConfigEntry) -> DeviceInfo:
    """The site's plan, shown as a service device of the site entry."""
    return DeviceInfo(
        identifiers={(DOMAIN, f"{entry.entry_id}_plan")},
        name=f"{entry.title} plan",
        manufacturer="Edge EMS",
        model="Planner",
        entry_type=DeviceEntryType.SERVICE,
    )


class PlanCoordinator(DataUpdateCoordinator[SitePlan | None]):
    """The latest plan of one site; ``None`` until the hub sends one."""

    config_entry: EdgeEmsConfigEntry

    def __init__(self, hass: HomeAssistant, entry: EdgeEmsConfigEntry, site: Site) -> None:
        super().__init__(
            hass, _LOGGER, config_entry=entry, name=f"{entry.title} plan", update_interval=None
        )
        self._site = site
        self._refused_version: int | None = None
        self._next_step: CALLBACK_TYPE | None = None

    @callback
    def async_start(self) -> None:
        """Take the plan the agent already holds and every new one."""
        entry = self.config_entry
        entry.async_on_unload(self._site.on_plan(self._take))
        entry.async_on_unload(self._cancel_step)
        if (update := self._site.plan) is not None:
            self._take(update)

    async def _async_update_data(self) -> SitePlan | None:
        return self.data  # plans are pushed; a refresh only tells the entities again

    @callback
    def _take(self, update: PlanUpdate) -> None:
        try:
            plan = SitePlan.parse(update.plan)
        except PlanInputError as err:
            if update.version != self._refused_version:
                self._refused_version = update.version
                _LOGGER.warning(
                    "Site %s: plan %s from the hub is not usable, the last good one stays: %s",
                    self.config_entry.title,
                    update.version,
                    err,
                )
            return
        self.async_set_updated_data(plan)
        self._schedule_step(dt_util.utcnow())

    @callback
    def _schedule_step(self, now: datetime) -> None:
        """Wake the entities when the plan's next step begins."""
        self._cancel_step()
        plan = self.data
        if plan is None:
            return
        step = plan.step_at(now)
        if step is None and now >= plan.end:
            return
        moment = plan.start if step is None else plan.time(step + 1)
        self._next_step = async_track_point_in_utc_time(self.hass, self._step_began, moment)

    @callback
    def _step_began(self, now: datetime) -> None:
        self._next_step = None
        self.async_update_listeners()
        self._schedule_step(now)

    @callback
    def _cancel_step(self) -> None:
        if self._next_step is not None:
            self._next_step()
            self._next_step = None
