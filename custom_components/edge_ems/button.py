"""Buttons: hand a battery back to its own control now (its safe mode), ending any lease."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from edge_ems.metrics import BATTERY_POWER

from .audit import call_context
from .const import SOURCE_HA_ENTITY
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry, EdgeEmsDevice

PARALLEL_UPDATES = 1

RELEASE = ButtonEntityDescription(
    key="release", translation_key="release", entity_category=EntityCategory.CONFIG
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a release button to every device that takes battery power setpoints."""
    add_device_entities(entry, async_add_entities, EdgeEmsReleaseButton, _release)


def _release(device: EdgeEmsDevice) -> tuple[ButtonEntityDescription, ...]:
    command = device.member.device.commands.get(BATTERY_POWER)
    return (RELEASE,) if command is not None and command.allow_write else ()


class EdgeEmsReleaseButton(EdgeEmsEntity, ButtonEntity):
    """Return the battery to its safe mode through the site's dispatch."""

    _shows_metric = False

    async def async_press(self) -> None:
        """Release the battery now."""
        context = self._context or Context()
        with call_context(context):
            records = await self._site.dispatcher.release(
                requested_by=context.user_id or SOURCE_HA_ENTITY,
                source=SOURCE_HA_ENTITY,
                asset_id=self._device.device_id,
            )
        for record in records:
            self._raise_if_stopped(record)
