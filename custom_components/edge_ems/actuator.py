"""Entities of another integration as one Edge EMS device: an EV charger, a heat pump, a water
heater or a switchable load that Home Assistant already controls through some integration
(evcc, go-e, Easee, a heat pump's own integration, a relay for a boiler).

A device subentry maps each command its kind offers (a charge current, SG Ready, a hot water
setpoint) onto one ``number``, ``select``, ``switch``, ``climate`` or ``water_heater`` entity.
The device reads those entities' states as the vocabulary's metrics, writes by calling the
entity's service and reads the state back. A command given a safe state is a lease: when
nobody renews it, the Dispatcher writes that state. Allowlist (the mapped commands), clamps
(the entity's limits within the user's), dry run, budget and audit are the site's Dispatcher's,
exactly as for a Modbus device.

An entity of another integration keeps what it was told (renewing it would only load the
integration behind it, often a cloud API or a device's flash), so every command is written
only when its value changes, within the site's daily budget of such writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import probatio
from homeassistant.components.climate.const import ATTR_HVAC_MODES, SERVICE_SET_HVAC_MODE
from homeassistant.components.number.const import (
    ATTR_MAX,
    ATTR_MIN,
    ATTR_STEP,
    ATTR_VALUE,
    SERVICE_SET_VALUE,
)
from homeassistant.components.select.const import ATTR_OPTIONS
from homeassistant.components.water_heater import ATTR_OPERATION_LIST
from homeassistant.components.water_heater.const import (
    ATTR_OPERATION_MODE,
    SERVICE_SET_OPERATION_MODE,
)
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_OPTION,
    ATTR_TEMPERATURE,
    ATTR_UNIT_OF_MEASUREMENT,
    SERVICE_SELECT_OPTION,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    Platform,
    UnitOfTemperature,
)
from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
    split_entity_id,
)
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceNotFound,
    ServiceValidationError,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util.unit_conversion import (
    BaseUnitConverter,
    ElectricCurrentConverter,
    PowerConverter,
    TemperatureConverter,
)

from edge_ems.device import (
    AssetType,
    Command,
    Device,
    DeviceIdentity,
    Health,
    HealthTracker,
    WriteResult,
)
from edge_ems.exceptions import (
    ConfigError,
    DeviceConnectionError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeoutError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from edge_ems.metrics import METRICS
from edge_ems.readings import Reading, Readings, Value
from edge_ems.resilience import CircuitBreaker
from edge_ems.site import BuildContext, DeviceFactory, DeviceSpec

from .const import DOMAIN

CLIMATE: Final = Platform.CLIMATE.value
NUMBER: Final = Platform.NUMBER.value
SELECT: Final = Platform.SELECT.value
SWITCH: Final = Platform.SWITCH.value
WATER_HEATER: Final = Platform.WATER_HEATER.value

# The subentry's data.
CONF_ACTUATOR_KIND: Final = "actuator_kind"
CONF_COMMANDS: Final = "commands"
"""By metric: the entity that carries it, its clamps and its safe state."""
CONF_ENTITY_ID: Final = "entity_id"
CONF_MINIMUM: Final = "minimum"
CONF_MAXIMUM: Final = "maximum"
CONF_SAFE_VALUE: Final = "safe_value"
"""Written when the command's lease lapses; absent: the entity is left as it is."""

READ_BACK_TIMEOUT = 10.0
"""Seconds an entity has to show what it was told (a cloud integration polls its device)."""
SERVICE_TIMEOUT = 30.0
"""Seconds a service call may take before the write counts as failed."""
CURRENT_TEMPERATURE: Final = "current_temperature"


class ActuatorKind(StrEnum):
    """What the entities make up, which decides the commands offered."""

    EV_CHARGER = "ev_charger"
    HEAT_PUMP = "heat_pump"
    WATER_HEATER = "water_heater"
    SWITCHABLE_LOAD = "switchable_load"


