"""Series on plan steps, a site's series checked, overrides, replayed files, forecast times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from edge_ems.gateway.model import AssetInfo, PlanInputs
from edge_ems.hub.planning.config import PvSourceConfig
from edge_ems.hub.planning.overrides import active, holds, make_override
from edge_ems.hub.planning.series import check_inputs, from_values
from edge_ems.hub.planning.sources import PvFile, ReplayedPriceFile, pv_every
from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.problem import Battery, ChargeMode, Ev, Horizon

from .conftest import PRAGUE, T0, price_document, write_json

NOW = T0 + timedelta(minutes=1)
LATER = T0 + timedelta(hours=1)


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def test_hourly_values_on_quarter_hour_steps() -> None:
    series = from_values(T0, timedelta(hours=1), [100.0, 200.0, 300.0], "W", "test")
    horizon = Horizon(T0 + timedelta(minutes=30), 15, 6)
    assert series.covered_steps(horizon) == 6
    assert list(series.on(horizon)) == [100.0, 100.0, 200.0, 200.0, 200.0, 200.0]
    longer = Horizon(T0 + timedelta(minutes=30), 30, 6)
    assert series.covered_steps(longer) == 5
    assert list(series.on(longer, fill=0.0)) == [100.0, 200.0, 200.0, 300.0, 300.0, 0.0]
    with pytest.raises(PlanInputError, match="does not cover step 5"):
        series.on(longer)
    # A plan step across two source steps takes their time-weighted mean.
    half = Horizon(T0 + timedelta(minutes=30), 60, 2)
    assert list(series.on(half)) == [150.0, 250.0]


def inputs(kind: str = "pv_forecast", **changes: object) -> PlanInputs:
    values: dict[str, object] = {
        "kind": kind,
        "start_ms": ms(T0),
        "step_s": 3600,
        "values": (0.0, 500.0, 1500.0),
        "unit": "W",
        "source": "energy:forecast_solar",
    }
    values.update(changes)
    return PlanInputs(**values)  # type: ignore[arg-type]


def test_a_good_series_passes() -> None:
    series = check_inputs(inputs(), now=NOW, spot_currency="EUR", plan_currency="CZK")
    assert (series.step_s, series.source, series.end) == (3600, "energy:forecast_solar",
                                                           T0 + timedelta(hours=3))  # fmt: skip
    price = check_inputs(
        inputs("import_price", unit="CZK/kWh", values=(4.2, 5.1)),
        now=NOW, spot_currency="EUR", plan_currency="CZK",
    )  # fmt: skip
    assert list(price.values) == [4.2, 5.1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (inputs(unit="kW"), "pv_forecast from energy:forecast_solar: unit 'kW', expected 'W'"),
        (inputs(step_s=7), "a step of 7 s does not divide a day"),
        (inputs(start_ms=ms(T0) + 60_000), "not on a step of 900 s"),
        (inputs(values=(-5.0,)), "power must be between 0"),
        (inputs(start_ms=ms(T0 - timedelta(hours=5))), "before now"),
        (inputs(values=(1.0,) * 400), "at most 14 days"),
        (inputs("spot_price", unit="EUR/MWh", values=(1.0,)), "expected 'EUR/kWh'"),
        (inputs("export_price", unit="EUR/kWh", values=(0.1,)), "expected 'CZK/kWh'"),
        (inputs("spot_price", unit="EUR/kWh", values=(95.0, 120.0)), "a price per MWh"),
    ],
)
def test_a_bad_series_is_refused_with_its_reason(bad: PlanInputs, message: str) -> None:
    with pytest.raises(PlanInputError, match=message):
        check_inputs(bad, now=NOW, spot_currency="EUR", plan_currency="CZK")


BATTERY = AssetInfo("bat", "Battery", "battery", 10_000, 4000, 4000,
                    ("battery_power_setpoint_w",))  # fmt: skip
CHARGER = AssetInfo("ev", "Charger", "ev_charger", commands=("ev_current_limit_a",
                                                             "ev_charging_enabled"))  # fmt: skip


def override(asset: str, command: str, value: object, minutes: int = 60, start: int = 0):  # type: ignore[no-untyped-def]
    return make_override(
        "farm", asset, command, value,  # type: ignore[arg-type]
        start, ms(NOW + timedelta(minutes=minutes)), requested_by="tester", now_ms=ms(NOW),
        assets={"bat": BATTERY, "ev": CHARGER}, planned=("ev", "dishwasher"),
    )  # fmt: skip


def test_overrides_are_checked() -> None:
    held = override("bat", "battery_power_setpoint_w", -2000)
    assert (held.start_ms, held.requested_by) == (ms(NOW), "tester")
    for asset, command, value, message in [
        ("nope", "battery_power_setpoint_w", 1, "site 'farm' has no such asset"),
        ("bat", "ev_current_limit_a", 6, "it does not take 'ev_current_limit_a'"),
        ("bat", "battery_power_setpoint_w", "lots", "takes a number"),
        ("bat", "battery_power_setpoint_w", float("nan"), "not a usable value"),
        ("ev", "ev_charging_enabled", 1, "takes true or false"),
        ("ev", "ev_current_limit_a", -6, "cannot be negative"),
    ]:
        with pytest.raises(PlanInputError, match=message):
            override(asset, command, value)
    with pytest.raises(PlanInputError, match="before now"):
        override("bat", "battery_power_setpoint_w", 0, minutes=-5, start=ms(NOW) - 600_000)
    with pytest.raises(PlanInputError, match="at most 7 days"):
        override("bat", "battery_power_setpoint_w", 0, minutes=8 * 1440)


def test_overrides_become_holds_on_whole_steps() -> None:
    horizon = Horizon(T0, 15, 8)
    battery = Battery("bat", 10_000, 4000, 4000, 0.5)
    ev = Ev("ev", 10_000, 8, modes=(ChargeMode(phases=3, min_current_a=6, max_current_a=16),))
    found = holds(
        [override("bat", "battery_power_setpoint_w", -2000, minutes=20),
         override("ev", "ev_current_limit_a", 10, minutes=50),
         override("ev", "ev_charging_enabled", False, minutes=200, start=ms(LATER)),
         override("dishwasher", "battery_power_setpoint_w", 0)],
        horizon, batteries=[battery], evs=[ev],
    )  # fmt: skip
    assert [(h.asset_id, h.first_step, h.last_step, h.power_w) for h in found] == [
        ("bat", 0, 2, -2000.0),
        ("ev", 0, 4, -6900.0),
        ("ev", 4, 8, 0.0),
    ]
    newer = override("bat", "battery_power_setpoint_w", 500)
    assert active([override("bat", "battery_power_setpoint_w", -2000), newer], ms(NOW)) == {
        ("bat", "battery_power_setpoint_w"): 500
    }


async def test_a_replayed_price_file_stands_in_for_any_day(tmp_path: Path) -> None:
    hours = [float(h) for h in range(24)]
    path = write_json(tmp_path / "prices.json", price_document({date(2026, 6, 16): hours}))
    source = ReplayedPriceFile(path, "CZ", PRAGUE)
    ordinary = await source.day_ahead(date(2031, 1, 7))
    assert ordinary.prices_mwh.size == 96
    assert list(ordinary.prices_mwh[::4]) == hours
    spring = await source.day_ahead(date(2026, 3, 29))  # 02:00 to 03:00 does not exist
    assert spring.prices_mwh.size == 92
    assert list(spring.prices_mwh[8:12]) == [3.0] * 4  # the quarter-hours after the gap
    autumn = await source.day_ahead(date(2026, 10, 25))  # 02:00 to 03:00 happens twice
    assert autumn.prices_mwh.size == 100
    assert list(autumn.prices_mwh[8:16]) == [2.0] * 8


async def test_a_replayed_price_file_refuses_the_wrong_zone(tmp_path: Path) -> None:
    document = price_document({date(2026, 6, 16): [1.0] * 24}, area="SE3", zone="Europe/Stockholm")
    path = write_json(tmp_path / "prices.json", document)
    with pytest.raises(PlanInputError, match="prices for SE3 in Europe/Stockholm"):
        await ReplayedPriceFile(path, "CZ", PRAGUE).day_ahead(date(2026, 6, 16))


async def test_a_pv_file_as_it_is_and_replayed(tmp_path: Path) -> None:
    day = [0.0] * 6 + [1000.0] * 12 + [0.0] * 6  # hourly, one recorded day
    document = {
        "schema": "edge-ems-pv-forecast/1",
        "time_zone": "Europe/Prague",
        "start": "2026-06-16T00:00:00+02:00",
        "step_minutes": 60,
        "power_w": day,
    }
    path = write_json(tmp_path / "pv.json", document)
    plain = await PvFile(path, PRAGUE, lambda: NOW).forecast()
    assert plain.power_w.size == 96
    assert plain.start == datetime(2026, 6, 15, 22, tzinfo=UTC)
    later = datetime(2027, 2, 3, 9, tzinfo=PRAGUE)
    replayed = await PvFile(path, PRAGUE, lambda: later, replay=True).forecast()
    assert replayed.start == datetime(2027, 2, 3, tzinfo=PRAGUE)
    assert replayed.power_w.size == 3 * 96
    assert replayed.power_w[4 * 6] == 1000.0
    assert replayed.power_w[96 + 4 * 5] == 0.0
    document["power_w"] = day[:-1]
    write_json(path, document)
    with pytest.raises(PlanInputError, match="holds whole days"):
        await PvFile(path, PRAGUE, lambda: later, replay=True).forecast()


def test_forecast_times_every_two_hours_at_five_past() -> None:
    config = PvSourceConfig("open_meteo", every_hours=2, at_minute=5)
    assert pv_every(config, PRAGUE, T0) == datetime(2026, 6, 16, 10, 5, tzinfo=PRAGUE)
    assert pv_every(config, PRAGUE, T0 + timedelta(minutes=5)) == datetime(
        2026, 6, 16, 12, 5, tzinfo=PRAGUE
    )
    late = datetime(2026, 6, 16, 22, 30, tzinfo=PRAGUE)
    assert pv_every(config, PRAGUE, late) == datetime(2026, 6, 17, 0, 5, tzinfo=PRAGUE)
