"""The hub's ``planner:`` section: when to plan, where prices and forecasts come from, and
what each site's flexible assets are.

Checked with voluptuous when the hub's configuration loads; an error names the key
(``planner.sites.0.evs.0.departure: ...``) and the reason. Files the section names (a tariff,
a price file, a recorded forecast, a token file) are read by the planner when it runs, not
here: a file that changes while the hub runs is read again, and a bad new version leaves
the last good one in use. A relative path is taken from the configuration file's folder.

Batteries come from what each site's agent registers (capacity and power limits); the
configuration only adds what a registration cannot know (SOC window, efficiencies, wear
cost, policies). EVs, heat pumps and deferrable loads are described here with the keys of
the scenario files (``edge-ems plan``), plus what a rolling plan needs: a daily departure
time, the window a load may run in each day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import voluptuous as vol

from ...exceptions import ConfigError
from ...metrics import METRICS
from ...planner.baseline import Term
from ...planner.validation import integer, iso_time, number, zone
from ...pointmap.validators import dotted

PriceSourceKind = Literal["ote", "entsoe", "nordpool", "file", "none"]
PvSourceKind = Literal["open_meteo", "forecast_solar", "file", "none"]

DEFAULT_FETCH_TIMES = ("13:30", "14:00", "00:05")
"""Day-ahead results appear about 13:00 CET; a retry, and one after midnight for a miss."""

_TEXT = vol.All(str, vol.Length(min=1))
_NONNEG = vol.All(number, vol.Range(min=0))
_POSITIVE = vol.All(number, vol.Range(min=0, min_included=False))
_FRACTION = vol.All(number, vol.Range(min=0, max=1))
_EFFICIENCY = vol.All(number, vol.Range(min=0.01, max=1))
_CURRENCY = vol.All(str, vol.Match(r"^[A-Z]{3}$", msg="expected a currency code like EUR"))


def _clock(value: Any) -> time:
    """``HH:MM`` (a wall-clock time)."""
    if not isinstance(value, str):
        raise vol.Invalid("expected a time HH:MM")
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise vol.Invalid(f"{value!r} is not a time HH:MM") from None


def _departure(value: Any) -> time | datetime:
    """A daily time (``07:30``) or one moment with its UTC offset."""
    if isinstance(value, str) and len(value) <= 8 and "T" not in value:
        return _clock(value)
    return iso_time(value)


def _metric(value: Any) -> str:
    if not isinstance(value, str) or value not in METRICS:
        raise vol.Invalid(f"{value!r} is not a metric of the vocabulary")
    return value


_TERM = vol.Schema(
    {
        vol.Required("asset_id"): _TEXT,
        vol.Required("metric"): _metric,
        vol.Optional("weight", default=1.0): number,
    }
)
_TERMS = vol.All([_TERM], vol.Length(min=1))

_PLANE = vol.Schema(
    {
        vol.Required("tilt_deg"): vol.All(number, vol.Range(min=0, max=90)),
        vol.Required("azimuth_deg"): vol.All(number, vol.Range(min=-180, max=180)),
        vol.Required("kwp"): _POSITIVE,
    }
)

_PV = vol.Schema(
    {
        vol.Required("source"): vol.In(["open_meteo", "forecast_solar", "file", "none"]),
        vol.Optional("latitude"): vol.All(number, vol.Range(min=-90, max=90)),
        vol.Optional("longitude"): vol.All(number, vol.Range(min=-180, max=180)),
        vol.Optional("planes"): vol.All([_PLANE], vol.Length(min=1)),
        vol.Optional("performance_ratio", default=0.85): vol.All(number, vol.Range(min=0.1, max=1)),
        vol.Optional("inverter_max_w"): _POSITIVE,
        vol.Optional("api_key_file"): _TEXT,
        vol.Optional("path"): _TEXT,
        vol.Optional("replay", default=False): bool,
        vol.Optional("every_hours", default=2): vol.All(integer, vol.Range(min=1, max=24)),
        vol.Optional("at_minute", default=5): vol.All(integer, vol.Range(min=0, max=59)),
        vol.Optional("base_url"): _TEXT,
    }
)

_PRICES = vol.Schema(
    {
        vol.Required("source"): vol.In(["ote", "entsoe", "nordpool", "file", "none"]),
        vol.Optional("area"): _TEXT,
        vol.Optional("market_time_zone"): zone,
        vol.Optional("currency"): _CURRENCY,
        vol.Optional("token_file"): _TEXT,
        vol.Optional("path"): _TEXT,
        vol.Optional("replay", default=False): bool,
        vol.Optional("fetch_times", default=list(DEFAULT_FETCH_TIMES)): vol.All(
            [_clock], vol.Length(min=1)
        ),
        vol.Optional("base_url"): _TEXT,
    }
)

_BATTERY = vol.Schema(
    {
        vol.Required("asset_id"): _TEXT,
        vol.Optional("capacity_wh"): _POSITIVE,
        vol.Optional("charge_max_w"): _NONNEG,
        vol.Optional("discharge_max_w"): _NONNEG,
        vol.Optional("soc_min"): _FRACTION,
        vol.Optional("soc_max"): _FRACTION,
        vol.Optional("charge_efficiency"): _EFFICIENCY,
        vol.Optional("discharge_efficiency"): _EFFICIENCY,
        vol.Optional("cycle_cost_per_kwh"): _NONNEG,
        vol.Optional("grid_charge_allowed"): bool,
        vol.Optional("export_allowed"): bool,
        vol.Optional("terminal_value_per_kwh"): number,
        vol.Optional("power"): _TERMS,
    }
)

_EV = vol.Schema(
    {
        vol.Required("asset_id"): _TEXT,
        vol.Required("energy_needed_wh"): _NONNEG,
        vol.Required("departure"): _departure,
        vol.Optional("energy_max_wh"): _NONNEG,
        vol.Optional("phases", default=3): vol.Any(
            vol.In([1, 2, 3]), vol.All([vol.In([1, 2, 3])], vol.Length(min=1))
        ),
        vol.Optional("min_current_a", default=6.0): _POSITIVE,
        vol.Optional("max_current_a", default=16.0): _POSITIVE,
        vol.Optional("voltage_v", default=230.0): _POSITIVE,
        vol.Optional("current_step_a", default=1.0): _POSITIVE,
        vol.Optional("efficiency", default=0.9): _EFFICIENCY,
        vol.Optional("power"): _TERMS,
    }
)

_HEAT_PUMP = vol.Schema(
    {
        vol.Required("asset_id"): _TEXT,
        vol.Required("max_power_w"): _POSITIVE,
        vol.Optional("min_power_w", default=0.0): _NONNEG,
        vol.Required("comfort_min_c"): number,
        vol.Required("comfort_max_c"): number,
        vol.Exclusive("cop", "cop"): _POSITIVE,
        vol.Exclusive("cop_curve", "cop"): vol.All(
            [vol.ExactSequence([number, _POSITIVE])], vol.Length(min=1)
        ),
        vol.Optional("heat_capacity_kwh_per_k", default=10.0): _POSITIVE,
        vol.Optional("heat_loss_w_per_k", default=200.0): _POSITIVE,
        vol.Optional("indoor_metric", default="room_temperature_c"): _metric,
        vol.Optional("outdoor_metric", default="outdoor_temperature_c"): _metric,
        vol.Optional("outdoor_default_c", default=5.0): number,
        vol.Optional("power"): _TERMS,
    }
)

_DEFERRABLE = vol.Schema(
    {
        vol.Required("asset_id"): _TEXT,
        vol.Required("power_w"): _POSITIVE,
        vol.Required("duration_minutes"): vol.All(integer, vol.Range(min=1, max=1440)),
        vol.Required("from"): _clock,
        vol.Required("to"): _clock,
        vol.Optional("on_off", default=True): bool,
        vol.Optional("single_block", default=False): bool,
        vol.Optional("power"): _TERMS,
    }
)

_SITE = vol.Schema(
    {
        vol.Required("site_id"): _TEXT,
        vol.Optional("tariff"): _TEXT,
        vol.Optional("pv_forecast"): _PV,
        vol.Optional("batteries", default="all"): vol.Any("all", "none", [_BATTERY]),
        vol.Optional("battery_defaults", default=dict): vol.Schema(
            {
                vol.Optional("soc_min", default=0.1): _FRACTION,
                vol.Optional("soc_max", default=1.0): _FRACTION,
                vol.Optional("charge_efficiency", default=0.95): _EFFICIENCY,
                vol.Optional("discharge_efficiency", default=0.95): _EFFICIENCY,
                vol.Optional("cycle_cost_per_kwh", default=0.0): _NONNEG,
                vol.Optional("grid_charge_allowed", default=True): bool,
                vol.Optional("export_allowed", default=True): bool,
            }
        ),
        vol.Optional("grid", default=dict): vol.Schema(
            {
                vol.Optional("import_max_w"): _NONNEG,
                vol.Optional("export_max_w"): _NONNEG,
                vol.Optional("fuse_a"): _POSITIVE,
                vol.Optional("phases", default=3): vol.In([1, 3]),
                vol.Optional("voltage_v", default=230.0): _POSITIVE,
            }
        ),
        vol.Optional("pv_curtailable", default=False): bool,
        vol.Optional("evs", default=list): [_EV],
        vol.Optional("heat_pumps", default=list): [_HEAT_PUMP],
        vol.Optional("deferrable_loads", default=list): [_DEFERRABLE],
        vol.Optional("measure", default=dict): vol.Schema(
            {
                vol.Optional("grid"): _TERMS,
                vol.Optional("pv"): _TERMS,
                vol.Optional("load"): _TERMS,
            }
        ),
        vol.Optional("baseline", default=dict): vol.Schema(
            {
                vol.Optional("weeks", default=4): vol.All(integer, vol.Range(min=1, max=26)),
                vol.Optional("fallback_w", default=500.0): _NONNEG,
                vol.Optional("refresh_hours", default=6): vol.All(
                    integer, vol.Range(min=1, max=168)
                ),
            }
        ),
    }
)

_SCHEMA = vol.Schema(
    {
        vol.Required("time_zone"): zone,
        vol.Optional("step_minutes", default=15): vol.In([15, 30, 60]),
        vol.Optional("horizon_hours", default=48): vol.All(integer, vol.Range(min=1, max=168)),
        vol.Optional("replan_minutes", default=15): vol.All(integer, vol.Range(min=1, max=1440)),
        vol.Optional("daily_plan_at", default="15:00"): _clock,
        vol.Optional("replan_after_connect_s", default=20.0): vol.All(
            number, vol.Range(min=0, max=3600)
        ),
        vol.Optional("mip_gap", default=0.01): vol.All(number, vol.Range(min=1e-9, max=0.5)),
        vol.Optional("time_limit_s", default=10.0): vol.All(number, vol.Range(min=0.1, max=600)),
        vol.Optional("prices", default={"source": "none"}): _PRICES,
        vol.Optional("tariff"): _TEXT,
        vol.Optional("pv_forecast", default={"source": "none"}): _PV,
        vol.Optional("dispatch", default=dict): vol.Schema(
            {
                vol.Optional("resend_s", default=60.0): vol.All(
                    number, vol.Range(min=0.5, max=900)
                ),
                vol.Optional("lease_margin_s", default=120.0): vol.All(
                    number, vol.Range(min=0, max=3600)
                ),
                vol.Optional("lease_s"): vol.All(number, vol.Range(min=1, max=7200)),
            }
        ),
        vol.Optional("audit", default=dict): vol.Schema(
            {
                vol.Optional("delay_s", default=150.0): vol.All(number, vol.Range(min=0, max=3600)),
                vol.Optional("keep_days", default=90): vol.All(integer, vol.Range(min=1)),
            }
        ),
        vol.Optional("leader", default=dict): vol.Schema(
            {
                vol.Optional("heartbeat_s", default=5.0): vol.All(
                    number, vol.Range(min=0.2, max=60)
                ),
                vol.Optional("fence_s", default=15.0): vol.All(number, vol.Range(min=1, max=300)),
                vol.Optional("server_timeout_s", default=20.0): vol.All(
                    number, vol.Range(min=1, max=600)
                ),
            }
        ),
        vol.Required("sites"): vol.All([_SITE], vol.Length(min=1)),
    }
)


@dataclass(frozen=True, slots=True)
class PriceSourceConfig:
    """Where day-ahead prices come from."""

    source: PriceSourceKind
    area: str | None = None
    market_zone: ZoneInfo | None = None
    currency: str = "EUR"
    token_file: Path | None = None
    path: Path | None = None
    replay: bool = False
    """A price file's days stand in for today and the days after (a demo, offline)."""
    fetch_times: tuple[time, ...] = ()
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class PvSourceConfig:
    """Where a site's PV forecast comes from."""

    source: PvSourceKind
    latitude: float | None = None
    longitude: float | None = None
    planes: tuple[tuple[float, float, float], ...] = ()
    """(tilt, azimuth, kWp) per plane."""
    performance_ratio: float = 0.85
    inverter_max_w: float = math.inf
    api_key_file: Path | None = None
    path: Path | None = None
    replay: bool = False
    every_hours: int = 2
    at_minute: int = 5
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class BatteryConfig:
    """What the configuration says about one battery (the rest from its registration)."""

    asset_id: str
    capacity_wh: float | None = None
    charge_max_w: float | None = None
    discharge_max_w: float | None = None
    soc_min: float = 0.1
    soc_max: float = 1.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    cycle_cost_per_kwh: float = 0.0
    grid_charge_allowed: bool = True
    export_allowed: bool = True
    terminal_value_per_kwh: float | None = None
    """``None``: the horizon's median import price times the round-trip efficiency."""
    power: tuple[Term, ...] = ()
    """Its measured power (+ discharge) for the audit; empty: found by metric."""


