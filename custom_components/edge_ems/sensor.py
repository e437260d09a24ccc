"""Sensors: every metric a device reports that is neither a flag nor a command."""

from __future__ import annotations

from homeassistant.components.sensor import SensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .descriptions import EdgeEmsSensorDescription
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every device of the site."""
    add_device_entities(
        entry,
        async_add_entities,
        EdgeEmsSensor,
        lambda device: device.descriptions.sensors,
    )


class EdgeEmsSensor(EdgeEmsEntity, SensorEntity):
    """One metric's value."""

    entity_description: EdgeEmsSensorDescription

    @property
    def native_value(self) -> StateType:
        """The metric's latest value."""
        value = self._value(self.entity_description.value_fn)
        return int(value) if isinstance(value, bool) else value
