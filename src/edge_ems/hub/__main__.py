"""``python -m edge_ems.hub [--config FILE]``: run the hub until SIGTERM or SIGINT.

Without ``--config`` the app's ``/data/options.json`` is read when it exists; ``EDGE_EMS_*``
variables override either. Logs go to stderr as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ..exceptions import EdgeEmsError
from .app import Hub
from .config import HubConfig, load_config
from .logs import setup_logging


async def serve(config: HubConfig) -> None:
    """Run a hub until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    hub = Hub(config)
    try:
        await hub.start()
        await stop.wait()
    finally:
        await hub.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the configuration, serve; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m edge_ems.hub",
        description="Run the Edge EMS hub (gRPC gateway, minute store, Parquet, uplink, REST "
        "API) until SIGTERM. Without --config the app's /data/options.json is read when it "
        "exists; EDGE_EMS_* variables override either.",
    )
    parser.add_argument("--config", type=Path, help="a YAML or JSON options file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except EdgeEmsError as err:
        print(f"edge-ems hub: {err}", file=sys.stderr)  # noqa: T201
        return 2
    setup_logging(config.log_level, json_format=config.log_format == "json")
    try:
        asyncio.run(serve(config))
    except EdgeEmsError as err:
        print(f"edge-ems hub: {err}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
