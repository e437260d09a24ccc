"""Binary sensors: fault flags and alarm bitfields (on while any alarm bit is set)."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .descriptions import EdgeEmsBinarySensorDescription
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the alarm sensors of every device of the site."""
    add_device_entities(
        entry,
        async_add_entities,
        EdgeEmsBinarySensor,
        lambda device: device.descriptions.binary_sensors,
    )


class EdgeEmsBinarySensor(EdgeEmsEntity, BinarySensorEntity):
    """A flag, or a bitfield that is on while any bit is set."""

    entity_description: EdgeEmsBinarySensorDescription

    @property
    def is_on(self) -> bool | None:
        """Whether the flag or any alarm bit is set."""
        value = self._value(self.entity_description.value_fn)
        return None if value is None else bool(value)
