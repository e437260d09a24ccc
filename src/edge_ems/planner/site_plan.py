"""A site's plan as the hub publishes it and a site reads it: the plan, the prices it was
made with and the day's costs so far, in one JSON document (``edge-ems-site-plan/1``).

The hub builds it (:func:`site_plan_document`), sends it to the site's agent over the gateway
and serves it at ``GET /plan``; Home Assistant's sensors, its ``edge_ems.get_plan`` action and
the plan card read it through :class:`SitePlan`. Reading needs no numpy, so a site does not
pull in the planner's solver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import voluptuous as vol

from .commands import EvStep, Setpoint, step_setpoints
from .errors import PlanInputError
from .validation import apply, integer, iso_time, number, zone

if TYPE_CHECKING:
    from .plan import Plan

SCHEMA: Final = "edge-ems-site-plan/1"

CHEAP_QUANTILE: Final = 0.25
"""A step is cheap when its import price is in the lowest quarter of the prices ahead."""


@dataclass(frozen=True, slots=True)
class DayCost:
    """What a day has cost so far, as measured, and what planning saved on it."""

    day: date
    actual_cost: float
    until: datetime
    """The end of the last measured step: the plan's own steps count from here on."""
    savings_vs_self_consumption: float
    savings_vs_no_battery: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "day": self.day.isoformat(),
            "actual_cost": round(self.actual_cost, 6),
            "until": self.until.isoformat(),
            "savings_vs_self_consumption": round(self.savings_vs_self_consumption, 6),
            "savings_vs_no_battery": round(self.savings_vs_no_battery, 6),
        }


def site_plan_document(
    site_id: str,
    plan: Plan,
    *,
    version: int,
    made_at: datetime,
    time_zone: str,
    spot_price: Sequence[float] | None = None,
    days: Sequence[DayCost] = (),
) -> dict[str, Any]:
    """The document for ``site_id``: ``plan`` with its prices per kWh (spot when known,
    effective import and export), each step's energy cost and the days' costs so far."""
    start = plan.horizon.start.isoformat()
    return {
        "schema": SCHEMA,
        "site_id": site_id,
        "version": version,
        "made_at": made_at.isoformat(),
        "time_zone": time_zone,
        "plan": plan.as_dict(),
        "prices": {
            "start": start,
            "step_minutes": plan.horizon.step_minutes,
            "currency": plan.currency,
            "spot": None if spot_price is None else [round(float(v), 6) for v in spot_price],
            "import": [round(float(v), 6) for v in plan.import_price],
            "export": [round(float(v), 6) for v in plan.export_price],
        },
        "step_cost": [round(float(v), 6) for v in plan.cost_per_step],
        "days": [day.as_dict() for day in days],
    }


@dataclass(frozen=True, slots=True)
class CheapWindow:
    """The next run of cheap steps: when it starts and ends and what it costs."""

    start: datetime
    end: datetime
    mean_price: float
    threshold: float
    """The price at or below which a step counts as cheap."""


