"""``edge-ems agent``: a site's agent without Home Assistant.

    edge-ems agent --site site.yaml --hub hub-a:50051,hub-b:50051 --token-file /etc/edge-ems/token

Devices come from the site file (:mod:`edge_ems.agent.site`); the agent tries the hubs in
order and moves on to the next when one fails. It runs until SIGINT or SIGTERM, then puts
unsent telemetry on disk (with a buffer directory) and returns leased devices to safe mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..agent.runner import HubLink, SiteRunner
from ..agent.site import load_site
from ..exceptions import ConfigError
from ..gateway.tls import ClientTls
from ..gateway.transport import parse_address

_LOGGER = logging.getLogger(__name__)

ENV_VARIABLE = "EDGE_EMS_TOKEN"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``agent`` subcommand."""
    parser = subparsers.add_parser(
        "agent",
        help="run a site's agent (devices from a site file)",
        description="Connect a site to the hub: register its assets, stream telemetry, "
        "execute setpoints through the guarded dispatch path.",
    )
    parser.add_argument("--site", type=Path, required=True, help="the site file (YAML)")
    parser.add_argument(
        "--buffer-dir", type=Path, help="keep unsent telemetry here (overrides the site file)"
    )
    add_link_arguments(parser)
    parser.set_defaults(handler=_agent)


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """The hub addresses, the token and TLS, shared with ``edge-ems launcher``."""
    parser.add_argument(
        "--hub", required=True, help="host:port of the hub; several, comma-separated, for failover"
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help=f"the agent's token (default: ${ENV_VARIABLE})")
    token.add_argument("--token-file", type=Path, help="read the token from this file")
    parser.add_argument("--tls", action="store_true", help="use TLS, trusting the system's CAs")
    parser.add_argument("--tls-ca", type=Path, help="use TLS, trusting this CA (PEM)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate for mutual TLS (PEM)")
    parser.add_argument("--tls-key", type=Path, help="client key for mutual TLS (PEM)")


def link_from_args(args: argparse.Namespace) -> HubLink:
    """The hub link the arguments describe (reads token and TLS files: call before the loop)."""
    hubs = tuple(address.strip() for address in args.hub.split(",") if address.strip())
    for address in hubs:
        try:
            parse_address(address)
        except ValueError as err:
            raise ConfigError(f"--hub: {err}") from None
    if not hubs:
        raise ConfigError("--hub: no address given")
    token = args.token or os.environ.get(ENV_VARIABLE)
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"--token-file: {err}") from None
    if not token:
        raise ConfigError(f"no token: give --token, --token-file or ${ENV_VARIABLE}")
    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        tls = ClientTls.from_files(args.tls_ca, args.tls_cert, args.tls_key)
    return HubLink(hubs, token, tls)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run ``main(stop)`` on a new event loop; SIGINT and SIGTERM set ``stop``."""

    async def supervised() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await main(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(signum)

    return asyncio.run(supervised())


def _agent(args: argparse.Namespace) -> int:
    site = load_site(args.site)
    if args.buffer_dir is not None:
        site = dataclasses.replace(site, buffer_dir=args.buffer_dir)
    link = link_from_args(args)

    async def main(stop: asyncio.Event) -> int:
        runner = SiteRunner(site, link)
        await runner.start()
        _LOGGER.info(
            "Agent %s for site %s (%d assets) started; hubs %s",
            site.agent_id,
            site.site_id,
            len(site.assets),
            ", ".join(link.hubs),
        )
        try:
            await stop.wait()
        finally:
            await runner.stop()
        return 0

    return run_until_signalled(main)
