"""What Home Assistant knows that the hub's planner should use: prices and solar forecast.

A home often has its prices in another integration already (Nord Pool, ENTSO-e, Octopus
Energy, Energi Data Service keep them in a sensor's attributes) and its solar forecast in
the Energy dashboard (Forecast.Solar, Solcast). The site hands both to the hub's planner,
which then plans with them instead of its own sources: prices whenever the price entity
changes, the forecast every two hours (at minute 5, after the providers' own refresh) and
when the site starts.
"""

from __future__ import annotations

import logging
from datetime import datetime

from homeassistant.components.energy.data import async_get_manager
from homeassistant.components.energy.types import GetSolarForecastType
from homeassistant.components.energy.websocket_api import async_get_energy_platforms
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers.event import async_track_state_change_event, async_track_time_change

from edge_ems.gateway.model import PlanInputs
from edge_ems.planner.errors import SourceDataError
from edge_ems.planner.sources.published import (
    PublishedSeries,
    entity_prices,
    solar_forecast,
    sum_series,
)
from edge_ems.site import Site

from .const import CONF_PRICE_ENTITY, CONF_PRICE_KIND, CONF_SOLAR_FORECAST, PRICE_KIND_SPOT
from .models import EdgeEmsConfigEntry

_LOGGER = logging.getLogger(__name__)

FORECAST_HOURS = tuple(range(0, 24, 2))
FORECAST_MINUTE = 5


def inputs(kind: str, series: PublishedSeries, source: str) -> PlanInputs:
    """A series as the planner takes it over the gateway."""
    return PlanInputs(
        kind=kind,
        start_ms=int(series.start.timestamp() * 1000),
        step_s=int(series.step.total_seconds()),
        values=series.values,
        unit=series.unit,
        source=source,
    )


class PlanInputsFeed:
    """Sends one site's prices and solar forecast from Home Assistant to the hub."""

    def __init__(self, hass: HomeAssistant, entry: EdgeEmsConfigEntry, site: Site) -> None:
        self._hass = hass
        self._entry = entry
        self._site = site
        self._complaint: str | None = None
        # Filled once and kept current by HA as provider integrations load: asking again
        # every time would add one more platform listener each time.
        self._platforms: dict[str, GetSolarForecastType] | None = None

    @callback
    def async_start(self) -> None:
        """Send what is known now and whenever it changes."""
        entry, options = self._entry, self._entry.options
        if price_entity := options.get(CONF_PRICE_ENTITY):
            entry.async_on_unload(
                async_track_state_change_event(self._hass, price_entity, self._price_changed)
            )
            self._send_prices(self._hass.states.get(price_entity))
        if options.get(CONF_SOLAR_FORECAST):
            entry.async_on_unload(
                async_track_time_change(
                    self._hass,
                    self._forecast_due,
                    hour=FORECAST_HOURS,
                    minute=FORECAST_MINUTE,
                    second=0,
                )
            )
            entry.async_create_background_task(
                self._hass, self.async_send_forecast(), "edge_ems solar forecast"
            )

    @callback
    def _price_changed(self, event: Event[EventStateChangedData]) -> None:
        self._send_prices(event.data["new_state"])

    @callback
    def _send_prices(self, state: State | None) -> None:
        if state is None:
            return  # not there yet (its integration starts later): its first state follows
        kind = self._entry.options.get(CONF_PRICE_KIND, PRICE_KIND_SPOT)
        try:
            series = entity_prices(
                state.attributes,
                state.attributes.get("unit_of_measurement"),
                self._hass.config.currency,
            )
        except SourceDataError as err:
            self._complain(f"the prices of {state.entity_id} are not usable: {err}")
            return
        self._complaint = None
        self._site.give_planner(inputs(f"{kind}_price", series, state.entity_id))

    @callback
    def _forecast_due(self, _now: datetime) -> None:
        self._entry.async_create_background_task(
            self._hass, self.async_send_forecast(), "edge_ems solar forecast"
        )

    async def async_send_forecast(self) -> None:
        """Add up the Energy dashboard's solar forecasts and send them."""
        manager = await async_get_manager(self._hass)
        sources = [] if manager.data is None else manager.data["energy_sources"]
        entry_ids = {
            entry_id
            for source in sources
            if source["type"] == "solar"
            for entry_id in source.get("config_entry_solar_forecast") or []
        }
        if self._platforms is None:
            self._platforms = await async_get_energy_platforms(self._hass)
        platforms = self._platforms
        parts: list[PublishedSeries] = []
        domains: list[str] = []
        for entry_id in sorted(entry_ids):
            provider = self._hass.config_entries.async_get_entry(entry_id)
            if provider is None or provider.domain not in platforms:
                continue
            forecast = await platforms[provider.domain](self._hass, entry_id)
            if not forecast or not forecast.get("wh_hours"):
                continue
            try:
                parts.append(solar_forecast(forecast["wh_hours"]))
            except SourceDataError as err:
                self._complain(f"the solar forecast of {provider.title} is not usable: {err}")
                continue
            domains.append(provider.domain)
        if not parts:
            return
        try:
            total = sum_series(parts)
        except SourceDataError as err:
            self._complain(f"the solar forecasts do not add up: {err}")
            return
        self._site.give_planner(inputs("pv_forecast", total, "energy:" + ",".join(domains)))

    def _complain(self, message: str) -> None:
        """Say once what is wrong with an input; the planner keeps the last good one."""
        if message != self._complaint:
            self._complaint = message
            _LOGGER.warning("Site %s: %s", self._entry.title, message)