@dataclass(frozen=True, slots=True)
class SitePlan:
    """A published plan, checked, with the questions a site's sensors ask of it."""

    site_id: str
    version: int
    made_at: datetime
    time_zone: ZoneInfo
    start: datetime
    step: timedelta
    n_steps: int
    status: str
    currency: str
    spot_price: tuple[float, ...] | None
    import_price: tuple[float, ...]
    export_price: tuple[float, ...]
    step_cost: tuple[float, ...]
    battery_power_w: Mapping[str, tuple[float, ...]]
    """Each battery's planned power per step, + discharging, - charging."""
    ev_steps: Mapping[str, tuple[EvStep, ...]]
    heat_pump_power_w: Mapping[str, tuple[float, ...]]
    load_power_w: Mapping[str, tuple[float, ...]]
    """Each deferrable load's planned power per step."""
    shortfalls: tuple[Mapping[str, Any], ...]
    days: Mapping[date, DayCost]
    document: Mapping[str, Any]
    """The document as published, for whoever wants all of it."""

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> SitePlan:
        """Check ``document``; :class:`~.errors.PlanInputError` says what is wrong with it."""
        checked = apply(_DOCUMENT, document, source="plan document")
        plan, prices = checked["plan"], checked["prices"]
        n_steps = plan["n_steps"]
        _same_length(n_steps, plan, prices, checked["step_cost"])
        if prices["start"] != plan["start"] or prices["step_minutes"] != plan["step_minutes"]:
            raise _invalid("prices: start and step_minutes differ from the plan's")
        spot = prices["spot"]
        return cls(
            site_id=checked["site_id"],
            version=checked["version"],
            made_at=checked["made_at"],
            time_zone=checked["time_zone"],
            start=plan["start"],
            step=timedelta(minutes=plan["step_minutes"]),
            n_steps=n_steps,
            status=plan["status"],
            currency=plan["currency"],
            spot_price=None if spot is None else tuple(spot),
            import_price=tuple(prices["import"]),
            export_price=tuple(prices["export"]),
            step_cost=tuple(checked["step_cost"]),
            battery_power_w={
                battery["id"]: tuple(
                    discharge - charge
                    for charge, discharge in zip(
                        battery["charge_w"], battery["discharge_w"], strict=True
                    )
                )
                for battery in plan["batteries"]
            },
            ev_steps={
                ev["id"]: tuple(
                    EvStep(power, current, phases)
                    for power, current, phases in zip(
                        ev["power_w"], ev["current_a"], ev["phases"], strict=True
                    )
                )
                for ev in plan["evs"]
            },
            heat_pump_power_w={hp["id"]: tuple(hp["power_w"]) for hp in plan["heat_pumps"]},
            load_power_w={load["id"]: tuple(load["power_w"]) for load in plan["deferrables"]},
            shortfalls=tuple(plan["shortfalls"]),
            days={day["day"]: DayCost(**day) for day in checked["days"]},
            document=document,
        )

    @property
    def end(self) -> datetime:
        """The end of the last step."""
        return self.time(self.n_steps)

    def time(self, step: int) -> datetime:
        """The start of ``step`` (in UTC: steps are equal in absolute time)."""
        return self.start.astimezone(UTC) + step * self.step

    def step_at(self, moment: datetime) -> int | None:
        """The step ``moment`` falls in, or ``None`` outside the plan."""
        step = (moment - self.start) // self.step
        return step if 0 <= step < self.n_steps else None

    def spot_price_at(self, moment: datetime) -> float | None:
        """The market price per kWh at ``moment``, when the plan knows it."""
        step = self.step_at(moment)
        return None if step is None or self.spot_price is None else self.spot_price[step]

    def import_price_at(self, moment: datetime) -> float | None:
        """The effective price per kWh of importing at ``moment``."""
        step = self.step_at(moment)
        return None if step is None else self.import_price[step]

    def export_price_at(self, moment: datetime) -> float | None:
        """What exporting a kWh earns at ``moment`` (may be negative)."""
        step = self.step_at(moment)
        return None if step is None else self.export_price[step]

    def battery_power_at(self, moment: datetime) -> float | None:
        """The batteries' planned power at ``moment`` together (+ discharge, - charge), or
        ``None`` outside the plan or without batteries."""
        step = self.step_at(moment)
        if step is None or not self.battery_power_w:
            return None
        return sum(power[step] for power in self.battery_power_w.values())

    def setpoints_at(self, moment: datetime) -> list[Setpoint]:
        """What the plan tells each asset to do at ``moment`` (none outside the plan)."""
        step = self.step_at(moment)
        if step is None:
            return []
        return step_setpoints(
            {asset: power[step] for asset, power in self.battery_power_w.items()},
            {asset: steps[step] for asset, steps in self.ev_steps.items()},
            {asset: power[step] for asset, power in self.heat_pump_power_w.items()},
            {asset: power[step] for asset, power in self.load_power_w.items()},
        )

    def cost_on(self, day: date, now: datetime) -> float | None:
        """The energy cost of ``day`` (the site's calendar day): measured so far plus what
        the plan's steps still to come on it cost; ``None`` when neither covers it."""
        day_start = datetime.combine(day, time(0), tzinfo=self.time_zone)
        day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.time_zone)
        measured = self.days.get(day)
        planned_from = max(day_start, measured.until if measured else day_start)
        current = self.step_at(now)
        if current is not None:
            planned_from = max(planned_from, self.time(current))
        planned = [
            self.step_cost[step]
            for step in range(self.n_steps)
            if planned_from <= self.time(step) < day_end
        ]
        if measured is None and not planned:
            return None
        return (measured.actual_cost if measured else 0.0) + sum(planned)

    def savings_on(self, day: date) -> DayCost | None:
        """What planning saved on ``day`` so far, when the hub has measured it."""
        return self.days.get(day)

    def next_cheap_window(self, now: datetime) -> CheapWindow | None:
        """The first run of cheap steps from the step of ``now`` on: steps whose import price
        is in the lowest quarter of the prices still ahead (the current run when ``now`` is
        in one). ``None`` once the plan has no steps ahead."""
        first = self.step_at(now)
        if first is None:
            if now >= self.start:
                return None
            first = 0
        ahead = self.import_price[first:]
        threshold = sorted(ahead)[int((len(ahead) - 1) * CHEAP_QUANTILE)]
        begin = next(step for step, price in enumerate(ahead) if price <= threshold)
        end = begin
        while end < len(ahead) and ahead[end] <= threshold:
            end += 1
        window = ahead[begin:end]
        return CheapWindow(
            start=self.time(first + begin),
            end=self.time(first + end),
            mean_price=sum(window) / len(window),
            threshold=threshold,
        )


