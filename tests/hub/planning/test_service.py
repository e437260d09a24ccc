"""The planner service on a real minute store and planner tables, the gateway stood in for
by a link that records what it is sent: plans, setpoints with their leases, overrides, a
site's requests and series, bad input keeping the last good plan, the audit of a step."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_ems.dispatch import Outcome, Reason
from edge_ems.gateway.model import PlanInputs, PlanRequest
from edge_ems.hub.planning.service import SOC_WAIT_S
from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.site_plan import SitePlan

from .conftest import (
    BATTERY,
    SITE,
    T0,
    Planner,
    PlannerMaker,
    minutes,
    planner_section,
    price_document,
    write_json,
)

POWER = "battery_power_setpoint_w"


async def measured_now(planner: Planner, soc: float = 50.0) -> None:
    """Ten minutes of readings up to the planner's now, and the day's prices."""
    now = planner.clock.moment
    await planner.service.refresh_prices(now)
    await planner.store.feed({(BATTERY, "soc_pct"): minutes(now - timedelta(minutes=10), now, soc)})


def ms(moment: Any) -> int:
    return round(moment.timestamp() * 1000)


async def test_a_plan_is_made_published_and_dispatched_as_leases(
    make_planner: PlannerMaker,
) -> None:
    planner = await make_planner()
    await measured_now(planner)
    result = await planner.service.replan(SITE, "test")
    assert result.error is None, result.error
    assert result.version == 1
    runtime = planner.service.sites[SITE]
    assert runtime.plan is not None
    # Energy is negative from 10:00 to 12:00 and dear from 17:00: charge now, use it later.
    [battery] = runtime.plan.batteries
    assert battery.power_w[0] == pytest.approx(-4000.0)
    assert runtime.plan.horizon.start == T0
    assert runtime.plan.horizon.end.date() == (T0 + timedelta(days=2)).date()
    # The effective price: (spot + margin + distribution) x (1 + VAT).
    assert runtime.plan.import_price[0] == pytest.approx((-0.04 + 0.02 + 0.05) * 1.2)
    [(site, update)] = planner.link.plans
    assert (site, update.version) == (SITE, 1)
    document = SitePlan.parse(update.plan)
    assert document.battery_power_at(planner.clock.moment) == pytest.approx(-4000.0)
    sources = update.plan["inputs"]["sources"]
    assert sources["import_price"] == "spot with tariff 'Flat network charge (test)'"
    assert "no PV forecast yet: the plan assumes no PV" in update.plan["inputs"]["notes"]
    stored = await planner.records.plan(SITE)
    assert stored is not None
    assert stored[0] == 1

    await planner.service.dispatch(SITE)
    value, ttl = planner.link.last(BATTERY, POWER)
    assert value == pytest.approx(-4000.0)
    # To the end of the step (14 minutes on) and two minutes' margin.
    assert ttl == pytest.approx(14 * 60 + 120)

    second = await planner.service.replan(SITE, "again")
    assert second.version == 2  # warm-started from the first, a newer version


async def test_an_override_wins_and_is_planned_around(make_planner: PlannerMaker) -> None:
    planner = await make_planner()
    await measured_now(planner)
    await planner.service.replan(SITE, "test")
    override = await planner.service.add_override(
        SITE, BATTERY, POWER, 1500, 0, ms(T0 + timedelta(minutes=30)), requested_by="ann"
    )
    assert planner.service._pending == {SITE: "override by ann"}
    await planner.service.replan(SITE, "override")
    plan = planner.service.sites[SITE].plan
    assert plan is not None
    powers = plan.batteries[0].power_w
    assert list(powers[:3]) == pytest.approx([1500.0, 1500.0, -4000.0])
    await planner.service.dispatch(SITE)
    assert planner.link.last(BATTERY, POWER)[0] == 1500
    listed = await planner.service.overrides_view(SITE)
    assert [o["id"] for o in listed] == [override.id]

    removed = await planner.service.remove_overrides(SITE, asset_id=BATTERY)
    assert [o.id for o in removed] == [override.id]
    await planner.service.replan(SITE, "cleared")
    await planner.service.dispatch(SITE)
    assert planner.link.last(BATTERY, POWER)[0] == pytest.approx(-4000.0)


async def test_site_requests_are_answered_and_audited(make_planner: PlannerMaker) -> None:
    planner = await make_planner()
    service = planner.service
    assert await service.plan_request(SITE, PlanRequest("r1", "replan", "ann", reason="why")) == ""
    assert service._pending[SITE] == "asked by ann"
    now = planner.clock.moment
    held = PlanRequest("r2", "override", "ann", asset_id=BATTERY, command=POWER, value=-1000,
                       end_ms=ms(now + timedelta(hours=1)))  # fmt: skip
    assert await service.plan_request(SITE, held) == ""
    wrong = PlanRequest("r3", "override", "bob", asset_id="toaster", command=POWER, value=1,
                        end_ms=ms(now + timedelta(hours=1)))  # fmt: skip
    error = await service.plan_request(SITE, wrong)
    assert "site 'farm' has no such asset (it has: battery-inverter)" in error
    cleared = await service.plan_request(SITE, PlanRequest("r4", "clear_override", "ann"))
    assert cleared == ""
    unknown = await service.plan_request("depot", PlanRequest("r5", "replan", "cy"))
    assert unknown == "site 'depot' is not planned by this hub"
    records = planner.audits
    assert [(r.command, r.outcome, r.reason) for r in records] == [
        ("replan", Outcome.APPLIED, Reason.WRITTEN),
        (POWER, Outcome.APPLIED, Reason.WRITTEN),
        (POWER, Outcome.REFUSED, Reason.UNKNOWN_DEVICE),
        ("clear_override", Outcome.APPLIED, Reason.WRITTEN),
        ("replan", Outcome.REFUSED, Reason.UNKNOWN_SITE),
    ]
    assert records[1].device_id == BATTERY
    assert records[1].requested == -1000
    assert records[3].message == "planner clear_override: 1 override(s) cleared"
    assert {r.source for r in records} == {"gateway"}


class Standby:
    is_leader = False
    leader = "hub-a"

    async def run(self) -> None: ...

    async def wait_change(self) -> None: ...


async def test_a_battery_without_a_reading_yet_is_planned_again_soon(
    tmp_path: Path, make_planner: PlannerMaker
) -> None:
    planner = await make_planner(planner_section(tmp_path, replan_after_connect_s=0.05))
    service = planner.service
    service.site_connected(SITE)
    await service.refresh_prices(planner.clock.moment)
    await asyncio.sleep(0.2)
    service._pending.clear()  # the replan after connecting, run here by hand
    for attempt in range(3):
        if attempt == 2:  # long after the site connected
            planner.clock.at(planner.clock.moment + timedelta(seconds=SOC_WAIT_S))
        result = await service.replan(SITE, "the site connected")
        assert result.error is None, result.error
        notes = planner.link.plans[-1][1].plan["inputs"]["notes"]
        assert f"battery {BATTERY!r}: no recent SOC reading, not planned" in notes
        await asyncio.sleep(0.2)
        # Tried again soon for a while; a battery that never reports is then left be.
        expected = {SITE: "a battery had no reading yet"} if attempt < 2 else {}
        assert service._pending == expected, attempt
        service._pending.clear()
    await measured_now(planner)
    await service.replan(SITE, "a battery had no reading yet")
    assert BATTERY in SitePlan.parse(planner.link.plans[-1][1].plan).battery_power_w


async def test_a_standby_refuses_what_only_the_leader_does(make_planner: PlannerMaker) -> None:
    planner = await make_planner()
    planner.service.leadership = Standby()
    error = await planner.service.plan_request(SITE, PlanRequest("r1", "replan", "ann"))
    assert error == "this hub stands by: the planner runs on hub hub-a"
    assert planner.audits[0].reason is Reason.NOT_ALLOWED
    await measured_now(planner)
    assert await planner.service.dispatch(SITE) == []
    # A site's series is kept all the same: the leader reads it from the shared tables.
    given = PlanInputs("spot_price", ms(T0), 3600, (0.5,) * 48, "EUR/kWh", "sensor.price")
    assert await planner.service.plan_inputs(SITE, given) == ""
    assert "spot_price" in await planner.records.inputs(SITE)


async def test_a_standby_carries_out_the_leaders_plan_for_the_agents_connected_to_it(
    make_planner: PlannerMaker,
) -> None:
    planner = await make_planner()
    await measured_now(planner)
    service, link = planner.service, planner.link
    assert (await service.replan(SITE, "test")).error is None
    leader_plan = link.plans[-1][1]
    # The battery's agent is connected to the other hub: the leader leaves it to that hub,
    # and still audits the step it planned.
    link.elsewhere = {BATTERY}
    assert await service.dispatch(SITE) == []
    assert link.setpoints == []
    assert service.sites[SITE].dispatch_errors == []
    assert service.sites[SITE].steps

    # This hub stands by, and the battery's agent is connected here: the stored plan is
    # sent to it and carried out, as the leader would.
    service.leadership = Standby()
    link.elsewhere, link.plans = set(), []
    [result] = await service.dispatch(SITE)
    assert result.error is None
    value, ttl = link.last(BATTERY, POWER)
    assert value == pytest.approx(-4000.0)
    assert ttl == pytest.approx(14 * 60 + 120)
    [(site, update)] = link.plans
    assert (site, update.version, update.plan) == (SITE, 1, leader_plan.plan)
    await service.dispatch(SITE)
    assert len(link.plans) == 1  # the same plan is not sent again


async def test_a_standby_sends_nothing_from_a_plan_it_cannot_read(
    make_planner: PlannerMaker,
) -> None:
    planner = await make_planner()
    service = planner.service
    service.leadership = Standby()
    garbled = {"schema": "edge-ems-site-plan/1", "site_id": SITE, "version": 7, "plan": "?"}
    await planner.records.save_plan(SITE, 7, ms(T0), garbled)
    assert await service.dispatch(SITE) == []
    assert planner.link.setpoints == []
    assert planner.link.plans == []
    [error] = service.sites[SITE].dispatch_errors
    assert error.startswith("the leader's plan cannot be read: plan document")


async def test_a_standby_holds_the_overrides_set_through_the_leader(
    make_planner: PlannerMaker,
) -> None:
    planner = await make_planner()
    await measured_now(planner)
    service = planner.service
    await service.replan(SITE, "test")
    await service.add_override(
        SITE, BATTERY, POWER, 1500, 0, ms(T0 + timedelta(minutes=30)), requested_by="ann"
    )
    service.leadership = Standby()
    await service.dispatch(SITE)
    assert planner.link.last(BATTERY, POWER)[0] == 1500


async def test_the_site_s_prices_and_forecast_replace_the_hub_s(make_planner: PlannerMaker) -> None:
    planner = await make_planner()
    await measured_now(planner)
    service = planner.service
    # Dear now, cheap in three hours: the battery discharges now.
    prices = (0.5, 0.5, 0.5, 0.01, 0.01, 0.01) + (0.2,) * 42
    spot = PlanInputs("spot_price", ms(T0), 3600, prices, "EUR/kWh", "sensor.nordpool")
    assert await service.plan_inputs(SITE, spot) == ""
    pv = PlanInputs("pv_forecast", ms(T0), 1800, (3000.0,) * 96, "W", "energy:forecast_solar")
    assert await service.plan_inputs(SITE, pv) == ""
    assert service._pending == {SITE: "new spot_price from the site"}
    bad = PlanInputs("pv_forecast", ms(T0), 1800, (3.0,) * 4, "kW", "energy:broken")
    refusal = await service.plan_inputs(SITE, bad)
    assert refusal == "pv_forecast from energy:broken: unit 'kW', expected 'W'"
    assert service.status(SITE)["refused_inputs"] == {"pv_forecast": refusal}
    result = await service.replan(SITE, "inputs")
    assert result.error is None
    plan = service.sites[SITE].plan
    assert plan is not None
    assert plan.batteries[0].power_w[0] > 0  # discharging into the dear hours
    assert plan.pv_w[0] == pytest.approx(3000.0)  # the good forecast, not the refused one
    document = service.sites[SITE].document
    assert document is not None
    assert document["inputs"]["sources"]["spot_price"] == "sensor.nordpool"
    assert document["inputs"]["sources"]["pv_forecast"] == "energy:forecast_solar"
    # 48 hours of the site's prices: the plan ends where they do.
    assert plan.horizon.n_steps == 48 * 4


OVERLAPPING = """\
name: broken
currency: EUR
time_zone: Europe/Prague
import:
  bands: {low: 0.1, high: 0.3}
  default_band: low
  windows:
    - {band: high, days: all, from: "08:00", to: "12:00"}
    - {band: low, days: all, from: "11:00", to: "13:00"}
