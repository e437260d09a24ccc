"""The plan card's node tests read a committed ``edge_ems.get_plan`` response: it must keep the
shape the planner gives today, or the card would be tested against a plan that no longer is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .plan_response import FIXTURE, get_plan_response


def shape(value: Any) -> Any:
    """The keys, nesting and list lengths of a JSON value, without the numbers."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [len(value), shape(value[0]) if value else None]
    return type(value).__name__


def test_the_committed_response_has_the_planners_shape() -> None:
    committed = json.loads(FIXTURE.read_text(encoding="utf-8"))
    fresh = get_plan_response()
    assert shape(committed) == shape(fresh), "run python -m tests.frontend.plan_response"
    # The prices come from the scenario as they are; the plan may differ in its last digits
    # from one HiGHS build to another.
    assert committed["prices"] == fresh["prices"]
    assert committed["plan"]["cost"] == pytest.approx(fresh["plan"]["cost"], abs=0.01)
