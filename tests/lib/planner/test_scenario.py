"""The scenario and schedule formats, and ``edge-ems plan`` on them."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edge_ems.cli import main
from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.scenario import parse_scenario, schedule, score
from edge_ems.planner.solver import solve

from .support import EXAMPLES

SCHEDULE_KEYS = [
    "schema", "grid_import_w", "grid_export_w", "battery_charge_w", "battery_discharge_w",
    "deferrable_w", "soc", "planner", "scenario_sha256", "solve_ms", "status",
]  # fmt: skip


def example(index: int = 0) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(EXAMPLES[index].read_bytes())
    return loaded


def parse(document: dict[str, Any]) -> Any:
    return parse_scenario(json.dumps(document).encode(), source="case.json")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_give_the_schedule_format_exactly(path: Path) -> None:
    raw = path.read_bytes()
    scenario = parse_scenario(raw)
    document = schedule(scenario, solve(scenario.problem))
    n = scenario.problem.horizon.n_steps
    assert list(document) == SCHEDULE_KEYS
    assert document["schema"] == "planner-bench-schedule/1"
    for key in ("grid_import_w", "grid_export_w", "battery_charge_w", "battery_discharge_w",
                "soc"):  # fmt: skip
        assert len(document[key]) == n
        assert all(isinstance(v, float) for v in document[key])
    assert [len(d) for d in document["deferrable_w"]] == [n, n]
    assert document["planner"] == {"name": "edge-ems", "version": "0.1.0"}
    assert document["scenario_sha256"] == hashlib.sha256(raw).hexdigest()
    assert document["status"] == "optimal"
    assert score(scenario, document).violations == ()
    assert all(v >= 0 for key in SCHEDULE_KEYS[1:5] for v in document[key])


def test_edge_ems_plan_writes_the_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    assert main(["plan", "--scenario", str(EXAMPLES[1]), "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert list(document) == SCHEDULE_KEYS
    scenario = parse_scenario(EXAMPLES[1].read_bytes())
    scored = score(scenario, document)
    assert scored.violations == ()
    printed = capsys.readouterr().out
    assert printed.startswith("optimal: cost ")
    assert "shortfalls: none" in printed
    assert f"{scored.cost:.4f} EUR" in printed


def test_edge_ems_plan_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    broken = example()
    broken["battery"]["soc_min"] = 1.5
    bad.write_text(json.dumps(broken))
    assert main(["plan", "--scenario", str(bad), "--out", str(tmp_path / "p.json")]) == 1
    assert "battery.soc_min: value must be at most 1" in capsys.readouterr().err
    assert main(["plan", "--scenario", str(tmp_path / "none.json"), "--out", "x"]) == 1
    assert "cannot read the scenario" in capsys.readouterr().err


def change(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(example())
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    target[key] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("schema", "planner-bench-scenario/2", "schema: this reads planner-bench-scenario/1"),
        ("time_zone", "Europe/Nowhere", "time_zone: unknown time zone"),
        (
            "start",
            "2025-06-16T00:00:00+01:00",
            "start: 2025-06-16T00:00:00+01:00 is not a time in Europe/Paris",
        ),
        ("start", "2025-06-16T00:00:00", "has no UTC offset"),
        (
            "timestamps.3",
            "2025-06-16T01:00:00+02:00",
            "timestamps.3: 2025-06-16T01:00:00+02:00 is not the start plus 3 steps",
        ),
        ("pv_w", [1.0] * 95, "pv_w: 95 values for 96 steps"),
        ("load_w.4", -5.0, "load_w.4: power must be 0 or more"),
        ("import_price_per_kwh.0", "cheap", "import_price_per_kwh.0: expected a number"),
        ("horizon_hours", 24, "horizon_hours: 24 h is not 96 steps of 30 minutes"),
        ("battery.power_limits_side", "dc", "only AC-side power limits are supported"),
        ("battery.capacity_wh", 0, "battery.capacity_wh"),
        ("battery.soc_final_rule", "about", "battery.soc_final_rule"),
        ("deferrable_loads.0.required_steps", 5, "required_steps 5 is not duration_hours 3.0"),
        ("deferrable_loads.1.latest_end_step", 200, "latest_end_step 200 is beyond the 96 steps"),
        ("deferrable_loads.0.earliest_start_step", 96, "the window [96, 96) is empty"),
        ("policy.battery_export_allowed", "no", "policy.battery_export_allowed: expected bool"),
        ("batteryy", {}, "batteryy: unknown key"),
    ],
)
def test_bad_scenarios_get_a_clear_error(path: str, value: Any, message: str) -> None:
    with pytest.raises(PlanInputError) as caught:
        parse(change(path, value))
    assert str(caught.value).startswith("case.json: ")
    assert message in str(caught.value)


def test_garbage_is_not_a_scenario() -> None:
    with pytest.raises(PlanInputError, match="not JSON"):
        parse_scenario(b"{", source="x.json")
    with pytest.raises(PlanInputError, match="expected a mapping"):
        parse_scenario(b"[]", source="x.json")


def extended() -> dict[str, Any]:
    document = example()
    document["batteries"] = [
        {"name": "garage", "capacity_wh": 5000.0, "charge_power_max_w": 2500.0,
         "discharge_power_max_w": 2500.0, "charge_efficiency": 0.95,
         "discharge_efficiency": 0.95, "soc_min": 0.1, "soc_max": 1.0, "soc_initial": 0.0,
         "soc_final": 0.5, "soc_final_rule": "at_least", "cycle_cost_per_kwh": 0.02}
    ]  # fmt: skip
    document["ev"] = {
        "name": "car", "energy_needed_wh": 12000.0,
        "arrival": "2025-06-16T18:00:00+02:00", "departure": "2025-06-17T07:00:00+02:00",
        "phases": [1, 3], "min_current_a": 6, "max_current_a": 16,
    }  # fmt: skip
    document["heat_pump"] = {
        "name": "hp", "max_power_w": 3000.0, "min_power_w": 700.0, "outdoor_temp_c": 5.0,
        "comfort_min_c": 20.0, "comfort_max_c": 23.0, "indoor_temp_c": 21.0,
    }  # fmt: skip
    document["deferrable_loads"][1]["min_on_steps"] = 2
    document["deferrable_loads"][1]["min_off_steps"] = 2
    return document


def test_an_extended_scenario_plans_every_asset() -> None:
    scenario = parse(extended())
    problem = scenario.problem
    assert [b.id for b in problem.batteries] == ["battery", "garage"]
    [ev] = problem.evs
    assert (ev.arrive_step, ev.depart_step) == (36, 62)
    assert [m.phases for m in ev.modes] == [1, 3]
    [hp] = problem.heat_pumps
    assert hp.cop.min() > 3  # the datasheet curve at 5 °C
    plan = solve(problem)
    document = schedule(scenario, plan)
    assert {"batteries", "evs", "heat_pumps", "cost", "curtailed_w", "shortfalls"} <= set(document)
    assert document["evs"][0]["name"] == "car"
    assert sum(document["evs"][0]["power_w"]) * 0.5 * 0.9 == pytest.approx(12000.0, abs=1.0)
    kinds = {s["kind"] for s in document["shortfalls"]}
    assert kinds <= {"soc_floor"}


def test_an_ev_leaving_before_the_scenario_starts_is_refused() -> None:
    document = extended()
    document["ev"]["departure"] = "2025-06-15T23:00:00+02:00"
    with pytest.raises(
        PlanInputError,
        match=r"EV 'car': departure 2025-06-15T23:00:00\+02:00 is not after the scenario starts",
    ):
        parse(document)


def test_a_heat_pump_with_a_cop_curve_and_an_ev_by_step() -> None:
    document = extended()
    document["heat_pump"]["cop_curve"] = [[-10, 2.0], [10, 4.0]]
    del document["ev"]["departure"], document["ev"]["arrival"]
    document["ev"]["depart_step"] = 10
    problem = parse(document).problem
    assert problem.heat_pumps[0].cop[0] == pytest.approx(3.5)
    assert problem.evs[0].depart_step == 10
    document["heat_pump"]["cop_curve"] = [[10, 2.0], [-10, 4.0]]
    with pytest.raises(PlanInputError, match="COP curve temperatures must rise"):
        parse(document)


def test_an_ev_by_power_range() -> None:
    document = extended()
    ev = document["ev"]
    del ev["min_current_a"], ev["max_current_a"]
    ev.update({"phases": 3, "min_power_w": 4140.0, "max_power_w": 11040.0})
    [mode] = parse(document).problem.evs[0].modes
    assert (mode.min_current_a, mode.max_current_a) == pytest.approx((6.0, 16.0))
    ev["phases"] = [1, 3]
    with pytest.raises(PlanInputError, match="a power range and several phase modes"):
        parse(document)
    del ev["max_power_w"]
    with pytest.raises(PlanInputError, match="min_power_w"):
        parse(document)
