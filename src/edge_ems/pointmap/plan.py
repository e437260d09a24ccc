"""Read planning: cover a device's points with the fewest Modbus requests it accepts.

A block may not exceed the device's largest request, may not touch an address it refuses,
and may bridge unrequested registers only up to the device's ``max_gap``. Points are never
split across requests. Within one register space, growing each block greedily from the
lowest unread point is optimal: any plan's first block covers a prefix of the sorted spans,
and the greedy block covers the longest feasible prefix, so an exchange argument carries
over block by block.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import PointMap, RegisterSpace


@dataclass(frozen=True, slots=True, order=True)
class Block:
    """One read request: ``count`` registers from ``address`` in ``space``."""

    space: RegisterSpace
    address: int
    count: int

    @property
    def end(self) -> int:
        """Last address read."""
        return self.address + self.count - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """What a device accepts in one read."""

    max_block: int = 125
    max_gap: int = 0
    refused: tuple[tuple[int, int], ...] = ()


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint (start, end) spans; overlapping ones must be read together."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class _Refused:
    """Answers 'is any refused address in [a, b]?' in logarithmic time."""

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        self._ranges = merge_spans(ranges)
        self._starts = [start for start, _ in self._ranges]

    def touches(self, first: int, last: int) -> bool:
        if first > last:
            return False
        index = bisect.bisect_right(self._starts, last) - 1
        return index >= 0 and self._ranges[index][1] >= first


def plan_space(
    space: RegisterSpace, spans: Iterable[tuple[int, int]], limits: Limits
) -> list[Block]:
    """Plan the reads of inclusive ``(start, end)`` register spans in one space."""
    refused = _Refused(limits.refused)
    blocks: list[Block] = []
    block_start = block_end = -1
    for start, end in merge_spans(spans):
        if end - start + 1 > limits.max_block:
            raise ValueError(
                f"{space} registers {start}-{end} exceed the device's "
                f"{limits.max_block}-register reads"
            )
        if refused.touches(start, end):
            raise ValueError(
                f"{space} registers {start}-{end} include an address the device refuses"
            )
        fits = (
            block_start >= 0
            and end - block_start + 1 <= limits.max_block
            and start - block_end - 1 <= limits.max_gap
            and not refused.touches(block_end + 1, start - 1)
        )
        if fits:
            block_end = end
            continue
        if block_start >= 0:
            blocks.append(Block(space, block_start, block_end - block_start + 1))
        block_start, block_end = start, end
    if block_start >= 0:
        blocks.append(Block(space, block_start, block_end - block_start + 1))
    return blocks


def limits_of(point_map: PointMap) -> Limits:
    """The read limits a point map declares for its device."""
    device = point_map.device
    return Limits(device.max_block, device.max_gap, device.refused)


def plan_reads(point_map: PointMap, metrics: Iterable[str] | None = None) -> list[Block]:
    """Plan the reads for ``metrics`` (default: every readable point), scale factors included."""
    wanted = set(point_map.points) if metrics is None else set(metrics)
    spans: dict[RegisterSpace, list[tuple[int, int]]] = {}
    for point in point_map.readable_points():
        if point.metric not in wanted:
            continue
        spans.setdefault(point.space, []).append((point.address, point.end))
        if point.scale_factor is not None:
            spans[point.space].append((point.scale_factor, point.scale_factor))
    limits = limits_of(point_map)
    return [block for space in sorted(spans) for block in plan_space(space, spans[space], limits)]
