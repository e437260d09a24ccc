"""``edge-ems agent``: a whole site without Home Assistant.

    edge-ems agent --site site.yaml --token-file /etc/edge-ems/token

Every device of the site file (:mod:`edge_ems.site.file`) is read on its interval, dispatch
goes through the site's guarded Dispatcher, and the agent streams to the hub the file names
(or ``--hub``), trying several hubs in order. Unsent telemetry waits on disk while the hub
is away. It runs until SIGINT or SIGTERM, then returns leased devices to their safe mode.
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

from ..dispatch import AuditRecord
from ..exceptions import ConfigError
from ..gateway.tls import ClientTls
from ..gateway.transport import parse_addresses
from ..site import (
    HubFileSettings,
    HubSettings,
    JsonFileStore,
    Site,
    SiteFile,
    catalog_for,
    load_site_file,
)

_LOGGER = logging.getLogger(__name__)
_AUDIT_LOGGER = logging.getLogger("edge_ems.audit")

ENV_VARIABLE = "EDGE_EMS_TOKEN"
LEARNED_FILE = "learned.json"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``agent`` subcommand."""
    parser = subparsers.add_parser(
        "agent",
        help="run a site without Home Assistant (devices from a site file)",
        description="Read every device of a site file, stream to the hub, execute setpoints "
        "through the guarded dispatch path.",
    )
    parser.add_argument("--site", type=Path, required=True, help="the site file (YAML)")
    parser.add_argument(
        "--buffer-dir", type=Path, help="keep unsent telemetry here (overrides the site file)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="keep what devices learned here (default: the site file's, or the buffer dir)",
    )
    add_link_arguments(parser, required=False)
    parser.set_defaults(handler=_agent)


def add_link_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The hub addresses, the token and TLS, shared with ``edge-ems launcher``."""
    parser.add_argument(
        "--hub",
        required=required,
        help="host:port of the hub; several, comma-separated, for failover"
        + ("" if required else " (default: the site file's hub.address)"),
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help=f"the agent's token (default: ${ENV_VARIABLE})")
    token.add_argument("--token-file", type=Path, help="read the token from this file")
    parser.add_argument("--tls", action="store_true", help="use TLS, trusting the system's CAs")
    parser.add_argument("--tls-ca", type=Path, help="use TLS, trusting this CA (PEM)")
    parser.add_argument("--tls-cert", type=Path, help="client certificate for mutual TLS (PEM)")
    parser.add_argument("--tls-key", type=Path, help="client key for mutual TLS (PEM)")


def hub_from_args(
    args: argparse.Namespace, agent_id: str, file: HubFileSettings | None = None
) -> HubSettings | None:
    """The hub link the arguments (over the site file's) describe, or ``None`` for none.

    Reads token and TLS files: call it before the event loop runs.
    """
    addresses: tuple[str, ...] = ()
    if args.hub:
        try:
            addresses = parse_addresses(args.hub)
        except ValueError as err:
            raise ConfigError(f"--hub: {err}") from None
    elif file is not None:
        addresses = file.addresses
    if not addresses:
        return None
    token_file = args.token_file or (file.token_file if file is not None else None)
    token = args.token or os.environ.get(ENV_VARIABLE)
    if token_file is not None and not args.token:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"token file: {err}") from None
    if not token:
        raise ConfigError(
            f"no token: give --token, --token-file, hub.token_file or ${ENV_VARIABLE}"
        )
    return HubSettings(addresses, token, agent_id, tls=_tls(args, file))


def _tls(args: argparse.Namespace, file: HubFileSettings | None) -> ClientTls | None:
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        return ClientTls.from_files(args.tls_ca, args.tls_cert, args.tls_key)
    if file is not None and file.tls:
        return ClientTls.from_files(file.tls_ca, file.tls_cert, file.tls_key)
    return None


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


def log_audit(record: AuditRecord) -> None:
    """The agent's audit sink: one log line per attempt, refused ones included."""
    _AUDIT_LOGGER.info(
        "%s %s=%s on %s by %s: %s (%s)",
        record.outcome,
        record.command,
        record.applied,
        record.device_id or record.site_id,
        record.requested_by,
        record.reason,
        record.message,
    )


def prepare(args: argparse.Namespace) -> tuple[SiteFile, HubSettings | None]:
    """The site file with the command line's overrides, and the hub link (blocking I/O)."""
    site_file = load_site_file(args.site)
    description = site_file.description
    if args.buffer_dir is not None:
        description = dataclasses.replace(description, buffer_dir=args.buffer_dir)
    state_dir = args.state_dir or site_file.state_dir or description.buffer_dir
    hub = hub_from_args(args, site_file.agent_id, site_file.hub)
    site_file = dataclasses.replace(
        site_file, description=dataclasses.replace(description, hub=hub), state_dir=state_dir
    )
    return site_file, hub


async def run_site(site_file: SiteFile, stop: asyncio.Event) -> int:
    """Run the site until ``stop`` is set."""
    description = site_file.description
    catalog = await asyncio.to_thread(catalog_for, description)
    store = None
    if site_file.state_dir is not None:
        store = JsonFileStore(site_file.state_dir / LEARNED_FILE)
    site = Site(description, catalog, learned_store=store, audit_sinks=[log_audit])
    await site.start()
    hub = description.hub
    _LOGGER.info(
        "Site %s: %d devices, control %s%s; %s",
        description.site_id,
        len(description.devices),
        "on" if description.policy.enable_control else "off",
        " (dry run)" if description.policy.enable_control and description.policy.dry_run else "",
        f"agent {hub.agent_id} to hub {', '.join(hub.hubs)}" if hub else "no hub",
    )
    try:
        await stop.wait()
    finally:
        await site.stop()
    return 0


def _agent(args: argparse.Namespace) -> int:
    site_file, _ = prepare(args)
    return run_until_signalled(lambda stop: run_site(site_file, stop))
