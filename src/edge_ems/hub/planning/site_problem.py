"""One site's planning problem at a re-plan: the horizon from now to where prices end, the
prices (the site's own or the hub's, with the tariff), the PV forecast and the load
baseline, the batteries the site registered with their measured SOC, the configured EVs,
heat pumps and deferrable loads with their measured state, and the overrides as holds.

A problem that cannot be made (no price for now, an EV departing in the past) is a
:class:`~edge_ems.planner.errors.PlanInputError` naming the cause; the service then keeps
the last good plan. Anything the planner falls back on (no PV forecast yet, no load history,
a battery without an SOC reading) is written down in :attr:`Built.notes`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ...gateway.model import AssetInfo
from ...planner.baseline import LoadBaseline
from ...planner.cop import DATASHEET_AIR_WATER_35, CopCurve
from ...planner.errors import PlanInputError
from ...planner.problem import (
    Battery,
    ChargeMode,
    Deferrable,
    Ev,
    Grid,
    HeatPump,
    Horizon,
    Problem,
    Pv,
    Series,
)
from ...planner.tariff import Tariff
from .config import DeferrableConfig, EvConfig, HeatPumpConfig, PlannerConfig, SiteConfig
from .overrides import Override, ev_demands, holds
from .series import StepSeries, median_or

BATTERY_TYPE = "battery"
SOC_MAX_AGE_MS = 30 * 60_000
"""An SOC reading older than this is not the battery's state now."""


@dataclass(frozen=True, slots=True)
class SiteState:
    """What the site measured last: the state a re-plan starts from."""

    soc: Mapping[str, float] = field(default_factory=dict)
    """Battery id to state of charge (a fraction), from recent readings only."""
    ev_connected: Mapping[str, bool] = field(default_factory=dict)
    ev_session_wh: Mapping[str, float] = field(default_factory=dict)
    values: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(asset, metric) to its latest numeric value (temperatures)."""
    ran_minutes: Mapping[str, float] = field(default_factory=dict)
    """Deferrable load to the minutes it has run in its current window."""


@dataclass(frozen=True, slots=True)
class PriceInputs:
    """The price series a site's plan may use, before the tariff."""

    spot_currency: str
    spot: StepSeries | None = None
    """Per kWh in ``spot_currency``: the site's own, else the hub's source."""
    import_price: StepSeries | None = None
    """The site's effective import price, per kWh in the plan's currency."""
    export_price: StepSeries | None = None
    tariff: Tariff | None = None
    missing: str = "the hub has no price source for this site and the site sent none"
    """Why there may be no spot price, for the message when none is known."""

    @property
    def currency(self) -> str:
        """The plan's currency: the tariff's, else the spot price's."""
        return self.tariff.currency if self.tariff is not None else self.spot_currency


@dataclass(frozen=True, slots=True, eq=False)
class Built:
    """A problem and what went into it."""

    problem: Problem
    spot: Series | None
    """The spot price per kWh of each step, when one is known."""
    notes: tuple[str, ...]
    sources: Mapping[str, str]
    without_soc: tuple[str, ...] = ()
    """The batteries left out for want of a recent SOC reading."""


def plan_start(now: datetime, step_minutes: int, zone: ZoneInfo) -> datetime:
    """The start of the step ``now`` is in, in ``zone`` (steps count from the epoch)."""
    step_s = step_minutes * 60
    epoch = math.floor(now.timestamp() / step_s) * step_s
    return datetime.fromtimestamp(epoch, UTC).astimezone(zone)


