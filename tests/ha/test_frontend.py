"""The Lovelace cards as the integration registers them: the bundle served from its folder
and loaded on every page, its URL changing with the integration's version and the bundle."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from custom_components.edge_ems import frontend
from custom_components.edge_ems.const import DOMAIN
from homeassistant.components import onboarding
from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

BUNDLE = frontend.FOLDER / frontend.BUNDLE


async def test_the_cards_are_served_and_loaded_on_every_page(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The UI's pages, not the onboarding one a new Home Assistant sends its user to.
    monkeypatch.setattr(onboarding, "async_is_onboarded", lambda _hass: True)
    assert await async_setup_component(hass, "frontend", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()

    version = (await async_get_integration(hass, DOMAIN)).version
    digest = hashlib.sha256(BUNDLE.read_bytes()).hexdigest()[:12]
    url = f"/edge_ems/frontend/edge-ems-cards.js?v={version}-{digest}"
    assert url in hass.data[DATA_EXTRA_MODULE_URL].urls
    assert hass.data[frontend.DATA_CARDS] == url

    client = await hass_client()
    page = await client.get("/")
    assert page.status == 200
    assert url in await page.text(), "every page of the UI loads the cards"
    response = await client.get(url)
    assert response.status == 200
    assert await response.read() == BUNDLE.read_bytes()
    assert response.content_type in ("text/javascript", "application/javascript")
    # The URL changes with every new bundle, so browsers may keep this one for good.
    assert "max-age" in response.headers["Cache-Control"]

    # Set up again (another entry, a reload): nothing is registered twice.
    await frontend.async_register_cards(hass)
    assert [u for u in hass.data[DATA_EXTRA_MODULE_URL].urls if "edge_ems" in u] == [url]


async def test_without_the_frontend_nothing_is_registered(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert frontend.DATA_CARDS not in hass.data


async def test_a_checkout_without_the_bundle_says_how_to_build_it(
    hass: HomeAssistant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(frontend, "FOLDER", tmp_path)
    assert await async_setup_component(hass, "frontend", {})
    with caplog.at_level(logging.WARNING):
        assert await async_setup_component(hass, DOMAIN, {})
    assert frontend.DATA_CARDS not in hass.data
    assert not [u for u in hass.data[DATA_EXTRA_MODULE_URL].urls if "edge_ems" in u]
    assert "The Edge EMS cards are missing" in caplog.text
    assert "make frontend" in caplog.text
