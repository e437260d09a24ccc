"""The planner service: one hub's planning, dispatch and audit for the sites it plans.

While this hub leads (:mod:`.leader`), four jobs run:

- **prices**: the day-ahead source at its fetch times (13:30, 14:00, 00:05 in the market's
  zone by default), today's and tomorrow's; a failed fetch keeps the last good prices, and
  while today's are missing it is tried again every 15 minutes;
- **forecasts**: each site's PV forecast every ``every_hours`` at ``at_minute`` (2 h, :05);
- **planning**: every ``replan_minutes`` (at the step boundaries), at ``daily_plan_at``,
  when new prices arrive and when asked (a site's ``PlanRequest``, ``POST /plan/run``, an
  override), each site's plan is made again from its measured state, warm-started from the
  last; the current step's setpoints go to the site's agent at each step and again every
  ``resend_s``, each a lease to the end of its step plus a margin, so a planner that stops
  leaves every device to its safe mode; ``audit.delay_s`` after each step, the step is
  audited against the minute store;
- the leader lease itself (the hub runs :meth:`Leadership.run` beside :meth:`run`).

A plan that cannot be made (no price for now, a bad input) leaves the last good plan in
force and says why (:attr:`SiteRuntime.last_error`, ``GET /plan``, the log). Every plan
goes to the site as a ``PlanUpdate`` (and again when its agent connects); the site's
requests (replan, override, clear an override) are answered and audited; the series a site
hands in replace the hub's own sources for it once they pass the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import numpy as np

from ...dispatch import AuditRecord, Outcome, Reason
from ...exceptions import EdgeEmsError
from ...gateway.model import AssetInfo, PlanInputs, PlanRequest, PlanUpdate, SetpointResult
from ...planner.baseline import BaselineSpec, LoadBaseline, build_baseline
from ...planner.commands import Setpoint
from ...planner.errors import PlanInputError, SourceDataError
from ...planner.execute import setpoints
from ...planner.forecast import PvForecast
from ...planner.plan import Plan
from ...planner.prices import FetchTimes, PriceFeed, PriceSource
from ...planner.problem import Horizon, Problem
from ...planner.site_plan import DayCost, SitePlan, site_plan_document
from ...planner.solver import SolveOptions, solve
from ...planner.tariff import Tariff, load_tariff
from ...readings import Value
from .audit_job import SiteSeries, audit_step, day_cost
from .config import PlannerConfig, SiteConfig
from .errors import NotLeaderError, UnknownSiteError
from .leader import Leadership
from .measure import (
    BATTERY_SERIES,
    CONSUMER_SERIES,
    StoreReader,
    consumption_terms,
    power_terms,
    read_state,
)
from .overrides import Override, active, make_override
from .records import PlannerRecords
from .series import StepSeries, check_inputs, from_values
from .site_problem import BATTERY_TYPE, Built, PriceInputs, build, plan_start
from .sources import PvSource, price_source, pv_every, pv_source

_LOGGER = logging.getLogger(__name__)

ISSUED_BY = "planner"
RETRY_S = 900.0
"""How soon a failed price or forecast fetch is tried again while nothing usable is held."""
TERMS_TTL_S = 3600.0
SOC_WAIT_S = 150.0
"""For this long after a site connects, a plan that left a battery out for want of a
reading is made again ``replan_after_connect_s`` later: long enough for the first minute
of a site connected to another hub on the shared database to be written."""


class SiteLink(Protocol):
    """What the planner needs of the gateway."""

    def site_assets(self, site_id: str) -> dict[str, AssetInfo]:
        """The assets the site's agents registered, by id."""

    async def send_setpoint(
        self, site_id: str, asset_id: str, command: str, value: Value, *, ttl_s: float
    ) -> SetpointResult:
        """Send one setpoint to the agent serving ``asset_id``; its answer."""

    def send_plan(self, site_id: str, update: PlanUpdate) -> int:
        """Send a plan to the site's connected agents; how many it went to."""

    def serves(self, asset_id: str) -> bool:
        """Whether an agent connected to this hub serves ``asset_id``."""

    def served_elsewhere(self, asset_id: str) -> bool:
        """Whether only an agent connected to another hub (on the shared database) does."""


type AuditSink = Callable[[Sequence[AuditRecord]], None]