def build(
    config: PlannerConfig,
    site: SiteConfig,
    *,
    now: datetime,
    assets: Mapping[str, AssetInfo],
    state: SiteState,
    prices: PriceInputs,
    pv: StepSeries | None,
    baseline: LoadBaseline | None,
    overrides: Iterable[Override] = (),
) -> Built:
    """The site's problem at ``now``."""
    notes: list[str] = []
    sources: dict[str, str] = {}
    start = plan_start(now, config.step_minutes, config.zone)
    most = config.horizon_hours * 60 // config.step_minutes
    longest = Horizon(start, config.step_minutes, most)
    spot, import_price, export_price, n = _prices(prices, longest, sources, notes)
    horizon = Horizon(start, config.step_minutes, n)
    spot_steps = None
    if spot is not None and bool(np.all(np.isfinite(spot[:n]))):
        spot_steps = spot[:n]
    pv_w = _pv(pv, horizon, sources, notes)
    load_w = _load(baseline, site, horizon, sources, notes)
    without_soc: list[str] = []
    batteries = _batteries(site, assets, state, import_price[:n], notes, without_soc)
    overrides = tuple(overrides)
    demands = ev_demands(overrides, round(now.timestamp() * 1000))
    evs = tuple(
        ev
        for spec in site.evs
        if (ev := _ev(spec, horizon, state, config.zone, notes, demands.get(spec.asset_id)))
        is not None
    )
    heat_pumps = tuple(_heat_pump(spec, horizon, state, notes) for spec in site.heat_pumps)
    loads = tuple(
        load
        for spec in site.deferrables
        if (load := _deferrable(spec, horizon, state, config.zone)) is not None
    )
    held = holds(
        overrides, horizon, batteries=batteries, evs=evs, heat_pumps=heat_pumps, loads=loads
    )
    grid = site.grid
    try:
        problem = Problem(
            horizon=horizon,
            load_w=load_w,
            import_price=import_price[:n],
            export_price=export_price[:n],
            pv=Pv(pv_w, curtailable=site.pv_curtailable),
            grid=Grid(
                import_max_w=grid.import_max_w,
                export_max_w=grid.export_max_w,
                fuse_a=grid.fuse_a,
                phases=grid.phases,
                voltage_v=grid.voltage_v,
            ),
            batteries=batteries,
            evs=evs,
            heat_pumps=heat_pumps,
            deferrables=loads,
            currency=prices.currency,
            holds=tuple(held),
        )
    except PlanInputError as err:
        raise PlanInputError(f"site {site.site_id!r}: {err}") from None
    return Built(problem, spot_steps, tuple(notes), sources, tuple(without_soc))


def _prices(
    prices: PriceInputs, horizon: Horizon, sources: dict[str, str], notes: list[str]
) -> tuple[Series | None, Series, Series, int]:
    """Spot, import and export per step, and how many steps all of them cover."""
    n = horizon.n_steps
    spot = None
    spot_steps = 0
    if prices.spot is not None:
        spot_steps = prices.spot.covered_steps(horizon)
        spot = prices.spot.on(horizon, fill=math.nan)
        sources["spot_price"] = prices.spot.source
    tariff = prices.tariff
    imports: Series | None = None
    exports: Series | None = None
    import_steps = export_steps = 0
    if prices.import_price is not None:
        import_steps = prices.import_price.covered_steps(horizon)
        imports = prices.import_price.on(horizon, fill=math.nan)
        sources["import_price"] = prices.import_price.source
    if prices.export_price is not None:
        export_steps = prices.export_price.covered_steps(horizon)
        exports = prices.export_price.on(horizon, fill=math.nan)
        sources["export_price"] = prices.export_price.source
    if spot is not None and spot_steps > 0 and tariff is not None:
        covered = Horizon(horizon.start, horizon.step_minutes, spot_steps)
        tariff_import, tariff_export = tariff.prices(covered, spot[:spot_steps])
        if imports is None:
            imports, import_steps = _pad(tariff_import, n), spot_steps
            sources["import_price"] = f"spot with tariff {tariff.name!r}"
        if exports is None:
            exports, export_steps = _pad(tariff_export, n), spot_steps
            sources["export_price"] = f"spot with tariff {tariff.name!r}"
    if imports is None and spot is not None:
        imports, import_steps = spot, spot_steps
        sources["import_price"] = "spot (no tariff)"
    if exports is None and spot is not None:
        exports, export_steps = spot, spot_steps
        sources["export_price"] = "spot (no tariff)"
    if imports is None:
        raise PlanInputError(f"no prices: {prices.missing}")
    if exports is None:
        exports, export_steps = np.zeros(n), n
        sources["export_price"] = "none (exporting earns nothing)"
        notes.append("no export price known: exporting is planned as earning nothing")
    steps = min(import_steps, export_steps)
    if steps == 0:
        raise PlanInputError(
            f"no price known for now ({horizon.start.isoformat()}): "
            f"import from {sources.get('import_price')}, export from {sources.get('export_price')}"
        )
    return spot, imports, exports, steps


def _pad(values: Series, n: int) -> Series:
    padded = np.full(n, math.nan)
    padded[: values.size] = values
    return padded


