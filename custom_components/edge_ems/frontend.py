"""The Lovelace cards: served from the integration's folder and loaded on every page.

The bundle (``frontend/edge-ems-cards.js``, built from the repository's ``frontend/``) is
served as a static path and added as an extra module URL, so the cards are in the card picker
without a dashboard resource to add by hand. Its URL carries the integration's version and
the bundle's digest: browsers may cache it for good, and load the new one after an update.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)

FOLDER = Path(__file__).parent / "frontend"
BUNDLE = "edge-ems-cards.js"
URL_BASE = f"/{DOMAIN}/frontend"
DATA_CARDS: HassKey[str] = HassKey(f"{DOMAIN}_cards")
"""The bundle's URL, once registered (the static path cannot be registered twice)."""


def _digest(path: Path) -> str | None:
    """The first hex digits of the bundle's SHA-256; ``None`` when there is no bundle."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        return None


async def async_register_cards(hass: HomeAssistant) -> None:
    """Serve the cards' bundle and load it on every page of the UI.

    Without the frontend (a Home Assistant run without its UI) there is nothing to do; a
    checkout whose bundle was never built says how to build it and runs without the cards.
    """
    if DATA_CARDS in hass.data or "frontend" not in hass.config.components:
        return
    from homeassistant.components.frontend import add_extra_js_url
    from homeassistant.components.http import StaticPathConfig

    digest = await hass.async_add_executor_job(_digest, FOLDER / BUNDLE)
    if digest is None:
        _LOGGER.warning(
            "The Edge EMS cards are missing (%s); in a checkout, `make frontend` builds them",
            FOLDER / BUNDLE,
        )
        return
    integration = await async_get_integration(hass, DOMAIN)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(URL_BASE, str(FOLDER), cache_headers=True)]
    )
    url = f"{URL_BASE}/{BUNDLE}?v={integration.version}-{digest}"
    add_extra_js_url(hass, url)
    hass.data[DATA_CARDS] = url
