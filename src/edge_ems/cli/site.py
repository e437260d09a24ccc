"""``edge-ems site validate FILE``: check a site file without touching a device.

Checks the file's keys and values, that every map it names exists and loads, and that every
device can be built (devices sharing a Modbus link agree on its settings, an MQTT bridge's
topic variables are filled in). Nothing connects: it runs on a desk, away from the plant.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ..modbus import LinkRegistry
from ..site import BuildContext, build_device, catalog_for, load_site_file
from .table import text_table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``site`` subcommand."""
    parser = subparsers.add_parser("site", help="work with site files")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="check a site file; exit 1 on a mistake")
    validate.add_argument("file", type=Path, help="the site file (YAML)")
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    site_file = load_site_file(args.file)
    description = site_file.description
    catalog = catalog_for(description)

    async def build() -> None:
        links = LinkRegistry()
        try:
            for spec in description.devices:
                context = BuildContext(catalog, links, description.interval(spec))
                build_device(spec, context)
        finally:
            await links.close()

    asyncio.run(build())
    rows = [
        [
            spec.device_id,
            spec.kind,
            spec.name,
            f"{description.interval(spec):g} s",
            "battery" if spec.limits is not None else "",
        ]
        for spec in description.devices
    ]
    print(text_table(["id", "kind", "name", "poll", "dispatch"], rows))  # noqa: T201
    hub = site_file.hub
    print(  # noqa: T201
        f"{args.file}: site {description.site_id!r} with {len(rows)} devices is valid"
        + (f"; hub {', '.join(hub.addresses)}" if hub is not None else "; no hub")
    )
    return 0
