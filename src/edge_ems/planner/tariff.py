"""The effective price: what a kWh imported costs and one exported earns, from the spot
price and a tariff described in a file (YAML), not in code.

    import = (spot + supplier margin + distribution[band] + fees) x (1 + VAT)
    export = spot - export fee            (may go negative; no VAT by default)

``distribution[band]`` is the distribution tariff of the time-of-use band in force: bands
are named (``low``, ``high``), each has a price per kWh, and windows say when each applies,
by day type (``mon`` .. ``sun``, and ``holiday`` on the dates listed). Minutes no window
covers fall in ``default_band``. Two windows of one day type that overlap are refused: a
minute belongs to one band. The spot price (per kWh, in the spot currency) is multiplied by
``exchange_rate`` into the tariff's currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import voluptuous as vol
import yaml

from .errors import PlanInputError
from .problem import Horizon, Series
from .validation import apply, number, zone

DAY_TYPES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")
WEEKDAYS = DAY_TYPES[:5]
_FRACTION = vol.All(number, vol.Range(min=0, max=1))


def _clock(value: Any) -> int:
    """``HH:MM`` as minutes of the day; ``24:00`` is the end of the day."""
    if not isinstance(value, str):
        raise vol.Invalid("expected a time HH:MM")
    if value == "24:00":
        return 1440
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        raise vol.Invalid(f"{value!r} is not a time HH:MM") from None
    return parsed.hour * 60 + parsed.minute


def _days(value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise vol.Invalid("expected day types: mon .. sun, holiday, weekdays, weekend, all")
    result: list[str] = []
    for name in names:
        expanded = {
            "weekdays": WEEKDAYS, "weekend": ("sat", "sun"), "all": DAY_TYPES,
        }.get(name, (name,))  # fmt: skip
        for day in expanded:
            if day not in DAY_TYPES:
                raise vol.Invalid(f"unknown day type {day!r}")
            result.append(day)
    return tuple(dict.fromkeys(result))


def _holiday(value: Any) -> str:
    """``MM-DD`` (every year) or ``YYYY-MM-DD`` (that date)."""
    text = str(value)
    try:
        if len(text) == 5:
            date.fromisoformat(f"2024-{text}")
        else:
            date.fromisoformat(text)
    except ValueError:
        raise vol.Invalid(f"{text!r} is not MM-DD or YYYY-MM-DD") from None
    return text


_WINDOW = vol.Schema(
    {
        vol.Required("band"): vol.All(str, vol.Length(min=1)),
        vol.Required("days"): _days,
        vol.Required("from"): _clock,
        vol.Required("to"): _clock,
    }
)

_SCHEMA = vol.Schema(
    {
        vol.Required("name"): vol.All(str, vol.Length(min=1)),
        vol.Required("currency"): vol.All(str, vol.Match(r"^[A-Z]{3}$")),
        vol.Required("time_zone"): zone,
        vol.Optional("exchange_rate", default=1.0): vol.All(
            number, vol.Range(min=0, min_included=False)
        ),
        vol.Optional("vat", default=0.0): _FRACTION,
        vol.Required("import"): {
            vol.Optional("supplier_margin_per_kwh", default=0.0): number,
            vol.Optional("fees_per_kwh", default={}): {str: number},
            vol.Required("bands"): vol.All({str: number}, vol.Length(min=1)),
            vol.Required("default_band"): str,
            vol.Optional("windows", default=[]): [_WINDOW],
        },
        vol.Optional("export", default={}): {
            vol.Optional("fee_per_kwh", default=0.0): number,
            vol.Optional("vat", default=0.0): _FRACTION,
        },
        vol.Optional("holidays", default=[]): [_holiday],
        vol.Optional("description"): str,
    }
)


@dataclass(frozen=True, slots=True)
class Window:
    """A band in force on some day types, from one minute of the day to another."""

    band: str
    days: tuple[str, ...]
    start: int
    end: int
    """Minutes of the day; ``end`` below ``start`` runs past midnight."""

    def pieces(self) -> list[tuple[str, int, int]]:
        """(day type, start, end) pieces within one day each (past midnight: the same day
        type's early hours, as tariff sheets write ``22:00-06:00``)."""
        spans = (
            [(self.start, self.end)]
            if self.start < self.end
            else [(self.start, 1440), (0, self.end)]
        )
        return [(day, a, b) for day in self.days for a, b in spans if a < b]


@dataclass(frozen=True, slots=True)
class Tariff:
    """A supplier's and a distributor's prices, checked."""

    name: str
    currency: str
    zone: ZoneInfo
    exchange_rate: float
    vat: float
    margin: float
    fees: Mapping[str, float]
    bands: Mapping[str, float]
    default_band: str
    windows: tuple[Window, ...]
    export_fee: float
    export_vat: float
    holidays: tuple[str, ...]

    def band_at(self, moment: datetime) -> str:
        """The band in force at ``moment``."""
        local = moment.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        kind = self.day_type(local.date())
        for window in self.windows:
            for day, start, end in window.pieces():
                if day == kind and start <= minute < end:
                    return window.band
        return self.default_band

    def day_type(self, day: date) -> str:
        """``holiday`` on a listed date, else the weekday."""
        if day.isoformat() in self.holidays or day.strftime("%m-%d") in self.holidays:
            return "holiday"
        return DAY_TYPES[day.weekday()]

    def import_price(self, spot_per_kwh: float, moment: datetime) -> float:
        """The cost of one kWh imported at ``moment``."""
        spot = spot_per_kwh * self.exchange_rate
        net = spot + self.margin + self.bands[self.band_at(moment)] + sum(self.fees.values())
        return net * (1.0 + self.vat)

    def export_price(self, spot_per_kwh: float) -> float:
        """The earnings of one kWh exported (negative: exporting costs)."""
        return (spot_per_kwh * self.exchange_rate - self.export_fee) * (1.0 + self.export_vat)

    def prices(self, horizon: Horizon, spot_per_kwh: Series) -> tuple[Series, Series]:
        """Import and export prices for each step of ``horizon``; a step takes the band in
        force at its start."""
        if spot_per_kwh.shape != (horizon.n_steps,):
            raise PlanInputError(f"{spot_per_kwh.size} spot prices for {horizon.n_steps} steps")
        start = horizon.start.astimezone(UTC)
        imports = np.array(
            [self.import_price(float(spot), start + k * horizon.step)
             for k, spot in enumerate(spot_per_kwh)]
        )  # fmt: skip
        exports = (spot_per_kwh * self.exchange_rate - self.export_fee) * (1.0 + self.export_vat)
        return imports, exports


def parse_tariff(data: Any, *, source: str = "<tariff>") -> Tariff:
    """A tariff from parsed YAML; :class:`PlanInputError` names the first problem."""
    checked = apply(_SCHEMA, data, source=source)
    section = checked["import"]
    bands: dict[str, float] = section["bands"]
    windows = tuple(Window(w["band"], w["days"], w["from"], w["to"]) for w in section["windows"])
    for name in [section["default_band"], *(w.band for w in windows)]:
        if name not in bands:
            raise PlanInputError(f"{source}: band {name!r} has no price under import.bands")
    for window in windows:
        if window.start == window.end:
            raise PlanInputError(
                f"{source}: a {window.band} window starts and ends at the same time"
            )
    _refuse_overlaps(windows, source)
    return Tariff(
        name=checked["name"],
        currency=checked["currency"],
        zone=checked["time_zone"],
        exchange_rate=checked["exchange_rate"],
        vat=checked["vat"],
        margin=section["supplier_margin_per_kwh"],
        fees=section["fees_per_kwh"],
        bands=bands,
        default_band=section["default_band"],
        windows=windows,
        export_fee=checked["export"]["fee_per_kwh"],
        export_vat=checked["export"]["vat"],
        holidays=tuple(checked["holidays"]),
    )


def load_tariff(path: Path) -> Tariff:
    """A tariff file (blocking: read it off the event loop)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PlanInputError(f"{path}: cannot read the tariff: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PlanInputError(f"{path}: not YAML: {err}") from None
    return parse_tariff(data, source=str(path))


def _refuse_overlaps(windows: tuple[Window, ...], source: str) -> None:
    pieces = sorted(
        (day, start, end, window) for window in windows for day, start, end in window.pieces()
    )
    for (day, _, end, window), (other_day, other_start, _, other) in pairwise(pieces):
        if day == other_day and other_start < end:
            raise PlanInputError(
                f"{source}: windows overlap on {day}: {window.band} "
                f"{_hhmm(window.start)}-{_hhmm(window.end)} and {other.band} "
                f"{_hhmm(other.start)}-{_hhmm(other.end)} (a minute belongs to one band)"
            )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