KIND_COMMANDS: Final[Mapping[ActuatorKind, Mapping[str, tuple[str, ...]]]] = {
    ActuatorKind.EV_CHARGER: {
        "ev_charging_enabled": (SWITCH,),
        "ev_current_limit_a": (NUMBER,),
        "ev_phases": (NUMBER, SELECT),
    },
    ActuatorKind.HEAT_PUMP: {
        "heat_pump_sg_ready": (SELECT,),
        "heat_pump_power_limit_w": (NUMBER,),
        "heat_pump_enabled": (SWITCH,),
        "heat_pump_mode": (CLIMATE, SELECT),
        "room_temperature_setpoint_c": (CLIMATE, NUMBER),
        "dhw_temperature_setpoint_c": (WATER_HEATER, NUMBER),
    },
    ActuatorKind.WATER_HEATER: {
        "dhw_enabled": (SWITCH,),
        "dhw_mode": (WATER_HEATER, SELECT),
        "dhw_temperature_setpoint_c": (WATER_HEATER, NUMBER),
    },
    ActuatorKind.SWITCHABLE_LOAD: {"load_enabled": (SWITCH,)},
}
"""The commands each kind offers, in the order a safe state is written, with the entity
domains that may carry each (the planner sends the first three and the power limit)."""

MEASURED: Final[Mapping[str, str]] = {
    CLIMATE: "room_temperature_c",
    WATER_HEATER: "dhw_temperature_c",
}
"""What a climate or water heater entity measures besides what it is told."""


class Role(StrEnum):
    """How a command is carried by its entity."""

    VALUE = "value"
    """A number: ``number.set_value``, a climate's or water heater's target temperature."""
    OPTION = "option"
    """A named choice: a select's option, a climate's HVAC mode, a water heater's mode."""
    ON_OFF = "on_off"
    """A switch, 1 on and 0 off."""


def role_of(domain: str, metric: str) -> Role:
    """How ``metric`` is carried by an entity of ``domain``."""
    if domain == SWITCH:
        return Role.ON_OFF
    if domain == SELECT or METRICS[metric].device_class == "enum":
        return Role.OPTION
    return Role.VALUE


@dataclass(frozen=True, slots=True)
class _Access:
    """Where an entity of one domain keeps a role's value and which service sets it."""

    service: str
    field: str
    """The service's data key."""
    attribute: str | None = None
    """The attribute holding the value; ``None``: the state itself."""
    limits: tuple[str, str, str] | None = None
    """The attributes of the lowest, highest value and the step."""
    options: str | None = None
    """The attribute listing the choices."""


_TEMPERATURE = _Access(
    "set_temperature",
    ATTR_TEMPERATURE,
    ATTR_TEMPERATURE,
    limits=("min_temp", "max_temp", "target_temp_step"),
)
_ACCESS: Final[Mapping[tuple[str, Role], _Access]] = {
    (NUMBER, Role.VALUE): _Access(
        SERVICE_SET_VALUE, ATTR_VALUE, limits=(ATTR_MIN, ATTR_MAX, ATTR_STEP)
    ),
    (CLIMATE, Role.VALUE): _TEMPERATURE,
    (WATER_HEATER, Role.VALUE): _TEMPERATURE,
    (SELECT, Role.OPTION): _Access(SERVICE_SELECT_OPTION, ATTR_OPTION, options=ATTR_OPTIONS),
    (CLIMATE, Role.OPTION): _Access(SERVICE_SET_HVAC_MODE, "hvac_mode", options=ATTR_HVAC_MODES),
    (WATER_HEATER, Role.OPTION): _Access(
        SERVICE_SET_OPERATION_MODE,
        ATTR_OPERATION_MODE,
        ATTR_OPERATION_MODE,
        options=ATTR_OPERATION_LIST,
    ),
    (SWITCH, Role.ON_OFF): _Access(SERVICE_TURN_ON, ""),
}
_DEFAULT_TEMPERATURE_STEP: Mapping[str, float] = {
    UnitOfTemperature.CELSIUS: 0.5,
    UnitOfTemperature.FAHRENHEIT: 1.0,
}
"""The step Home Assistant's frontend takes for a thermostat that names none."""
_CONVERTERS: tuple[type[BaseUnitConverter], ...] = (
    PowerConverter,
    ElectricCurrentConverter,
    TemperatureConverter,
)


@dataclass(frozen=True, slots=True)
class Binding:
    """One command carried by one entity, as the subentry keeps it."""

    metric: str
    entity_id: str
    minimum: float | None = None
    maximum: float | None = None
    safe_value: Value = None

    @property
    def domain(self) -> str:
        """The entity's domain."""
        return split_entity_id(self.entity_id)[0]

    @property
    def role(self) -> Role:
        """How the entity carries the command."""
        return role_of(self.domain, self.metric)


