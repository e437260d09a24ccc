"""The demo's dashboard: the Edge EMS cards on a Lovelace dashboard of their own, saved
through the websocket API as the dashboard editor saves it."""

from __future__ import annotations

from typing import Any

from .hass_api import HomeAssistantApi

DASHBOARD = "edge-ems"
"""The dashboard's URL path (Home Assistant wants a hyphen in it)."""
VIEW = "site"


def cards(entry_id: str) -> list[dict[str, Any]]:
    """Both cards for the site ``entry_id``, as a person would add them in the card picker."""
    return [
        {"type": "custom:edge-ems-flow-card", "config_entry": entry_id, "title": "Power flow"},
        {"type": "custom:edge-ems-plan-card", "config_entry": entry_id, "title": "Plan"},
    ]


async def add_dashboard(api: HomeAssistantApi, entry_id: str) -> str:
    """Create the dashboard with both cards; return its URL."""
    await api.websocket({
        "type": "lovelace/dashboards/create",
        "url_path": DASHBOARD,
        "title": "Edge EMS",
        "icon": "mdi:home-lightning-bolt",
        "show_in_sidebar": True,
        "require_admin": False,
        "mode": "storage",
    })  # fmt: skip
    view = {"title": "Site", "path": VIEW, "cards": cards(entry_id)}
    config = {"title": "Edge EMS", "views": [view]}
    await api.websocket({"type": "lovelace/config/save", "url_path": DASHBOARD, "config": config})
    return f"{api.url}/{DASHBOARD}/{VIEW}"