@dataclass(slots=True)
class SiteRuntime:
    """One site's planner state."""

    config: SiteConfig
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    plan: Plan | None = None
    problem: Problem | None = None
    version: int = 0
    made_at: datetime | None = None
    document: dict[str, Any] | None = None
    spot: Sequence[float] | None = None
    last_error: str | None = None
    last_attempt: datetime | None = None
    plans: dict[int, tuple[Plan, Problem]] = field(default_factory=dict)
    steps: dict[int, int] = field(default_factory=dict)
    """Step start (ms) to the version in force when it began: what the audit compares."""
    pv_source: PvSource | None = None
    pv: PvForecast | None = None
    pv_error: str | None = None
    pv_at: datetime | None = None
    tariff_path: Path | None = None
    tariff: Tariff | None = None
    tariff_mtime: float | None = None
    tariff_error: str | None = None
    baseline: LoadBaseline | None = None
    baseline_at: float = -math.inf
    refused: dict[str, str] = field(default_factory=dict)
    """Input kind to why the site's last series of it was refused."""
    dispatched_at: datetime | None = None
    dispatch_errors: list[str] = field(default_factory=list)
    stored: SitePlan | None = None
    """On a standby: the leader's latest plan from the shared tables, which it carries out
    for the site while the site's agent is connected here."""
    soc_wait_until: datetime | None = None
    """Until when to plan again, soon, for a battery still without a reading."""
    terms: SiteSeries | None = None
    terms_at: float = -math.inf
    audit_error: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one re-plan came to."""

    site_id: str
    version: int | None
    status: str | None
    cost: float | None
    solve_ms: float | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "site_id": self.site_id,
            "version": self.version,
            "status": self.status,
            "cost": None if self.cost is None else round(self.cost, 6),
            "solve_ms": None if self.solve_ms is None else round(self.solve_ms, 3),
            "error": self.error,
        }


class _DemotedError(Exception):
    """Leadership was lost: stop every job at once."""


class PlannerService:
    """Plans, dispatches and audits the configured sites while this hub leads."""

    def __init__(
        self,
        config: PlannerConfig,
        *,
        records: PlannerRecords,
        store: StoreReader,
        link: SiteLink,
        session: aiohttp.ClientSession,
        leadership: Leadership,
        audit: AuditSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.records = records
        self._store = store
        self._link = link
        self._session = session
        self.leadership = leadership
        self._audit = audit
        self._clock = clock
        self.sites = {site.site_id: SiteRuntime(site) for site in config.sites}
        for runtime in self.sites.values():
            runtime.tariff_path = runtime.config.tariff or config.tariff
        self.price_source: PriceSource | None = None
        self.prices: PriceFeed | None = None
        self.prices_at: datetime | None = None
        self._pending: dict[str, str] = {}
        self._dispatch_now: set[str] = set()
        self._wake = asyncio.Event()
        self._prepared = False
        self._next_replan: datetime | None = None
        self._background: set[asyncio.Task[None]] = set()

    # Time.

    def now(self) -> datetime:
        """Now, aware (UTC)."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def _site(self, site_id: str) -> SiteRuntime:
        runtime = self.sites.get(site_id)
        if runtime is None:
            raise UnknownSiteError(f"site {site_id!r} is not planned by this hub")
        return runtime

    # Start and the jobs.

    async def prepare(self) -> None:
        """Make the sources (reads token files); once."""
        if self._prepared:
            return
        config = self.config
        self.price_source = await price_source(config.prices, self._session)
        if self.price_source is not None:
            self.prices = PriceFeed(self.price_source)
        for runtime in self.sites.values():
            pv_config = runtime.config.pv_forecast or config.pv_forecast
            runtime.pv_source = await pv_source(pv_config, self._session, config.zone, self.now)
        self._prepared = True

    async def run(self) -> None:
        """Plan, dispatch and audit while this hub leads; stand by otherwise."""
        await self.prepare()
        while True:
            await self._stand_by()
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch_leadership())
                    group.create_task(self._price_job())
                    group.create_task(self._forecast_job())
                    group.create_task(self._planning_job())
            except* _DemotedError:
                _LOGGER.warning("Planner: stopped planning and dispatching (not the leader)")
            self._pending.clear()

    async def _stand_by(self) -> None:
        """While another hub leads: carry out its plans (from the shared tables) for the
        sites whose agents are connected here, the same way, at each step, every
        ``resend_s`` and as soon as the leader stores a new plan. The leader plans and
        audits them."""
        while not self.leadership.is_leader:
            now = self.now()
            for site_id, runtime in self.sites.items():
                if not any(self._link.serves(a) for a in self._link.site_assets(site_id)):
                    continue
                due = site_id in self._dispatch_now or self._dispatch_due(runtime, now)
                if not due and runtime.stored is not None:
                    with contextlib.suppress(EdgeEmsError):  # the dispatch says what failed
                        due = await self.records.version(site_id) != runtime.stored.version
                if due:
                    await self.dispatch(site_id, now)
            self._dispatch_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.leadership.wait_change()

    async def _watch_leadership(self) -> None:
        # Leadership lapses with time (fencing) as well as on events: look often.
        while self.leadership.is_leader:  # noqa: ASYNC110
            await asyncio.sleep(0.25)
        raise _DemotedError

    async def _price_job(self) -> None:
        if self.prices is None or self.price_source is None:
            return
        times = FetchTimes(self.config.prices.fetch_times, self.price_source.zone)
        while True:
            now = self.now()
            fresh = await self.refresh_prices(now)
            if fresh:
                self.request_replan(None, "new prices")
            wait_until = times.next_after(now)
            today = now.astimezone(self.price_source.zone).date()
            if today not in self.prices.days:
                wait_until = min(wait_until, now + timedelta(seconds=RETRY_S))
            await _sleep_until(wait_until, self._clock)

    async def refresh_prices(self, now: datetime) -> bool:
        """Fetch today's and tomorrow's prices (market days) not yet held; whether any came.
        A failure keeps the last good prices."""
        if self.prices is None or self.price_source is None:
            return False
        today = now.astimezone(self.price_source.zone).date()
        self.prices.forget_before(today - timedelta(days=1))
        fresh = False
        for day in (today, today + timedelta(days=1)):
            if day in self.prices.days:
                continue
            try:
                fresh |= await self.prices.refresh(day)
            except EdgeEmsError as err:  # a price file in the wrong zone, say
                self.prices.last_error = SourceDataError(str(err))
                _LOGGER.warning("%s: keeping the last good prices: %s", self.price_source.name, err)
        if fresh:
            self.prices_at = now
        return fresh

    async def _forecast_job(self) -> None:
        if all(runtime.pv_source is None for runtime in self.sites.values()):
            return
        while True:
            now = self.now()
            waits = []
            for runtime in self.sites.values():
                if runtime.pv_source is None:
                    continue
                last = runtime.pv_at
                due = (
                    last is None
                    or now
                    >= pv_every(
                        runtime.config.pv_forecast or self.config.pv_forecast,
                        self.config.zone,
                        last,
                    )
                    or (runtime.pv is None and (now - last).total_seconds() >= RETRY_S)
                )
                if due:
                    await self.refresh_forecast(runtime.config.site_id, now)
                following = pv_every(
                    runtime.config.pv_forecast or self.config.pv_forecast, self.config.zone, now
                )
                if runtime.pv is None:
                    following = min(following, now + timedelta(seconds=RETRY_S))
                waits.append(following)
            await _sleep_until(min(waits), self._clock)

    async def refresh_forecast(self, site_id: str, now: datetime) -> bool:
        """Fetch the site's PV forecast; a failure keeps the last good one."""
        runtime = self._site(site_id)
        runtime.pv_at = now
        if runtime.pv_source is None:
            return False
        try:
            runtime.pv = await runtime.pv_source.forecast()
        except EdgeEmsError as err:
            runtime.pv_error = str(err)
            _LOGGER.warning(
                "Site %s: %s failed, keeping the last good forecast: %s",
                site_id,
                runtime.pv_source.name,
                err,
            )
            return False
        runtime.pv_error = None
        return True

    async def _planning_job(self) -> None:
        self.request_replan(None, "this hub leads now")
        while True:
            now = self.now()
            if self._next_replan is None or now >= self._next_replan:
                reason = "daily plan" if self._daily_due(now) else "rolling re-plan"
                for site_id in self.sites:
                    self._pending.setdefault(site_id, reason)
                self._next_replan = self._following_replan(now)
            pending, self._pending = self._pending, {}
            for site_id, reason in pending.items():
                await self.replan(site_id, reason)
                self._dispatch_now.add(site_id)
            now = self.now()
            for site_id, runtime in self.sites.items():
                if site_id in self._dispatch_now or self._dispatch_due(runtime, now):
                    await self.dispatch(site_id, now)
                await self.audit_due(site_id, now)
            self._dispatch_now.clear()
            await self._rest(now)

    def _daily_due(self, now: datetime) -> bool:
        local = now.astimezone(self.config.zone)
        daily = datetime.combine(local.date(), self.config.daily_plan_at, tzinfo=self.config.zone)
        return abs((now - daily).total_seconds()) < 60

    def _following_replan(self, now: datetime) -> datetime:
        every = self.config.replan_minutes * 60
        boundary = datetime.fromtimestamp((math.floor(now.timestamp() / every) + 1) * every, UTC)
        local = now.astimezone(self.config.zone)
        daily = [
            datetime.combine(
                local.date() + timedelta(days=days), self.config.daily_plan_at,
                tzinfo=self.config.zone,
            )
            for days in (0, 1)
        ]  # fmt: skip
        return min([boundary, *(d for d in daily if d > now)])

    def _dispatch_due(self, runtime: SiteRuntime, now: datetime) -> bool:
        last = runtime.dispatched_at
        if last is None:
            return True
        step_s = self.config.step_minutes * 60
        if math.floor(now.timestamp() / step_s) != math.floor(last.timestamp() / step_s):
            return True
        return (now - last).total_seconds() >= self.config.dispatch.resend_s

    async def _rest(self, now: datetime) -> None:
        """Sleep until the next re-plan, resend, or audit, or until woken."""
        moments = [self._next_replan or now + timedelta(seconds=1)]
        resend = self.config.dispatch.resend_s
        for runtime in self.sites.values():
            if runtime.dispatched_at is not None:
                moments.append(runtime.dispatched_at + timedelta(seconds=resend))
            moments += [
                datetime.fromtimestamp(start / 1000, UTC)
                + timedelta(minutes=self.config.step_minutes, seconds=self.config.audit_delay_s)
                for start in runtime.steps
            ]
        step_s = self.config.step_minutes * 60
        moments.append(
            datetime.fromtimestamp((math.floor(now.timestamp() / step_s) + 1) * step_s, UTC)
        )
        delay = max(0.05, (min(moments) - now).total_seconds())
        self._wake.clear()
        if self._pending or self._dispatch_now:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    def request_replan(self, site_id: str | None, reason: str) -> None:
        """Ask the planning job to plan ``site_id`` (or every site) again soon."""
        for site in [site_id] if site_id is not None else list(self.sites):
            self._pending.setdefault(site, reason)
        self._wake.set()

    # Planning.

    async def replan(self, site_id: str, reason: str, now: datetime | None = None) -> RunResult:
        """Plan the site again now; on failure the last good plan stays."""
        runtime = self._site(site_id)
        async with runtime.lock:
            now = now or self.now()
            runtime.last_attempt = now
            try:
                built = await self._build(runtime, now)
                previous = runtime.plan
                options = SolveOptions(
                    mip_rel_gap=self.config.mip_gap, time_limit_s=self.config.time_limit_s
                )
                plan = await asyncio.to_thread(solve, built.problem, options, previous)
                await self._publish(runtime, plan, built, reason, now)
            except EdgeEmsError as err:
                runtime.last_error = str(err)
                _LOGGER.warning(
                    "Site %s: no new plan (%s); the last good plan stays: %s",
                    site_id, reason, err,
                )  # fmt: skip
                return RunResult(site_id, None, None, None, None, str(err))
            except Exception as err:  # a fault of ours: the last good plan keeps running
                runtime.last_error = f"internal error: {type(err).__name__}: {err}"
                _LOGGER.exception(
                    "Site %s: planning failed (%s); the last good plan stays", site_id, reason
                )
                return RunResult(site_id, None, None, None, None, runtime.last_error)
        runtime.last_error = None
        waiting = runtime.soc_wait_until is not None and now < runtime.soc_wait_until
        if built.without_soc and waiting:
            # A battery's first reading reaches the store a little after its site connects
            # (later on a busy machine, or when another hub writes it): plan again soon
            # rather than at the next step.
            asyncio.get_running_loop().call_later(
                self.config.replan_after_connect_s,
                self.request_replan, site_id, "a battery had no reading yet",
            )  # fmt: skip
        _LOGGER.info(
            "Site %s: plan %d (%s): %s, cost %.3f %s over %d steps, %.0f ms",
            site_id, runtime.version, reason, plan.status, plan.cost, plan.currency,
            plan.horizon.n_steps, plan.solve_ms,
        )  # fmt: skip
        return RunResult(site_id, runtime.version, str(plan.status), plan.cost, plan.solve_ms, None)

    async def _build(self, runtime: SiteRuntime, now: datetime) -> Built:
        site = runtime.config
        site_id = site.site_id
        assets = self._link.site_assets(site_id)
        tariff = await self._tariff(runtime)
        battery_ids = [a.asset_id for a in assets.values() if a.type == BATTERY_TYPE]
        state = await read_state(
            self._store, site, now=now, zone=self.config.zone, battery_ids=battery_ids
        )
        now_ms = round(now.timestamp() * 1000)
        given = {kind: series for kind, (series, _) in (await self.records.inputs(site_id)).items()}
        start = plan_start(now, self.config.step_minutes, self.config.zone)
        current = _Covers(start, self.config.step_minutes)
        spot = given.get("spot_price")
        if spot is None or not current(spot):
            spot = self._hub_spot()
        prices = PriceInputs(
            spot_currency=self.config.prices.currency,
            spot=spot,
            import_price=_if(given.get("import_price"), current),
            export_price=_if(given.get("export_price"), current),
            tariff=tariff,
            missing=self._why_no_prices(),
        )
        pv = _if(given.get("pv_forecast"), current)
        if pv is None and runtime.pv is not None:
            forecast = runtime.pv
            pv = from_values(
                forecast.start, timedelta(minutes=15), forecast.power_w, "W", forecast.source
            )
        baseline = await self._baseline(runtime, now)
        overrides = await self.records.overrides(site_id, now_ms)
        return build(
            self.config, site, now=now, assets=assets, state=state, prices=prices, pv=pv,
            baseline=baseline, overrides=overrides,
        )  # fmt: skip

    def _why_no_prices(self) -> str:
        if self.prices is None:
            return "the hub has no price source and the site sent none"
        error = self.prices.last_error
        because = f" (the last fetch: {error})" if error is not None else ""
        return f"none held yet from {self.prices.source.name}{because}, and the site sent none"

    def _hub_spot(self) -> StepSeries | None:
        """The hub's day-ahead prices as one series (the days held without a gap)."""
        if self.prices is None or not self.prices.days:
            return None
        days = sorted(self.prices.days)
        first = days[0]
        values = []
        day = first
        while day in self.prices.days:
            values.append(self.prices.days[day].per_kwh)
            day += timedelta(days=1)
        start = self.prices.days[first].start
        return from_values(
            start, timedelta(minutes=15), np.concatenate(values), "", self.prices.source.name
        )

    async def _tariff(self, runtime: SiteRuntime) -> Tariff | None:
        """The site's tariff, read again when its file changes; a bad new version leaves
        the last good one in use (and says why)."""
        path = runtime.tariff_path
        if path is None:
            return None
        try:
            mtime = (await asyncio.to_thread(path.stat)).st_mtime
        except OSError as err:
            runtime.tariff_error = f"{path}: {err.strerror}"
            if runtime.tariff is None:
                raise PlanInputError(f"cannot read the tariff: {runtime.tariff_error}") from None
            return runtime.tariff
        if mtime != runtime.tariff_mtime:
            runtime.tariff_mtime = mtime
            try:
                runtime.tariff = await asyncio.to_thread(load_tariff, path)
                runtime.tariff_error = None
            except PlanInputError as err:
                runtime.tariff_error = str(err)
                _LOGGER.warning(
                    "Site %s: the tariff is refused, %s: %s",
                    runtime.config.site_id,
                    "the last good one stays" if runtime.tariff else "no plan without one",
                    err,
                )
        if runtime.tariff is None:
            raise PlanInputError(f"no usable tariff: {runtime.tariff_error}")
        return runtime.tariff

    async def _baseline(self, runtime: SiteRuntime, now: datetime) -> LoadBaseline | None:
        site = runtime.config
        refresh = site.baseline.refresh_hours * 3600
        if self._clock() - runtime.baseline_at < refresh:
            return runtime.baseline
        runtime.baseline_at = self._clock()
        if not site.measure.load:
            runtime.baseline = None
            return None
        terms = await self.site_series(runtime)
        consumers = {a: terms.assets.get(a, ()) for a in terms.consumers}
        spec = BaselineSpec(
            site.site_id,
            self.config.zone,
            load=site.measure.load,
            controllable=consumption_terms(consumers),
            weeks=site.baseline.weeks,
        )
        try:
            runtime.baseline = await build_baseline(self._store, spec, now)
        except PlanInputError as err:
            _LOGGER.info("Site %s: no load baseline yet: %s", site.site_id, err)
            runtime.baseline = None
        return runtime.baseline

    async def site_series(self, runtime: SiteRuntime) -> SiteSeries:
        """The stored series of the site's parts (found again hourly, and at every call
        while some part has none yet)."""
        if runtime.terms is not None and self._clock() - runtime.terms_at < TERMS_TTL_S:
            return runtime.terms
        site = runtime.config
        assets: dict[str, tuple[Any, ...]] = {}
        registered = self._link.site_assets(site.site_id)
        for info in registered.values():
            spec = site.battery(info.asset_id) if info.type == BATTERY_TYPE else None
            if spec is not None:
                assets[info.asset_id] = await power_terms(
                    self._store, site.site_id, info.asset_id, spec.power, BATTERY_SERIES
                )
        consumers = []
        configured = [(ev.asset_id, ev.power) for ev in site.evs]
        configured += [(hp.asset_id, hp.power) for hp in site.heat_pumps]
        for asset_id, power in configured:
            assets[asset_id] = await power_terms(
                self._store, site.site_id, asset_id, power, CONSUMER_SERIES
            )
            consumers.append(asset_id)
        for load in site.deferrables:
            assets[load.asset_id] = load.power
            consumers.append(load.asset_id)
        runtime.terms = SiteSeries(
            grid=site.measure.grid,
            pv=site.measure.pv,
            load=site.measure.load,
            assets={k: v for k, v in assets.items() if v},
            consumers=tuple(consumers),
        )
        if all(assets.values()):
            runtime.terms_at = self._clock()
        return runtime.terms

    async def _publish(
        self, runtime: SiteRuntime, plan: Plan, built: Built, reason: str, now: datetime
    ) -> None:
        site_id = runtime.config.site_id
        version = max(runtime.version, await self.records.version(site_id)) + 1
        runtime.plan, runtime.problem = plan, built.problem
        runtime.version, runtime.made_at = version, now
        runtime.spot = None if built.spot is None else [float(v) for v in built.spot]
        runtime.plans[version] = (plan, built.problem)
        # Kept: the plans still to be audited against, and the one in force.
        wanted = {*runtime.steps.values(), version}
        for old in [v for v in runtime.plans if v not in wanted]:
            del runtime.plans[old]
        runtime.document = await self._document(runtime, reason, built)
        await self.records.save_plan(
            site_id, version, round(now.timestamp() * 1000), runtime.document
        )
        self._send_plan(runtime)

    async def _document(
        self, runtime: SiteRuntime, reason: str | None, built: Built | None
    ) -> dict[str, Any]:
        assert runtime.plan is not None
        assert runtime.made_at is not None
        document = site_plan_document(
            runtime.config.site_id,
            runtime.plan,
            version=runtime.version,
            made_at=runtime.made_at,
            time_zone=self.config.zone.key,
            spot_price=runtime.spot,
            days=await self._days(runtime),
        )
        previous = runtime.document.get("inputs", {}) if runtime.document else {}
        document["inputs"] = (
            {
                "reason": reason,
                "sources": dict(built.sources),
                "notes": list(built.notes),
                "overrides": [h.asset_id for h in built.problem.holds],
            }
            if built is not None
            else previous
        )
        return document

    async def _days(self, runtime: SiteRuntime) -> list[DayCost]:
        zone = self.config.zone
        today = self.now().astimezone(zone).date()
        begin = datetime.combine(today - timedelta(days=1), datetime.min.time(), tzinfo=zone)
        end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        records = await self.records.audits(
            runtime.config.site_id,
            round(begin.timestamp() * 1000),
            round(end.timestamp() * 1000),
        )
        days = [day_cost(records, day, zone) for day in (today - timedelta(days=1), today)]
        return [day for day in days if day is not None]

    def _send_plan(self, runtime: SiteRuntime) -> None:
        if runtime.document is None or runtime.made_at is None:
            return
        update = PlanUpdate(
            runtime.version, round(runtime.made_at.timestamp() * 1000), runtime.document
        )
        self._link.send_plan(runtime.config.site_id, update)

    # Dispatch.

    async def dispatch(self, site_id: str, now: datetime | None = None) -> list[SetpointResult]:
        """Send the current step's setpoints (overrides winning) to the site, as leases: the
        leader from its plan to the assets no other hub's agent serves, a standby from the
        leader's stored plan to the assets its own agents serve."""
        runtime = self._site(site_id)
        now = now or self.now()
        runtime.dispatched_at = now
        leading = self.leadership.is_leader
        step = self._plan_step(runtime, now) if leading else await self._stored_step(runtime, now)
        if step is None:
            return []
        planned, step_end = step
        wanted: dict[tuple[str, str], Value] = {
            (sp.asset_id, sp.command): sp.value for sp in planned
        }
        now_ms = round(now.timestamp() * 1000)
        wanted.update(active(await self.records.overrides(site_id, now_ms), now_ms))
        wanted = {
            (asset_id, command): value
            for (asset_id, command), value in wanted.items()
            if self._link.serves(asset_id)
            or (leading and not self._link.served_elsewhere(asset_id))
        }
        lease = self.config.dispatch.lease_s
        if lease is None:
            lease = (step_end - now).total_seconds() + self.config.dispatch.lease_margin_s
        answers = await asyncio.gather(
            *(
                self._link.send_setpoint(site_id, asset_id, command, value, ttl_s=lease)
                for (asset_id, command), value in wanted.items()
            ),
            return_exceptions=True,
        )
        results, errors = [], []
        for (asset_id, command), answer in zip(wanted, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, EdgeEmsError):
                    raise answer
                errors.append(f"{asset_id} {command}: {answer}")
            else:
                results.append(answer)
                if answer.error:
                    errors.append(f"{asset_id} {command}: {answer.error}")
        if errors and errors != runtime.dispatch_errors:
            _LOGGER.warning("Site %s: setpoints not taken: %s", site_id, "; ".join(errors))
        runtime.dispatch_errors = errors
        return results

    def _plan_step(
        self, runtime: SiteRuntime, now: datetime
    ) -> tuple[list[Setpoint], datetime] | None:
        """The leader's commands for now and when their step ends; the step is noted for
        its audit."""
        plan = runtime.plan
        if plan is None:
            return None
        step = plan.step_at(now)
        if step is None:
            runtime.dispatch_errors = [f"plan {runtime.version} has no step for now"]
            return None
        step_start = plan.horizon.time(step)
        runtime.steps.setdefault(round(step_start.timestamp() * 1000), runtime.version)
        return setpoints(plan, step), step_start + plan.horizon.step

    async def _stored_step(
        self, runtime: SiteRuntime, now: datetime
    ) -> tuple[list[Setpoint], datetime] | None:
        """A standby's commands for now from the leader's latest stored plan, and when their
        step ends; a newer plan goes to the site's agents here as well."""
        site_id = runtime.config.site_id
        try:
            stored = await self.records.plan(site_id)
            if stored is None:
                return None
            version, document = stored
            if runtime.stored is None or runtime.stored.version != version:
                runtime.stored = SitePlan.parse(document)
                update = PlanUpdate(
                    version, round(runtime.stored.made_at.timestamp() * 1000), document
                )
                self._link.send_plan(site_id, update)
        except EdgeEmsError as err:
            runtime.dispatch_errors = [f"the leader's plan cannot be read: {err}"]
            return None
        plan = runtime.stored
        step = plan.step_at(now)
        if step is None:
            runtime.dispatch_errors = [f"plan {plan.version} has no step for now"]
            return None
        return plan.setpoints_at(now), plan.time(step + 1)

    # Audit.

    async def audit_due(self, site_id: str, now: datetime) -> int:
        """Audit every step that ended ``audit_delay_s`` ago or more; how many."""
        runtime = self._site(site_id)
        step_ms = self.config.step_minutes * 60_000
        delay_ms = self.config.audit_delay_s * 1000
        now_ms = now.timestamp() * 1000
        due = sorted(start for start in runtime.steps if start + step_ms + delay_ms <= now_ms)
        if not due:
            return 0
        terms = await self.site_series(runtime)
        done = 0
        for start in due:
            version = runtime.steps.pop(start)
            kept = runtime.plans.get(version)
            if kept is None:
                continue
            plan, problem = kept
            step = plan.step_at(datetime.fromtimestamp(start / 1000, UTC))
            if step is None:
                continue
            overrides = await self.records.overrides(site_id, start)
            try:
                record = await audit_step(
                    self._store, site_id, plan, problem, version, step, terms, overrides
                )
            except EdgeEmsError as err:
                runtime.audit_error = str(err)
                continue
            if record is None:
                runtime.audit_error = "the site's grid is not measured (planner measure.grid)"
                continue
            await self.records.save_audit(site_id, start, version, record)
            runtime.audit_error = None
            done += 1
        if done and runtime.document is not None:
            runtime.document = await self._document(runtime, None, None)
            await self.records.save_plan(
                site_id, runtime.version, round(now.timestamp() * 1000), runtime.document
            )
            self._send_plan(runtime)
        await self.records.prune_audits(
            round((now - timedelta(days=self.config.audit_keep_days)).timestamp() * 1000)
        )
        return done

    # What the sites ask.

    async def plan_request(
        self, site_id: str, request: PlanRequest, *, source: str = "gateway"
    ) -> str:
        """Take a site's request (replan, override, clear an override); the error that
        refuses it, or "" when taken. Every request is audited."""
        now = self.now()
        try:
            message = await self._take(site_id, request, now)
        except EdgeEmsError as err:
            self._record(site_id, request, Outcome.REFUSED, _reason(err), str(err), source, now)
            _LOGGER.warning("Site %s: %s request refused: %s", site_id, request.kind, err)
            return str(err)
        self._record(site_id, request, Outcome.APPLIED, Reason.WRITTEN, message, source, now)
        return ""

    async def _take(self, site_id: str, request: PlanRequest, now: datetime) -> str:
        self._site(site_id)
        self._lead_or_refuse()
        if request.kind == "replan":
            self.request_replan(site_id, f"asked by {request.requested_by or 'the site'}")
            return f"re-plan asked: {request.reason}" if request.reason else "re-plan asked"
        if request.kind == "override":
            override = await self.add_override(
                site_id, request.asset_id, request.command, request.value,
                request.start_ms, request.end_ms, requested_by=request.requested_by, now=now,
            )  # fmt: skip
            return (
                f"{override.asset_id} held at {override.command} = {override.value} until "
                f"{override.as_dict()['end']}"
            )
        if request.kind == "clear_override":
            removed = await self.remove_overrides(site_id, asset_id=request.asset_id or None)
            return f"{len(removed)} override(s) cleared"
        raise PlanInputError(f"unknown request {request.kind!r}")

    def _lead_or_refuse(self) -> None:
        if not self.leadership.is_leader:
            leader = self.leadership.leader
            where = f"hub {leader}" if leader else "another hub"
            raise NotLeaderError(f"this hub stands by: the planner runs on {where}")

    def _record(
        self,
        site_id: str,
        request: PlanRequest,
        outcome: Outcome,
        reason: Reason,
        message: str,
        source: str,
        now: datetime,
    ) -> None:
        command = request.command if request.kind == "override" else request.kind
        self._audit(
            [
                AuditRecord(
                    site_id=site_id,
                    device_id=request.asset_id or None,
                    command=command or request.kind,
                    requested=request.value if request.kind == "override" else None,
                    applied=request.value
                    if request.kind == "override" and outcome is Outcome.APPLIED
                    else None,
                    outcome=outcome,
                    reason=reason,
                    message=f"planner {request.kind}: {message}",
                    requested_by=request.requested_by or "unknown",
                    source=source,
                    timestamp=now.timestamp(),
                )
            ]
        )

    async def add_override(
        self,
        site_id: str,
        asset_id: str,
        command: str,
        value: Value,
        start_ms: int,
        end_ms: int,
        *,
        requested_by: str,
        now: datetime | None = None,
    ) -> Override:
        """Hold an asset; the site is planned again and dispatched at once."""
        runtime = self._site(site_id)
        self._lead_or_refuse()
        now = now or self.now()
        override = make_override(
            site_id, asset_id, command, value, start_ms, end_ms,
            requested_by=requested_by, now_ms=round(now.timestamp() * 1000),
            assets=self._link.site_assets(site_id), planned=runtime.config.planned_ids,
            planned_evs=[ev.asset_id for ev in runtime.config.evs],
        )  # fmt: skip
        await self.records.add_override(override)
        self.request_replan(site_id, f"override by {override.requested_by}")
        return override

    async def remove_overrides(
        self, site_id: str | None, *, asset_id: str | None = None, id: str | None = None
    ) -> list[Override]:
        """Let assets go; the sites concerned are planned again at once."""
        if site_id is not None:
            self._site(site_id)
        self._lead_or_refuse()
        removed = await self.records.remove_overrides(site_id=site_id, asset_id=asset_id, id=id)
        for site in {override.site_id for override in removed}:
            self.request_replan(site, "override cleared")
        return removed

    async def plan_inputs(self, site_id: str, inputs: PlanInputs) -> str:
        """Take a series the site knows; the reason it is refused, or ""."""
        runtime = self.sites.get(site_id)
        if runtime is None:
            return f"site {site_id!r} is not planned by this hub"
        now = self.now()
        tariff_currency = runtime.tariff.currency if runtime.tariff is not None else None
        try:
            series = check_inputs(
                inputs, now=now, spot_currency=self.config.prices.currency,
                plan_currency=tariff_currency or self.config.prices.currency,
            )  # fmt: skip
        except PlanInputError as err:
            if runtime.refused.get(inputs.kind) != str(err):
                _LOGGER.warning(
                    "Site %s: refused %s, the last good one stays: %s", site_id, inputs.kind, err
                )
            runtime.refused[inputs.kind] = str(err)
            return str(err)
        runtime.refused.pop(inputs.kind, None)
        known = await self.records.inputs(site_id)
        before = known.get(inputs.kind)
        await self.records.save_inputs(site_id, inputs.kind, series, round(now.timestamp() * 1000))
        if before is None or not _same(before[0], series):
            self.request_replan(site_id, f"new {inputs.kind} from the site")
        return ""

    def site_connected(self, site_id: str) -> None:
        """A site's agent (re)connected: send it its plan (the stored one on a standby) and
        setpoints now, and plan again once its readings are in."""
        runtime = self.sites.get(site_id)
        if runtime is None:
            return
        if runtime.document is not None:
            self._send_plan(runtime)
        else:
            task = asyncio.get_running_loop().create_task(self._send_stored(site_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._dispatch_now.add(site_id)
        if self.leadership.is_leader:
            runtime.soc_wait_until = self.now() + timedelta(seconds=SOC_WAIT_S)
            self._wake.set()
            asyncio.get_running_loop().call_later(
                self.config.replan_after_connect_s,
                self.request_replan, site_id, "the site connected",
            )  # fmt: skip

    async def _send_stored(self, site_id: str) -> None:
        try:
            stored = await self.records.plan(site_id)
        except EdgeEmsError as err:
            _LOGGER.warning("Site %s: cannot read its stored plan: %s", site_id, err)
            return
        if stored is not None:
            version, document = stored
            made_at = datetime.fromisoformat(document["made_at"])
            update = PlanUpdate(version, round(made_at.timestamp() * 1000), document)
            self._link.send_plan(site_id, update)

    # What the REST API shows.

    def health(self) -> dict[str, Any]:
        """For ``/health``: who leads, and each site's plan and troubles."""
        sites = {site_id: self.status(site_id) for site_id in self.sites}
        leading = self.leadership.is_leader
        problems = sorted(
            site_id
            for site_id, status in sites.items()
            if leading and (status["last_error"] or status["dispatch_errors"])
        )
        return {
            "leader": leading,
            "leader_hub": self.leadership.leader,
            "problems": problems,
            "sites": sites,
        }

    async def document(self, site_id: str) -> dict[str, Any] | None:
        """The site's current plan document (this hub's, else the leader's stored one)."""
        runtime = self._site(site_id)
        if runtime.document is not None:
            return runtime.document
        stored = await self.records.plan(site_id)
        return None if stored is None else stored[1]

    def status(self, site_id: str) -> dict[str, Any]:
        """The site's planner state in a few words."""
        runtime = self._site(site_id)
        return {
            "site_id": site_id,
            "leader": self.leadership.is_leader,
            "leader_hub": self.leadership.leader,
            "version": runtime.version or None,
            "last_error": runtime.last_error,
            "last_attempt": _iso(runtime.last_attempt),
            "tariff_error": runtime.tariff_error,
            "pv_error": runtime.pv_error,
            "price_error": None if self.prices is None or self.prices.last_error is None
            else str(self.prices.last_error),
            "refused_inputs": dict(runtime.refused),
            "dispatch_errors": list(runtime.dispatch_errors),
            "audit_error": runtime.audit_error,
        }  # fmt: skip

    async def price_view(self, site_id: str) -> dict[str, Any]:
        """The prices the site's plans use from now on."""
        runtime = self._site(site_id)
        now = self.now()
        given = {k: s for k, (s, _) in (await self.records.inputs(site_id)).items()}
        hub = self._hub_spot()
        start = plan_start(now, 15, self.config.zone)
        covers = _Covers(start, 15)
        spot = given.get("spot_price") if covers(given.get("spot_price")) else hub
        tariff = runtime.tariff
        return {
            "site_id": site_id,
            "spot_currency": self.config.prices.currency,
            "currency": tariff.currency if tariff else self.config.prices.currency,
            "tariff": None if tariff is None else tariff.name,
            "source": None if self.price_source is None else self.price_source.name,
            "fetched_at": _iso(self.prices_at),
            "last_error": self.status(site_id)["price_error"],
            "spot": _series_view(spot, start),
            "site_import": _series_view(given.get("import_price"), start),
            "site_export": _series_view(given.get("export_price"), start),
            "plan": _plan_prices(runtime.document),
        }

    async def forecast_view(self, site_id: str) -> dict[str, Any]:
        """The PV forecast and load baseline the site's plans use."""
        runtime = self._site(site_id)
        now = self.now()
        start = plan_start(now, 15, self.config.zone)
        given = {k: s for k, (s, _) in (await self.records.inputs(site_id)).items()}
        own = None
        if runtime.pv is not None:
            own = from_values(runtime.pv.start, timedelta(minutes=15), runtime.pv.power_w, "W",
                              runtime.pv.source)  # fmt: skip
        plan = runtime.document["plan"] if runtime.document else None
        return {
            "site_id": site_id,
            "pv_source": None if runtime.pv_source is None else runtime.pv_source.name,
            "pv_fetched_at": _iso(runtime.pv_at),
            "pv_error": runtime.pv_error,
            "pv": _series_view(own, start),
            "site_pv": _series_view(given.get("pv_forecast"), start),
            "baseline_samples": None if runtime.baseline is None else runtime.baseline.samples,
            "plan": None
            if plan is None
            else {
                "start": plan["start"],
                "step_minutes": plan["step_minutes"],
                "pv_w": plan["pv_w"],
                "load_w": plan["load_w"],
            },
        }  # fmt: skip

    async def audit_view(self, site_id: str, start_ms: int, end_ms: int) -> dict[str, Any]:
        """The audit records of steps in ``[start_ms, end_ms)`` and the days' costs."""
        self._site(site_id)
        records = await self.records.audits(site_id, start_ms, end_ms)
        zone = self.config.zone
        days = sorted(
            {
                datetime.fromtimestamp(r["start_ms"] / 1000, UTC).astimezone(zone).date()
                for r in records
            }
        )
        costs = [cost for day in days if (cost := day_cost(records, day, zone)) is not None]
        return {
            "site_id": site_id,
            "steps": records,
            "days": [cost.as_dict() for cost in costs],
        }

    async def overrides_view(self, site_id: str | None) -> list[dict[str, Any]]:
        """The overrides not yet over."""
        if site_id is not None:
            self._site(site_id)
        now_ms = round(self._clock() * 1000)
        return [o.as_dict() for o in await self.records.overrides(site_id, now_ms)]

    async def run_now(self, site_id: str | None, reason: str) -> list[RunResult]:
        """Plan now (one site or every one) and dispatch at once."""
        if site_id is not None:
            self._site(site_id)
        self._lead_or_refuse()
        await self.refresh_prices(self.now())  # any day still missing (cheap otherwise)
        results = []
        for site in [site_id] if site_id is not None else list(self.sites):
            results.append(await self.replan(site, reason))
            self._dispatch_now.add(site)
        self._wake.set()
        return results


class _Covers:
    """Whether a series covers the plan's first step."""

    def __init__(self, start: datetime, step_minutes: int) -> None:
        self._horizon = Horizon(start, step_minutes, 1)

    def __call__(self, series: StepSeries | None) -> bool:
        return series is not None and series.covered_steps(self._horizon) >= 1


def _if(series: StepSeries | None, covers: _Covers) -> StepSeries | None:
    return series if covers(series) else None


def _same(a: StepSeries, b: StepSeries) -> bool:
    return (
        a.start_ms == b.start_ms
        and a.step_s == b.step_s
        and a.values.shape == b.values.shape
        and bool(np.allclose(a.values, b.values))
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _series_view(series: StepSeries | None, start: datetime) -> dict[str, Any] | None:
    """A series from ``start`` on (what is still to come), as JSON."""
    if series is None:
        return None
    start_ms = round(start.timestamp() * 1000)
    step_ms = series.step_s * 1000
    skip = max(0, (start_ms - series.start_ms) // step_ms)
    values = [round(float(v), 6) for v in series.values[skip:]]
    begin = datetime.fromtimestamp((series.start_ms + skip * step_ms) / 1000, UTC)
    return {
        "start": begin.isoformat(),
        "step_s": series.step_s,
        "unit": series.unit,
        "source": series.source,
        "values": values,
    }


def _plan_prices(document: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if document is None:
        return None
    prices: dict[str, Any] = dict(document["prices"])
    return prices


def _reason(err: EdgeEmsError) -> Reason:
    if isinstance(err, UnknownSiteError):
        return Reason.UNKNOWN_SITE
    if isinstance(err, NotLeaderError):
        return Reason.NOT_ALLOWED
    if "no such asset" in str(err):
        return Reason.UNKNOWN_DEVICE
    if "does not take" in str(err) or "not a command" in str(err):
        return Reason.UNKNOWN_COMMAND
    return Reason.INVALID_VALUE


async def _sleep_until(moment: datetime, clock: Callable[[], float]) -> None:
    await asyncio.sleep(max(0.0, moment.timestamp() - clock()))