def _invalid(message: str) -> PlanInputError:
    return PlanInputError(f"plan document: {message}")


def _same_length(
    n_steps: int, plan: Mapping[str, Any], prices: Mapping[str, Any], step_cost: list[float]
) -> None:
    """Every series of the document has one value per step."""
    series: dict[str, Sequence[Any] | None] = {
        "prices.import": prices["import"],
        "prices.export": prices["export"],
        "prices.spot": prices["spot"],
        "step_cost": step_cost,
    }
    for kind, keys in _ASSET_SERIES.items():
        for asset in plan[kind]:
            for key in keys:
                series[f"plan.{kind}.{asset['id']}.{key}"] = asset[key]
    for where, values in series.items():
        if values is not None and len(values) != n_steps:
            raise _invalid(f"{where}: {len(values)} values for {n_steps} steps")


def _day(value: Any) -> date:
    if not isinstance(value, str):
        raise vol.Invalid("expected a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise vol.Invalid(f"{value!r} is not a date (YYYY-MM-DD)") from None


_NUMBERS = [number]
_BATTERY = vol.Schema(
    {
        vol.Required("id"): str,
        vol.Required("charge_w"): _NUMBERS,
        vol.Required("discharge_w"): _NUMBERS,
        vol.Required("soc"): _NUMBERS,
    },
    extra=vol.ALLOW_EXTRA,
)
_EV = vol.Schema(
    {
        vol.Required("id"): str,
        vol.Required("power_w"): _NUMBERS,
        vol.Required("current_a"): _NUMBERS,
        vol.Required("phases"): [vol.All(integer, vol.Range(min=0, max=3))],
    },
    extra=vol.ALLOW_EXTRA,
)
_POWERED = vol.Schema(
    {vol.Required("id"): str, vol.Required("power_w"): _NUMBERS}, extra=vol.ALLOW_EXTRA
)
_ASSET_SERIES = {
    "batteries": ("charge_w", "discharge_w", "soc"),
    "evs": ("power_w", "current_a", "phases"),
    "heat_pumps": ("power_w",),
    "deferrables": ("power_w",),
}
"""Each kind of planned asset's series, one value per step."""
_DOCUMENT = vol.Schema(
    {
        vol.Required("schema"): SCHEMA,
        vol.Required("site_id"): str,
        vol.Required("version"): vol.All(integer, vol.Range(min=0)),
        vol.Required("made_at"): iso_time,
        vol.Required("time_zone"): zone,
        vol.Required("plan"): vol.Schema(
            {
                vol.Required("start"): iso_time,
                vol.Required("step_minutes"): vol.All(integer, vol.Range(min=1, max=1440)),
                vol.Required("n_steps"): vol.All(integer, vol.Range(min=1)),
                vol.Required("status"): str,
                vol.Required("currency"): str,
                vol.Required("batteries"): [_BATTERY],
                vol.Optional("evs", default=list): [_EV],
                vol.Optional("heat_pumps", default=list): [_POWERED],
                vol.Optional("deferrables", default=list): [_POWERED],
                vol.Required("shortfalls"): [dict],
            },
            extra=vol.ALLOW_EXTRA,
        ),
        vol.Required("prices"): vol.Schema(
            {
                vol.Required("start"): iso_time,
                vol.Required("step_minutes"): integer,
                vol.Required("currency"): str,
                vol.Required("spot"): vol.Any(None, _NUMBERS),
                vol.Required("import"): _NUMBERS,
                vol.Required("export"): _NUMBERS,
            },
            extra=vol.PREVENT_EXTRA,
        ),
        vol.Required("step_cost"): _NUMBERS,
        vol.Required("days"): [
            vol.Schema(
                {
                    vol.Required("day"): _day,
                    vol.Required("actual_cost"): number,
                    vol.Required("until"): iso_time,
                    vol.Required("savings_vs_self_consumption"): number,
                    vol.Required("savings_vs_no_battery"): number,
                },
                extra=vol.PREVENT_EXTRA,
            )
        ],
    },
    extra=vol.ALLOW_EXTRA,
)
