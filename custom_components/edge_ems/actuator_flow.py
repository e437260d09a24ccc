"""The subentry flow of an actuator: entities of another integration as one Edge EMS device.

Step one names the device and says what it is; step two picks, for each command that kind
offers, the entity that carries it (any may stay empty, one at least is needed); then one
step per picked entity gives its safe state and, for numbers, its clamps (within the
entity's own minimum and maximum).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import SOURCE_RECONFIGURE, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME, STATE_UNAVAILABLE
from homeassistant.core import split_entity_id
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import selector

from edge_ems.metrics import METRICS

from .actuator import (
    CONF_ACTUATOR_KIND,
    CONF_COMMANDS,
    CONF_ENTITY_ID,
    CONF_MAXIMUM,
    CONF_MINIMUM,
    CONF_SAFE_VALUE,
    KIND_COMMANDS,
    ActuatorKind,
    Profile,
    Role,
    entity_profile,
    role_of,
    units_fit,
)
from .const import DOMAIN, SUBENTRY_ACTUATOR

CONF_SAFE_STATE = "safe_state"
LEAVE = "leave_as_is"
"""The safe state that writes nothing: the entity stays as the lease left it."""
_ON_OFF = {"off": 0, "on": 1}

_FEATURES = {
    ("climate", Role.VALUE): "climate.ClimateEntityFeature.TARGET_TEMPERATURE",
    ("water_heater", Role.VALUE): "water_heater.WaterHeaterEntityFeature.TARGET_TEMPERATURE",
    ("water_heater", Role.OPTION): "water_heater.WaterHeaterEntityFeature.OPERATION_MODE",
}
"""What a thermostat or water heater must support to carry a command of that role."""


def _entity_selector(metric: str, domains: tuple[str, ...]) -> selector.EntitySelector:
    """A picker of the entities that can carry ``metric``."""
    filters = []
    for domain in domains:
        entity_filter = selector.EntityWithDeviceFilterSelectorConfig(domain=domain)
        if (feature := _FEATURES.get((domain, role_of(domain, metric)))) is not None:
            entity_filter["supported_features"] = [feature]
        filters.append(entity_filter)
    return selector.EntitySelector(selector.EntitySelectorConfig(filter=filters))


def _safe_states(options: list[str]) -> selector.SelectSelector:
    """ "Leave as it is" (translated) or one of the entity's choices (as it names them)."""
    return selector.SelectSelector(
        selector.SelectSelectorConfig(
            options=[LEAVE, *options],
            mode=selector.SelectSelectorMode.DROPDOWN,
            translation_key=CONF_SAFE_STATE,
        )
    )


