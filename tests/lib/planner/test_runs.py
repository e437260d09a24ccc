"""Rounding a load with minimum on/off times: the dynamic programme against every sequence."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ems.planner.solver import runs


def keeps_times(
    seq: tuple[int, ...], up: int, down: int, was_on: bool, forced: list[int], allowed: list[int]
) -> bool:
    """Runs of at least ``up`` that fit the window, rests of at least ``down``, forced steps
    on, steps not allowed off."""
    previous, run, rest = (1 if was_on else 0), (up if was_on else 0), down
    for step, on in enumerate(seq):
        if (forced[step] and not on) or (on and not allowed[step]):
            return False
        if on and not previous:
            if rest < down or step > len(seq) - up:
                return False
            run = 1
        elif on:
            run += 1
        elif previous:
            if run < up:
                return False
            rest = 1
        else:
            rest += 1
        previous = on
    return True


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[float], int, int, int, bool, list[int], list[int]]:
    length = draw(st.integers(1, 9))
    required = draw(st.integers(0, length))
    was_on = draw(st.booleans())
    held = draw(st.integers(0, 2)) if was_on else 0
    forced = [1 if step < min(held, required) else 0 for step in range(length)]
    score = draw(st.lists(st.floats(0, 1), min_size=length, max_size=length))
    allowed = [1 if forced[s] else draw(st.sampled_from([1, 1, 1, 0])) for s in range(length)]
    up, down = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return score, required, up, down, was_on, forced, allowed


@settings(max_examples=150, deadline=None)
@given(cases())
def test_runs_find_the_most_steps_then_the_best_score(
    case: tuple[list[float], int, int, int, bool, list[int], list[int]],
) -> None:
    score, required, up, down, was_on, forced, allowed = case
    got = runs(
        np.array(score), required, up, down, was_on, np.array(forced, dtype=float),
        np.array(allowed, dtype=float),
    )  # fmt: skip
    chosen = tuple(int(v) for v in got)
    assert keeps_times(chosen, up, down, was_on, forced, allowed)
    best = max(
        (sum(seq), float(np.dot(seq, score)))
        for seq in itertools.product((0, 1), repeat=len(score))
        if sum(seq) <= required and keeps_times(seq, up, down, was_on, forced, allowed)
    )
    assert sum(chosen) == best[0]
    assert float(np.dot(chosen, score)) >= best[1] - 1e-9
