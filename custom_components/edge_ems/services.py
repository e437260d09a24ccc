"""Placeholder for the Edge EMS actions; HA-B owns and replaces this file."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the Edge EMS actions."""
