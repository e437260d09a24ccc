"""Headless chromium logged in to the demo's Home Assistant, as the cards' browser tests and
benchmark use it: Debian's chromium (no browser is downloaded), every request that would
leave the machine refused and kept, every console error kept."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from .hass_api import PASSWORD, USER
from .processes import DemoError

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOADED_MS = 180_000
"""The frontend's first load on a busy two-core machine."""


@dataclass
class Session:
    """A page and what it did that it should not have."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions, in order."""
    outside: list[str] = field(default_factory=list)
    """Requests for anything but the site under test itself (refused)."""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless."""
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except PlaywrightError as err:
            raise DemoError(f"chromium did not start: {err.message.splitlines()[0]}") from None
        try:
            yield browser
        finally:
            await browser.close()


async def open_session(
    browser: Browser,
    url: str,
    *,
    width: int = 1280,
    height: int = 900,
    scale: float = 1.0,
    color_scheme: str = "light",
    console_levels: tuple[str, ...] = ("error",),
) -> Session:
    """A new page kept to ``url``'s origin (anything else is refused and kept) and noting
    console messages of ``console_levels`` and uncaught exceptions; nothing loaded yet."""
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        device_scale_factor=scale,
        color_scheme="dark" if color_scheme == "dark" else "light",
        locale="en-GB",
        timezone_id="UTC",
    )
    page = await context.new_page()
    session = Session(page, context)
    origin = urlsplit(url).netloc

    async def only_the_origin(route: Route) -> None:
        if urlsplit(route.request.url).netloc == origin:
            await route.continue_()
        else:
            session.outside.append(route.request.url)
            await route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type in console_levels:
            where = message.location.get("url")
            session.errors.append(f"console {message.type}: {message.text} ({where})")

    await context.route("**/*", only_the_origin)
    page.on("console", console)
    page.on("pageerror", lambda error: session.errors.append(f"page: {error}"))
    return session


async def log_in(
    browser: Browser,
    url: str,
    *,
    width: int = 1280,
    height: int = 900,
    scale: float = 1.0,
    color_scheme: str = "light",
) -> Session:
    """A new page logged in as the demo user, the frontend loaded."""
    session = await open_session(
        browser, url, width=width, height=height, scale=scale, color_scheme=color_scheme
    )
    page = session.page
    await page.goto(url, wait_until="load")
    await page.fill("input[name='username']", USER)
    await page.fill("input[name='password']", PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda found: "/auth/" not in found, timeout=LOADED_MS)
    await page.wait_for_selector("ha-sidebar", timeout=LOADED_MS)
    return session
