"""The answer ``edge_ems.get_plan`` gives, made by the planner from a real scenario.

The plan card reads this shape: ``{"site_id", "version", "made_at", "plan":
Plan.as_dict(), "prices": {"start", "step_minutes", "import", "export", "currency"}}``. The
card's node tests read it through the committed fixture
``frontend/test/fixtures/get_plan_response.json`` (``python -m tests.frontend.plan_response``
writes it again); the browser tests show the hub's planner's own plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[2]
SCENARIO = REPO / "tests" / "lib" / "planner" / "data" / "scenario_s7_15min.json"
FIXTURE = REPO / "frontend" / "test" / "fixtures" / "get_plan_response.json"


def get_plan_response(
    start: dt.datetime | None = None, site_id: str = "demo_home"
) -> dict[str, Any]:
    """The response for the s7 scenario's plan, its horizon moved to ``start`` if given."""
    from edge_ems.planner.scenario import load_scenario
    from edge_ems.planner.solver import solve

    problem = load_scenario(SCENARIO).problem
    if start is not None:
        horizon = dataclasses.replace(problem.horizon, start=start)
        problem = dataclasses.replace(problem, horizon=horizon)
    plan = solve(problem)
    made_at = problem.horizon.start - dt.timedelta(minutes=5)
    return {
        "site_id": site_id,
        "version": 1,
        "made_at": made_at.isoformat(),
        "plan": plan.as_dict(),
        "prices": {
            "start": problem.horizon.start.isoformat(),
            "step_minutes": problem.horizon.step_minutes,
            "import": [round(float(price), 5) for price in problem.import_price],
            "export": [round(float(price), 5) for price in problem.export_price],
            "currency": problem.currency,
        },
    }


def main() -> int:
    """Write the node tests' fixture."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE
    text = json.dumps(get_plan_response()) + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
