"""Switches: writable on/off settings (a 0 or 1 register)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .descriptions import EdgeEmsSwitchDescription
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the on/off settings of every device of the site."""
    add_device_entities(
        entry,
        async_add_entities,
        EdgeEmsSwitch,
        lambda device: device.descriptions.switches,
    )


class EdgeEmsSwitch(EdgeEmsEntity, SwitchEntity):
    """An on/off setting the device holds."""

    entity_description: EdgeEmsSwitchDescription

    @property
    def is_on(self) -> bool | None:
        """Whether the setting is on."""
        value = self._value(self.entity_description.value_fn)
        return None if value is None else bool(value)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Ask dispatch to turn the setting on."""
        await self._write(1)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Ask dispatch to turn the setting off."""
        await self._write(0)