@dataclass(frozen=True, slots=True)
class EvConfig:
    """An EV charger and what its car needs."""

    asset_id: str
    energy_needed_wh: float
    """Per session: less what the session has delivered so far (``ev_session_energy_wh``)."""
    departure: time | datetime
    """Every day at this time, or once at this moment."""
    energy_max_wh: float | None = None
    phases: tuple[int, ...] = (3,)
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    voltage_v: float = 230.0
    current_step_a: float = 1.0
    efficiency: float = 0.9
    power: tuple[Term, ...] = ()


@dataclass(frozen=True, slots=True)
class HeatPumpConfig:
    """A heat pump heating the house."""

    asset_id: str
    max_power_w: float
    comfort_min_c: float
    comfort_max_c: float
    min_power_w: float = 0.0
    cop: float | None = None
    cop_curve: tuple[tuple[float, float], ...] | None = None
    heat_capacity_kwh_per_k: float = 10.0
    heat_loss_w_per_k: float = 200.0
    indoor_metric: str = "room_temperature_c"
    outdoor_metric: str = "outdoor_temperature_c"
    outdoor_default_c: float = 5.0
    power: tuple[Term, ...] = ()


@dataclass(frozen=True, slots=True)
class DeferrableConfig:
    """A load that runs once a day for a while, within a window; ``asset_id`` is the
    switch in front of it (its ``load_enabled`` command carries the plan)."""

    asset_id: str
    power_w: float
    duration_minutes: int
    start: time
    end: time
    on_off: bool = True
    single_block: bool = False
    power: tuple[Term, ...] = ()
    """Its measured consumption (positive), to know how long it has run today."""


