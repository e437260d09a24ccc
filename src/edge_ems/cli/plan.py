"""``edge-ems plan``: plan a scenario file, write the schedule.

Reads a ``planner-bench-scenario/1`` file (with the optional EV, heat pump, more batteries
and deferrable loads :mod:`edge_ems.planner.scenario` describes), solves it, and writes a
``planner-bench-schedule/1`` file. One line on stdout says how it went.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..exceptions import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` subcommand."""
    parser = subparsers.add_parser(
        "plan",
        help="plan a scenario file with HiGHS and write the schedule",
        description="Read a planner-bench-scenario/1 file, find the cheapest schedule and "
        "write it as planner-bench-schedule/1 (see docs/planner.md).",
    )
    parser.add_argument("--scenario", type=Path, required=True, metavar="FILE")
    parser.add_argument("--out", type=Path, required=True, metavar="PLAN.json")
    parser.add_argument(
        "--gap",
        type=float,
        default=0.01,
        metavar="FRACTION",
        help="stop once the plan is proven within this share of the best (default 0.01)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="return the best plan found after this long (default 10)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # The solver and numpy load only for this command, and only with the hub extra.
    try:
        from ..planner.scenario import load_scenario, schedule
        from ..planner.solver import SolveOptions, solve
    except ImportError as err:
        raise ConfigError(f"edge-ems plan needs pip install 'edge-ems[hub]' ({err})") from err

    if not 0 < args.gap < 1:
        raise ConfigError(f"--gap must be between 0 and 1, got {args.gap}")
    if not args.time_limit > 0:
        raise ConfigError(f"--time-limit must be positive, got {args.time_limit}")
    scenario = load_scenario(args.scenario)
    plan = solve(scenario.problem, SolveOptions(mip_rel_gap=args.gap, time_limit_s=args.time_limit))
    document = schedule(scenario, plan)
    text = json.dumps(document, separators=(",", ":")) + "\n"
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{args.out}: cannot write the schedule: {err.strerror}") from None
    shortfalls = "; ".join(f"{s.asset_id}: {s.message}" for s in plan.shortfalls) or "none"
    print(  # noqa: T201
        f"{plan.status}: cost {plan.cost:.4f} {plan.currency} over {plan.horizon.n_steps} steps, "
        f"solved in {plan.solve_ms:.1f} ms (gap {plan.mip_gap:.2%}); shortfalls: {shortfalls}",
        file=sys.stdout,
    )
    return 0
