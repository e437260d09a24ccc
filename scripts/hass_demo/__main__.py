"""``python -m scripts.hass_demo``: what ``make demo`` runs (see the package's docstring)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from edge_ems.cli.hubapi import HubApi
from edge_ems.cli.sim import SERVER_LOGGERS, opcua_cache, quiet_libraries, wait_for_stop
from edge_ems.sim.site import SimulatedSite, free_port

from . import __doc__ as DESCRIPTION  # noqa: N812 - the package docstring
from .dashboard import add_dashboard
from .hass_api import PASSWORD, USER, HomeAssistantApi
from .plan import check_plan_in_home_assistant, plan_lines, planner_config, wait_for_plan
from .processes import (
    DOMAIN,
    LOOPBACK,
    DemoError,
    HomeAssistantProcess,
    HubProcess,
    home_assistant,
    hub_process,
)
from .site import (
    SITE,
    check_dashboard,
    check_frontend,
    configure,
    hub_lines,
    live_entities,
    site_devices,
    summary,
    try_dispatch,
    try_hub_dispatch,
    try_measurements,
    wait_for_hub,
    wait_for_site,
)

CHROMIUM = "/usr/bin/chromium"


@contextlib.asynccontextmanager
async def demo_folder(config_dir: Path | None) -> AsyncIterator[Path]:
    """The demo's folder: ``config_dir``, kept, or a temporary one, removed on the way out.
    Home Assistant is configured in it, the hub in its ``hub`` folder."""
    folder = config_dir or Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="edge-ems-ha-"))
    try:
        yield folder
    finally:
        if config_dir is None:
            await asyncio.to_thread(shutil.rmtree, folder, True)


async def screenshot(url: str, path: Path) -> None:
    """Log in with headless chromium (Debian's; no browser is downloaded) and save the
    integration's page as the newcomer first sees it."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await page.goto(url, wait_until="networkidle")
                await page.fill("input[name='username']", USER)
                await page.fill("input[name='password']", PASSWORD)
                await page.keyboard.press("Enter")
                await page.wait_for_url(lambda found: "/auth/" not in found, timeout=120_000)
                # The frontend is loaded once its sidebar is drawn (pierces shadow roots).
                await page.wait_for_selector("ha-sidebar", timeout=180_000)
                await page.goto(f"{url}/config/integrations/integration/{DOMAIN}")
                await page.wait_for_selector("ha-sidebar", timeout=180_000)
                await page.wait_for_timeout(5000)  # cards render once the states arrive
                await page.screenshot(path=str(path))
            finally:
                await browser.close()
    except PlaywrightError as err:
        raise DemoError(f"the screenshot failed: {err.message.splitlines()[0]}") from None


async def run(args: argparse.Namespace) -> int:
    """Start everything, print the way in, and wait for Ctrl-C (or stop after ``--once``)."""
    site = SimulatedSite(SITE, opcua_cache=opcua_cache())
    async with (
        site,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        demo_folder(args.config_dir) as folder,
    ):
        print("simulated site running; starting the hub and Home Assistant (a minute or two)...",
              flush=True)  # fmt: skip
        # Leaving stops Home Assistant first, so the site's link says goodbye to a live hub.
        async with (
            hub_process(
                folder / "hub", args.host, args.hub_port, args.grpc_port, planner_config()
            ) as hub,
            home_assistant(args.host, args.port, folder) as hass,
        ):
            hub_api = HubApi(hub.url, hub.api_token, timeout=60)
            try:
                await wait_for_hub(hub_api, hub)
                api = HomeAssistantApi(session, hass.url)
                await api.wait_until_up(hass)
                await api.onboard()
                entry_id = await configure(api, site.endpoints, hub)
                states = await live_entities(api)
                await check_frontend(api, hass)
                dashboard = await add_dashboard(api, entry_id)
                devices = len(site_devices(site.endpoints))
                batteries = await wait_for_site(hub_api, hub, devices)
                names = {battery["asset_id"]: battery["name"] for battery in batteries}
                plan = await wait_for_plan(hub_api, hub, names)
                print(f"\nHome Assistant with Edge EMS: {hass.url}", flush=True)
                print(f"login: {USER} / {PASSWORD}", flush=True)
                print(f"the Edge EMS cards: {dashboard}", flush=True)
                print("control is on (the devices are simulated): try edge_ems.dispatch under "
                      "Developer tools > Actions\n", flush=True)  # fmt: skip
                print(hub_lines(hub, batteries[0]) + "\n", flush=True)
                print(plan_lines(plan, hub, names) + "\n", flush=True)
                print(f"{len(states)} Edge EMS entities, among them:\n{summary(states)}\n",
                      flush=True)  # fmt: skip
                if args.once:
                    print(await try_dispatch(api, names), flush=True)
                    print(await try_hub_dispatch(hub_api, names), flush=True)
                    print(await try_measurements(hub_api, hub, batteries[0]), flush=True)
                    print(await check_plan_in_home_assistant(api, plan), flush=True)
                    print(await check_dashboard(hub_api, hub), flush=True)
                    print(f"repairs: {repairs_line(await api.repairs())}", flush=True)
                if args.screenshot is not None:
                    await screenshot(hass.url, args.screenshot)
                    print(f"screenshot saved to {args.screenshot}", flush=True)
                if not args.once:
                    print("Ctrl-C stops Home Assistant, the hub and the simulated site",
                          flush=True)  # fmt: skip
                    await until_stopped(hass, hub)
            finally:
                await hub_api.close()
    print("stopped", flush=True)
    return 0


HA_NOTICES = {"homeassistant: deprecated_method": "Home Assistant's notice that a Python "
              "venv installation (Core) is deprecated, not Edge EMS's"}  # fmt: skip
"""Repairs Home Assistant raises about how it is installed, whatever integrations run."""


def repairs_line(repairs: list[str]) -> str:
    """The repairs shown, each of Home Assistant's own notices said to be one."""
    shown = [f"{r} ({HA_NOTICES[r]})" if r in HA_NOTICES else r for r in repairs]
    return ", ".join(shown) or "none"


async def until_stopped(hass: HomeAssistantProcess, hub: HubProcess) -> None:
    """Until Ctrl-C or SIGTERM; Home Assistant or the hub stopping on its own is an error."""
    stop = asyncio.ensure_future(wait_for_stop())
    while not stop.done():
        for name, process in (("Home Assistant", hass), ("the hub", hub)):
            if process.exited():
                stop.cancel()
                log = await asyncio.to_thread(process.log_tail)
                raise DemoError(f"{name} stopped:\n{log}")
        await asyncio.wait([stop], timeout=2.0)


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` now (Home Assistant would fall back to another)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the demo; errors are one clear message, exit status 1."""
    assert DESCRIPTION is not None
    parser = argparse.ArgumentParser(prog="make demo", description=DESCRIPTION.split("\n\n")[0])
    parser.add_argument(
        "--host",
        default=os.environ.get("EDGE_EMS_DEMO_HOST", "127.0.0.1"),
        help="address Home Assistant and the hub's REST API listen on (default 127.0.0.1, or "
        "$EDGE_EMS_DEMO_HOST)",
    )
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port")
    parser.add_argument(
        "--hub-port", type=int, default=8099, help="the hub's REST API (0 picks a free port)"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=50051, help="the hub's gateway (0 picks a free port)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="show the entities, dispatch here and through the hub, read the hub's store, "
        "then stop",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="configure Home Assistant in this new folder, the hub in its hub folder, and keep "
        "both (default: a temporary one)",
    )
    parser.add_argument("--screenshot", type=Path, metavar="FILE.png")
    args = parser.parse_args(argv)
    if args.config_dir is not None and args.config_dir.exists():
        parser.error(f"{args.config_dir} exists; the demo configures a new folder")
    # Each server gets the port asked for or refuses to start: none falls back to another.
    for option, host in (("port", args.host), ("hub_port", args.host), ("grpc_port", LOOPBACK)):
        flag = "--" + option.replace("_", "-")
        port = getattr(args, option)
        if port == 0:
            setattr(args, option, free_port(host))
        elif not 0 < port < 65536:
            parser.error(f"{flag} {port} is not a TCP port")
        elif not port_is_free(host, port):
            parser.error(f"port {port} is taken; pick another with {flag} (0: any free one)")
    if len({args.port, args.hub_port, args.grpc_port}) < 3:
        parser.error("--port, --hub-port and --grpc-port must differ")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(SERVER_LOGGERS)
    try:
        return asyncio.run(run(args))
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
