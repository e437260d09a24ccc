"""``edge-ems scan HOST[:PORT]``: find Modbus devices, read only."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from ..modbus import RtuOverTcpEndpoint, TcpEndpoint
from ..pointmap import load_catalog
from ..scan import Scanner, ScanReport, UnitReport, parse_target, parse_units
from .sim import quiet_libraries
from .table import text_table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``scan`` subcommand."""
    parser = subparsers.add_parser(
        "scan",
        help="find Modbus devices and suggest point maps (read only)",
        description="Probe unit ids behind a Modbus TCP device or gateway with read requests "
        "only (functions 3 and 4), detect SunSpec and score every bundled point map. Exit "
        "status 0 when a device answered, 1 when none did.",
    )
    parser.add_argument("target", metavar="HOST[:PORT]", help="device or gateway (port 502)")
    parser.add_argument(
        "--units", default="1-10", help="unit ids, e.g. 1-10 or 1,3,5-7 (default 1-10)"
    )
    parser.add_argument(
        "--rate", type=float, default=10.0, metavar="N", help="requests per second (default 10)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1.0, help="seconds to wait for an answer (default 1)"
    )
    parser.add_argument(
        "--rtu-over-tcp", action="store_true", help="RTU frames over TCP (transparent gateways)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # pymodbus warns of a refused connection that the scan reports itself.
    quiet_libraries({"pymodbus": logging.ERROR})
    host, port = parse_target(args.target)
    units = parse_units(args.units)
    endpoint = RtuOverTcpEndpoint(host, port) if args.rtu_over_tcp else TcpEndpoint(host, port)
    scanner = Scanner(endpoint, load_catalog(), rate=args.rate, timeout=args.timeout)
    report = asyncio.run(scanner.scan(units))
    print(json.dumps(report.as_json(), indent=2) if args.json else render(report))  # noqa: T201
    return 0 if any(unit.present for unit in report.units) else 1


def render(report: ScanReport) -> str:
    """The report for people."""
    lines = [f"{report.target}: read only, {report.requests} requests, {report.writes} writes"]
    for unit in report.units:
        lines += ["", *_unit_lines(unit)]
    return "\n".join(lines)


def _unit_lines(unit: UnitReport) -> list[str]:
    if not unit.present:
        return [f"unit {unit.unit}: no device ({unit.answer})"]
    lines = [f"unit {unit.unit}: answers ({unit.answer})"]
    if unit.sunspec is not None:
        models = " ".join(str(model) for model in unit.sunspec.models) or "unreadable"
        lines.append(f"  SunSpec at {unit.sunspec.base}: models {models}")
        if unit.sunspec.error:
            lines.append(f"    {unit.sunspec.error}")
        for device in unit.sunspec.devices:
            identity = device.identity
            who = "unreadable" if identity is None else (
                f"{identity.manufacturer} {identity.model}, serial {identity.serial or '?'}"
            )  # fmt: skip
            lines.append(
                f"    device {device.index} ({device.first}-{device.last}, "
                f"models {' '.join(str(m.id) for m in device.models)}): {who}"
            )
    if not unit.suggestions:
        if unit.sunspec is None:
            lines.append("  no bundled point map fits")
        return lines
    rows = [
        (fit.map_id, f"{fit.score:.0%}", f"{fit.informative}/{fit.probed}",
         {True: "matches", False: "fails", None: "-"}[fit.identified])
        for fit in unit.suggestions
    ]  # fmt: skip
    heading = "suggested map" if unit.sunspec is None else "point map (below SunSpec)"
    table = text_table((heading, "score", "informative", "identify"), rows)
    lines += [f"  {line}" for line in table.splitlines()]
    return lines