class ActuatorSubentryFlow(ConfigSubentryFlow):
    """An EV charger, heat pump, water heater or switchable load another integration
    provides, driven through the site's guarded dispatch."""

    def __init__(self) -> None:
        self._name = ""
        self._kind = ActuatorKind.EV_CHARGER
        self._picked: dict[str, str] = {}
        self._profiles: dict[str, Profile] = {}
        self._pending: list[str] = []
        self._commands: dict[str, dict[str, Any]] = {}

    def _current(self) -> Mapping[str, Any]:
        """The subentry's data when reconfiguring, else nothing."""
        if self.source == SOURCE_RECONFIGURE:
            return self._get_reconfigure_subentry().data
        return {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The device's name and what it is."""
        if user_input is not None:
            self._name = user_input[CONF_NAME]
            self._kind = ActuatorKind(user_input[CONF_ACTUATOR_KIND])
            return await self.async_step_entities()
        suggested: dict[str, Any] = {}
        if self.source == SOURCE_RECONFIGURE:
            subentry = self._get_reconfigure_subentry()
            suggested = {CONF_NAME: subentry.title, **subentry.data}
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_ACTUATOR_KIND): selector.SelectSelector(
                    selector.SelectSelectorConfig(
                        options=list(ActuatorKind),
                        mode=selector.SelectSelectorMode.LIST,
                        translation_key=CONF_ACTUATOR_KIND,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="user", data_schema=self.add_suggested_values_to_schema(schema, suggested)
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename the device, or change what it is or which entities carry its commands."""
        return await self.async_step_user(user_input)

    async def async_step_entities(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The entity that carries each command the kind offers."""
        offered = KIND_COMMANDS[self._kind]
        errors: dict[str, str] = {}
        if user_input is not None:
            registry = er.async_get(self.hass)
            picked: dict[str, str] = {}
            for metric in offered:
                if raw := user_input.get(metric):
                    picked[metric] = er.async_resolve_entity_id(registry, raw) or raw
            for metric, entity_id in picked.items():
                if (error := self._entity_error(metric, entity_id)) is not None:
                    errors[metric] = error
            if not picked:
                errors["base"] = "no_entity"
            if not errors:
                self._picked, self._pending, self._commands = picked, list(picked), {}
                states = {metric: self.hass.states.get(entity) for metric, entity in picked.items()}
                self._profiles = {
                    metric: entity_profile(self.hass, metric, state)
                    for metric, state in states.items()
                    if state is not None  # every one is: just checked
                }
                return await self._next()
        current = self._current().get(CONF_COMMANDS, {})
        schema = vol.Schema(
            {
                vol.Optional(metric): _entity_selector(metric, domains)
                for metric, domains in offered.items()
            }
        )
        suggested = user_input or {
            metric: command[CONF_ENTITY_ID] for metric, command in current.items()
        }
        return self.async_show_form(
            step_id="entities",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"name": self._name},
        )

    def _entity_error(self, metric: str, entity_id: str) -> str | None:
        """Why ``entity_id`` cannot carry ``metric``, if it cannot."""
        registry_entry = er.async_get(self.hass).async_get(entity_id)
        state = self.hass.states.get(entity_id)
        if "." not in entity_id:
            return "entity_not_found"  # a registry id nothing is registered under
        if split_entity_id(entity_id)[0] not in KIND_COMMANDS[self._kind][metric]:
            return "wrong_domain"
        if registry_entry is not None and registry_entry.platform == DOMAIN:
            return "own_entity"  # Edge EMS driving itself would loop
        if entity_id in self._in_use():
            return "entity_in_use"
        if state is None:
            return "entity_not_found"
        if state.state == STATE_UNAVAILABLE:
            return "entity_unavailable"
        if not units_fit(self.hass, metric, state):
            return "unit_mismatch"
        return None

    def _in_use(self) -> set[str]:
        """Entities another actuator of any site drives already (two would fight)."""
        mine = self._reconfigure_subentry_id if self.source == SOURCE_RECONFIGURE else None
        return {
            command[CONF_ENTITY_ID]
            for entry in self.hass.config_entries.async_entries(DOMAIN)
            for subentry_id, subentry in entry.subentries.items()
            if subentry.subentry_type == SUBENTRY_ACTUATOR and subentry_id != mine
            for command in subentry.data.get(CONF_COMMANDS, {}).values()
        }

    async def _next(self) -> SubentryFlowResult:
        """The step of the next picked entity, or the finished device."""
        if not self._pending:
            return self._finish()
        metric = self._pending[0]
        steps = {
            Role.VALUE: self.async_step_limits,
            Role.OPTION: self.async_step_option,
            Role.ON_OFF: self.async_step_on_off,
        }
        return await steps[role_of(split_entity_id(self._picked[metric])[0], metric)]()

    def _stored(self, metric: str) -> Mapping[str, Any]:
        """What the subentry keeps for ``metric``, if the same entity still carries it."""
        stored: Mapping[str, Any] = self._current().get(CONF_COMMANDS, {}).get(metric, {})
        return stored if stored.get(CONF_ENTITY_ID) == self._picked[metric] else {}

    def _placeholders(self, metric: str) -> dict[str, str]:
        entity_id = self._picked[metric]
        state = self.hass.states.get(entity_id)
        name = state.name if state is not None else entity_id
        return {"command": METRICS[metric].description, "entity": name, "entity_id": entity_id}

    async def async_step_limits(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """A number's clamps (within the entity's range) and its safe value."""
        metric = self._pending[0]
        errors: dict[str, str] = {}
        if user_input is not None:
            low, high = user_input[CONF_MINIMUM], user_input[CONF_MAXIMUM]
            safe = user_input.get(CONF_SAFE_VALUE)
            if low > high:
                errors[CONF_MAXIMUM] = "maximum_below_minimum"
            elif safe is not None and not low <= safe <= high:
                errors[CONF_SAFE_VALUE] = "safe_value_outside_limits"
            else:
                limits = {CONF_MINIMUM: low, CONF_MAXIMUM: high}
                return await self._store(metric, limits, safe)
        entity = self._profiles[metric]
        config = selector.NumberSelectorConfig(
            mode=selector.NumberSelectorMode.BOX, step=entity.step or "any"
        )
        if entity.minimum is not None:
            config["min"] = entity.minimum
        if entity.maximum is not None:
            config["max"] = entity.maximum
        if (unit := METRICS[metric].unit) is not None:
            config["unit_of_measurement"] = unit
        number = selector.NumberSelector(config)
        schema = vol.Schema(
            {
                vol.Required(CONF_MINIMUM): number,
                vol.Required(CONF_MAXIMUM): number,
                vol.Optional(CONF_SAFE_VALUE): number,
            }
        )
        suggested = user_input or {
            CONF_MINIMUM: entity.minimum, CONF_MAXIMUM: entity.maximum, **self._stored(metric)
        }  # fmt: skip
        return self.async_show_form(
            step_id="limits",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=self._placeholders(metric),
        )

    async def async_step_option(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """A mode's safe choice: one of the entity's options, or none."""
        metric = self._pending[0]
        if user_input is not None:
            choice = user_input[CONF_SAFE_STATE]
            return await self._store(metric, {}, None if choice == LEAVE else choice)
        options = list(self._profiles[metric].options)
        return self._show_safe_state("option", metric, options)

    async def async_step_on_off(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """A switch's safe state: off, on, or as it is."""
        metric = self._pending[0]
        if user_input is not None:
            return await self._store(metric, {}, _ON_OFF.get(user_input[CONF_SAFE_STATE]))
        return self._show_safe_state("on_off", metric, list(_ON_OFF))

    def _show_safe_state(self, step_id: str, metric: str, options: list[str]) -> SubentryFlowResult:
        stored = self._stored(metric).get(CONF_SAFE_VALUE)
        named = {value: name for name, value in _ON_OFF.items()} if step_id == "on_off" else {}
        schema = vol.Schema({vol.Required(CONF_SAFE_STATE, default=LEAVE): _safe_states(options)})
        suggested = {} if stored is None else {CONF_SAFE_STATE: named.get(stored, stored)}
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            description_placeholders=self._placeholders(metric),
        )

    async def _store(
        self, metric: str, settings: dict[str, Any], safe_value: float | str | None
    ) -> SubentryFlowResult:
        command = {CONF_ENTITY_ID: self._picked[metric], **settings}
        if safe_value is not None:
            command[CONF_SAFE_VALUE] = safe_value
        self._commands[metric] = command
        self._pending.pop(0)
        return await self._next()

    def _finish(self) -> SubentryFlowResult:
        data = {CONF_ACTUATOR_KIND: self._kind.value, CONF_COMMANDS: self._commands}
        if self.source == SOURCE_RECONFIGURE:
            # Updating the subentry reloads the site through its update listener.
            return self.async_update_and_abort(
                self._get_entry(), self._get_reconfigure_subentry(), title=self._name, data=data
            )
        return self.async_create_entry(title=self._name, data=data)