def parse_bindings(settings: Mapping[str, Any]) -> tuple[ActuatorKind, tuple[Binding, ...]]:
    """The kind and the mapped commands a subentry's data describes, in the kind's order.

    Raises :class:`ConfigError` for a command the kind does not offer or an entity of a
    domain that cannot carry it.
    """
    kind = ActuatorKind(settings[CONF_ACTUATOR_KIND])
    offered = KIND_COMMANDS[kind]
    mapped: Mapping[str, Mapping[str, Any]] = settings[CONF_COMMANDS]
    if unknown := sorted(set(mapped) - set(offered)):
        raise ConfigError(f"a {kind} offers no command {', '.join(unknown)}")
    bindings = []
    for metric, domains in offered.items():
        if (command := mapped.get(metric)) is None:
            continue
        binding = Binding(
            metric,
            command[CONF_ENTITY_ID],
            command.get(CONF_MINIMUM),
            command.get(CONF_MAXIMUM),
            command.get(CONF_SAFE_VALUE),
        )
        if binding.domain not in domains:
            raise ConfigError(f"{binding.entity_id} cannot carry {metric}")
        bindings.append(binding)
    return kind, tuple(bindings)


@dataclass(frozen=True, slots=True)
class Profile:
    """What an entity's state says about the command it carries, in the metric's units."""

    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()


class _Units:
    """A value between the metric's unit and the entity's."""

    def __init__(self, metric: str, unit: str | None) -> None:
        wanted = METRICS[metric].unit
        self.fits = True
        self.to_entity: Callable[[float], float] = float
        self.to_metric: Callable[[float], float] = float
        if wanted is None or unit is None or unit == wanted:
            return
        for converter in _CONVERTERS:
            if wanted in converter.VALID_UNITS and unit in converter.VALID_UNITS:
                self.to_entity = converter.converter_factory(wanted, unit)
                self.to_metric = converter.converter_factory(unit, wanted)
                return
        self.fits = False


def entity_unit(hass: HomeAssistant, state: State) -> str | None:
    """The unit an entity's values are in (a thermostat's are in the system's)."""
    if state.domain in (CLIMATE, WATER_HEATER):
        return hass.config.units.temperature_unit
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    return unit if isinstance(unit, str) else None


def units_fit(hass: HomeAssistant, metric: str, state: State) -> bool:
    """Whether the entity's unit converts to the metric's (a power in kW, not a %)."""
    return _Units(metric, entity_unit(hass, state)).fits


def entity_profile(hass: HomeAssistant, metric: str, state: State) -> Profile:
    """The limits or choices an entity offers for ``metric``, from its state's attributes."""
    access = _ACCESS[(state.domain, role_of(state.domain, metric))]
    attributes = state.attributes
    if access.options is not None:
        options = attributes.get(access.options) or ()
        return Profile(options=tuple(str(option) for option in options))
    if access.limits is None:
        return Profile(0, 1, 1)
    units = _Units(metric, entity_unit(hass, state))
    low, high, step = _entity_limits(hass, access, state)
    metric_step = None
    if step is not None:
        base = low or 0.0
        metric_step = _rounded(abs(units.to_metric(base + step) - units.to_metric(base)))
    return Profile(
        None if low is None else _rounded(units.to_metric(low)),
        None if high is None else _rounded(units.to_metric(high)),
        metric_step,
    )


def _entity_limits(
    hass: HomeAssistant, access: _Access, state: State
) -> tuple[float | None, float | None, float | None]:
    """An entity's lowest and highest value and its step, in its own unit."""
    assert access.limits is not None
    low, high, step = (_number(state.attributes.get(name)) for name in access.limits)
    if step is None and access is _TEMPERATURE:
        step = _DEFAULT_TEMPERATURE_STEP.get(entity_unit(hass, state) or "")
    return low, high, step


def option_codes(options: tuple[str, ...]) -> dict[int, str]:
    """A select's options as a command's named values: by the number each names where every
    one names a number (phases "1" and "3" are 1 and 3), else by position."""
    with contextlib.suppress(ValueError):
        numbered = {int(option): option for option in options}
        if len(numbered) == len(options):
            return numbered
    return dict(enumerate(options))


@dataclass(frozen=True, slots=True)
class _Call:
    """One service call that writes a command, and what the entity must show after it."""

    service: str
    data: dict[str, Any]
    shown: Value
    """What the entity must show, in its own terms (its unit, on its step)."""
    written: Value
    """The same in the metric's terms."""
    tolerance: float = 0.0
    """For a number, in the entity's unit."""


