"""``edge-ems pointmap validate|catalog|diff``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Set
from enum import Enum
from pathlib import Path

from ..exceptions import PointMapError
from ..pointmap import PointMap, catalog_paths, load_catalog, load_point_map

# diff's exit statuses, as diff(1) has them.
SAME, DIFFERENT, TROUBLE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``pointmap`` subcommand."""
    parser = subparsers.add_parser("pointmap", help="validate, list and compare point maps")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = actions.add_parser("validate", help="validate point-map files or folders")
    validate.add_argument("paths", nargs="+", type=Path)
    validate.set_defaults(handler=_validate)
    catalog = actions.add_parser("catalog", help="list the bundled point maps")
    catalog.add_argument("--json", action="store_true", help="print JSON instead of a table")
    catalog.set_defaults(handler=_catalog)
    diff = actions.add_parser(
        "diff",
        help="compare two point maps (files or catalog ids)",
        description="Exit status: 0 when the maps are equal, 1 when they differ, 2 on error.",
    )
    diff.add_argument("a", help="point-map file or catalog id")
    diff.add_argument("b", help="point-map file or catalog id")
    diff.set_defaults(handler=_diff)


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


def catalog_rows(catalog: Mapping[str, PointMap]) -> list[dict[str, str | int]]:
    """One summary row per point map, in catalog-id order."""
    rows: list[dict[str, str | int]] = []
    for map_id, point_map in sorted(catalog.items()):
        device, points = point_map.device, point_map.points.values()
        rows.append(
            {
                "id": map_id,
                "maker": device.maker,
                "model": device.model,
                "kind": device.kind.value,
                "points": len(point_map.points),
                "writable": sum(1 for point in points if point.writable),
                "allowed": sum(1 for point in points if point.write and point.write.allow_write),
            }
        )
    return rows


def _table(rows: list[dict[str, str | int]]) -> str:
    headers = list(rows[0]) if rows else ["id"]
    cells = [headers] + [[str(row[key]) for key in headers] for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _catalog(args: argparse.Namespace) -> int:
    rows = catalog_rows(load_catalog())
    print(json.dumps(rows, indent=2) if args.json else _table(rows))  # noqa: T201
    return 0


def _resolve(name: str) -> PointMap:
    """A point map from a file path or, failing that, from the catalog."""
    path = Path(name)
    if path.is_file():
        return load_point_map(path)
    bundled = catalog_paths().get(name)
    if bundled is None:
        raise PointMapError("no such file, and no bundled point map has this id", source=name)
    return load_point_map(bundled)


def _plain(value: object) -> object:
    """A value as it reads in YAML: enums by value, mappings as dicts, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _flatten(obj: object, skip: Set[str] = frozenset()) -> dict[str, object]:
    """A dataclass's fields as ``name: value``, nested dataclasses as ``outer.inner``."""
    assert dataclasses.is_dataclass(obj)
    assert not isinstance(obj, type)
    flat: dict[str, object] = {}
    for field in dataclasses.fields(obj):
        if field.name in skip:
            continue
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            flat.update({f"{field.name}.{k}": v for k, v in _flatten(value).items()})
        else:
            flat[field.name] = _plain(value)
    return flat


def _changes(old: dict[str, object], new: dict[str, object]) -> list[str]:
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def diff_lines(a: PointMap, b: PointMap) -> list[str]:
    """Readable differences between two point maps; empty when they are equal."""
    lines = [f"  ~ {change}" for change in _changes(*(_flatten(m.device, {"id"}) for m in (a, b)))]
    if lines:
        lines.insert(0, "device:")
    point_lines: list[str] = []
    for metric in sorted(a.points.keys() | b.points.keys()):
        old, new = a.points.get(metric), b.points.get(metric)
        if new is None:
            point_lines.append(f"  - {metric}")
        elif old is None:
            point_lines.append(f"  + {metric}")
        else:
            skip = frozenset({"metric"})
            changes = _changes(_flatten(old, skip), _flatten(new, skip))
            point_lines.extend(f"  ~ {metric}.{change}" for change in changes)
    if point_lines:
        lines += ["points:", *point_lines]
    return lines


def _diff(args: argparse.Namespace) -> int:
    try:
        a, b = _resolve(args.a), _resolve(args.b)
    except PointMapError as err:
        print(f"edge-ems: {err}", file=sys.stderr)  # noqa: T201
        return TROUBLE
    lines = diff_lines(a, b)
    print(f"--- {a.source}\n+++ {b.source}")  # noqa: T201
    print("\n".join(lines) if lines else "no differences")  # noqa: T201
    return DIFFERENT if lines else SAME
