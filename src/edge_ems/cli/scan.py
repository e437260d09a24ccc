"""``edge-ems scan HOST[:PORT]``: find Modbus devices, read only."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

import yaml

from ..modbus import RtuOverTcpEndpoint, TcpEndpoint
from ..pointmap import load_catalog
from ..scan import Scanner, ScanReport, UnitReport, parse_target, parse_units
from ..site import DeviceKind, keys
from ..site.keys import TRANSPORT_RTU_OVER_TCP, TRANSPORT_TCP
from .sim import quiet_libraries
from .table import text_table

MIN_FIT = 0.5
"""A point map's least score for ``--site-entry`` to propose it."""


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
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    output.add_argument(
        "--site-entry",
        action="store_true",
        help="print a site file's devices: entry for each device found (edge-ems agent)",
    )
    parser.add_argument(
        "--min-fit",
        type=float,
        default=MIN_FIT,
        help=f"--site-entry: the least score a point map needs (default {MIN_FIT})",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # pymodbus warns of a refused connection that the scan reports itself.
    quiet_libraries({"pymodbus": logging.ERROR})
    host, port = parse_target(args.target)
    units = parse_units(args.units)
    endpoint = RtuOverTcpEndpoint(host, port) if args.rtu_over_tcp else TcpEndpoint(host, port)
    scanner = Scanner(endpoint, load_catalog(), rate=args.rate, timeout=args.timeout)
    report = asyncio.run(scanner.scan(units))
    if args.site_entry:
        transport = TRANSPORT_RTU_OVER_TCP if args.rtu_over_tcp else TRANSPORT_TCP
        entries = site_entries(report, host, port, transport, min_fit=args.min_fit)
        text = yaml.safe_dump({"devices": entries}, sort_keys=False) if entries else ""
        print(text or "# no device found to describe", end="" if text else "\n")  # noqa: T201
    else:
        print(json.dumps(report.as_json(), indent=2) if args.json else render(report))  # noqa: T201
    return 0 if any(unit.present for unit in report.units) else 1


def site_entries(
    report: ScanReport, host: str, port: int, transport: str, *, min_fit: float = MIN_FIT
) -> list[dict[str, Any]]:
    """A site file's device entries for what the scan found: each device of a SunSpec chain,
    else the best-fitting point map of a unit if it fits well enough. The maker and model
    name it where the device said; ids are unique and left for the user to rename."""
    entries: list[dict[str, Any]] = []
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for found in report.found():
        by_unit.setdefault(found["unit_id"], []).append(found)
    for unit, findings in by_unit.items():
        chain = [item for item in findings if item["kind"] == DeviceKind.SUNSPEC]
        maps = [item for item in findings if item["kind"] == DeviceKind.MODBUS]
        for item in chain:
            entry: dict[str, Any] = {
                "id": f"sunspec-{unit}-{item['device_index']}",
                "kind": DeviceKind.SUNSPEC.value,
                keys.HOST: host, keys.PORT: port, keys.UNIT_ID: unit,
                keys.BASE_ADDRESS: item["base_address"],
                keys.DEVICE_INDEX: item["device_index"],
            }  # fmt: skip
            identity = item["identity"] or {}
            if identity.get("manufacturer"):
                entry["name"] = f"{identity['manufacturer']} {identity.get('model') or ''}".strip()
            entries.append(entry)
        if not chain and maps and maps[0]["fit"] >= min_fit:
            best = maps[0]
            entries.append(
                {"id": f"{best['point_map']}-{unit}".replace("_", "-"),
                 "kind": DeviceKind.MODBUS.value, keys.POINT_MAP: best["point_map"],
                 keys.TRANSPORT: transport, keys.HOST: host, keys.PORT: port,
                 keys.UNIT_ID: unit}
            )  # fmt: skip
    return entries


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