@dataclass(frozen=True, slots=True)
class GridConfig:
    """The site's grid connection."""

    import_max_w: float = math.inf
    export_max_w: float = math.inf
    fuse_a: float | None = None
    phases: int = 3
    voltage_v: float = 230.0


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    """Which stored series are the site's grid, PV and house load."""

    grid: tuple[Term, ...] = ()
    pv: tuple[Term, ...] = ()
    load: tuple[Term, ...] = ()


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    """The load baseline: weeks of history, a flat load until there is some."""

    weeks: int = 4
    fallback_w: float = 500.0
    refresh_hours: int = 6


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """One site the planner plans."""

    site_id: str
    tariff: Path | None = None
    pv_forecast: PvSourceConfig | None = None
    all_batteries: bool = True
    """Every battery the site registers (``batteries: all``), else only those listed."""
    batteries: tuple[BatteryConfig, ...] = ()
    battery_defaults: BatteryConfig = field(default_factory=lambda: BatteryConfig(""))
    grid: GridConfig = field(default_factory=GridConfig)
    pv_curtailable: bool = False
    evs: tuple[EvConfig, ...] = ()
    heat_pumps: tuple[HeatPumpConfig, ...] = ()
    deferrables: tuple[DeferrableConfig, ...] = ()
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    def battery(self, asset_id: str) -> BatteryConfig | None:
        """The battery's configuration: its own entry, else the defaults (with ``all``)."""
        for battery in self.batteries:
            if battery.asset_id == asset_id:
                return battery
        if self.all_batteries:
            defaults = self.battery_defaults
            return BatteryConfig(
                asset_id,
                soc_min=defaults.soc_min,
                soc_max=defaults.soc_max,
                charge_efficiency=defaults.charge_efficiency,
                discharge_efficiency=defaults.discharge_efficiency,
                cycle_cost_per_kwh=defaults.cycle_cost_per_kwh,
                grid_charge_allowed=defaults.grid_charge_allowed,
                export_allowed=defaults.export_allowed,
            )
        return None

    @property
    def planned_ids(self) -> frozenset[str]:
        """The configured (non-battery) assets' ids."""
        return frozenset(
            [ev.asset_id for ev in self.evs]
            + [hp.asset_id for hp in self.heat_pumps]
            + [load.asset_id for load in self.deferrables]
        )


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """How setpoints go out: resent every ``resend_s``, each a lease to the end of its step
    plus ``lease_margin_s`` (or a fixed ``lease_s``)."""

    resend_s: float = 60.0
    lease_margin_s: float = 120.0
    lease_s: float | None = None


