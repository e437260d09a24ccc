"""``edge-ems pointmap validate|catalog|diff``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..exceptions import PointMapError
from ..pointmap import load_point_map


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pointmap`` subcommand."""
    parser = subparsers.add_parser("pointmap", help="validate, list and compare point maps")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="validate point-map files or folders")
    validate.add_argument("paths", nargs="+", type=Path)
    validate.set_defaults(handler=_validate)


def _files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return files


def _validate(args: argparse.Namespace) -> int:
    failures = 0
    for path in _files(args.paths):
        try:
            point_map = load_point_map(path)
        except PointMapError as err:
            failures += 1
            print(f"FAIL {err}")  # noqa: T201
        else:
            print(f"ok   {path}: {len(point_map.points)} points")  # noqa: T201
    return 1 if failures else 0
