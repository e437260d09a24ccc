"""The planner on seeded scenarios: solve time, feasibility, distance from the optimum, and
EMHASS 0.18 on the same scenarios in the same run.

Run: ``scripts/in-env python bench/planner.py`` (``--scenarios N`` per shape, default 200;
``--emhass N`` per benchmark-format shape, default 20, 0 to skip; ``--shapes a,b``).

Shapes (scenarios from ``bench/_scenarios.py``, seeds differ per shape):

- ``s1_{96,192}_{steps,block}_{export,noexport}``: the ``planner-bench-scenario/1`` shape at
  30-minute (96 steps) and 15-minute (192 steps) resolution, two on/off deferrable loads run
  in any steps or as one contiguous block each, battery export allowed or not;
- ``full_192``: two batteries (the second empty, with wear cost), an EV that wants 30 % more
  than its window holds on 1 or 3 phases, a heat pump, a single-block and a minimum on/off
  deferrable, curtailable PV and a day with negative prices.

Per shape: ``median_ms``/``p95_ms`` of :func:`edge_ems.planner.solver.solve` at its defaults
(1 % MIP gap) on the parsed scenario; ``infeasible``, plans that break a rule (the format's
own rules, scored from the written schedule, for benchmark-format shapes; every physical
limit of :mod:`edge_ems.planner.check` for all) or fell back; ``cost_gap_pct`` (median,
max), the plan's cost above the cost of the same model solved to a 1e-6 gap
(``exact_time_limit_s`` each), relative to the latter's absolute value, with ``cost_gap_eur``
the same in money and ``bound_gap_pct`` the objective's distance from the best proven bound
(an upper bound on the true gap, also where the exact solve ran out of time). For the full
shape costs include shortfall penalties (``objective``), since an EV short of energy makes
costs alone incomparable.

EMHASS: a bench-only venv with Python 3.13 and ``emhass==0.18.7`` under ``.toolchain``
(created on first run by :func:`emhass_python`; the offline tests never need it) runs
``bench/_emhass_driver.py`` on the first ``--emhass`` scenarios of each benchmark-format
shape. ``ratio_vs_emhass`` is the median over scenarios of our time over EMHASS's time for
a one-shot ``perform_optimization`` (the problem built and solved, as the format's reference
figures measure it); ``ratio_vs_emhass_warm`` uses EMHASS's second call on the same object
(its cvxpy problem cached, as its MPC loop does). ``emhass_cost_diff_eur`` is EMHASS's
cost minus ours (median, max; positive: EMHASS pays more), both scored the same way from the
schedules, and ``emhass_violations`` counts EMHASS schedules that break a rule.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import emit, median, progress
from _scenarios import scenario
from edge_ems.planner.check import violations
from edge_ems.planner.plan import PlanStatus
from edge_ems.planner.scenario import Scenario, parse_scenario, schedule, score
from edge_ems.planner.solver import SolveOptions, solve

EMHASS_VERSION = "0.18.7"
DRIVER = Path(__file__).with_name("_emhass_driver.py")

SHAPES: dict[str, dict[str, Any]] = {
    f"s1_{n}_{'block' if block else 'steps'}_{'export' if export else 'noexport'}": {
        "step_minutes": 30 if n == 96 else 15,
        "n_steps": n,
        "single_block": block,
        "battery_export": export,
    }
    for n in (96, 192)
    for block in (False, True)
    for export in (True, False)
}
SHAPES["full_192"] = {
    "step_minutes": 15, "n_steps": 192, "single_block": True, "battery_export": True,
    "full": True,
}  # fmt: skip


def emhass_python() -> Path:
    """The bench-only EMHASS venv's Python, made on first use beside the project's venvs."""
    venv = Path(sys.prefix).parent / f"bench-emhass-{EMHASS_VERSION}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    base = shutil.which("python3.13") or str(Path(sys.prefix).parent / "py313" / "bin" / "python")
    progress(f"creating the EMHASS {EMHASS_VERSION} venv in {venv} (once)")
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"emhass=={EMHASS_VERSION}"], check=True
    )
    return python


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def run_shape(
    name: str, spec: dict[str, Any], count: int, base_seed: int, folder: Path, exact_s: float
) -> tuple[dict[str, Any], list[tuple[Path, Scenario, float, float]]]:
    times: list[float] = []
    cost_gaps: list[float] = []
    cost_gaps_eur: list[float] = []
    bound_gaps: list[float] = []
    infeasible, proven = 0, 0
    full = bool(spec.get("full"))
    kept: list[tuple[Path, Scenario, float, float]] = []
    for index in range(count):
        seed = base_seed + index
        document = scenario(seed, **spec)
        raw = json.dumps(document).encode()
        path = folder / f"{name}_{seed}.json"
        path.write_bytes(raw)
        parsed = parse_scenario(raw, source=str(path))
        began = time.perf_counter()
        plan = solve(parsed.problem)
        times.append((time.perf_counter() - began) * 1000.0)
        broken = violations(parsed.problem, plan)
        if not full:
            broken += list(score(parsed, schedule(parsed, plan)).violations)
        if broken or plan.status is PlanStatus.FALLBACK:
            infeasible += 1
            progress(f"  {name} seed {seed}: {plan.status} {broken[:3]}")
        exact = solve(
            parsed.problem,
            SolveOptions(mip_rel_gap=1e-6, mip_abs_gap=1e-9, time_limit_s=exact_s),
        )
        proven += exact.status is PlanStatus.OPTIMAL
        ours = plan.objective if full else plan.cost + plan.cycle_cost
        best = exact.objective if full else exact.cost + exact.cycle_cost
        cost_gaps_eur.append(ours - best)
        cost_gaps.append((ours - best) / max(abs(best), 1e-9) * 100.0)
        bound = max(plan.bound, exact.bound)
        bound_gaps.append((plan.objective - bound) / max(abs(plan.objective), 1e-9) * 100.0)
        kept.append((path, parsed, times[-1], plan.cost))
        if (index + 1) % 50 == 0:
            progress(f"  {name}: {index + 1}/{count}, median {median(times):.1f} ms")
    result = {
        "scenarios": count,
        "median_ms": round(median(times), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "max_ms": round(max(times), 1),
        "infeasible": infeasible,
        "cost_gap_pct": {
            "median": round(median(cost_gaps), 4),
            "max": round(max(cost_gaps), 4),
            "over_0_1": sum(g > 0.1 for g in cost_gaps),
        },
        "cost_gap_eur": {
            "median": round(median(cost_gaps_eur), 5),
            "max": round(max(cost_gaps_eur), 5),
        },
        "bound_gap_pct": {"median": round(median(bound_gaps), 4), "max": round(max(bound_gaps), 4)},
        "exact_proven": proven,
    }
    return result, kept


def run_emhass(python: Path, kept: list[tuple[Path, Scenario, float, float]]) -> dict[str, Any]:
    paths = [str(path) for path, *_ in kept]
    finished = subprocess.run(
        [str(python), str(DRIVER)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": finished.stderr.strip().splitlines()[-1:] or ["no output"]}
    ratios, warm_ratios, emhass_ms, warm_ms, diffs, broken, errors = [], [], [], [], [], 0, 0
    by_path = {line["path"]: line for line in lines}
    for path, parsed, our_ms, our_cost in kept:
        line = by_path.get(str(path))
        if line is None or line.get("status") == "error":
            errors += 1
            continue
        emhass_ms.append(line["cold_ms"])
        warm_ms.append(line["warm_ms"])
        ratios.append(our_ms / line["cold_ms"])
        warm_ratios.append(our_ms / line["warm_ms"])
        scored = score(parsed, line)
        broken += bool(scored.violations)
        diffs.append(scored.cost - our_cost)
    if not ratios:
        return {"error": f"every EMHASS solve failed ({errors})"}
    return {
        "scenarios": len(ratios),
        "emhass_median_ms": round(median(emhass_ms), 1),
        "emhass_warm_median_ms": round(median(warm_ms), 1),
        "ratio_vs_emhass": round(median(ratios), 4),
        "ratio_vs_emhass_warm": round(median(warm_ratios), 4),
        "emhass_cost_diff_eur": {"median": round(median(diffs), 5), "max": round(max(diffs), 5)},
        "emhass_violations": broken,
        "emhass_errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--emhass", type=int, default=20)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--exact-time-limit", type=float, default=20.0)
    args = parser.parse_args()
    python = None
    if args.emhass > 0:
        try:
            python = emhass_python()
        except (OSError, subprocess.CalledProcessError) as err:
            progress(f"EMHASS unavailable: {err}")
    shapes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="planner-bench-") as tmp:
        folder = Path(tmp)
        for index, name in enumerate(args.shapes.split(",")):
            spec = SHAPES[name]
            progress(f"{name}: {args.scenarios} scenarios")
            result, kept = run_shape(
                name, spec, args.scenarios, 100_000 * (index + 1), folder, args.exact_time_limit
            )
            if python is not None and not spec.get("full"):
                progress(f"{name}: EMHASS {EMHASS_VERSION} on {min(args.emhass, len(kept))}")
                result["emhass"] = run_emhass(python, kept[: args.emhass])
            shapes[name] = result
            progress(f"{name}: {json.dumps(result)}")
    emit(
        {
            "bench": "planner",
            "infeasible": sum(shape["infeasible"] for shape in shapes.values()),
            "shapes": shapes,
        }
    )


if __name__ == "__main__":
    main()
