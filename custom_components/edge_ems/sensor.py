"""Sensors: every metric a device reports that is neither a flag nor a command, and what
the site's plan says about now, today and tomorrow."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from edge_ems.planner.site_plan import SitePlan

from .descriptions import EdgeEmsSensorDescription
from .entity import EdgeEmsEntity, add_device_entities
from .models import EdgeEmsConfigEntry
from .plan import PlanCoordinator, plan_device_info

PARALLEL_UPDATES = 0

PLAN_STATUSES = ["optimal", "time_limit", "fallback"]
"""The planner's plan statuses (edge_ems.planner.plan.PlanStatus, which needs numpy)."""


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeEmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every device of the site, and the plan's when a hub plans it."""
    add_device_entities(
        entry,
        async_add_entities,
        EdgeEmsSensor,
        lambda device: device.descriptions.sensors,
    )
    if (plan := entry.runtime_data.plan) is not None:
        async_add_entities(PlanSensor(entry, plan, description) for description in PLAN_SENSORS)


class EdgeEmsSensor(EdgeEmsEntity, SensorEntity):
    """One metric's value."""

    entity_description: EdgeEmsSensorDescription

    @property
    def native_value(self) -> StateType:
        """The metric's latest value."""
        value = self._value(self.entity_description.value_fn)
        return int(value) if isinstance(value, bool) else value


type PlanValue = StateType | datetime


@dataclass(frozen=True, kw_only=True)
class PlanSensorDescription(SensorEntityDescription):
    """A question asked of the plan at a moment."""

    value_fn: Callable[[SitePlan, datetime], PlanValue]
    attributes_fn: Callable[[SitePlan, datetime], Mapping[str, Any]] | None = None
    unit_fn: Callable[[SitePlan], str] | None = None
    """The unit, when it is the plan's currency."""


def _per_kwh(plan: SitePlan) -> str:
    return f"{plan.currency}/kWh"


def _currency(plan: SitePlan) -> str:
    return plan.currency


def _cheap_window(plan: SitePlan, now: datetime) -> datetime | None:
    window = plan.next_cheap_window(now)
    return None if window is None else window.start


def _cheap_window_attributes(plan: SitePlan, now: datetime) -> Mapping[str, Any]:
    window = plan.next_cheap_window(now)
    if window is None:
        return {}
    return {
        "end": window.end.isoformat(),
        "mean_price": round(window.mean_price, 5),
        "threshold": round(window.threshold, 5),
    }


def _battery_attributes(plan: SitePlan, now: datetime) -> Mapping[str, Any]:
    step = plan.step_at(now)
    if step is None:
        return {}
    return {battery: power[step] for battery, power in plan.battery_power_w.items()}


def _today(plan: SitePlan, now: datetime) -> PlanValue:
    return _rounded(plan.cost_on(dt_util.as_local(now).date(), now))


def _tomorrow(plan: SitePlan, now: datetime) -> PlanValue:
    return _rounded(plan.cost_on(dt_util.as_local(now).date() + timedelta(days=1), now))


def _savings(plan: SitePlan, now: datetime) -> PlanValue:
    day = plan.savings_on(dt_util.as_local(now).date())
    return None if day is None else round(day.savings_vs_self_consumption, 2)


def _savings_attributes(plan: SitePlan, now: datetime) -> Mapping[str, Any]:
    day = plan.savings_on(dt_util.as_local(now).date())
    if day is None:
        return {}
    return {
        "vs_no_battery": round(day.savings_vs_no_battery, 2),
        "measured_cost": round(day.actual_cost, 2),
        "measured_until": day.until.isoformat(),
    }


def _status_attributes(plan: SitePlan, _now: datetime) -> Mapping[str, Any]:
    return {
        "version": plan.version,
        "made_at": plan.made_at.isoformat(),
        "start": plan.start.isoformat(),
        "end": plan.end.isoformat(),
        "shortfalls": [shortfall.get("message", "") for shortfall in plan.shortfalls],
    }


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


PLAN_SENSORS: tuple[PlanSensorDescription, ...] = (
    PlanSensorDescription(
        key="plan_status",
        translation_key="plan_status",
        device_class=SensorDeviceClass.ENUM,
        options=PLAN_STATUSES,
        value_fn=lambda plan, _now: plan.status if plan.status in PLAN_STATUSES else None,
        attributes_fn=_status_attributes,
    ),
    PlanSensorDescription(
        key="plan_spot_price",
        translation_key="plan_spot_price",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=4,
        value_fn=lambda plan, now: plan.spot_price_at(now),
        unit_fn=_per_kwh,
    ),
    PlanSensorDescription(
        key="plan_import_price",
        translation_key="plan_import_price",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=4,
        value_fn=lambda plan, now: plan.import_price_at(now),
        unit_fn=_per_kwh,
    ),
    PlanSensorDescription(
        key="plan_export_price",
        translation_key="plan_export_price",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=4,
        value_fn=lambda plan, now: plan.export_price_at(now),
        unit_fn=_per_kwh,
    ),
    PlanSensorDescription(
        key="plan_next_cheap_window",
        translation_key="plan_next_cheap_window",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_cheap_window,
        attributes_fn=_cheap_window_attributes,
    ),
    PlanSensorDescription(
        key="plan_battery_power",
        translation_key="plan_battery_power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        value_fn=lambda plan, now: _rounded(plan.battery_power_at(now), 1),
        attributes_fn=_battery_attributes,
    ),
    PlanSensorDescription(
        key="plan_cost_today",
        translation_key="plan_cost_today",
        device_class=SensorDeviceClass.MONETARY,
        value_fn=_today,
        unit_fn=_currency,
    ),
    PlanSensorDescription(
        key="plan_cost_tomorrow",
        translation_key="plan_cost_tomorrow",
        device_class=SensorDeviceClass.MONETARY,
        value_fn=_tomorrow,
        unit_fn=_currency,
    ),
    PlanSensorDescription(
        key="plan_savings_today",
        translation_key="plan_savings_today",
        device_class=SensorDeviceClass.MONETARY,
        value_fn=_savings,
        attributes_fn=_savings_attributes,
        unit_fn=_currency,
    ),
)


class PlanSensor(CoordinatorEntity[PlanCoordinator], SensorEntity):
    """What the site's plan says, now."""

    _attr_has_entity_name = True
    entity_description: PlanSensorDescription

    def __init__(
        self,
        entry: EdgeEmsConfigEntry,
        coordinator: PlanCoordinator,
        description: PlanSensorDescription,
    ) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = plan_device_info(entry)

    @property
    def available(self) -> bool:
        """Available once the hub has sent a plan."""
        return super().available and self.coordinator.data is not None

    @property
    def native_value(self) -> PlanValue:
        """The answer for now; unknown when the plan does not cover now."""
        plan = self.coordinator.data
        return None if plan is None else self.entity_description.value_fn(plan, dt_util.utcnow())

    @property
    def native_unit_of_measurement(self) -> str | None:
        """The description's unit, or the plan's currency."""
        description = self.entity_description
        plan = self.coordinator.data
        if description.unit_fn is not None and plan is not None:
            return description.unit_fn(plan)
        return description.native_unit_of_measurement

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Details behind the answer (a window's end, each battery's power...)."""
        plan = self.coordinator.data
        attributes_fn = self.entity_description.attributes_fn
        if plan is None or attributes_fn is None:
            return None
        return attributes_fn(plan, dt_util.utcnow())
