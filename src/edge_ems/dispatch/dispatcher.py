"""Guarded dispatch: the one path every write takes, whoever asks.

Order of the guards, each attempt audited whatever its outcome:

1. control enabled for the site?
2. dry run?
3. command on the device's allowlist (a point with ``allow_write``)?
4. value valid, and clamped to the command's and the asset's limits (unknown power limits
   mean 0 W)?
5. EEPROM-backed register: written only when the value changes, within a daily budget;
   requested writes per device within a rate.
6. write, read back, audit.

A battery power setpoint, and every command a device marks ``lease`` (a charger's current
limit, a heat pump's SG Ready order), is a lease with a time to live, one per device and
command. While it holds, the device's own revert timer (or the volatile register itself) is
refreshed at a third of the ttl; when it lapses unrenewed, the device is returned to its safe
mode (only that command's safe value while other leases on the device still hold), and that
is audited too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..device import Command, WriteResult
from ..exceptions import DeviceError, ReadBackMismatchError, WriteRefusedError
from ..metrics import BATTERY_POWER, METRICS
from ..readings import Readings, Value
from .audit import AuditRecord, Outcome, Reason
from .budget import EepromBudget, RateLimiter
from .policy import AssetLimits, ControlPolicy
from .split import split_site_power

_LOGGER = logging.getLogger(__name__)


class DispatchDevice(Protocol):
    """What dispatch needs of a device."""

    @property
    def name(self) -> str:
        """A short name for messages."""

    @property
    def commands(self) -> Mapping[str, Command]:
        """Writable metrics and their limits."""

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """Values that return the device to its own control, written in order."""

    @property
    def revert_timer(self) -> str | None:
        """The command of the device's own revert timer (seconds), if it has one."""

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Write one command and read it back."""


@dataclass(slots=True)
class _Asset:
    device: DispatchDevice
    limits: AssetLimits | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    known: dict[str, Value] = field(default_factory=dict)
    """Last value seen on the device, per command, for write-on-change."""


@dataclass(slots=True)
class _Lease:
    value: Value
    ttl: float
    expires: float
    requested_by: str
    task: asyncio.Task[None] | None = None


type AuditSink = Callable[[AuditRecord], None]


@dataclass(frozen=True, slots=True)
class _Request:
    """One attempt as asked, before any guard."""

    device_id: str | None
    command: str
    value: Value
    requested_by: str
    source: str
    ttl: float | None = None


class Dispatcher:
    """Guards, leases and audit for one site's devices."""

    def __init__(
        self,
        site_id: str,
        policy: ControlPolicy,
        audit: AuditSink,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site_id = site_id
        self._policy = policy
        self._audit = audit
        self._clock = clock
        self._monotonic = monotonic
        self._assets: dict[str, _Asset] = {}
        self._leases: dict[tuple[str, str], _Lease] = {}
        """By device id and command."""
        self.budget = EepromBudget(policy.eeprom_daily_writes, clock=clock)
        self._rate = RateLimiter(policy.writes_per_minute, clock=monotonic)

    @property
    def policy(self) -> ControlPolicy:
        """The site's control policy."""
        return self._policy

    async def set_policy(self, policy: ControlPolicy) -> list[AuditRecord]:
        """Change the policy; leases end (devices back to safe mode) when control stops."""
        self._policy = policy
        self.budget.daily_writes = policy.eeprom_daily_writes
        self._rate.per_minute = policy.writes_per_minute
        if policy.enable_control and not policy.dry_run:
            return []
        records: list[AuditRecord] = []
        for device_id in self._leased_devices():
            request = _Request(device_id, "release", None, "policy", "policy")
            records += await self._release(request, Reason.CONTROL_DISABLED)
        return records

    def add_device(
        self, device_id: str, device: DispatchDevice, limits: AssetLimits | None = None
    ) -> None:
        """Register a device; ``limits`` makes it a battery asset for site dispatch."""
        self._assets[device_id] = _Asset(device, limits)

    def remove_device(self, device_id: str) -> None:
        """Forget a device (its leases, if any, are dropped without release)."""
        self._assets.pop(device_id, None)
        for key in [key for key in self._leases if key[0] == device_id]:
            lease = self._leases.pop(key)
            if lease.task is not None:
                lease.task.cancel()

    def observe(self, device_id: str, readings: Readings) -> None:
        """Note the values a device reported, so unchanged EEPROM writes are skipped."""
        asset = self._assets.get(device_id)
        if asset is None:
            return
        for metric in asset.device.commands:
            reading = readings.get(metric)
            if reading is not None and reading.value is not None:
                asset.known[metric] = reading.value

    def leases(self, command: str = BATTERY_POWER) -> dict[str, tuple[Value, float]]:
        """Active leases of one command: device id to (value, seconds left)."""
        return {
            device_id: held
            for device_id, commands in self.all_leases().items()
            if (held := commands.get(command)) is not None
        }

    def all_leases(self) -> dict[str, dict[str, tuple[Value, float]]]:
        """Every active lease: device id to command to (value, seconds left)."""
        now = self._monotonic()
        held: dict[str, dict[str, tuple[Value, float]]] = {}
        for (device_id, command), lease in sorted(self._leases.items()):
            held.setdefault(device_id, {})[command] = (lease.value, max(0.0, lease.expires - now))
        return held

    async def write(
        self,
        device_id: str,
        metric: str,
        value: Value,
        *,
        requested_by: str,
        source: str,
        ttl: float | None = None,
    ) -> AuditRecord:
        """Write one named command through every guard.

        A battery power setpoint, or a command the device marks ``lease``, holds only while
        its lease does: ``ttl`` seconds (the policy's lease time by default), renewed by
        writing it again.
        """
        if (
            metric == BATTERY_POWER
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            # However it is asked for, a power setpoint holds only while its lease does.
            [record] = await self.dispatch(
                float(value), requested_by=requested_by, source=source, asset_id=device_id,
                ttl=ttl,
            )  # fmt: skip
            return record
        asset = self._assets.get(device_id)
        command = None if asset is None else asset.device.commands.get(metric)
        if command is None or not command.lease:
            request = _Request(device_id, metric, value, requested_by, source)
            return self._emit(await self._guarded_write(request))
        ttl = self._policy.lease_ttl if ttl is None else ttl
        request = _Request(device_id, metric, value, requested_by, source, ttl)
        record = self._emit(await self._guarded_write(request))
        if record.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            await self._hold(device_id, metric, record.applied, ttl, requested_by)
        return record

    async def dispatch(
        self,
        power_w: float,
        *,
        requested_by: str,
        source: str,
        asset_id: str | None = None,
        site_id: str | None = None,
        ttl: float | None = None,
    ) -> list[AuditRecord]:
        """Set battery power for one asset or the whole site; ``asset_id`` wins over ``site_id``."""
        ttl = self._policy.lease_ttl if ttl is None else ttl
        site_request = _Request(asset_id, BATTERY_POWER, power_w, requested_by, source, ttl)
        if not self._policy.enable_control:
            message = "control is not enabled"
            return [self._emit(self._refuse(site_request, Reason.CONTROL_DISABLED, message))]
        if asset_id is not None:
            targets = {asset_id: power_w}
        elif site_id is not None and site_id != self.site_id:
            message = f"site {site_id!r} is not {self.site_id!r}"
            return [self._emit(self._refuse(site_request, Reason.UNKNOWN_SITE, message))]
        else:
            batteries = {
                device_id: asset.limits
                for device_id, asset in self._assets.items()
                if asset.limits is not None and BATTERY_POWER in asset.device.commands
            }
            if not batteries:
                message = f"site {self.site_id!r} has no battery that takes power setpoints"
                return [self._emit(self._refuse(site_request, Reason.NO_BATTERIES, message))]
            targets = split_site_power(power_w, batteries)
        records = []
        for device_id, share in targets.items():
            request = _Request(device_id, BATTERY_POWER, share, requested_by, source, ttl)
            record = self._emit(await self._guarded_write(request))
            records.append(record)
            if record.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
                applied = float(record.applied or 0.0)
                await self._hold(device_id, BATTERY_POWER, applied, ttl, requested_by)
        return records

    async def release(
        self, *, requested_by: str, source: str, asset_id: str | None = None
    ) -> list[AuditRecord]:
        """Return one asset (or every asset of the site) to its safe mode now."""
        request = _Request(asset_id, "release", None, requested_by, source)
        if not self._policy.enable_control:
            message = "control is not enabled"
            return [self._emit(self._refuse(request, Reason.CONTROL_DISABLED, message))]
        if asset_id is not None and asset_id not in self._assets:
            message = f"no device {asset_id!r}"
            return [self._emit(self._refuse(request, Reason.UNKNOWN_DEVICE, message))]
        records: list[AuditRecord] = []
        for device_id in [asset_id] if asset_id is not None else sorted(self._assets):
            device_request = _Request(device_id, "release", None, requested_by, source)
            if self._policy.dry_run:
                records += self._release_dry_run(device_request)
            else:
                records += await self._release(device_request, Reason.RELEASE_REQUESTED)
        return records

    def _release_dry_run(self, request: _Request) -> list[AuditRecord]:
        """What a release would write to one device, each value recorded, nothing written."""
        asset = self._assets[request.device_id or ""]
        records = []
        for metric, value in asset.device.safe_mode.items():
            step = _Request(request.device_id, metric, value, request.requested_by, request.source)
            command = asset.device.commands.get(metric)
            shown = _named(command, value)
            message = f"dry run: would return to safe mode with {metric} = {shown}{_on(command)}"
            records.append(
                self._emit(self._record(step, Outcome.DRY_RUN, Reason.DRY_RUN, message, shown))
            )
        return records

    async def close(self, *, release: bool = True) -> None:
        """Stop every lease, returning leased devices to safe mode unless told otherwise."""
        for device_id in self._leased_devices():
            if release:
                request = _Request(device_id, "release", None, "shutdown", "lease")
                await self._release(request, Reason.RELEASE_REQUESTED)
            else:
                self.remove_device(device_id)

    # The guard chain.

    def _admit(self, request: _Request) -> AuditRecord | tuple[_Asset, Command, Value, bool]:
        """Guards 1-4: policy, allowlist and limits; a refusal, a dry run's record of what it
        would write, or what to write."""
        if not self._policy.enable_control:
            return self._refuse(request, Reason.CONTROL_DISABLED, "control is not enabled")
        asset = self._assets.get(request.device_id or "")
        if asset is None:
            return self._refuse(request, Reason.UNKNOWN_DEVICE, f"no device {request.device_id!r}")
        name = asset.device.name
        command = asset.device.commands.get(request.command)
        if command is None:
            message = f"{name} has no command {request.command}"
            return self._refuse(request, Reason.UNKNOWN_COMMAND, message)
        if not command.allow_write:
            message = f"{request.command} is not on {name}'s allowlist"
            return self._refuse(request, Reason.NOT_ALLOWED, message)
        try:
            applied, clamped = _clamp(command, request.value, asset.limits)
        except ValueError as err:
            return self._refuse(request, Reason.INVALID_VALUE, str(err))
        if self._policy.dry_run:
            message = f"dry run: would write {applied}{_on(command)}"
            return self._record(request, Outcome.DRY_RUN, Reason.DRY_RUN, message, applied)
        return asset, command, applied, clamped

    def _within_budget(
        self, request: _Request, asset: _Asset, command: Command, applied: Value
    ) -> AuditRecord | None:
        """Guard 5: write-on-change and the EEPROM budget, then the write rate."""
        device_id, name = request.device_id or "", asset.device.name
        if command.eeprom:
            known = asset.known.get(request.command)
            if known is not None and _same(known, applied):
                message = "the device already holds this value"
                return self._record(request, Outcome.UNCHANGED, Reason.UNCHANGED, message, applied)
            if self.budget.remaining(device_id) <= 0:
                message = f"{name} used its {self.budget.daily_writes} EEPROM writes for today"
                return self._refuse(request, Reason.BUDGET_EXHAUSTED, message, applied)
        if not self._rate.allow(device_id):
            message = f"more than {self._rate.per_minute} writes a minute to {name}"
            return self._refuse(request, Reason.RATE_LIMITED, message, applied)
        return None

    async def _guarded_write(self, request: _Request) -> AuditRecord:
        admitted = self._admit(request)
        if isinstance(admitted, AuditRecord):
            return admitted
        asset, command, applied, clamped = admitted
        async with asset.lock:
            stopped = self._within_budget(request, asset, command, applied)
            if stopped is not None:
                return stopped
            outcome = await self._write(request, asset, command, applied)
            if isinstance(outcome, AuditRecord):
                return outcome
            if request.ttl is not None and asset.device.revert_timer is not None:
                await self._arm_revert_timer(asset, request.ttl)
        reason = Reason.CLAMPED if clamped else Reason.WRITTEN
        message = f"clamped {request.value} to {applied}" if clamped else f"wrote {applied}"
        message += _on(command)
        return self._record(request, Outcome.APPLIED, reason, message, applied, outcome.read_back)

    async def _write(
        self, request: _Request, asset: _Asset, command: Command, applied: Value
    ) -> AuditRecord | WriteResult:
        """Guard 6: write and read back; the EEPROM budget pays for what reached the device."""
        device_id = request.device_id or ""
        try:
            written = await asset.device.write(request.command, applied)
        except WriteRefusedError as err:
            return self._refuse(request, _reason(err.reason), str(err), applied)
        except ReadBackMismatchError as err:
            if command.eeprom:
                self.budget.spend(device_id)
            asset.known.pop(request.command, None)
            return self._record(
                request,
                Outcome.FAILED,
                Reason.READ_BACK_MISMATCH,
                str(err),
                applied,
                _value(err.actual),
            )
        except DeviceError as err:
            message = str(err) or type(err).__name__
            return self._record(request, Outcome.FAILED, Reason.DEVICE_ERROR, message, applied)
        if command.eeprom:
            self.budget.spend(device_id)
        asset.known[request.command] = (
            written.read_back if written.read_back is not None else applied
        )
        return written

    # Leases.

    def _leased_devices(self) -> list[str]:
        return sorted({device_id for device_id, _ in self._leases})

    async def _hold(
        self, device_id: str, command: str, value: Value, ttl: float, requested_by: str
    ) -> None:
        key = (device_id, command)
        lease = self._leases.get(key)
        expires = self._monotonic() + ttl
        if lease is None:
            lease = self._leases[key] = _Lease(value, ttl, expires, requested_by)
            lease.task = asyncio.get_running_loop().create_task(
                self._lease_loop(key), name=f"edge_ems lease {device_id} {command}"
            )
        else:
            lease.value, lease.ttl, lease.expires = value, ttl, expires
            lease.requested_by = requested_by

    async def _lease_loop(self, key: tuple[str, str]) -> None:
        device_id, command = key
        while (lease := self._leases.get(key)) is not None:
            remaining = lease.expires - self._monotonic()
            if remaining <= 0:
                self._leases.pop(key, None)
                request = _Request(device_id, "release", None, lease.requested_by, "lease")
                # While other leases hold the device, only this command goes back.
                others = any(held == device_id for held, _ in self._leases)
                only = command if others else None
                await self._release_now(request, Reason.LEASE_EXPIRED, only=only)
                return
            await asyncio.sleep(min(lease.ttl / 3.0, remaining))
            if self._leases.get(key) is lease and lease.expires > self._monotonic():
                await self._refresh(key, lease)

    async def _refresh(self, key: tuple[str, str], lease: _Lease) -> None:
        """Keep the device from reverting early: its timer, or a volatile register."""
        device_id, metric = key
        asset = self._assets.get(device_id)
        if asset is None:
            return
        command = asset.device.commands.get(metric)
        try:
            async with asset.lock:
                if asset.device.revert_timer is not None:
                    await self._arm_revert_timer(asset, lease.ttl)
                elif command is not None and not command.eeprom:
                    await asset.device.write(metric, lease.value)
        except (DeviceError, WriteRefusedError) as err:
            request = _Request(
                device_id, metric, lease.value, lease.requested_by, "lease", lease.ttl
            )
            message = f"refreshing the setpoint failed: {err}"
            self._emit(self._record(request, Outcome.FAILED, Reason.DEVICE_ERROR, message))

    async def _arm_revert_timer(self, asset: _Asset, ttl: float) -> None:
        timer = asset.device.revert_timer
        assert timer is not None
        # The device reverts on its own if we vanish, a little after our lease would lapse.
        await asset.device.write(timer, math.ceil(ttl * 1.5))

    async def _release(self, request: _Request, reason: Reason) -> list[AuditRecord]:
        for key in [key for key in self._leases if key[0] == request.device_id]:
            lease = self._leases.pop(key)
            if lease.task is not None:
                lease.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lease.task
        return await self._release_now(request, reason)

    async def _release_now(
        self, request: _Request, reason: Reason, *, only: str | None = None
    ) -> list[AuditRecord]:
        """Write the device's safe-mode values (``only`` that command's, if given); returning
        to safety passes every budget."""
        asset = self._assets.get(request.device_id or "")
        if asset is None:
            return []
        records = []
        safe_mode = asset.device.safe_mode
        if only is not None:
            safe_mode = {only: safe_mode[only]} if only in safe_mode else {}
        async with asset.lock:
            for metric, value in safe_mode.items():
                step = _Request(
                    request.device_id, metric, value, request.requested_by, request.source
                )
                command = asset.device.commands.get(metric)
                shown = _named(command, value)
                try:
                    written = await asset.device.write(metric, value)
                except (DeviceError, WriteRefusedError) as err:
                    message = f"returning to safe mode failed: {err}"
                    record = self._record(step, Outcome.FAILED, Reason.DEVICE_ERROR, message, shown)
                else:
                    asset.known[metric] = written.read_back
                    record = self._record(
                        step,
                        Outcome.RELEASED,
                        reason,
                        f"returned to safe mode{_on(command)}",
                        shown,
                        written.read_back,
                    )
                records.append(self._emit(record))
        if not records:
            _LOGGER.debug("%s has no safe-mode values to write", asset.device.name)
        return records

    # Records.

    def _emit(self, record: AuditRecord) -> AuditRecord:
        self._audit(record)
        return record

    def _refuse(
        self, request: _Request, reason: Reason, message: str, applied: Value = None
    ) -> AuditRecord:
        return self._record(request, Outcome.REFUSED, reason, message, applied)

    def _record(
        self,
        request: _Request,
        outcome: Outcome,
        reason: Reason,
        message: str,
        applied: Value = None,
        read_back: Value = None,
    ) -> AuditRecord:
        return AuditRecord(
            site_id=self.site_id,
            device_id=request.device_id,
            command=request.command,
            requested=request.value,
            applied=applied,
            outcome=outcome,
            reason=reason,
            message=message,
            requested_by=request.requested_by,
            source=request.source,
            timestamp=self._clock(),
            read_back=read_back,
            ttl=request.ttl,
        )


def _clamp(command: Command, value: Value, limits: AssetLimits | None) -> tuple[Value, bool]:
    """Validate ``value`` for ``command`` and clamp it to every limit that applies."""
    if command.options is not None:
        if value in command.options.values():
            return value, False
        if isinstance(value, int) and not isinstance(value, bool) and value in command.options:
            return command.options[value], False
        raise ValueError(
            f"{command.metric}: {value!r} is not one of {sorted(command.options.values())}"
        )
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{command.metric}: {value!r} is not a finite number")
    low, high = command.minimum, command.maximum
    metric = METRICS.get(command.metric)
    if command.metric == BATTERY_POWER:
        asset = limits or AssetLimits()
        low = -asset.max_charge_w if low is None else max(low, -asset.max_charge_w)
        high = asset.max_discharge_w if high is None else min(high, asset.max_discharge_w)
    elif metric is not None and metric.unit == "W":
        # Unknown power limits mean 0 W: never push power nobody bounded.
        low = 0.0 if low is None else low
        high = 0.0 if high is None else high
    clamped = value
    if low is not None:
        clamped = max(low, clamped)
    if high is not None:
        clamped = min(high, clamped)
    if isinstance(value, int) and float(clamped).is_integer():
        clamped = int(clamped)
    return clamped, clamped != value


def _named(command: Command | None, value: Value) -> Value:
    """A mode's value by its name, as its state reads (``zero_export_to_ct``, not 2)."""
    if command is None or command.options is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and float(value).is_integer():
        return command.options.get(int(value), value)
    return value


def _on(command: Command | None) -> str:
    """Where the command goes, when it drives something other than the device itself."""
    return "" if command is None or command.target is None else f" on {command.target}"


def _same(known: Value, wanted: Value) -> bool:
    if isinstance(known, int | float) and isinstance(wanted, int | float):
        return math.isclose(float(known), float(wanted), rel_tol=1e-9, abs_tol=1e-6)
    return known == wanted


def _reason(key: str) -> Reason:
    try:
        return Reason(key)
    except ValueError:
        return Reason.NOT_ALLOWED


def _value(raw: object) -> Value:
    return raw if isinstance(raw, float | int | str | bool) or raw is None else str(raw)


__all__ = ["AuditSink", "DispatchDevice", "Dispatcher"]
