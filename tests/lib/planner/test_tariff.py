"""Effective prices from tariff files: bands by time of use, holidays, VAT, export fees,
and the errors a tariff file can have."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.problem import Horizon
from edge_ems.planner.tariff import load_tariff, parse_tariff

PRAGUE = ZoneInfo("Europe/Prague")
DOCS = Path(__file__).parents[3] / "docs" / "planner.md"


def doc_tariffs() -> dict[str, dict[str, object]]:
    """The tariff examples in docs/planner.md, by name."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    found = {}
    for block in blocks:
        data = yaml.safe_load(block)
        if isinstance(data, dict) and "import" in data:
            found[str(data["name"])] = data
    return found


def d57d() -> dict[str, object]:
    [data] = [t for name, t in doc_tariffs().items() if "D57d" in name]
    return data


def test_the_docs_carry_a_two_rate_and_a_flat_tariff_that_parse() -> None:
    tariffs = doc_tariffs()
    assert len(tariffs) == 2
    for name, data in tariffs.items():
        assert parse_tariff(data, source=name).name == name


def test_d57d_bands_holidays_vat_and_export() -> None:
    tariff = parse_tariff(d57d())
    assert tariff.currency == "CZK"
    monday_high = datetime(2026, 3, 2, 8, 30, tzinfo=PRAGUE)
    monday_low = datetime(2026, 3, 2, 3, 0, tzinfo=PRAGUE)
    assert tariff.band_at(monday_high) == "high"
    assert tariff.band_at(monday_low) == "low"
    christmas = datetime(2026, 12, 25, 8, 30, tzinfo=PRAGUE)
    assert tariff.day_type(christmas.date()) == "holiday"
    spot = 0.1  # EUR per kWh
    high = tariff.import_price(spot, monday_high)
    low = tariff.import_price(spot, monday_low)
    fees = sum(tariff.fees.values())
    expected = (spot * tariff.exchange_rate + tariff.margin + tariff.bands["high"] + fees) * 1.21
    assert high == pytest.approx(expected)
    assert high - low == pytest.approx((tariff.bands["high"] - tariff.bands["low"]) * 1.21)
    assert tariff.export_price(-0.02) < 0  # a negative spot price makes exporting cost


def test_prices_for_a_horizon_take_each_steps_band() -> None:
    tariff = parse_tariff(d57d())
    horizon = Horizon(datetime(2026, 3, 2, tzinfo=PRAGUE), 60, 24)
    imports, exports = tariff.prices(horizon, np.full(24, 0.1))
    bands = [tariff.band_at(horizon.time(k)) for k in range(24)]
    assert imports[bands.index("high")] > imports[bands.index("low")]
    assert exports == pytest.approx(np.full(24, 0.1 * tariff.exchange_rate - tariff.export_fee))
    with pytest.raises(PlanInputError, match="23 spot prices for 24 steps"):
        tariff.prices(horizon, np.zeros(23))


def test_a_window_past_midnight_and_day_groups() -> None:
    tariff = parse_tariff(
        {
            "name": "night", "currency": "EUR", "time_zone": "Europe/Berlin",
            "import": {
                "bands": {"day": 0.12, "night": 0.05}, "default_band": "day",
                "windows": [{"band": "night", "days": ["weekdays"], "from": "22:00", "to": "06:00"},
                            {"band": "night", "days": "weekend", "from": "00:00", "to": "24:00"}],
            },
        }
    )  # fmt: skip
    berlin = ZoneInfo("Europe/Berlin")
    assert tariff.band_at(datetime(2026, 3, 3, 23, 0, tzinfo=berlin)) == "night"
    assert tariff.band_at(datetime(2026, 3, 3, 5, 59, tzinfo=berlin)) == "night"
    assert tariff.band_at(datetime(2026, 3, 3, 6, 0, tzinfo=berlin)) == "day"
    assert tariff.band_at(datetime(2026, 3, 7, 12, 0, tzinfo=berlin)) == "night"


def base() -> dict[str, object]:
    return {
        "name": "t", "currency": "EUR", "time_zone": "Europe/Prague",
        "import": {"bands": {"low": 0.1, "high": 0.2}, "default_band": "low",
                   "windows": [{"band": "high", "days": ["mon"], "from": "08:00", "to": "12:00"}]},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t["import"]["windows"].append(
                {"band": "low", "days": ["mon", "tue"], "from": "11:00", "to": "13:00"}
            ),
            "windows overlap on mon: high 08:00-12:00 and low 11:00-13:00",
        ),
        (
            lambda t: t["import"]["windows"].append(
                {"band": "peak", "days": ["mon"], "from": "13:00", "to": "14:00"}
            ),
            "band 'peak' has no price under import.bands",
        ),
        (
            lambda t: t["import"]["windows"][0].update({"from": "8am"}),
            "import.windows.0.from: '8am' is not a time HH:MM",
        ),
        (
            lambda t: t["import"]["windows"][0].update({"days": ["monday"]}),
            "unknown day type 'monday'",
        ),
        (lambda t: t.update({"vat": 21}), "vat: value must be at most 1"),
        (lambda t: t.update({"time_zone": "Europe/Praha"}), "time_zone: unknown time zone"),
        (lambda t: t.update({"holidays": ["12-32"]}), "'12-32' is not MM-DD"),
        (lambda t: t["import"].update({"default_band": "mid"}), "band 'mid' has no price"),
        (lambda t: t.update({"tarif": 1}), "tarif: unknown key"),
    ],
)
def test_bad_tariffs_get_a_clear_error(change: object, message: str) -> None:
    data = base()
    change(data)  # type: ignore[operator]
    with pytest.raises(PlanInputError, match=re.escape(message)):
        parse_tariff(data, source="tariff.yaml")


def test_tariff_files(tmp_path: Path) -> None:
    path = tmp_path / "tariff.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert load_tariff(path).bands == {"low": 0.1, "high": 0.2}
    path.write_text("import: [unclosed")
    with pytest.raises(PlanInputError, match="not YAML"):
        load_tariff(path)
    with pytest.raises(PlanInputError, match="cannot read the tariff"):
        load_tariff(tmp_path / "none.yaml")