@dataclass(frozen=True, slots=True)
class LeaderConfig:
    """The leader lease on a shared PostgreSQL database."""

    heartbeat_s: float = 5.0
    fence_s: float = 15.0
    """A leader that has not confirmed its lease for this long stops planning and
    dispatching, before the server can give the lease to another hub."""
    server_timeout_s: float = 20.0
    """The server ends a leader's lease connection silent this long (and so its lease)."""


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """The ``planner:`` section, checked."""

    zone: ZoneInfo
    sites: tuple[SiteConfig, ...]
    step_minutes: int = 15
    horizon_hours: int = 48
    replan_minutes: int = 15
    daily_plan_at: time = time(15, 0)
    replan_after_connect_s: float = 20.0
    """A site that connects is planned again this long after (its readings in by then)."""
    mip_gap: float = 0.01
    time_limit_s: float = 10.0
    prices: PriceSourceConfig = field(default_factory=lambda: PriceSourceConfig("none"))
    tariff: Path | None = None
    pv_forecast: PvSourceConfig = field(default_factory=lambda: PvSourceConfig("none"))
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    audit_delay_s: float = 150.0
    audit_keep_days: int = 90
    leader: LeaderConfig = field(default_factory=LeaderConfig)

    def site(self, site_id: str) -> SiteConfig | None:
        """The configuration of ``site_id``, if it is planned."""
        return next((site for site in self.sites if site.site_id == site_id), None)