class _Target:
    """One binding at run time: its entity's state, read and written."""

    def __init__(self, hass: HomeAssistant, binding: Binding) -> None:
        self._hass = hass
        self.binding = binding
        self.access = _ACCESS[(binding.domain, binding.role)]
        self._seen: Profile | None = None

    @property
    def entity_id(self) -> str:
        """The entity that carries the command."""
        return self.binding.entity_id

    def state(self) -> State:
        """The entity's state; :class:`DeviceConnectionError` while it is gone or unavailable,
        as for a device that does not answer."""
        state = self._hass.states.get(self.entity_id)
        if state is None:
            raise DeviceConnectionError(
                f"{self.entity_id} does not exist (is its integration set up?)"
            )
        if state.state == STATE_UNAVAILABLE:
            raise DeviceConnectionError(f"{self.entity_id} is unavailable")
        self._seen = entity_profile(self._hass, self.binding.metric, state)
        return state

    def profile(self) -> Profile:
        """The entity's limits or choices as last seen; nothing before it was first seen."""
        if self._seen is None:
            with contextlib.suppress(DeviceConnectionError):
                self.state()
        return self._seen or Profile()

    def command(self) -> Command:
        """The command with the entity's limits within the user's clamps."""
        binding, seen = self.binding, self.profile()
        options = option_codes(seen.options) if binding.role is Role.OPTION else None
        return Command(
            binding.metric,
            None if options is not None else _tighter(max, binding.minimum, seen.minimum),
            None if options is not None else _tighter(min, binding.maximum, seen.maximum),
            options=options,
            allow_write=True,
            eeprom=True,
            lease=binding.safe_value is not None,
            target=self.entity_id,
        )

    def read(self, state: State) -> Value:
        """The command's value the entity shows, in the metric's terms; ``None`` while it
        shows none (``unknown``, or no number where one belongs)."""
        shown = self._shown(state)
        if isinstance(shown, float):
            return _rounded(self._units(state).to_metric(shown))
        return shown

    def _shown(self, state: State | None) -> Value:
        """The command's value in the entity's own terms; ``None`` while it shows none."""
        if state is None or state.state == STATE_UNAVAILABLE:
            return None
        attribute = self.access.attribute
        raw = state.state if attribute is None else state.attributes.get(attribute)
        if raw is None or raw == STATE_UNKNOWN:
            return None
        match self.binding.role:
            case Role.ON_OFF:
                return int(raw == STATE_ON)
            case Role.OPTION:
                return str(raw)
        return _number(raw)

    def call(self, value: Value) -> _Call:
        """The service call that writes ``value``; refused when the entity cannot take it."""
        state = self.state()
        access = self.access
        match self.binding.role:
            case Role.ON_OFF:
                if value not in (0, 1):
                    raise self._refused(value, "not 0 or 1", "invalid_value")
                on = int(bool(value))
                return _Call(SERVICE_TURN_ON if on else SERVICE_TURN_OFF, {}, on, on)
            case Role.OPTION:
                options = list(self.profile().options)
                if value not in options:
                    raise self._refused(value, f"not one of {options}", "invalid_value")
                return _Call(access.service, {access.field: value}, value, value)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise self._refused(value, "not a finite number", "invalid_value")
        command = self.command()
        low, high = command.minimum, command.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise self._refused(value, f"outside [{low}, {high}]", "out_of_range")
        units = self._units(state)
        low, high, step = _entity_limits(self._hass, access, state)
        shown = units.to_entity(float(value))
        # On the entity's own step from its minimum, within its range.
        base = low or 0.0
        shown = base + round((shown - base) / step) * step if step else shown
        shown = shown if low is None else max(low, shown)
        shown = round(shown if high is None else min(high, shown), 10)
        written = _rounded(units.to_metric(shown))
        tolerance = 1e-9 + (step or 0.0) / 1000
        return _Call(access.service, {access.field: shown}, shown, written, tolerance)

    def follows(self, state: State | None, call: _Call) -> bool:
        """Whether ``state`` shows what ``call`` wrote."""
        shown, wanted = self._shown(state), call.shown
        if isinstance(shown, float) and isinstance(wanted, float):
            return math.isclose(shown, wanted, rel_tol=1e-9, abs_tol=call.tolerance)
        return shown == wanted

    def _units(self, state: State) -> _Units:
        units = _Units(self.binding.metric, entity_unit(self._hass, state))
        if not units.fits:
            raise DeviceProtocolError(
                f"{self.entity_id} is in {entity_unit(self._hass, state)}, which is no "
                f"{METRICS[self.binding.metric].unit}"
            )
        return units

    def _refused(self, value: Value, why: str, reason: str) -> WriteRefusedError:
        return WriteRefusedError(
            f"{self.entity_id} cannot take {self.binding.metric} = {value!r}: {why}", reason=reason
        )


