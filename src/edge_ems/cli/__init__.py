"""The ``edge-ems`` command: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..exceptions import EdgeEmsError

# Each module offers ``register(subparsers)``, which adds its subcommand and sets ``handler``.
SUBCOMMANDS = (
    "pointmap", "site", "agent", "launcher", "sim", "scan", "demo",
    "health", "export", "diagnostics", "replay", "plan",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="edge-ems", description="Edge EMS command line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except EdgeEmsError as err:
        print(f"edge-ems: {err}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