"""


async def test_a_bad_tariff_keeps_the_last_good_one(
    make_planner: PlannerMaker, tmp_path: Path
) -> None:
    planner = await make_planner()
    await measured_now(planner)
    assert (await planner.service.replan(SITE, "first")).error is None
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text(OVERLAPPING)
    os.utime(tariff, (planner.clock.now + 5, planner.clock.now + 5))
    result = await planner.service.replan(SITE, "second")
    assert result.error is None
    status = planner.service.status(SITE)
    assert "windows overlap on fri: high 08:00-12:00 and low 11:00-13:00" in status["tariff_error"]


async def test_without_a_good_tariff_there_is_no_plan(
    make_planner: PlannerMaker, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(OVERLAPPING)
    planner = await make_planner(planner_section(tmp_path, tariff=str(tmp_path / "bad.yaml")))
    await measured_now(planner)
    result = await planner.service.replan(SITE, "first")
    assert result.error is not None
    assert "no usable tariff" in result.error
    assert "windows overlap" in result.error
    assert planner.service.sites[SITE].plan is None
    assert await planner.service.document(SITE) is None


async def test_a_price_file_in_the_wrong_zone_is_refused(
    make_planner: PlannerMaker, tmp_path: Path
) -> None:
    section = planner_section(tmp_path)
    wrong = price_document({T0.date(): [50.0] * 24}, area="SE3", zone="Europe/Stockholm")
    section["prices"]["path"] = str(write_json(tmp_path / "se3.json", wrong))
    planner = await make_planner(section)
    await measured_now(planner)
    assert not await planner.service.refresh_prices(planner.clock.moment)
    error = planner.service.status(SITE)["price_error"]
    assert "prices for SE3 in Europe/Stockholm, but this site's market is CZ" in error
    result = await planner.service.replan(SITE, "first")
    assert result.error is not None
    assert "no prices" in result.error


async def test_an_ev_departing_in_the_past_keeps_the_last_plan(
    make_planner: PlannerMaker, tmp_path: Path
) -> None:
    section = planner_section(tmp_path)
    leaves = T0 + timedelta(hours=3)
    section["sites"][0]["evs"] = [
        {"asset_id": "ev-charger", "energy_needed_wh": 10_000, "departure": leaves.isoformat()}
    ]
    planner = await make_planner(section)
    planner.link.assets[SITE]["ev-charger"] = planner.link.assets[SITE][BATTERY].__class__(
        "ev-charger", "Charger", "ev_charger",
        commands=("ev_current_limit_a", "ev_charging_enabled", "ev_phases"),
    )  # fmt: skip
    await planner.service.refresh_prices(planner.clock.moment)
    await measured_now(planner)
    first = await planner.service.replan(SITE, "first")
    assert first.error is None
    plan = planner.service.sites[SITE].plan
    assert plan is not None
    assert plan.evs[0].delivered_wh == pytest.approx(10_000, abs=1)
    planner.clock.at(leaves + timedelta(minutes=30))
    await measured_now(planner)
    later = await planner.service.replan(SITE, "later")
    assert later.error is not None
    assert "EV 'ev-charger': departure 2026-06-16T13:00:00+02:00 is not after" in later.error
    assert planner.service.sites[SITE].plan is plan  # the last good plan stays in force
    await planner.service.dispatch(SITE)
    assert planner.link.last(BATTERY, POWER)  # ... and is still carried out
    assert planner.link.last("ev-charger", "ev_charging_enabled")[0] is False


async def test_an_ev_demand_override_replaces_the_configured_need_and_is_never_sent(
    make_planner: PlannerMaker, tmp_path: Path
) -> None:
    section = planner_section(tmp_path)
    section["sites"][0]["evs"] = [
        {"asset_id": "ev-charger", "energy_needed_wh": 2_000, "departure": "07:00"}
    ]
    planner = await make_planner(section)
    planner.link.assets[SITE]["ev-charger"] = planner.link.assets[SITE][BATTERY].__class__(
        "ev-charger", "Charger", "ev_charger",
        commands=("ev_current_limit_a", "ev_charging_enabled", "ev_phases"),
    )  # fmt: skip
    service = planner.service
    await service.refresh_prices(planner.clock.moment)
    await measured_now(planner)
    now_ms = ms(planner.clock.moment)
    leaves = T0 + timedelta(hours=4)
    # "Eighteen kWh by two o'clock": the session's need, by the override's end.
    demand = await service.add_override(
        SITE, "ev-charger", "ev_energy_needed_wh", 18_000, 0, ms(leaves), requested_by="ann"
    )
    assert demand.start_ms == now_ms
    result = await service.replan(SITE, "asked")
    assert result.error is None, result.error
    plan = service.sites[SITE].plan
    assert plan is not None
    [ev] = plan.evs
    assert ev.delivered_wh == pytest.approx(18_000, abs=1)
    horizon = plan.horizon
    charged = [step for step, power in enumerate(ev.power_w) if power > 0]  # drawn
    assert max(charged) < horizon.step_at(leaves)  # all of it before two o'clock
    notes = planner.link.plans[-1][1].plan["inputs"]["notes"]
    assert any(note.startswith("EV 'ev-charger': 18 kWh by ") and "as ann asked" in note
               for note in notes)  # fmt: skip
    # The need is the planner's to know, not the charger's: nothing named so is sent.
    await service.dispatch(SITE)
    sent = {command for _, asset, command, _, _ in planner.link.setpoints if asset == "ev-charger"}
    assert sent
    assert "ev_energy_needed_wh" not in sent
    # Nor is it a hold: the step's audit judges the charger against the plan (it took
    # nothing of what was planned for the step: it did not follow).
    step = (T0, T0 + timedelta(minutes=15))
    await planner.store.feed(
        {
            ("meter", "grid_power_w"): minutes(*step, 500.0),
            ("deye", "pv_power_w"): minutes(*step, 0.0),
            ("deye", "load_power_w"): minutes(*step, 500.0),
            (BATTERY, "battery_power_w"): minutes(*step, 0.0),
            ("ev-charger", "ac_power_w"): minutes(*step, 0.0),
        }
    )
    planner.clock.at(T0 + timedelta(minutes=15, seconds=150))
    assert await service.audit_due(SITE, planner.clock.moment) == 1
    [record] = await planner.records.audits(SITE, ms(T0), ms(T0 + timedelta(hours=1)))
    assets = {a["asset_id"]: a for a in record["report"]["assets"]}
    assert assets["ev-charger"]["reason"] == "device_did_not_follow"
    # Only a planned EV takes one, and only a need of zero or more.
    for asset, value, why in (
        (BATTERY, 1000, "ev_energy_needed_wh is for a planned EV (here: ev-charger)"),
        ("ev-charger", -5, "ev_energy_needed_wh cannot be negative"),
        ("ev-charger", True, "ev_energy_needed_wh takes a number"),
    ):
        with pytest.raises(PlanInputError, match=re.escape(why)):
            await service.add_override(
                SITE, asset, "ev_energy_needed_wh", value, 0, ms(leaves), requested_by="ann"
            )
    # Cleared: the configured need (2 kWh by seven tomorrow) again.
    await service.remove_overrides(SITE, asset_id="ev-charger")
    await service.replan(SITE, "cleared")
    again = service.sites[SITE].plan
    assert again is not None
    assert again.evs[0].delivered_wh == pytest.approx(2_000, abs=1)


async def test_a_step_is_audited_and_the_day_costed(make_planner: PlannerMaker) -> None:
    planner = await make_planner()
    await planner.service.refresh_prices(planner.clock.moment)
    await measured_now(planner, soc=40.0)
    await planner.service.replan(SITE, "first")
    await planner.service.dispatch(SITE)
    # The step 10:00-10:15 as it happened: the battery took 3 kW, not the planned 4 kW.
    step = (T0, T0 + timedelta(minutes=15))
    await planner.store.feed(
        {
            ("meter", "grid_power_w"): minutes(*step, 3500.0),
            ("deye", "pv_power_w"): minutes(*step, 0.0),
            ("deye", "load_power_w"): minutes(*step, 500.0),
            (BATTERY, "battery_power_w"): minutes(*step, -3000.0),
            (BATTERY, "soc_pct"): minutes(*step, 41.0),
        }
    )
    planner.clock.at(T0 + timedelta(minutes=14))
    assert await planner.service.audit_due(SITE, planner.clock.moment) == 0  # not over yet
    planner.clock.at(T0 + timedelta(minutes=15, seconds=150))
    assert await planner.service.audit_due(SITE, planner.clock.moment) == 1
    [record] = await planner.records.audits(SITE, ms(T0), ms(T0 + timedelta(hours=1)))
    assert record["plan_version"] == 1
    assert record["measured"]["grid_w"] == pytest.approx(3500.0)
    assets = {a["asset_id"]: a for a in record["report"]["assets"]}
    assert assets[BATTERY]["reason"] == "device_did_not_follow"
    assert assets[BATTERY]["deviation_wh"] == pytest.approx(250.0)
    assert assets["load"]["reason"] == "on_plan"
    # The day so far, in the document the site is sent again.
    document = planner.link.plans[-1][1].plan
    [today] = document["days"]
    assert today["day"] == "2026-06-16"
    assert today["actual_cost"] == pytest.approx(3.5 * 0.25 * (-0.04 + 0.07) * 1.2, rel=1e-6)
    view = await planner.service.audit_view(SITE, ms(T0), ms(T0 + timedelta(hours=1)))
    assert view["days"] == [today]
