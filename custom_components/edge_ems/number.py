"""Numbers: writable setpoints and limits, written through the site's guarded dispatch."""

from __future__ import annotations

from homeassistant.components.number import NumberEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .descriptions import EdgeEmsNumberDescription
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the setpoints of every device of the site."""
    add_device_entities(
        entry,
        async_add_entities,
        EdgeEmsNumber,
        lambda device: device.descriptions.numbers,
    )


class EdgeEmsNumber(EdgeEmsEntity, NumberEntity):
    """A setpoint the device holds."""

    entity_description: EdgeEmsNumberDescription

    @property
    def native_value(self) -> float | None:
        """The value the device holds now."""
        value = self._value(self.entity_description.value_fn)
        return float(value) if isinstance(value, int | float) else None

    async def async_set_native_value(self, value: float) -> None:
        """Ask dispatch to write the value."""
        await self._write(int(value) if value.is_integer() else value)