def _pv(
    pv: StepSeries | None, horizon: Horizon, sources: dict[str, str], notes: list[str]
) -> Series:
    if pv is None:
        sources["pv_forecast"] = "none"
        notes.append("no PV forecast yet: the plan assumes no PV")
        return np.zeros(horizon.n_steps)
    sources["pv_forecast"] = pv.source
    covered = pv.covered_steps(horizon)
    if covered < horizon.n_steps:
        notes.append(
            f"the PV forecast covers {covered} of {horizon.n_steps} steps: no PV assumed after"
        )
    return np.maximum(pv.on(horizon, fill=0.0), 0.0)


def _load(
    baseline: LoadBaseline | None,
    site: SiteConfig,
    horizon: Horizon,
    sources: dict[str, str],
    notes: list[str],
) -> Series:
    if baseline is None:
        fallback = site.baseline.fallback_w
        sources["load"] = f"flat {fallback:g} W"
        notes.append(f"no load history yet: the plan assumes a flat {fallback:g} W")
        return np.full(horizon.n_steps, fallback)
    sources["load"] = f"baseline of {baseline.samples} quarter-hours"
    return np.maximum(baseline.forecast(horizon), 0.0)


def _batteries(
    site: SiteConfig,
    assets: Mapping[str, AssetInfo],
    state: SiteState,
    import_price: Series,
    notes: list[str],
    without_soc: list[str],
) -> tuple[Battery, ...]:
    found = []
    registered = [a for a in assets.values() if a.type == BATTERY_TYPE]
    listed = {b.asset_id for b in site.batteries}
    for info in sorted(registered, key=lambda a: a.asset_id):
        spec = site.battery(info.asset_id)
        if spec is None:
            continue
        listed.discard(info.asset_id)
        capacity = spec.capacity_wh or info.capacity_wh
        charge = spec.charge_max_w if spec.charge_max_w is not None else info.max_charge_w
        discharge = (
            spec.discharge_max_w if spec.discharge_max_w is not None else info.max_discharge_w
        )
        soc = state.soc.get(info.asset_id)
        if capacity <= 0:
            notes.append(f"battery {info.asset_id!r}: capacity unknown, not planned")
            continue
        if soc is None:
            notes.append(f"battery {info.asset_id!r}: no recent SOC reading, not planned")
            without_soc.append(info.asset_id)
            continue
        round_trip = spec.charge_efficiency * spec.discharge_efficiency
        terminal = spec.terminal_value_per_kwh
        if terminal is None:
            terminal = max(0.0, median_or(import_price, 0.0) * round_trip)
        found.append(
            Battery(
                id=info.asset_id,
                capacity_wh=capacity,
                charge_max_w=charge,
                discharge_max_w=discharge,
                soc_initial=min(1.0, max(0.0, soc)),
                charge_efficiency=spec.charge_efficiency,
                discharge_efficiency=spec.discharge_efficiency,
                soc_min=spec.soc_min,
                soc_max=spec.soc_max,
                cycle_cost_per_kwh=spec.cycle_cost_per_kwh,
                terminal_value_per_kwh=terminal,
                grid_charge_allowed=spec.grid_charge_allowed,
                export_allowed=spec.export_allowed,
            )
        )
    notes.extend(
        f"battery {missing!r}: the site has not registered it, not planned"
        for missing in sorted(listed)
    )
    return tuple(found)


def departure(spec: EvConfig, horizon: Horizon, zone: ZoneInfo) -> datetime:
    """When the car leaves: the configured moment, or the next daily time at least one
    step after the plan starts."""
    if isinstance(spec.departure, datetime):
        return spec.departure
    local = horizon.start.astimezone(zone)
    for days in range(3):
        moment = _at(local.date() + timedelta(days=days), spec.departure, zone)
        if horizon.step_at(moment) >= 1:
            return moment
    raise AssertionError("a daily departure recurs")  # pragma: no cover


def _at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC).astimezone(zone)


