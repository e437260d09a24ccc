"""The read planner reaches the minimum number of requests the device limits allow."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.pointmap.model import RegisterSpace
from edge_ems.pointmap.plan import Block, Limits, plan_space

HOLDING = RegisterSpace.HOLDING


def minimum_requests(spans: list[tuple[int, int]], limits: Limits) -> int:
    """Dynamic programming over every partition of the sorted spans into runs."""
    spans = sorted(spans)
    refused = [address for first, last in limits.refused for address in range(first, last + 1)]

    def feasible(i: int, j: int) -> bool:
        run = spans[i : j + 1]
        if run[-1][1] - run[0][0] + 1 > limits.max_block:
            return False
        for (_, end), (start, _) in pairwise(run):
            if start - end - 1 > limits.max_gap:
                return False
            if any(end < address < start for address in refused):
                return False
        return True

    best = [0] + [10**9] * len(spans)
    for j in range(len(spans)):
        for i in range(j + 1):
            if feasible(i, j):
                best[j + 1] = min(best[j + 1], best[i] + 1)
    return best[-1]


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[tuple[int, int]], Limits]:
    widths = draw(st.lists(st.sampled_from([1, 1, 2, 2, 4]), min_size=1, max_size=25))
    gaps = draw(st.lists(st.integers(0, 30), min_size=len(widths), max_size=len(widths)))
    spans, address = [], 0
    for width, gap in zip(widths, gaps, strict=True):
        address += gap
        spans.append((address, address + width - 1))
        address += width
    limits = Limits(max_block=draw(st.integers(4, 125)), max_gap=draw(st.integers(0, 20)))
    holes = [(end + 1, start - 1) for (_, end), (start, _) in pairwise(spans) if start - end > 1]
    refused = draw(st.lists(st.sampled_from(holes), max_size=3, unique=True)) if holes else []
    return spans, Limits(limits.max_block, limits.max_gap, tuple(refused))


@given(layouts())
def test_plan_is_minimal_and_valid(layout: tuple[list[tuple[int, int]], Limits]) -> None:
    spans, limits = layout
    blocks = plan_space(HOLDING, spans, limits)
    assert len(blocks) == minimum_requests(spans, limits)
    for start, end in spans:
        assert sum(1 for b in blocks if b.address <= start and end <= b.end) == 1
    for block in blocks:
        assert block.count <= limits.max_block
        for first, last in limits.refused:
            assert block.end < first or block.address > last


def test_bridges_only_allowed_gaps() -> None:
    spans = [(0, 0), (3, 3), (20, 21)]
    assert plan_space(HOLDING, spans, Limits(max_gap=0)) == [
        Block(HOLDING, 0, 1), Block(HOLDING, 3, 1), Block(HOLDING, 20, 2),
    ]  # fmt: skip
    assert plan_space(HOLDING, spans, Limits(max_gap=2)) == [
        Block(HOLDING, 0, 4), Block(HOLDING, 20, 2),
    ]  # fmt: skip
    assert plan_space(HOLDING, spans, Limits(max_gap=2, refused=((1, 1),))) == [
        Block(HOLDING, 0, 1), Block(HOLDING, 3, 1), Block(HOLDING, 20, 2),
    ]  # fmt: skip


def test_refuses_impossible_points() -> None:
    with pytest.raises(ValueError, match="exceed"):
        plan_space(HOLDING, [(0, 10)], Limits(max_block=4))
    with pytest.raises(ValueError, match="refuses"):
        plan_space(HOLDING, [(0, 10)], Limits(refused=((5, 5),)))
