"""Plain-text tables for the terminal: columns padded to their widest cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def text_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``rows`` under ``headers``; numbers align right, everything else left."""
    body = [list(row) for row in rows]
    cells = [list(headers), *([_cell(value) for value in row] for row in body)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(headers))]
    right = [
        bool(body)
        and all(isinstance(row[column], int | float) for row in body if row[column] != "")
        for column in range(len(headers))
    ]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(line, widths, right, strict=True)
        ).rstrip()
        for line in cells
    )


def _cell(value: object) -> str:
    return "" if value is None else str(value)
