"""The plan document a hub publishes and a site reads: built from a real plan, read back,
and the questions Home Assistant's sensors ask of it."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.execute import setpoints
from edge_ems.planner.problem import ChargeMode, Deferrable, Ev, HeatPump, series
from edge_ems.planner.site_plan import SCHEMA, DayCost, SitePlan, site_plan_document
from edge_ems.planner.solver import solve

from .support import START, ZONE, battery, problem

BUY = [0.30, 0.10, 0.05, 0.05, 0.12, 0.40, 0.40, 0.20]


def document(**overrides: Any) -> dict[str, Any]:
    plan = solve(
        problem(
            buy=BUY,
            sell=0.02,
            batteries=[
                battery(soc_final=0.5),
                battery(id="garage", soc_initial=0.2, soc_final=0.5),
            ],
        )
    )
    made: dict[str, Any] = {
        "version": 3,
        "made_at": START,
        "time_zone": "Europe/Prague",
        "spot_price": [price - 0.01 for price in BUY],
        "days": [
            DayCost(
                day=START.date(),
                actual_cost=1.5,
                until=START,
                savings_vs_self_consumption=0.25,
                savings_vs_no_battery=0.75,
            )
        ],
    }
    made.update(overrides)
    return json.loads(json.dumps(site_plan_document("home", plan, **made)))


def test_a_document_survives_json_and_reads_back() -> None:
    raw = document()
    read = SitePlan.parse(raw)
    assert raw["schema"] == SCHEMA
    assert (read.site_id, read.version, read.n_steps, read.currency) == ("home", 3, 8, "EUR")
    assert read.step == timedelta(hours=1)
    assert read.end == START + timedelta(hours=8)
    assert set(read.battery_power_w) == {"battery", "garage"}
    assert len(raw["plan"]["load_w"]) == 8
    assert read.document is raw


def test_prices_and_power_at_a_moment() -> None:
    read = SitePlan.parse(document())
    moment = START + timedelta(hours=2, minutes=30)
    assert read.import_price_at(moment) == pytest.approx(0.05)
    assert read.spot_price_at(moment) == pytest.approx(0.04)
    assert read.export_price_at(moment) == pytest.approx(0.02)
    together = [sum(power[step] for power in read.battery_power_w.values()) for step in range(8)]
    assert read.battery_power_at(moment) == pytest.approx(together[2])
    assert min(together[2:4]) < 0  # the cheapest hours charge
    for outside in (START - timedelta(seconds=1), START + timedelta(hours=8)):
        assert read.step_at(outside) is None
        assert read.import_price_at(outside) is None
        assert read.battery_power_at(outside) is None


def test_a_document_gives_each_step_the_commands_its_plan_gives() -> None:
    """A standby hub carries out the leader's plan from the document: the same commands."""
    n = 8
    ev = Ev("car", energy_needed_wh=12_000.0, arrive_step=1, depart_step=6,
            modes=(ChargeMode(phases=1, min_current_a=6, max_current_a=16),
                   ChargeMode(phases=3, min_current_a=6, max_current_a=16)))  # fmt: skip
    heat_pump = HeatPump(
        id="hp", max_power_w=3000.0, cop=series(3.0, n, "cop"),
        outdoor_temp_c=series(0.0, n, "outdoor"), comfort_min_c=series(20.0, n, "min"),
        comfort_max_c=series(22.0, n, "max"), indoor_temp_c=20.5,
        heat_capacity_kwh_per_k=5.0, heat_loss_w_per_k=150.0, min_power_w=600.0,
    )  # fmt: skip
    case = problem(
        n=n, buy=BUY, batteries=[battery(soc_final=0.5)], evs=[ev], heat_pumps=[heat_pump],
        deferrables=[Deferrable("washer", power_w=2000.0, required_steps=2)],
    )  # fmt: skip
    plan = solve(case)
    raw = json.loads(json.dumps(site_plan_document("home", plan, version=1, made_at=START,
                                                   time_zone="Europe/Prague")))  # fmt: skip
    read = SitePlan.parse(raw)
    kinds = set()
    for step in range(n):
        moment = START + timedelta(hours=step, minutes=30)
        from_document = read.setpoints_at(moment)
        assert from_document == pytest.approx(setpoints(plan, step), abs=0.1), step
        kinds |= {(sp.command, sp.value is True) for sp in from_document}
    assert {"battery_power_setpoint_w", "ev_current_limit_a", "ev_phases",
            "heat_pump_power_limit_w", "load_enabled"} <= {kind for kind, _ in kinds}  # fmt: skip
    assert read.setpoints_at(START + timedelta(hours=n)) == []


def test_spot_is_optional() -> None:
    read = SitePlan.parse(document(spot_price=None))
    assert read.spot_price_at(START) is None
    assert read.import_price_at(START) == pytest.approx(0.30)


