"""The base of every Edge EMS entity: one device's coordinator, registry info, writes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import Context, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from edge_ems.dispatch import AuditRecord
from edge_ems.readings import Quality, Readings, Value

from .audit import call_context, stopped_error
from .const import DOMAIN, SOURCE_HA_ENTITY
from .coordinator import EdgeEmsCoordinator
from .descriptions import ValueFn
from .models import EdgeEmsConfigEntry, EdgeEmsData, EdgeEmsDevice


def device_info(device: EdgeEmsDevice) -> DeviceInfo:
    """The registry entry of one device, from what the device says (or said) about itself."""
    identity = device.member.identity
    if identity is None:
        return DeviceInfo(identifiers={(DOMAIN, device.device_id)}, name=device.name)
    return DeviceInfo(
        identifiers={(DOMAIN, device.device_id)},
        name=device.name,
        manufacturer=identity.manufacturer,
        model=identity.model,
        serial_number=identity.serial,
        sw_version=identity.firmware,
        hw_version=identity.hardware,
    )


def add_device_entities[D: EntityDescription](
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    entity: Callable[[EdgeEmsData, EdgeEmsDevice, D], EdgeEmsEntity],
    descriptions: Callable[[EdgeEmsDevice], Iterable[D]],
) -> None:
    """Add one ``entity`` per description of every device of the site, each under the
    device's subentry (so removing the subentry removes its entities); and, as a device
    reports what it had not before (its first answer after a start without it), the
    entities that brings."""
    site = entry.runtime_data
    for device in site.devices.values():
        adder = _EntityAdder(site, device, entity, descriptions, async_add_entities)
        adder()
        entry.async_on_unload(device.coordinator.async_add_listener(adder))


class _EntityAdder[D: EntityDescription]:
    """Adds one device's entities of one platform, and those each new version brings."""

    def __init__(
        self,
        site: EdgeEmsData,
        device: EdgeEmsDevice,
        entity: Callable[[EdgeEmsData, EdgeEmsDevice, D], EdgeEmsEntity],
        descriptions: Callable[[EdgeEmsDevice], Iterable[D]],
        async_add_entities: AddConfigEntryEntitiesCallback,
    ) -> None:
        self._site, self._device, self._entity = site, device, entity
        self._descriptions, self._add = descriptions, async_add_entities
        self._added: set[str] = set()
        self._version = -1

    @callback
    def __call__(self) -> None:
        device = self._device
        device.refresh_descriptions()
        if device.version == self._version:
            return
        self._version = device.version
        new = [item for item in self._descriptions(device) if item.key not in self._added]
        if new:
            self._added.update(item.key for item in new)
            self._add(
                (self._entity(self._site, device, item) for item in new),
                config_subentry_id=device.subentry_id,
            )


class EdgeEmsEntity(CoordinatorEntity[EdgeEmsCoordinator]):
    """An entity showing one metric of one device."""

    _attr_has_entity_name = True
    _shows_metric = True
    """The entity shows its key's metric (a button shows none)."""

    def __init__(
        self, site: EdgeEmsData, device: EdgeEmsDevice, description: EntityDescription
    ) -> None:
        super().__init__(device.coordinator)
        self.entity_description = description
        self._site = site
        self._device = device
        self._attr_unique_id = f"{device.device_id}_{description.key}"
        self._attr_device_info = device_info(device)

    @property
    def available(self) -> bool:
        """Available while the device answers and this metric's value is fresh and valid."""
        if not super().available:
            return False
        if not self._shows_metric:
            return True
        reading = self.coordinator.data.get(self.entity_description.key)
        return reading is not None and reading.quality is Quality.GOOD

    def _value(self, value_fn: ValueFn) -> Value:
        readings: Readings = self.coordinator.data
        return value_fn(readings)

    async def _write(self, value: Value) -> None:
        """Write through the site's guarded dispatch, as the user behind this call."""
        context = self._context or Context()
        with call_context(context):
            record = await self._site.dispatcher.write(
                self._device.device_id,
                self.entity_description.key,
                value,
                requested_by=context.user_id or SOURCE_HA_ENTITY,
                source=SOURCE_HA_ENTITY,
            )
        self._raise_if_stopped(record)
        await self.coordinator.async_request_refresh()

    def _raise_if_stopped(self, record: AuditRecord) -> None:
        """Tell the caller when a guard refused the write or the device failed it."""
        error = stopped_error(record, site=self._site.site_name, device=self._device.name)
        if error is not None:
            raise error
