"""Voluptuous validators every map format shares: point, topic and node maps.

They refuse what YAML lets through by accident (``true`` for a number, ``.nan``, integers
too large for a float) and word their errors for people editing a map by hand.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from ..exceptions import ConfigFileError, PointMapError
from ..metrics import METRICS

# voluptuous words a misspelt key as "not a valid option" or "extra keys not allowed".
_EXTRA_KEY_MESSAGES = frozenset({"not a valid option", "extra keys not allowed"})

TEXT = vol.All(str, vol.Length(min=1))
"""A string that is not empty."""


def integer(value: Any) -> int:
    """An integer, and not a bool (``address: true`` is a typo, not register 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid("expected an integer")
    return value


def number(value: Any) -> float:
    """A finite number as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise vol.Invalid("expected a number")
    try:
        result = float(value)
    except OverflowError:
        raise vol.Invalid("number too large") from None
    if not math.isfinite(result):
        raise vol.Invalid("expected a finite number")
    return result


def number_pair(value: Any) -> tuple[float, float]:
    """``[minimum, maximum]``, in that order."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise vol.Invalid("expected [minimum, maximum]")
    low, high = (number(item) for item in value)
    if low > high:
        raise vol.Invalid(f"minimum {low} is above maximum {high}")
    return (low, high)


def enum_of(kind: type[Any]) -> vol.All:
    """One of an enum's values, turned into the member (a bare type only type-checks)."""
    return vol.All(str, vol.In([member.value for member in kind]), vol.Coerce(kind))


def metric_name(value: Any) -> str:
    """A metric of the vocabulary; a near miss is named in the error."""
    if not isinstance(value, str) or value not in METRICS:
        close = difflib.get_close_matches(str(value), METRICS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise vol.Invalid(f"unknown metric {value!r}{hint}")
    return value


def dotted(parts: list[Any]) -> str:
    """A key path as people write it: ``points.soc_pct.scale``."""
    return ".".join(str(part) for part in parts)


def apply_schema(
    schema: vol.Schema,
    data: Any,
    *,
    source: str,
    expected: str,
    error: type[ConfigFileError] = PointMapError,
    prefix: str = "",
) -> dict[str, Any]:
    """Check parsed YAML against a schema; raise ``error`` for the first problem.

    ``expected`` names the top-level keys for the error a non-mapping gets; ``prefix`` goes
    in front of every key path. Of several errors the one first by key path is reported, so
    a file gives the same error every time.
    """
    if not isinstance(data, Mapping):
        raise error(f"expected a mapping with {expected}", source=source, path=prefix)
    try:
        checked: dict[str, Any] = schema(dict(data))
    except vol.MultipleInvalid as err:
        first = min(err.errors, key=lambda problem: (dotted(problem.path), str(problem.msg)))
        path = ".".join(part for part in (prefix, dotted(first.path)) if part)
        raise error(_reason(first), source=source, path=path) from None
    return checked


def _reason(error: vol.Invalid) -> str:
    if error.msg in _EXTRA_KEY_MESSAGES:
        return "unknown key (misspelt, or not part of the format)"
    return str(error.msg)
