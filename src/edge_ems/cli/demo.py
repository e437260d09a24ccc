"""``edge-ems demo`` (what ``make demo`` runs): the simulated site, read through the library.

The demo is a stack of parts, started in order and stopped in reverse: the simulated site,
then the library's own clients for every device it serves, polled into a live table per
device. Later stages add their parts to the same stack (the hub, Home Assistant).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..device import Health
from ..exceptions import DeviceError
from ..metrics import METRICS, Category, MetricKind
from ..modbus import LinkRegistry, LinkSettings
from ..readings import Readings, Value
from ..sim.clients import SiteDevice, site_devices
from ..sim.site import SimulatedSite
from .sim import (
    SERVER_LOGGERS,
    SiteOptions,
    add_site_arguments,
    quiet_libraries,
    site_options,
    wait_for_stop,
)
from .table import text_table

CLEAR = "\x1b[H\x1b[2J"
"""ANSI: cursor home, clear the screen. Every terminal emulator understands it."""
CONNECT_TIMEOUT = 20.0
HEADER_WIDTH = 48
"""Device headers are cut to this, or to their table's width if wider."""
LINK_SETTINGS = LinkSettings(timeout=3.0, retries=1)
_CATEGORY_ORDER = {category: index for index, category in enumerate(Category)}
_SHOWN_KINDS = frozenset(
    {MetricKind.MEASUREMENT, MetricKind.COUNTER, MetricKind.STATE, MetricKind.FLAG}
)
"""What the compact table shows; ``--all`` adds settings, bitfields and diagnostics."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the simulated site and show every device's readings live",
        description="Start the simulated site in this process, connect the library's clients "
        "to every device and show their normalised readings, refreshing, until Ctrl-C.",
    )
    add_site_arguments(parser)
    parser.add_argument(
        "--once",
        action="store_true",
        help="print one snapshot once every device has answered, then exit "
        "(status 1 if a device never did)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"
    )
    parser.add_argument(
        "--all", action="store_true", help="show settings and diagnostic metrics too"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="with --once: seconds to wait for every device (default 30)",
    )
    parser.set_defaults(handler=_run)


@dataclass(slots=True)
class DeviceView:
    """A device of the site with what it last told the demo."""

    site_device: SiteDevice
    readings: Readings = field(default_factory=dict)
    error: str | None = None

    @property
    def ready(self) -> bool:
        """It has answered with readings."""
        return bool(self.readings)

    async def connect(self) -> None:
        """Connect, noting a failure instead of raising it."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.site_device.device.connect()
        except (DeviceError, TimeoutError) as err:
            self.error = f"cannot connect: {err or 'timed out'}"

    async def poll(self) -> None:
        """Read once; a failure keeps the last readings and notes the error."""
        if self.site_device.device.identity is None and self.error is not None:
            await self.connect()
            if self.site_device.device.identity is None:
                return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                readings = await self.site_device.device.read()
        except (DeviceError, TimeoutError) as err:
            self.error = str(err) or "timed out"
            return
        self.readings = {**self.readings, **readings}
        self.error = None


class Demo:
    """The demo's parts: the simulated site and a client for each of its devices."""

    def __init__(self, options: SiteOptions) -> None:
        self.site = SimulatedSite(
            options.config, opcua_cache=options.opcua_cache, clock=options.clock
        )
        self.registry = LinkRegistry()
        self.views: list[DeviceView] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Demo:
        try:
            await self._stack.enter_async_context(self.site)
            self._stack.push_async_callback(self.registry.close)
            devices = await site_devices(self.site.endpoints, self.registry, settings=LINK_SETTINGS)
            self.views = [DeviceView(device) for device in devices]
            for view in self.views:
                self._stack.push_async_callback(view.site_device.device.close)
            await asyncio.gather(*(view.connect() for view in self.views))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._stack.aclose()

    async def poll(self) -> None:
        """Read every device once, all at the same time."""
        await asyncio.gather(*(view.poll() for view in self.views))

    def snapshot(self, *, show_all: bool = False, width: int = 100) -> str:
        """Everything the demo knows now, as text."""
        blocks = [_device_block(view, show_all=show_all) for view in self.views]
        return "\n".join([self._headline(), "", *_columns(blocks, width), "", self._links()])

    def _headline(self) -> str:
        flows = self.site.plant.flows
        if flows is None:
            return "Edge EMS demo"
        moment = dt.datetime.fromtimestamp(flows.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        pv = self.site.plant.pv.power_w(flows.timestamp)
        return (
            f"Edge EMS demo - simulated {moment} UTC: PV {pv / 1000:.2f} kW, "
            f"house {flows.house_w / 1000:.2f} kW, grid {flows.grid_w / 1000:+.2f} kW "
            "(+ import). Ctrl-C stops."
        )

    def _links(self) -> str:
        rows: list[tuple[object, ...]] = []
        links = {
            id(v.site_device.link): v.site_device.link for v in self.views if v.site_device.link
        }
        for link in links.values():
            users = [v.site_device.key for v in self.views if v.site_device.link is link]
            rows.append((link.name, "up" if link.connected else "down", ", ".join(users)))
        for view in self.views:
            if view.site_device.link is None:
                health = view.site_device.device.health
                rows.append((view.site_device.where, _link_state(health), view.site_device.key))
        return "Links\n" + text_table(("link", "state", "devices"), rows)


def _link_state(health: Health) -> str:
    return "up" if health.connected else "down"


def _format(value: Value) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return "-" if value is None else str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:.1f}"


