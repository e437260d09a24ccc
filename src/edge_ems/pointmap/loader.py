"""Read point maps from YAML files and the bundled catalog."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..exceptions import PointMapError
from .model import PointMap
from .schema import validate


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which YAML would silently collapse."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse map YAML safely, refusing duplicate keys; errors name the line and column.

    Point, topic and node maps all read their YAML through this.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise PointMapError(f"not valid YAML: {problem}", source=source, path=where) from None
    except ValueError as err:  # PyYAML's constructors raise it for dates such as 2020-02-30
        raise PointMapError(f"not valid YAML: {err}", source=source) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise PointMapError("not valid YAML: nested too deeply", source=source) from None


def read_map_file(path: Path) -> str:
    """A map file's text (blocking I/O: keep it off event loops)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PointMapError(f"cannot read: {err}", source=str(path)) from None


def parse_point_map(text: str, *, source: str, map_id: str) -> PointMap:
    """Parse and validate point-map YAML text."""
    return validate(parse_yaml(text, source=source), source=source, map_id=map_id)


def load_point_map(path: str | Path) -> PointMap:
    """Load and validate one point-map file (blocking I/O: keep it off event loops)."""
    path = Path(path)
    return parse_point_map(read_map_file(path), source=str(path), map_id=path.stem)


def bundled_paths(package: str, folder: str) -> dict[str, Path]:
    """The YAML maps bundled in ``package``'s ``folder``, by catalog id (the file's stem).

    Point, topic and node maps each keep their catalog in a folder of their own package.
    """
    root = resources.files(package) / folder
    return {
        entry.name.removesuffix(".yaml"): Path(str(entry))
        for entry in root.iterdir()
        if entry.name.endswith(".yaml")
    }


def load_bundled[T](paths: dict[str, Path], load: Callable[[Path], T]) -> dict[str, T]:
    """Load every map of a catalog with its format's loader (blocking I/O)."""
    return {map_id: load(path) for map_id, path in sorted(paths.items())}


def catalog_paths() -> dict[str, Path]:
    """The bundled point maps by catalog id."""
    return bundled_paths("edge_ems", "pointmaps")


def load_catalog() -> dict[str, PointMap]:
    """Load every bundled point map (blocking I/O)."""
    return load_bundled(catalog_paths(), load_point_map)
