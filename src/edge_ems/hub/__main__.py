"""``python -m edge_ems.hub [--config FILE] [--app]``: run the hub until SIGTERM or SIGINT.

Without ``--config`` the app's ``/data/options.json`` is read when it exists; ``EDGE_EMS_*``
variables override either. Logs go to stderr as JSON lines.

``--app`` runs the hub as the Home Assistant app does: the options file holds the app's
options (:func:`~edge_ems.hub.config.app_config`), and a configuration error (or a start the
configuration makes fail) does not end the process: it is logged, and the API answers
``/health`` with status ``error`` and the reason until the options are fixed and the app is
restarted. Ending with an error would make the Supervisor restart the app, again and again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from ..exceptions import EdgeEmsError
from .api import ApiServer
from .api.problem import create_problem_app
from .app import Hub
from .config import ADDON_OPTIONS, ApiFallback, HubConfig, api_fallback, load_config
from .heap import keep_heap_frozen, tune_collector
from .logs import setup_logging
from .redact import without_userinfo

_LOGGER = logging.getLogger(__name__)


async def serve(config: HubConfig, *, fallback: ApiFallback | None = None) -> None:
    """Run a hub until SIGTERM or SIGINT; with ``fallback``, a hub that fails to start is
    reported through :func:`serve_problem` instead of raising."""
    async with _until_signalled() as stop:
        hub = Hub(config)
        try:
            await hub.start()
        except EdgeEmsError as err:
            if fallback is None:
                raise
            await serve_problem(str(err), fallback, stop)
            return
        tune_collector()
        heap = asyncio.get_running_loop().create_task(keep_heap_frozen(), name="edge_ems heap")
        try:
            await stop.wait()
        finally:
            heap.cancel()
            await hub.stop()


async def serve_problem(problem: str, fallback: ApiFallback, stop: asyncio.Event) -> None:
    """Answer ``/health`` with status ``error`` and ``problem`` until ``stop`` is set."""
    problem = without_userinfo(problem)
    _LOGGER.error(
        "The hub cannot run: %s. Only /health answers (status error) until the configuration "
        "is fixed and the hub restarted.",
        problem,
    )
    server = ApiServer(
        create_problem_app(
            problem,
            token=fallback.api_token,
            trust_ingress=fallback.trust_ingress,
            rate_limit=fallback.rate_limit,
            rate_burst=fallback.rate_burst,
        )
    )
    await server.start(fallback.api_host, fallback.api_port)
    try:
        await stop.wait()
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def _until_signalled() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)


async def _problem_until_signalled(problem: str, fallback: ApiFallback) -> None:
    async with _until_signalled() as stop:
        await serve_problem(problem, fallback, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the configuration, serve; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m edge_ems.hub",
        description="Run the Edge EMS hub (gRPC gateway, minute store, Parquet, uplink, REST "
        "API) until SIGTERM. Without --config the app's /data/options.json is read when it "
        "exists; EDGE_EMS_* variables override either.",
    )
    parser.add_argument("--config", type=Path, help="a YAML or JSON options file")
    parser.add_argument(
        "--app",
        action="store_true",
        help="run as the Home Assistant app: the options file (default /data/options.json) "
        "holds the app's options, and a configuration error is shown in /health instead of "
        "ending the process",
    )
    args = parser.parse_args(argv)
    path: Path | None = args.config or (ADDON_OPTIONS if args.app else None)
    fallback = api_fallback(path) if args.app else None
    try:
        config = load_config(path, app=args.app)
    except EdgeEmsError as err:
        if fallback is None:
            print(f"edge-ems hub: {without_userinfo(str(err))}", file=sys.stderr)  # noqa: T201
            return 2
        setup_logging(fallback.log_level, json_format=fallback.log_format == "json")
        try:
            asyncio.run(_problem_until_signalled(str(err), fallback))
        except EdgeEmsError as failure:  # not even the API could listen
            print(f"edge-ems hub: {without_userinfo(str(failure))}", file=sys.stderr)  # noqa: T201
            return 1
        return 0
    setup_logging(config.log_level, json_format=config.log_format == "json")
    try:
        asyncio.run(serve(config, fallback=fallback))
    except EdgeEmsError as err:
        print(f"edge-ems hub: {without_userinfo(str(err))}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