def _ev(
    spec: EvConfig,
    horizon: Horizon,
    state: SiteState,
    zone: ZoneInfo,
    notes: list[str],
    demand: Override | None = None,
) -> Ev | None:
    where = f"EV {spec.asset_id!r}"
    if state.ev_connected.get(spec.asset_id) is False:
        notes.append(f"{where}: no car connected, not planned")
        return None
    if demand is None:
        leaves, wanted = departure(spec, horizon, zone), spec.energy_needed_wh
    else:
        # Asked for (an override): the session's need by the override's end.
        leaves = datetime.fromtimestamp(demand.end_ms / 1000, UTC).astimezone(zone)
        wanted = float(demand.value)  # type: ignore[arg-type]
        notes.append(
            f"{where}: {wanted / 1000:g} kWh by {leaves.isoformat()}, "
            f"as {demand.requested_by} asked"
        )
    if leaves <= horizon.start or horizon.step_at(leaves) < 1:
        raise PlanInputError(
            f"{where}: departure {leaves.isoformat()} is not after the plan starts "
            f"({horizon.start.isoformat()})"
        )
    delivered = state.ev_session_wh.get(spec.asset_id, 0.0)
    needed = max(0.0, wanted - delivered)
    most = None if spec.energy_max_wh is None else max(needed, spec.energy_max_wh - delivered)
    modes = tuple(
        ChargeMode(phases=phases, min_current_a=spec.min_current_a,
                   max_current_a=spec.max_current_a)
        for phases in spec.phases
    )  # fmt: skip
    return Ev(
        id=spec.asset_id,
        energy_needed_wh=needed,
        depart_step=horizon.step_at(leaves),
        energy_max_wh=most,
        modes=modes,
        voltage_v=spec.voltage_v,
        current_step_a=spec.current_step_a,
        efficiency=spec.efficiency,
    )


def _heat_pump(
    spec: HeatPumpConfig, horizon: Horizon, state: SiteState, notes: list[str]
) -> HeatPump:
    n = horizon.n_steps
    where = f"heat pump {spec.asset_id!r}"
    indoor = state.values.get((spec.asset_id, spec.indoor_metric))
    if indoor is None:
        indoor = (spec.comfort_min_c + spec.comfort_max_c) / 2
        notes.append(f"{where}: no {spec.indoor_metric} reading, assumed {indoor:g} °C")
    outdoor = state.values.get((spec.asset_id, spec.outdoor_metric))
    if outdoor is None:
        outdoor = spec.outdoor_default_c
        notes.append(f"{where}: no {spec.outdoor_metric} reading, assumed {outdoor:g} °C")
    outdoor_c = np.full(n, outdoor)
    if spec.cop is not None:
        cop = np.full(n, spec.cop)
    else:
        curve = CopCurve(spec.cop_curve) if spec.cop_curve else DATASHEET_AIR_WATER_35
        cop = curve(outdoor_c)
    return HeatPump(
        id=spec.asset_id,
        max_power_w=spec.max_power_w,
        min_power_w=spec.min_power_w,
        cop=cop,
        outdoor_temp_c=outdoor_c,
        comfort_min_c=np.full(n, spec.comfort_min_c),
        comfort_max_c=np.full(n, spec.comfort_max_c),
        indoor_temp_c=indoor,
        heat_capacity_kwh_per_k=spec.heat_capacity_kwh_per_k,
        heat_loss_w_per_k=spec.heat_loss_w_per_k,
    )


def window(spec: DeferrableConfig, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The load's current window: today's if it has not closed yet, else tomorrow's (a
    window past midnight, ``22:00`` to ``06:00``, ends the day after it opens)."""
    local = now.astimezone(zone)
    for days in (-1, 0, 1):
        day = local.date() + timedelta(days=days)
        opens = _at(day, spec.start, zone)
        closes = _at(day + timedelta(days=1 if spec.end <= spec.start else 0), spec.end, zone)
        if closes > now:
            return opens, closes
    raise AssertionError("a daily window recurs")  # pragma: no cover


def _deferrable(
    spec: DeferrableConfig, horizon: Horizon, state: SiteState, zone: ZoneInfo
) -> Deferrable | None:
    opens, closes = window(spec, horizon.start, zone)
    step = horizon.step_minutes
    first = max(0, horizon.step_at(opens))
    last = min(horizon.n_steps, -(-int((closes - horizon.start) / timedelta(minutes=1)) // step))
    if first >= last:
        return None
    ran = state.ran_minutes.get(spec.asset_id, 0.0)
    required = max(0, math.ceil((spec.duration_minutes - ran) / step - 1e-9))
    return Deferrable(
        id=spec.asset_id,
        power_w=spec.power_w,
        required_steps=required,
        earliest_step=first,
        latest_step=last,
        on_off=spec.on_off,
        single_block=spec.single_block,
    )
