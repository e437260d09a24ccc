"""Prices and solar forecasts in the shapes Home Assistant's integrations publish them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.planner.errors import SourceDataError
from edge_ems.planner.sources.published import (
    PublishedSeries,
    entity_prices,
    price_factor,
    solar_forecast,
    sum_series,
)

DAY = datetime(2026, 12, 7, tzinfo=UTC)


def hours(
    values: list[float],
    *,
    start: datetime = DAY,
    key: str = "start",
    value: str = "value",
    end: str | None = "end",
    step: timedelta = timedelta(hours=1),
) -> list[dict[str, Any]]:
    entries = []
    for index, price in enumerate(values):
        entry: dict[str, Any] = {key: (start + index * step).isoformat(), value: price}
        if end:
            entry[end] = (start + (index + 1) * step).isoformat()
        entries.append(entry)
    return entries


@pytest.mark.parametrize(
    ("unit", "currency", "expected"),
    [
        ("EUR/kWh", "EUR", ("EUR", 1.0)),
        ("EUR/MWh", "EUR", ("EUR", 0.001)),
        ("€/kWh", "EUR", ("EUR", 1.0)),
        ("ct/kWh", "EUR", ("EUR", 0.01)),
        ("c/kWh", "AUD", ("AUD", 0.01)),
        ("öre/kWh", "EUR", ("SEK", 0.01)),
        ("øre/kWh", "NOK", ("NOK", 0.01)),
        ("p/kWh", "GBP", ("GBP", 0.01)),
        ("kr/kWh", "DKK", ("DKK", 1.0)),
        ("CZK/MWh", "CZK", ("CZK", 0.001)),
        ("sek/Wh", "SEK", ("SEK", 1000.0)),
    ],
)
def test_price_units(unit: str, currency: str, expected: tuple[str, float]) -> None:
    got = price_factor(unit, currency)
    assert got[0] == expected[0]
    assert got[1] == pytest.approx(expected[1])


@pytest.mark.parametrize("unit", [None, "", "EUR", "kWh", "EUR/kW", "euros/kWh", "12/kWh"])
def test_a_unit_that_is_no_price_unit_is_refused(unit: str | None) -> None:
    with pytest.raises(SourceDataError, match=r"unit|currency"):
        price_factor(unit, "EUR")


def test_nordpool_style_raw_today_and_tomorrow_in_quarters() -> None:
    quarter = timedelta(minutes=15)
    today = hours([float(i) for i in range(96)], step=quarter)
    tomorrow = hours([100.0] * 96, start=DAY + timedelta(days=1), step=quarter)
    series = entity_prices(
        {"raw_today": today, "raw_tomorrow": tomorrow, "unit": "x"}, "EUR/MWh", "EUR"
    )
    assert series.step == quarter
    assert series.start == DAY
    assert len(series.values) == 192
    assert series.values[5] == pytest.approx(0.005)
    assert series.unit == "EUR/kWh"
    assert series.end == DAY + timedelta(days=2)


def test_entsoe_style_hourly_prices_spread_to_quarters_when_tomorrow_is_finer() -> None:
    today = hours([0.1, 0.2], key="time", value="price", end=None)
    later = hours(
        [0.3] * 4,
        start=DAY + timedelta(hours=2),
        key="time",
        value="price",
        end=None,
        step=timedelta(minutes=15),
    )
    series = entity_prices({"prices_today": today, "prices_tomorrow": later}, "EUR/kWh", "EUR")
    assert series.step == timedelta(minutes=15)
    assert series.values == (0.1,) * 4 + (0.2,) * 4 + (0.3,) * 4


def test_octopus_style_rates_with_z_times() -> None:
    rates = [
        {"start": "2026-12-07T00:00:00Z", "end": "2026-12-07T00:30:00Z", "value_inc_vat": 0.25},
        {"start": "2026-12-07T00:30:00Z", "end": "2026-12-07T01:00:00Z", "value_inc_vat": -0.02},
    ]
    series = entity_prices({"rates": rates}, "GBP/kWh", "GBP")
    assert series.values == (0.25, -0.02)
    assert series.step == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({}, "no price list"),
        ({"raw_today": ["x"]}, "expected a mapping"),
        ({"raw_today": [{"start": DAY.isoformat()}]}, "no value"),
        ({"raw_today": [{"start": "noon", "value": 1}]}, "not a time"),
        ({"raw_today": [{"start": "2026-12-07T00:00:00", "value": 1}]}, "no UTC offset"),
        ({"raw_today": [{"start": DAY.isoformat(), "value": "cheap"}]}, "not a number"),
        ({"raw_today": [{"start": DAY.isoformat(), "value": "nan"}]}, "finite"),
        ({"raw_today": hours([1.0, 2.0]) + hours([3.0])}, "two entries start"),
        (
            {"raw_today": hours([1.0]) + hours([2.0], start=DAY + timedelta(hours=2))},
            "nothing from",
        ),
        (
            {
                "raw_today": [
                    *hours([1.0], step=timedelta(hours=2)),
                    *hours([2.0], start=DAY + timedelta(hours=1)),
                ]
            },
            "overlaps",
        ),
        (
            {
                "raw_today": [
                    *hours([1.0], step=timedelta(minutes=45), end=None),
                    *hours([2.0], start=DAY + timedelta(minutes=45), step=timedelta(minutes=30)),
                ]
            },
            "whole number",
        ),
        (
            {
                "raw_today": [
                    {
                        "start": DAY.isoformat(),
                        "end": (DAY - timedelta(hours=1)).isoformat(),
                        "value": 1,
                    }
                ]
            },
            "ends before",
        ),
    ],
)
def test_unusable_price_lists_say_why(attributes: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceDataError, match=message):
        entity_prices(attributes, "EUR/kWh", "EUR")


def test_forecast_solar_style_hours_with_sunrise_and_sunset_to_the_minute() -> None:
    wh = {
        "2026-12-07T07:43:00+00:00": 0,
        "2026-12-07T08:00:00+00:00": 500,
        "2026-12-07T09:00:00+00:00": 1500,
        "2026-12-07T10:00:00+00:00": 2000,
        "2026-12-07T15:52:00+00:00": 0,
        "2026-12-08T08:00:00+00:00": 400,
    }
    series = solar_forecast(wh)
    assert series.step == timedelta(hours=1)
    assert series.start == DAY + timedelta(hours=7)
    assert series.values[:4] == (0.0, 500.0, 1500.0, 2000.0)
    assert series.values[10] == 0.0  # the afternoon hours the provider left out
    assert series.end == DAY + timedelta(days=1, hours=9)
    assert series.unit == "W"


def test_half_hourly_forecast_gives_mean_power() -> None:
    series = solar_forecast({"2026-12-07T10:00:00+00:00": 500, "2026-12-07T10:30:00+00:00": 250})
    assert series.step == timedelta(minutes=30)
    assert series.values == (1000.0, 500.0)


@pytest.mark.parametrize(
    ("wh", "message"),
    [
        ({}, "empty"),
        ({"soon": 1}, "not a time"),
        ({DAY.isoformat(): -5}, "negative"),
        ({DAY.isoformat(): 1, (DAY + timedelta(minutes=7)).isoformat(): 1}, "divide a day"),
    ],
)
def test_unusable_forecasts_say_why(wh: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceDataError, match=message):
        solar_forecast(wh)


def test_forecasts_add_up_where_all_cover() -> None:
    hourly = PublishedSeries(DAY, timedelta(hours=1), (100.0, 200.0, 300.0), "W")
    halves = PublishedSeries(DAY + timedelta(hours=1), timedelta(minutes=30), (10.0,) * 6, "W")
    total = sum_series([hourly, halves])
    assert total.start == DAY + timedelta(hours=1)
    assert total.step == timedelta(minutes=30)
    assert total.values == (210.0, 210.0, 310.0, 310.0)
    with pytest.raises(SourceDataError, match="common"):
        sum_series(
            [hourly, PublishedSeries(DAY + timedelta(days=1), timedelta(hours=1), (1.0,), "W")]
        )
    with pytest.raises(SourceDataError, match="no forecast"):
        sum_series([])
    odd = PublishedSeries(DAY + timedelta(hours=1), timedelta(minutes=45), (1.0,) * 2, "W")
    with pytest.raises(SourceDataError, match="nest"):
        sum_series([halves, odd])


_VALUE = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_ENTRY = st.dictionaries(
    st.sampled_from(["start", "end", "value", "price", "time", "x"]),
    _VALUE | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    max_size=4,
)


@given(
    st.dictionaries(
        st.sampled_from(["raw_today", "prices", "rates", "other"]),
        st.lists(_ENTRY | _VALUE, max_size=5) | _VALUE,
        max_size=3,
    )
)
def test_any_attributes_give_a_series_or_a_clear_error(attributes: dict[str, Any]) -> None:
    try:
        series = entity_prices(attributes, "EUR/kWh", "EUR")
    except SourceDataError:
        return
    assert series.values
    assert series.step > timedelta(0)


@given(
    st.dictionaries(
        st.text(max_size=30) | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        _VALUE,
        max_size=5,
    )
)
def test_any_forecast_gives_a_series_or_a_clear_error(wh: dict[str, Any]) -> None:
    try:
        series = solar_forecast(wh)
    except SourceDataError:
        return
    assert all(value >= 0 for value in series.values)
