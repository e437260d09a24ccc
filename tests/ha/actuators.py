"""Entities of "another integration" for the actuator tests: real Home Assistant entities of
the number, select, switch, climate and water heater domains, added through a test platform
as Home Assistant's own tests add them, and driven through Home Assistant's real services.

Each follows what it is told at once, after ``delay`` seconds, or not at all (``follows``);
``fail`` makes its service raise what the integration behind it would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from homeassistant.components.climate import ClimateEntity, ClimateEntityFeature, HVACMode
from homeassistant.components.number import NumberEntity, NumberMode
from homeassistant.components.select import SelectEntity
from homeassistant.components.switch import SwitchEntity
from homeassistant.components.water_heater import WaterHeaterEntity, WaterHeaterEntityFeature
from homeassistant.const import ATTR_TEMPERATURE, UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import setup_test_component_platform


class _Behaviour(Entity):
    """How an entity of the other integration answers a change."""

    _attr_should_poll = False
    _attr_has_entity_name = False
    follows = True
    delay = 0.0
    pause = 0.0
    """Seconds the service takes (a slow cloud)."""
    fail: Exception | None = None

    def __init__(self, name: str) -> None:
        self._attr_name = name
        self._attr_unique_id = name.lower().replace(" ", "_")

    async def _change(self, **attributes: Any) -> None:
        if self.pause:
            await asyncio.sleep(self.pause)
        if self.fail is not None:
            raise self.fail
        if not self.follows:
            return

        def apply() -> None:
            for attribute, value in attributes.items():
                setattr(self, attribute, value)
            self.async_write_ha_state()

        if self.delay:
            self.hass.loop.call_later(self.delay, apply)
        else:
            apply()

    def go_away(self) -> None:
        """Become unavailable (the integration lost its device)."""
        self._attr_available = False
        self.async_write_ha_state()

    def come_back(self) -> None:
        """Become available again."""
        self._attr_available = True
        self.async_write_ha_state()


class Knob(_Behaviour, NumberEntity):
    """A number: a charge current, a power limit."""

    _attr_mode = NumberMode.BOX

    def __init__(
        self, name: str, value: float, low: float, high: float, step: float, unit: str | None
    ) -> None:
        super().__init__(name)
        self._attr_native_value = value
        self._attr_native_min_value = low
        self._attr_native_max_value = high
        self._attr_native_step = step
        self._attr_native_unit_of_measurement = unit

    async def async_set_native_value(self, value: float) -> None:
        """Take the value."""
        await self._change(_attr_native_value=value)


class Relay(_Behaviour, SwitchEntity):
    """A switch: a charger's permission to charge, a boiler's heating element."""

    def __init__(self, name: str, on: bool) -> None:
        super().__init__(name)
        self._attr_is_on = on

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Turn on."""
        await self._change(_attr_is_on=True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Turn off."""
        await self._change(_attr_is_on=False)


class Chooser(_Behaviour, SelectEntity):
    """A select: SG Ready, a charger's phases, a heat pump's mode."""

    def __init__(self, name: str, options: Sequence[str], current: str) -> None:
        super().__init__(name)
        self._attr_options = list(options)
        self._attr_current_option = current

    async def async_select_option(self, option: str) -> None:
        """Take the option."""
        await self._change(_attr_current_option=option)


class Thermostat(_Behaviour, ClimateEntity):
    """A heat pump's thermostat: its HVAC mode and target room temperature."""

    _attr_hvac_modes: ClassVar[list[HVACMode]] = [HVACMode.OFF, HVACMode.HEAT, HVACMode.AUTO]
    _attr_supported_features = (
        ClimateEntityFeature.TARGET_TEMPERATURE
        | ClimateEntityFeature.TURN_ON
        | ClimateEntityFeature.TURN_OFF
    )
    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_min_temp = 5.0
    _attr_max_temp = 30.0
    _attr_target_temperature_step = 0.5

    def __init__(self, name: str, mode: HVACMode, target: float, current: float) -> None:
        super().__init__(name)
        self._attr_hvac_mode = mode
        self._attr_target_temperature = target
        self._attr_current_temperature = current

    async def async_set_hvac_mode(self, hvac_mode: HVACMode) -> None:
        """Take the mode."""
        await self._change(_attr_hvac_mode=hvac_mode)

    async def async_set_temperature(self, **kwargs: Any) -> None:
        """Take the target temperature."""
        await self._change(_attr_target_temperature=kwargs[ATTR_TEMPERATURE])


class Boiler(_Behaviour, WaterHeaterEntity):
    """A water heater: its operation mode and target temperature."""

    _attr_supported_features = (
        WaterHeaterEntityFeature.TARGET_TEMPERATURE | WaterHeaterEntityFeature.OPERATION_MODE
    )
    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_operation_list: ClassVar[list[str]] = ["eco", "electric", "off"]
    _attr_min_temp = 40.0
    _attr_max_temp = 65.0

    def __init__(self, name: str, mode: str, target: float, current: float) -> None:
        super().__init__(name)
        self._attr_current_operation = mode
        self._attr_target_temperature = target
        self._attr_current_temperature = current

    async def async_set_operation_mode(self, operation_mode: str) -> None:
        """Take the mode."""
        await self._change(_attr_current_operation=operation_mode)

    async def async_set_temperature(self, **kwargs: Any) -> None:
        """Take the target temperature."""
        await self._change(_attr_target_temperature=kwargs[ATTR_TEMPERATURE])


async def add_entities(hass: HomeAssistant, *entities: _Behaviour) -> None:
    """Set each entity's domain up with a test platform holding it (as an integration would)."""
    by_domain: dict[str, list[_Behaviour]] = {}
    domains = {
        Knob: "number", Relay: "switch", Chooser: "select", Thermostat: "climate",
        Boiler: "water_heater",
    }  # fmt: skip
    for entity in entities:
        by_domain.setdefault(domains[type(entity)], []).append(entity)
    for domain, members in by_domain.items():
        setup_test_component_platform(hass, domain, members)
        assert await async_setup_component(hass, domain, {domain: {"platform": "test"}})
    await hass.async_block_till_done()
