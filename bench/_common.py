"""Helpers every benchmark shares: progress lines, the median, the one-line JSON result.

A benchmark prints progress as it goes and, as its very last line, exactly one JSON object
with its figures, so scripts can read ``tail -n 1``.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence


def progress(message: str) -> None:
    """Print a progress line now (not buffered behind the result)."""
    print(message, flush=True)


def median(values: Sequence[float]) -> float:
    """The median of ``values``; benchmarks report it rather than the mean, which outliers
    on a busy machine would drag."""
    if not values:
        raise ValueError("no values to take the median of")
    return float(statistics.median(values))


def emit(result: Mapping[str, object]) -> None:
    """Print the result as the last line: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(result, separators=(",", ":")), flush=True)