def parse_planner_config(
    data: Any, *, source: str = "<config>", base_dir: Path | None = None
) -> PlannerConfig:
    """The ``planner:`` mapping checked; :class:`ConfigError` names the key and the reason.
    Relative paths are taken from ``base_dir`` (the configuration file's folder)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: planner: expected a mapping")
    try:
        valid = _SCHEMA(dict(data))
    except vol.MultipleInvalid as err:
        first = min(err.errors, key=lambda error: (dotted(error.path), str(error.msg)))
        reason = str(first.msg)
        if reason in {"extra keys not allowed", "not a valid option"}:
            reason = "unknown key (misspelt, or not part of the planner's options)"
        where = ".".join(["planner", *(str(part) for part in first.path)])
        raise ConfigError(f"{source}: {where}: {reason}") from None
    return _Reader(valid, source, base_dir).config()


class _Reader:
    def __init__(self, valid: dict[str, Any], source: str, base_dir: Path | None) -> None:
        self.valid = valid
        self.source = source
        self.base = base_dir

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: planner.{where}: {message}")

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() or self.base is None else self.base / path

    def config(self) -> PlannerConfig:
        valid = self.valid
        step = valid["step_minutes"]
        if valid["replan_minutes"] % step and step % valid["replan_minutes"]:
            raise self.fail(
                "replan_minutes",
                f"{valid['replan_minutes']} does not fit steps of {step} minutes "
                "(one must divide the other)",
            )
        dispatch, leader = valid["dispatch"], valid["leader"]
        if not leader["fence_s"] < leader["server_timeout_s"]:
            raise self.fail(
                "leader.fence_s",
                "must be shorter than server_timeout_s: a leader stops before the server "
                "lets another hub take over",
            )
        if not leader["heartbeat_s"] * 2 <= leader["fence_s"]:
            raise self.fail("leader.heartbeat_s", "must be at most half of fence_s")
        sites = tuple(self.site(index, site) for index, site in enumerate(valid["sites"]))
        ids = [site.site_id for site in sites]
        if len(set(ids)) != len(ids):
            repeated = sorted({site for site in ids if ids.count(site) > 1})
            raise self.fail("sites", f"site {repeated[0]!r} is listed twice")
        default_pv = self.pv(valid["pv_forecast"], "pv_forecast")
        for index, site in enumerate(sites):
            pv = site.pv_forecast or default_pv
            if pv.source in ("open_meteo", "forecast_solar") and pv.latitude is None:
                raise self.fail(
                    f"sites.{index}.pv_forecast",
                    f"{pv.source} needs latitude, longitude and planes (here or in the "
                    "planner's pv_forecast)",
                )
        return PlannerConfig(
            zone=valid["time_zone"],
            sites=sites,
            step_minutes=step,
            horizon_hours=valid["horizon_hours"],
            replan_minutes=valid["replan_minutes"],
            daily_plan_at=valid["daily_plan_at"],
            replan_after_connect_s=valid["replan_after_connect_s"],
            mip_gap=valid["mip_gap"],
            time_limit_s=valid["time_limit_s"],
            prices=self.prices(valid["prices"]),
            tariff=self.path(valid.get("tariff")),
            pv_forecast=default_pv,
            dispatch=DispatchConfig(
                dispatch["resend_s"], dispatch["lease_margin_s"], dispatch.get("lease_s")
            ),
            audit_delay_s=valid["audit"]["delay_s"],
            audit_keep_days=valid["audit"]["keep_days"],
            leader=LeaderConfig(
                leader["heartbeat_s"], leader["fence_s"], leader["server_timeout_s"]
            ),
        )

    def prices(self, valid: dict[str, Any]) -> PriceSourceConfig:
        kind: PriceSourceKind = valid["source"]
        needs: dict[str, tuple[str, ...]] = {
            "entsoe": ("area", "market_time_zone", "token_file"),
            "nordpool": ("area",),
            "file": ("path", "area", "market_time_zone"),
        }
        for key in needs.get(kind, ()):
            if key not in valid:
                raise self.fail(f"prices.{key}", f"the {kind} source needs it")
        if kind == "none" and "currency" not in valid:
            raise self.fail(
                "prices.currency",
                "without a price source the sites' prices come from Home Assistant: name "
                "their currency (EUR, CZK, ...)",
            )
        return PriceSourceConfig(
            source=kind,
            area=valid.get("area"),
            market_zone=valid.get("market_time_zone"),
            currency=valid.get("currency", "EUR"),
            token_file=self.path(valid.get("token_file")),
            path=self.path(valid.get("path")),
            replay=valid["replay"],
            fetch_times=tuple(sorted(set(valid["fetch_times"]))),
            base_url=valid.get("base_url"),
        )

    def pv(self, valid: dict[str, Any], where: str) -> PvSourceConfig:
        kind: PvSourceKind = valid["source"]
        if kind in ("open_meteo", "forecast_solar") and (
            ("latitude" in valid) != ("longitude" in valid)
            or ("latitude" in valid) != ("planes" in valid)
        ):
            raise self.fail(where, "latitude, longitude and planes go together")
        if kind == "file" and "path" not in valid:
            raise self.fail(f"{where}.path", "the file source needs it")
        return PvSourceConfig(
            source=kind,
            latitude=valid.get("latitude"),
            longitude=valid.get("longitude"),
            planes=tuple(
                (plane["tilt_deg"], plane["azimuth_deg"], plane["kwp"])
                for plane in valid.get("planes", ())
            ),
            performance_ratio=valid["performance_ratio"],
            inverter_max_w=valid.get("inverter_max_w", math.inf),
            api_key_file=self.path(valid.get("api_key_file")),
            path=self.path(valid.get("path")),
            replay=valid["replay"],
            every_hours=valid["every_hours"],
            at_minute=valid["at_minute"],
            base_url=valid.get("base_url"),
        )

    def site(self, index: int, valid: dict[str, Any]) -> SiteConfig:
        where = f"sites.{index}"
        defaults = valid["battery_defaults"]
        if defaults["soc_min"] > defaults["soc_max"]:
            raise self.fail(f"{where}.battery_defaults.soc_min", "is above soc_max")
        default = BatteryConfig("", **defaults)
        listed = valid["batteries"] if isinstance(valid["batteries"], list) else []
        batteries = tuple(
            self.battery(f"{where}.batteries.{i}", b, default) for i, b in enumerate(listed)
        )
        evs = tuple(self.ev(f"{where}.evs.{i}", ev) for i, ev in enumerate(valid["evs"]))
        heat_pumps = tuple(
            self.heat_pump(f"{where}.heat_pumps.{i}", hp)
            for i, hp in enumerate(valid["heat_pumps"])
        )
        loads = tuple(
            self.deferrable(f"{where}.deferrable_loads.{i}", load)
            for i, load in enumerate(valid["deferrable_loads"])
        )
        ids = [b.asset_id for b in batteries] + [ev.asset_id for ev in evs]
        ids += [hp.asset_id for hp in heat_pumps] + [load.asset_id for load in loads]
        repeated = sorted({name for name in ids if ids.count(name) > 1})
        if repeated:
            raise self.fail(where, f"asset {repeated[0]!r} is described twice")
        grid = valid["grid"]
        measure, baseline = valid["measure"], valid["baseline"]
        return SiteConfig(
            site_id=valid["site_id"],
            tariff=self.path(valid.get("tariff")),
            pv_forecast=(
                self.pv(valid["pv_forecast"], f"{where}.pv_forecast")
                if "pv_forecast" in valid
                else None
            ),
            all_batteries=valid["batteries"] == "all",
            batteries=batteries,
            battery_defaults=default,
            grid=GridConfig(
                import_max_w=grid.get("import_max_w", math.inf),
                export_max_w=grid.get("export_max_w", math.inf),
                fuse_a=grid.get("fuse_a"),
                phases=grid["phases"],
                voltage_v=grid["voltage_v"],
            ),
            pv_curtailable=valid["pv_curtailable"],
            evs=evs,
            heat_pumps=heat_pumps,
            deferrables=loads,
            measure=MeasureConfig(
                grid=_terms(measure.get("grid")),
                pv=_terms(measure.get("pv")),
                load=_terms(measure.get("load")),
            ),
            baseline=BaselineConfig(
                baseline["weeks"], baseline["fallback_w"], baseline["refresh_hours"]
            ),
        )

    def battery(self, where: str, valid: dict[str, Any], default: BatteryConfig) -> BatteryConfig:
        values = {
            key: valid.get(key, getattr(default, key))
            for key in (
                "soc_min", "soc_max", "charge_efficiency", "discharge_efficiency",
                "cycle_cost_per_kwh", "grid_charge_allowed", "export_allowed",
            )
        }  # fmt: skip
        if values["soc_min"] > values["soc_max"]:
            raise self.fail(f"{where}.soc_min", "is above soc_max")
        return BatteryConfig(
            valid["asset_id"],
            capacity_wh=valid.get("capacity_wh"),
            charge_max_w=valid.get("charge_max_w"),
            discharge_max_w=valid.get("discharge_max_w"),
            terminal_value_per_kwh=valid.get("terminal_value_per_kwh"),
            power=_terms(valid.get("power")),
            **values,
        )

    def ev(self, where: str, valid: dict[str, Any]) -> EvConfig:
        if valid["max_current_a"] < valid["min_current_a"]:
            raise self.fail(f"{where}.max_current_a", "is below min_current_a")
        energy_max = valid.get("energy_max_wh")
        if energy_max is not None and energy_max < valid["energy_needed_wh"]:
            raise self.fail(f"{where}.energy_max_wh", "is below energy_needed_wh")
        phases = valid["phases"]
        return EvConfig(
            asset_id=valid["asset_id"],
            energy_needed_wh=valid["energy_needed_wh"],
            departure=valid["departure"],
            energy_max_wh=energy_max,
            phases=tuple(phases) if isinstance(phases, list) else (phases,),
            min_current_a=valid["min_current_a"],
            max_current_a=valid["max_current_a"],
            voltage_v=valid["voltage_v"],
            current_step_a=valid["current_step_a"],
            efficiency=valid["efficiency"],
            power=_terms(valid.get("power")),
        )

    def heat_pump(self, where: str, valid: dict[str, Any]) -> HeatPumpConfig:
        if valid["comfort_min_c"] > valid["comfort_max_c"]:
            raise self.fail(f"{where}.comfort_min_c", "is above comfort_max_c")
        if valid["min_power_w"] > valid["max_power_w"]:
            raise self.fail(f"{where}.min_power_w", "is above max_power_w")
        curve = valid.get("cop_curve")
        if curve is not None:
            temperatures = [t for t, _ in curve]
            if temperatures != sorted(set(temperatures)):
                raise self.fail(f"{where}.cop_curve", "temperatures must rise, each once")
        return HeatPumpConfig(
            asset_id=valid["asset_id"],
            max_power_w=valid["max_power_w"],
            comfort_min_c=valid["comfort_min_c"],
            comfort_max_c=valid["comfort_max_c"],
            min_power_w=valid["min_power_w"],
            cop=valid.get("cop"),
            cop_curve=None if curve is None else tuple((t, c) for t, c in curve),
            heat_capacity_kwh_per_k=valid["heat_capacity_kwh_per_k"],
            heat_loss_w_per_k=valid["heat_loss_w_per_k"],
            indoor_metric=valid["indoor_metric"],
            outdoor_metric=valid["outdoor_metric"],
            outdoor_default_c=valid["outdoor_default_c"],
            power=_terms(valid.get("power")),
        )

    def deferrable(self, where: str, valid: dict[str, Any]) -> DeferrableConfig:
        if valid["single_block"] and not valid["on_off"]:
            raise self.fail(f"{where}.single_block", "a single block needs on_off")
        if valid["from"] == valid["to"]:
            raise self.fail(f"{where}.to", "the window starts and ends at the same time")
        return DeferrableConfig(
            asset_id=valid["asset_id"],
            power_w=valid["power_w"],
            duration_minutes=valid["duration_minutes"],
            start=valid["from"],
            end=valid["to"],
            on_off=valid["on_off"],
            single_block=valid["single_block"],
            power=_terms(valid.get("power")),
        )


def _terms(values: Sequence[Mapping[str, Any]] | None) -> tuple[Term, ...]:
    return tuple(Term(v["asset_id"], v["metric"], v["weight"]) for v in values or ())
