"""``edge-ems sim``: serve a simulated site until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..exceptions import ConfigError
from ..scan import parse_target
from ..sim.clock import scaled_clock, today_at
from ..sim.config import SiteConfig, load_site_config
from ..sim.site import SimulatedSite
from .table import text_table

DEFAULT_BASE_PORT = 5020
SERVER_LOGGERS = {"asyncua": logging.ERROR, "pymodbus": logging.CRITICAL}
"""Levels for the libraries the simulators serve with: asyncua warns of every client's
coming and going, pymodbus logs a client's request for a unit id it lacks as an error with a
traceback. A simulator answers such requests; it has nothing to report about them."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim`` subcommand."""
    parser = subparsers.add_parser(
        "sim",
        help="serve a simulated site: Deye, SDM630, SunSpec, BMS on MQTT and CAN, OPC UA BESS, "
        "EV charger, heat pump, battery inverter",
        description="Serve simulated devices on real protocols until Ctrl-C. From "
        "--base-port on: the Modbus TCP gateway (Deye, SDM630), the SDM630 as RTU over TCP, "
        "the SunSpec inverter, the OPC UA BESS, the private MQTT broker, the EV charger, the "
        "heat pump and the battery inverter.",
    )
    add_site_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        metavar="N",
        help=f"first port (default {DEFAULT_BASE_PORT}); 0 picks free ports",
    )
    parser.add_argument(
        "--mqtt", metavar="HOST:PORT", help="broker for the MQTT BMS (default: a private mosquitto)"
    )
    parser.add_argument(
        "--write-site",
        type=Path,
        metavar="SITE.YAML",
        help="write a site file for `edge-ems agent --site` with every device served",
    )
    parser.set_defaults(handler=_run)


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that shape a simulated site; ``edge-ems demo`` takes them too."""
    parser.add_argument("--config", type=Path, metavar="SITE.YAML", help="site description")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (720 runs a day in two minutes)",
    )
    parser.add_argument(
        "--time", metavar="HH:MM", help="start the simulated day at this time (UTC solar time)"
    )


@dataclass(frozen=True, slots=True)
class SiteOptions:
    """What the site options asked for."""

    config: SiteConfig
    clock: Callable[[], float]
    opcua_cache: Path | None


def site_options(args: argparse.Namespace) -> SiteOptions:
    """Read the site options (and ``--config``: blocking I/O, call before the loop runs)."""
    config = load_site_config(args.config) if args.config is not None else SiteConfig()
    try:
        start = today_at(args.time) if args.time else None
        clock = scaled_clock(args.speed, start)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return SiteOptions(config, clock, opcua_cache())


def opcua_cache() -> Path | None:
    """Where OPC UA's standard address space is kept between runs (it takes seconds to
    build); ``None`` when no cache folder can be made."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "edge-ems"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / f"opcua-address-space-py{sys.version_info.major}{sys.version_info.minor}"


def quiet_libraries(levels: Mapping[str, int]) -> None:
    """Hold libraries' loggers to ``levels`` unless ``--verbose`` asked for everything."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def wait_for_stop() -> None:
    """Return on SIGINT (Ctrl-C) or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def services_table(site: SimulatedSite) -> str:
    """What runs where, one row per way in."""
    rows = [
        (item.device, item.protocol, item.host or "-", item.port or "-", item.unit or "-",
         item.detail)
        for item in site.endpoints.services()
    ]  # fmt: skip
    return text_table(("device", "protocol", "host", "port", "unit", "map / detail"), rows)


def _run(args: argparse.Namespace) -> int:
    quiet_libraries(SERVER_LOGGERS)
    options = site_options(args)
    mqtt = parse_target(args.mqtt) if args.mqtt else None
    return asyncio.run(
        _serve(options, args.host, args.base_port, mqtt, args.speed, args.write_site)
    )


async def _serve(
    options: SiteOptions,
    host: str,
    base_port: int,
    mqtt: tuple[str, int] | None,
    speed: float,
    write_site: Path | None,
) -> int:
    site = SimulatedSite(
        options.config,
        host=host,
        base_port=base_port,
        mqtt=mqtt,
        opcua_cache=options.opcua_cache,
        clock=options.clock,
    )
    async with site:
        print(services_table(site))  # noqa: T201
        if write_site is not None:
            text = yaml.safe_dump(site.site_file(), sort_keys=False)
            await asyncio.to_thread(write_site.write_text, text, encoding="utf-8")
            print(f"\nsite file for edge-ems agent: {write_site}")  # noqa: T201
        print(f"\nsimulated time runs at {speed:g}x; Ctrl-C stops", flush=True)  # noqa: T201
        await wait_for_stop()
    print("stopped", flush=True)  # noqa: T201
    return 0