def _shown(metric: str, *, show_all: bool) -> bool:
    known = METRICS.get(metric)
    if known is None or known.kind is MetricKind.IDENTITY:
        return False
    if show_all:
        return True
    return known.kind in _SHOWN_KINDS and not known.noisy and not known.diagnostic


def _sort_key(metric: str) -> tuple[int, str]:
    return _CATEGORY_ORDER[METRICS[metric].category], metric


def _device_block(view: DeviceView, *, show_all: bool) -> list[str]:
    device, health = view.site_device.device, view.site_device.device.health
    identity = device.identity
    who = "" if identity is None else f" - {identity.manufacturer} {identity.model}"
    state = "connected" if health.connected else "not connected"
    if health.error_streak:
        state += f", {health.error_streak} errors"
    header = [f"{view.site_device.title}{who}", f"{state}: {view.site_device.where}"]
    if view.error:
        header.append(f"! {view.error}")
    metrics = sorted((m for m in view.readings if _shown(m, show_all=show_all)), key=_sort_key)
    rows = [
        (metric, _format(view.readings[metric].value), METRICS[metric].unit or "",
         view.readings[metric].quality.value)
        for metric in metrics
    ]  # fmt: skip
    body = text_table(("metric", "value", "unit", "quality"), rows).splitlines() if rows else []
    if not rows and not view.error:
        body = ["(waiting for readings)"]
    # Headers are clipped to the table's width, so that blocks fit side by side.
    width = max([HEADER_WIDTH, *(len(line) for line in body)])
    return [_clip(line, width) for line in header] + body


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def _columns(blocks: Sequence[list[str]], width: int) -> list[str]:
    """Blocks side by side as far as the terminal is wide, each column top-aligned."""
    if not blocks:
        return []
    column_width = max(len(line) for block in blocks for line in block) + 3
    per_row = max(1, width // column_width)
    lines: list[str] = []
    for start in range(0, len(blocks), per_row):
        row = blocks[start : start + per_row]
        height = max(len(block) for block in row)
        for index in range(height):
            cells = [
                (block[index] if index < len(block) else "").ljust(column_width) for block in row
            ]
            lines.append("".join(cells).rstrip())
        lines.append("")
    return lines[:-1]


def _run(args: argparse.Namespace) -> int:
    quiet_libraries(SERVER_LOGGERS)
    options = site_options(args)
    return asyncio.run(_demo(options, args))


async def _demo(options: SiteOptions, args: argparse.Namespace) -> int:
    async with Demo(options) as demo:
        if args.once:
            return await _once(demo, args)
        stop = asyncio.create_task(wait_for_stop())
        try:
            while not stop.done():
                await demo.poll()
                width = shutil.get_terminal_size().columns
                frame = demo.snapshot(show_all=args.all, width=width)
                sys.stdout.write((CLEAR if sys.stdout.isatty() else "\n") + frame + "\n")
                sys.stdout.flush()
                await asyncio.wait([stop], timeout=args.interval)
        finally:
            stop.cancel()
    return 0


async def _once(demo: Demo, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.wait
    while True:
        await demo.poll()
        if all(view.ready for view in demo.views) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    print(demo.snapshot(show_all=args.all, width=shutil.get_terminal_size().columns))  # noqa: T201
    return 0 if all(view.ready for view in demo.views) else 1