class HaActuatorDevice:
    """The device contract over entities of other integrations (see the module's text)."""

    def __init__(
        self,
        hass: HomeAssistant,
        name: str,
        kind: ActuatorKind,
        bindings: tuple[Binding, ...],
        *,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hass = hass
        self._name = name
        self.kind = kind
        self._targets = {binding.metric: _Target(hass, binding) for binding in bindings}
        self._health = HealthTracker(breaker, wall_clock=clock)
        self._clock = clock
        self._identity: DeviceIdentity | None = None

    @property
    def name(self) -> str:
        """The subentry's title."""
        return self._name

    @property
    def asset_type(self) -> AssetType:
        """What the entities make up."""
        return AssetType(self.kind.value)

    @property
    def identity(self) -> DeviceIdentity | None:
        """The maker and model of the device the entities belong to, once connected."""
        return self._identity

    @property
    def bindings(self) -> tuple[Binding, ...]:
        """The mapped commands, in the kind's order."""
        return tuple(target.binding for target in self._targets.values())

    @property
    def commands(self) -> Mapping[str, Command]:
        """Every mapped command, allowed: mapping it is the user's consent."""
        return {metric: target.command() for metric, target in self._targets.items()}

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """The safe state of every command that has one, in the kind's order."""
        return {
            metric: target.binding.safe_value
            for metric, target in self._targets.items()
            if target.binding.safe_value is not None
        }

    @property
    def revert_timer(self) -> str | None:
        """None: the entities revert on nobody's timer but the Dispatcher's leases."""
        return None

    @property
    def health(self) -> Health:
        """Connected while every entity is there and available."""
        return self._health.snapshot()

    @property
    def declared_metrics(self) -> frozenset[str]:
        """The mapped commands, and the temperature a thermostat or water heater measures."""
        measured = {MEASURED[target.binding.domain] for target in self._targets.values()
                    if target.binding.domain in MEASURED}  # fmt: skip
        return frozenset(self._targets) | measured

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """A mode's choices, as its entity offers them."""
        target = self._targets.get(metric)
        if target is None or target.binding.role is not Role.OPTION:
            return None
        return target.profile().options

    @property
    def learned(self) -> Mapping[str, Any]:
        """Nothing: the entities say everything each time."""
        return {}

    async def register_dump(self) -> dict[str, Any] | None:
        """No registers: the subentry's data says which entity carries which command."""
        return None

    async def connect(self) -> DeviceIdentity:
        """Check that every entity is there, and find whose device they belong to."""
        return await self._health.run(self._connect)

    async def _connect(self) -> DeviceIdentity:
        for target in self._targets.values():
            target.state()
        self._identity = self._find_identity()
        return self._identity

    def _find_identity(self) -> DeviceIdentity:
        """The maker and model of the first entity's device that names them; else the
        integration the entities come from."""
        entities, devices = er.async_get(self._hass), dr.async_get(self._hass)
        platform = None
        for entity_id in self._targets_by_entity():
            entry = entities.async_get(entity_id)
            if entry is None:
                continue
            platform = platform or entry.platform
            device = devices.async_get(entry.device_id or "")
            if isinstance(device, dr.DeviceEntry) and device.manufacturer and device.model:
                return DeviceIdentity(device.manufacturer, device.model)
        return DeviceIdentity("Home Assistant", platform or "entities")

    def _targets_by_entity(self) -> list[str]:
        return list(dict.fromkeys(target.entity_id for target in self._targets.values()))

    async def read(self) -> Readings:
        """Every mapped entity's value; :class:`DeviceConnectionError` while one of them is
        gone or unavailable."""
        return await self._health.run(self._read)

    async def _read(self) -> Readings:
        now = self._clock()
        readings: Readings = {}
        for metric, target in self._targets.items():
            state = target.state()
            if (value := target.read(state)) is not None:
                readings[metric] = Reading(metric, value, now)
            measured = MEASURED.get(state.domain)
            if measured is None or measured in readings:
                continue
            temperature = _number(state.attributes.get(CURRENT_TEMPERATURE))
            if temperature is not None:
                units = _Units(measured, entity_unit(self._hass, state))
                readings[measured] = Reading(measured, _rounded(units.to_metric(temperature)), now)
        return readings

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Call the entity's service, then wait (briefly) for its state to show the value.

        Raises :class:`WriteRefusedError` for a command no entity carries or a value the
        entity cannot take, :class:`DeviceConnectionError` while the entity is unavailable,
        :class:`ReadBackMismatchError` when its state does not follow.
        """
        target = self._targets.get(metric)
        if target is None:
            raise WriteRefusedError(
                f"{self._name}: no entity carries {metric}", reason="unknown_command"
            )

        async def exchange() -> tuple[_Call, bool, Value]:
            call = target.call(value)
            return call, *await self._exchange(target, call)

        call, followed, read_back = await self._health.run(exchange)
        if not followed:
            raise ReadBackMismatchError(
                f"{self._name}: {target.entity_id} shows {read_back!r} after being told "
                f"{call.written!r}",
                expected=call.written,
                actual=read_back,
            )
        return WriteResult(metric, value, call.written, read_back, self._clock())

    async def _exchange(self, target: _Target, call: _Call) -> tuple[bool, Value]:
        """The service call; then whether the entity followed (within the wait) and what it
        shows."""
        followed = asyncio.Event()

        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            # Only note it: the write goes on in its own task, never from this callback.
            if target.follows(event.data["new_state"], call):
                followed.set()

        unsubscribe = async_track_state_change_event(self._hass, target.entity_id, changed)
        try:
            await self._call(target, call)
            if not target.follows(self._hass.states.get(target.entity_id), call):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(READ_BACK_TIMEOUT):
                        await followed.wait()
        finally:
            unsubscribe()
        state = target.state()
        return target.follows(state, call), target.read(state)

    async def _call(self, target: _Target, call: _Call) -> None:
        domain, entity_id = target.binding.domain, target.entity_id
        try:
            async with asyncio.timeout(SERVICE_TIMEOUT):
                await self._hass.services.async_call(
                    domain, call.service, {ATTR_ENTITY_ID: entity_id, **call.data}, blocking=True
                )
        except TimeoutError as err:
            raise DeviceTimeoutError(f"{domain}.{call.service} on {entity_id} timed out") from err
        except ServiceNotFound as err:  # its integration is gone: nothing to write to
            raise DeviceConnectionError(f"{entity_id}: {err}") from err
        except (ServiceValidationError, probatio.Invalid) as err:
            raise WriteRefusedError(
                f"{entity_id} refused {call.data}: {err}", reason="invalid_value"
            ) from err
        except HomeAssistantError as err:
            raise DeviceError(f"{domain}.{call.service} on {entity_id} failed: {err}") from err

    async def close(self) -> None:
        """Nothing is held between writes."""
        self._health.connected = False


def actuator_factory(hass: HomeAssistant) -> DeviceFactory:
    """How a site builds its actuator devices; each is registered as a device of its
    subentry, since it has no entities of its own to bring it into the registry."""

    def build(spec: DeviceSpec, context: BuildContext) -> Device:
        kind, bindings = parse_bindings(spec.settings)
        _register(hass, spec)
        return HaActuatorDevice(
            hass, spec.name, kind, bindings, breaker=context.breaker(spec.name), clock=context.clock
        )

    return build


def _register(hass: HomeAssistant, spec: DeviceSpec) -> None:
    """Put the device in the registry under its subentry (actions and the logbook name it)."""
    entries = hass.config_entries.async_entries(DOMAIN)
    entry = next((entry for entry in entries if spec.device_id in entry.subentries), None)
    if entry is not None:
        dr.async_get(hass).async_get_or_create(
            config_entry_id=entry.entry_id,
            config_subentry_id=spec.device_id,
            identifiers={(DOMAIN, spec.device_id)},
            name=spec.name,
        )


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rounded(value: float) -> float:
    """A converted value without the float noise of its conversion."""
    return round(value, 6)


def _tighter(
    pick: Callable[[float, float], float], mine: float | None, theirs: float | None
) -> float | None:
    if mine is None or theirs is None:
        return theirs if mine is None else mine
    return pick(mine, theirs)
