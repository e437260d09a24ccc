"""The hub's page in a real browser (headless chromium): it renders the live hub's state
and runs without script errors."""

from __future__ import annotations

import shutil

import pytest

from ..gateway.conftest import SiteFactory
from .conftest import AUTH, LiveHub

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
async def test_page_shows_agents_values_and_status(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    from playwright.async_api import async_playwright, expect

    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    site.agent.publish({asset: await bess.read() for asset, bess in site.batteries.items()})
    await site.agent.flush()
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context(extra_http_headers=AUTH)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            await page.goto(live.url + "/", wait_until="load")
            # Locator waits, not wait_for_function: a string predicate is evaluated in the
            # page, and the page's CSP (no unsafe-eval) refuses that whenever it is retried.
            await expect(page.locator("#status")).to_have_text("ok", timeout=30_000)
            await expect(page.locator("#values tr").first).to_be_attached(timeout=30_000)
            agents = await page.locator("#agents tr").all_inner_texts()
            assert any("Barn battery" in row and "yes" in row for row in agents)
            assert any("spare" in row.lower() and "no" in row for row in agents)
        finally:
            await browser.close()
    assert errors == []
