"""Selects: work modes and other writable settings with named values."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .descriptions import EdgeEmsSelectDescription
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the mode selects of every device of the site."""
    add_device_entities(
        entry,
        async_add_entities,
        EdgeEmsSelect,
        lambda device: device.descriptions.selects,
    )


class EdgeEmsSelect(EdgeEmsEntity, SelectEntity):
    """A mode the device is in."""

    entity_description: EdgeEmsSelectDescription

    @property
    def current_option(self) -> str | None:
        """The mode the device reports."""
        value = self._value(self.entity_description.value_fn)
        return value if isinstance(value, str) and value in self.options else None

    async def async_select_option(self, option: str) -> None:
        """Ask dispatch to write the mode."""
        await self._write(option)