def test_cost_of_a_day_adds_what_was_measured_to_what_is_still_planned() -> None:
    raw = document()
    read = SitePlan.parse(raw)
    planned_from_step_2 = sum(raw["step_cost"][2:])
    now = START + timedelta(hours=2, minutes=10)
    assert read.cost_on(START.date(), now) == pytest.approx(1.5 + planned_from_step_2)
    # Without a measurement the plan's remaining steps are all there is.
    bare = SitePlan.parse(document(days=[]))
    assert bare.cost_on(START.date(), now) == pytest.approx(planned_from_step_2)
    assert bare.cost_on(START.date() + timedelta(days=1), now) is None
    assert read.savings_on(START.date()) == read.days[START.date()]
    assert read.savings_on(date(2020, 1, 1)) is None


def test_the_measured_part_is_not_counted_twice() -> None:
    until = START + timedelta(hours=3)
    raw = document(
        days=[
            DayCost(
                day=START.date(),
                actual_cost=2.0,
                until=until,
                savings_vs_self_consumption=0.0,
                savings_vs_no_battery=0.0,
            )
        ]
    )
    read = SitePlan.parse(raw)
    assert read.cost_on(START.date(), START) == pytest.approx(2.0 + sum(raw["step_cost"][3:]))


def test_a_day_splits_at_local_midnight() -> None:
    late = datetime(2026, 3, 2, 20, tzinfo=ZONE)
    plan = solve(problem(buy=BUY, batteries=[battery()]))
    shifted = copy.deepcopy(
        json.loads(
            json.dumps(
                site_plan_document("home", plan, version=1, made_at=late, time_zone="Europe/Prague")
            )
        )
    )
    shifted["plan"]["start"] = shifted["prices"]["start"] = late.isoformat()
    read = SitePlan.parse(shifted)
    costs = shifted["step_cost"]
    assert read.cost_on(late.date(), late) == pytest.approx(sum(costs[:4]))
    assert read.cost_on(late.date() + timedelta(days=1), late) == pytest.approx(sum(costs[4:]))


def test_next_cheap_window() -> None:
    read = SitePlan.parse(document())
    window = read.next_cheap_window(START)
    assert window is not None
    assert (window.start, window.end) == (START + timedelta(hours=2), START + timedelta(hours=4))
    assert window.mean_price == pytest.approx(0.05)
    assert window.threshold == pytest.approx(0.05)
    # Inside the window it is the current one; after it, the cheapest of what is left.
    inside = read.next_cheap_window(START + timedelta(hours=3, minutes=5))
    assert inside is not None
    assert inside.start == START + timedelta(hours=3)
    later = read.next_cheap_window(START + timedelta(hours=4))
    assert later is not None
    assert later.start == START + timedelta(hours=4)
    assert later.threshold == pytest.approx(0.12)
    assert read.next_cheap_window(START + timedelta(hours=9)) is None
    before = read.next_cheap_window(START - timedelta(hours=1))
    assert before == window


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema="other/1"), "schema"),
        (lambda d: d["plan"].update(n_steps=9), "prices.import: 8 values for 9 steps"),
        (lambda d: d["prices"].update(spot=[1.0]), "prices.spot: 1 values for 8 steps"),
        (lambda d: d["prices"].update(step_minutes=15), "differ from the plan's"),
        (lambda d: d.update(time_zone="Mars/Base"), "time_zone: unknown time zone"),
        (lambda d: d["days"][0].update(day="yesterday"), "days.0.day"),
        (lambda d: d["plan"]["batteries"][0].update(soc=[0.5]), "batteries.battery.soc"),
        (lambda d: d.update(version=True), "version: expected an integer"),
        (lambda d: d["prices"]["import"].__setitem__(0, float("nan")), "finite"),
    ],
)
def test_a_bad_document_says_what_is_wrong(change: Any, message: str) -> None:
    raw = document()
    change(raw)
    with pytest.raises(PlanInputError, match="plan document") as err:
        SitePlan.parse(raw)
    assert message in str(err.value)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(
        st.sampled_from(
            ["plan", "prices", "days", "0", "import", "batteries", "soc", "start", "version"]
        ),
        min_size=1,
        max_size=3,
    ),
    value=_JSON,
)
def test_any_garbled_document_is_refused_clearly_or_read(path: list[str], value: Any) -> None:
    raw: Any = document()
    target = raw
    for key in path[:-1]:
        if isinstance(target, dict) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
    last = path[-1]
    if isinstance(target, dict):
        target[last] = value
    elif isinstance(target, list) and last.isdigit() and int(last) < len(target):
        target[int(last)] = value
    try:
        read = SitePlan.parse(raw)
    except PlanInputError:
        return
    read.battery_power_at(START)
    read.cost_on(START.date(), START)
    read.next_cheap_window(START)


def test_zone_of_the_document_is_kept() -> None:
    assert SitePlan.parse(document()).time_zone == ZoneInfo("Europe/Prague")
