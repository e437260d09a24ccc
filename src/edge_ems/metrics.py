"""The metric vocabulary: every quantity Edge EMS knows, named once.

Every point in every point map names one of these metrics, so entities, stored series, uplink
payloads and planner inputs all speak the same language: a Deye and a SunSpec inverter look
the same above the device layer.

Units, device classes and state classes are Home Assistant's string values, kept as plain
strings so the library does not depend on Home Assistant.

Signs: asset power is positive when the asset delivers to the site bus (PV generation,
battery discharge) and negative when it consumes (battery charge, EV charging, heat pump).
Grid power is positive on import. Both match Home Assistant's Energy dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


class MetricKind(StrEnum):
    """What a metric's values are, which decides how upper layers present them."""

    MEASUREMENT = "measurement"  # a number sampled now
    COUNTER = "counter"  # a number that accumulates (energy meters)
    STATE = "state"  # a code with named values (enum)
    FLAG = "flag"  # on/off
    FLAGS = "flags"  # a bitfield of named alarms or status bits
    SETTING = "setting"  # a writable value: setpoint, limit, mode
    IDENTITY = "identity"  # who the device is: serial, model, firmware
    TEXT = "text"  # free text read from the device


class Category(StrEnum):
    """Which part of a site a metric describes."""

    AC = "ac"
    PV = "pv"
    BATTERY = "battery"
    GRID = "grid"
    LOAD = "load"
    EV = "ev"
    HEAT_PUMP = "heat_pump"
    TRACKER = "tracker"
    WEATHER = "weather"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class Metric:
    """One canonical quantity."""

    name: str
    description: str
    kind: MetricKind
    category: Category
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    diagnostic: bool = False
    """Shown under the device's diagnostics rather than with its main readings."""
    noisy: bool = False
    """Changes often and matters rarely: upper layers keep it disabled by default."""


BATTERY_POWER = "battery_power_setpoint_w"
"""The command a battery asset offers for power dispatch (+ discharge, - charge)."""
BATTERY_POWER_CONTROL = "battery_power_control_enabled"
"""Whether a battery's own charge/discharge limits are overridden (a storage window)."""
LEASED_METRICS = frozenset({BATTERY_POWER, BATTERY_POWER_CONTROL})
"""Commands only ever written as leases, whatever the device: what is written must lapse
back to the device's own control when nobody renews it."""

PHASES = ("l1", "l2", "l3")
PHASE_PAIRS = ("l1_l2", "l2_l3", "l3_l1")
PV_STRINGS = tuple(f"pv{index}" for index in range(1, 7))

_M = MetricKind
_C = Category


class _Factory(Protocol):
    def __call__(
        self,
        name: str,
        description: str,
        category: Category,
        *,
        diagnostic: bool = False,
        noisy: bool = False,
    ) -> Metric: ...


# Kind, unit, device class and state class of each quantity that many metrics share.
_QUANTITIES: Mapping[str, tuple[MetricKind, str | None, str | None, str | None]] = {
    "power": (_M.MEASUREMENT, "W", "power", "measurement"),
    "energy": (_M.COUNTER, "Wh", "energy", "total_increasing"),
    "voltage": (_M.MEASUREMENT, "V", "voltage", "measurement"),
    "current": (_M.MEASUREMENT, "A", "current", "measurement"),
    "temperature": (_M.MEASUREMENT, "°C", "temperature", "measurement"),
    "duration": (_M.MEASUREMENT, "s", "duration", "measurement"),
    "state": (_M.STATE, None, "enum", None),
}


def _quantity(quantity: str) -> _Factory:
    kind, unit, device_class, state_class = _QUANTITIES[quantity]

    def make(
        name: str,
        description: str,
        category: Category,
        *,
        diagnostic: bool = False,
        noisy: bool = False,
    ) -> Metric:
        return Metric(
            name, description, kind, category, unit, device_class, state_class,
            diagnostic=diagnostic, noisy=noisy,
        )  # fmt: skip

    return make


_power, _energy, _voltage, _current, _temperature, _duration, _state = (
    _quantity(quantity) for quantity in _QUANTITIES
)


def _setting(
    name: str, description: str, category: Category, unit: str | None, device_class: str | None
) -> Metric:
    """A value the device is told; shown, it is a measurement like any other with a unit."""
    state_class = "measurement" if unit is not None else None
    return Metric(name, description, _M.SETTING, category, unit, device_class, state_class)


def _flags(name: str, description: str, category: Category, *, problem: bool = True) -> Metric:
    """A bitfield; on (any bit set) is a problem unless it only reports status."""
    device_class = "problem" if problem else None
    return Metric(name, description, _M.FLAGS, category, device_class=device_class, diagnostic=True)


def _identity(name: str, description: str) -> Metric:
    return Metric(name, description, _M.IDENTITY, _C.DEVICE, diagnostic=True)


def _ac() -> Iterable[Metric]:
    yield _power("ac_power_w", "AC active power of the asset (+ delivers to the site)", _C.AC)
    yield Metric(
        "ac_reactive_power_var", "AC reactive power", _M.MEASUREMENT, _C.AC, "var",
        "reactive_power", "measurement", noisy=True,
    )  # fmt: skip
    yield Metric(
        "ac_apparent_power_va", "AC apparent power", _M.MEASUREMENT, _C.AC, "VA",
        "apparent_power", "measurement", noisy=True,
    )  # fmt: skip
    yield Metric(
        "ac_power_factor", "AC power factor (-1 to 1)", _M.MEASUREMENT, _C.AC, None,
        "power_factor", "measurement", noisy=True,
    )  # fmt: skip
    yield Metric(
        "ac_frequency_hz", "AC frequency", _M.MEASUREMENT, _C.AC, "Hz", "frequency",
        "measurement", noisy=True,
    )  # fmt: skip
    yield _current("ac_current_a", "AC current, sum of phases", _C.AC, noisy=True)
    for phase in PHASES:
        upper = phase.upper()
        yield _voltage(f"ac_voltage_{phase}_v", f"AC voltage {upper} to neutral", _C.AC, noisy=True)
        yield _current(f"ac_current_{phase}_a", f"AC current on {upper}", _C.AC, noisy=True)
        yield _power(f"ac_power_{phase}_w", f"AC active power on {upper}", _C.AC, noisy=True)
    for pair in PHASE_PAIRS:
        label = pair.upper().replace("_", "-")
        yield _voltage(f"ac_voltage_{pair}_v", f"AC line voltage {label}", _C.AC, noisy=True)
    yield _energy("ac_energy_out_wh", "AC energy delivered by the asset, lifetime", _C.AC)
    yield _energy("ac_energy_in_wh", "AC energy consumed by the asset, lifetime", _C.AC)


def _pv() -> Iterable[Metric]:
    yield _power("pv_power_w", "PV (DC) power, all strings", _C.PV)
    yield _energy("pv_energy_wh", "PV energy produced, lifetime", _C.PV)
    yield Metric(
        "pv_energy_today_wh", "PV energy produced today", _M.COUNTER, _C.PV, "Wh", "energy",
        "total_increasing",
    )  # fmt: skip
    yield _voltage("dc_voltage_v", "DC input voltage", _C.PV, noisy=True)
    yield _current("dc_current_a", "DC input current", _C.PV, noisy=True)
    for string in PV_STRINGS:
        upper = string.upper()
        yield _power(f"{string}_power_w", f"{upper} string power", _C.PV, noisy=True)
        yield _voltage(f"{string}_voltage_v", f"{upper} string voltage", _C.PV, noisy=True)
        yield _current(f"{string}_current_a", f"{upper} string current", _C.PV, noisy=True)


def _battery() -> Iterable[Metric]:
    yield _power("battery_power_w", "Battery power (+ discharge, - charge)", _C.BATTERY)
    yield _voltage("battery_voltage_v", "Battery voltage", _C.BATTERY)
    yield _current("battery_current_a", "Battery current (+ discharge, - charge)", _C.BATTERY)
    yield _temperature("battery_temperature_c", "Battery temperature", _C.BATTERY)
    yield Metric(
        "soc_pct", "Battery state of charge", _M.MEASUREMENT, _C.BATTERY, "%", "battery",
        "measurement",
    )  # fmt: skip
    yield Metric(
        "soh_pct", "Battery state of health", _M.MEASUREMENT, _C.BATTERY, "%", None,
        "measurement", diagnostic=True,
    )  # fmt: skip
    yield _energy(
        "battery_charge_energy_wh", "Energy charged into the battery, lifetime", _C.BATTERY
    )
    yield _energy(
        "battery_discharge_energy_wh", "Energy discharged from the battery, lifetime", _C.BATTERY
    )
    yield Metric(
        "battery_capacity_wh", "Usable battery capacity", _M.MEASUREMENT, _C.BATTERY, "Wh",
        "energy_storage", "measurement", diagnostic=True,
    )  # fmt: skip
    yield Metric(
        "battery_capacity_ah", "Battery capacity", _M.MEASUREMENT, _C.BATTERY, "Ah", None,
        "measurement", diagnostic=True,
    )  # fmt: skip
    yield _current(
        "battery_charge_current_limit_a", "Charge current the BMS allows", _C.BATTERY,
        diagnostic=True,
    )  # fmt: skip
    yield _current(
        "battery_discharge_current_limit_a", "Discharge current the BMS allows", _C.BATTERY,
        diagnostic=True,
    )  # fmt: skip
    yield _voltage(
        "battery_charge_voltage_limit_v", "Charge voltage the BMS allows", _C.BATTERY,
        diagnostic=True,
    )  # fmt: skip
    yield _voltage(
        "battery_discharge_voltage_limit_v", "Lowest discharge voltage the BMS allows",
        _C.BATTERY, diagnostic=True,
    )  # fmt: skip
    yield _voltage("cell_voltage_min_v", "Lowest cell voltage", _C.BATTERY, diagnostic=True)
    yield _voltage("cell_voltage_max_v", "Highest cell voltage", _C.BATTERY, diagnostic=True)
    yield _temperature(
        "cell_temperature_min_c", "Lowest cell temperature", _C.BATTERY, diagnostic=True
    )
    yield _temperature(
        "cell_temperature_max_c", "Highest cell temperature", _C.BATTERY, diagnostic=True
    )
    yield Metric(
        "battery_module_count", "Battery modules present", _M.MEASUREMENT, _C.BATTERY,
        diagnostic=True,
    )  # fmt: skip
    yield Metric(
        "battery_cycle_count", "Full charge-discharge cycles the BMS counted", _M.COUNTER,
        _C.BATTERY, None, None, "total_increasing", diagnostic=True,
    )  # fmt: skip
    yield _flags("bms_alarms", "BMS protection alarms", _C.BATTERY)
    yield _flags("bms_warnings", "BMS warnings", _C.BATTERY)
    yield _flags("bms_requests", "BMS charge and discharge requests", _C.BATTERY, problem=False)
    yield _state("battery_state", "Battery operating state", _C.BATTERY)
    yield _setting(
        BATTERY_POWER, "Commanded battery power (+ discharge, - charge)",
        _C.BATTERY, "W", "power",
    )  # fmt: skip
    yield _setting(
        "battery_charge_current_max_a", "Largest charge current the inverter may use",
        _C.BATTERY, "A", "current",
    )  # fmt: skip
    yield _setting(
        "battery_discharge_current_max_a", "Largest discharge current the inverter may use",
        _C.BATTERY, "A", "current",
    )  # fmt: skip
    yield _setting(
        "battery_grid_charge_current_a", "Current for charging the battery from the grid",
        _C.BATTERY, "A", "current",
    )  # fmt: skip
    yield _setting(
        "battery_grid_charge_enabled", "Battery may charge from the grid", _C.BATTERY, None, None
    )
    yield _setting(
        "soc_min_pct", "Discharge stops below this state of charge", _C.BATTERY, "%", "battery"
    )
    yield _setting(
        "soc_max_pct", "Charge stops above this state of charge", _C.BATTERY, "%", "battery"
    )
    yield _setting(
        "soc_target_pct",
        "State of charge to reach in the current period",
        _C.BATTERY,
        "%",
        "battery",
    )


def _grid() -> Iterable[Metric]:
    yield _power("grid_power_w", "Grid power (+ import, - export)", _C.GRID)
    for phase in PHASES:
        upper = phase.upper()
        yield _power(
            f"grid_power_{phase}_w", f"Grid power on {upper} (+ import)", _C.GRID, noisy=True
        )
    yield _energy("grid_import_energy_wh", "Energy imported from the grid, lifetime", _C.GRID)
    yield _energy("grid_export_energy_wh", "Energy exported to the grid, lifetime", _C.GRID)
    yield Metric(
        "grid_reactive_energy_varh", "Reactive energy, lifetime", _M.COUNTER, _C.GRID, "varh",
        "reactive_energy", "total_increasing", noisy=True,
    )  # fmt: skip
    yield _setting(
        "grid_export_limit_w", "Largest power the site may export", _C.GRID, "W", "power"
    )
    yield _setting(
        "grid_import_limit_w", "Largest power the site may import", _C.GRID, "W", "power"
    )
    yield _setting("grid_export_enabled", "Site may export to the grid", _C.GRID, None, None)


def _load() -> Iterable[Metric]:
    yield Metric(
        "load_power_w", "Site load (+ consumes)", _M.MEASUREMENT, _C.LOAD, "W", "power",
        "measurement",
    )  # fmt: skip
    yield _energy("load_energy_wh", "Energy consumed by the site load, lifetime", _C.LOAD)
    yield _setting("load_enabled", "A switchable load may run", _C.LOAD, None, None)


def _inverter_controls() -> Iterable[Metric]:
    yield _state("inverter_state", "Operating state of the inverter", _C.DEVICE)
    yield _setting("work_mode", "Work mode of a hybrid inverter", _C.DEVICE, None, "enum")
    yield _setting(
        "active_power_limit_pct", "Active power limit, share of rated power", _C.AC, "%", None
    )
    yield _setting("active_power_limit_enabled", "Active power limit in force", _C.AC, None, None)
    yield _setting(
        BATTERY_POWER_CONTROL, "Storage charge/discharge limits in force", _C.BATTERY,
        None, None,
    )  # fmt: skip
    yield _setting("active_power_limit_w", "Active power limit", _C.AC, "W", "power")
    yield _setting(
        "reactive_power_setpoint_var", "Reactive power setpoint", _C.AC, "var", "reactive_power"
    )
    yield _setting("power_factor_setpoint", "Power factor setpoint", _C.AC, None, "power_factor")
    yield _setting(
        "control_revert_timeout_s",
        "Device reverts a setpoint after this long",
        _C.DEVICE,
        "s",
        "duration",
    )
    yield _duration(
        "control_revert_remaining_s", "Time left before the device reverts to its own control",
        _C.DEVICE, diagnostic=True, noisy=True,
    )  # fmt: skip
    yield _setting("control_enabled", "Device accepts remote control", _C.DEVICE, None, None)
    yield _setting(
        "energy_management_mode",
        "What a hybrid inverter serves first from PV: the battery or the load",
        _C.DEVICE, None, "enum",
    )  # fmt: skip
    yield _setting(
        "tou_enabled", "The inverter's own time-of-use programme is in force", _C.DEVICE, None,
        None,
    )  # fmt: skip
    # The first time-of-use slot: enough for a planner to steer a hybrid inverter through it.
    yield _setting(
        "tou_slot1_start", "Start of time-of-use slot 1 (hours * 100 + minutes)", _C.DEVICE,
        None, None,
    )  # fmt: skip
    yield _setting(
        "tou_slot1_power_w", "Largest battery power in time-of-use slot 1", _C.BATTERY, "W",
        "power",
    )  # fmt: skip
    yield _setting(
        "tou_slot1_soc_pct", "State of charge to hold in time-of-use slot 1", _C.BATTERY, "%",
        "battery",
    )  # fmt: skip
    yield _setting(
        "tou_slot1_grid_charge", "Charge source allowed in time-of-use slot 1", _C.BATTERY, None,
        "enum",
    )  # fmt: skip


def _ev() -> Iterable[Metric]:
    # The charger's power, energies and phase currents are the asset's AC metrics (its
    # power negative while it charges); its communication timeout is control_revert_timeout_s.
    yield _state("ev_state", "Charger state (IEC 61851: A-F)", _C.EV)
    yield _state("ev_cable_state", "Charging cable state the charger reports", _C.EV)
    yield Metric("ev_connected", "A vehicle is plugged in", _M.FLAG, _C.EV, None, "plug")
    yield Metric("ev_charging", "The vehicle is charging", _M.FLAG, _C.EV, None, "battery_charging")
    yield Metric(
        "ev_session_energy_wh", "Energy charged this session", _M.COUNTER, _C.EV, "Wh",
        "energy", "total",
    )  # fmt: skip
    yield _current("ev_current_offered_a", "Current the charger offers the vehicle now", _C.EV)
    yield _setting(
        "ev_current_limit_a", "Charge current offered to the vehicle (0 stops)", _C.EV, "A",
        "current",
    )  # fmt: skip
    yield _setting(
        "ev_fallback_current_a", "Current the charger falls back to when its controller falls "
        "silent", _C.EV, "A", "current",
    )  # fmt: skip
    yield _setting("ev_charging_enabled", "Charger may charge", _C.EV, None, None)
    yield _setting("ev_phases", "Phases used for charging", _C.EV, None, None)


def _heat_pump() -> Iterable[Metric]:
    # The heat pump's electrical power and energy are the asset's AC metrics.
    yield _state("heat_pump_state", "Heat pump operating state", _C.HEAT_PUMP)
    yield Metric(
        "heat_pump_compressor_running", "The compressor runs", _M.FLAG, _C.HEAT_PUMP, None,
        "running",
    )  # fmt: skip
    yield Metric(
        "heat_pump_defrosting", "The heat pump defrosts its outdoor coil", _M.FLAG,
        _C.HEAT_PUMP, None, "running", noisy=True,
    )  # fmt: skip
    yield _state(
        "heat_pump_sg_ready_state", "SG Ready operating state the heat pump is in", _C.HEAT_PUMP
    )
    yield Metric(
        "heat_power_w", "Thermal power delivered", _M.MEASUREMENT, _C.HEAT_PUMP, "W", "power",
        "measurement",
    )  # fmt: skip
    yield _energy("heat_energy_wh", "Thermal energy delivered, lifetime", _C.HEAT_PUMP)
    yield Metric(
        "cop", "Coefficient of performance", _M.MEASUREMENT, _C.HEAT_PUMP, None, None,
        "measurement",
    )  # fmt: skip
    yield _temperature("flow_temperature_c", "Flow temperature", _C.HEAT_PUMP)
    yield _temperature("return_temperature_c", "Return temperature", _C.HEAT_PUMP)
    yield _temperature("outdoor_temperature_c", "Outdoor temperature", _C.HEAT_PUMP)
    yield _temperature("dhw_temperature_c", "Domestic hot water temperature", _C.HEAT_PUMP)
    yield _temperature("room_temperature_c", "Room temperature", _C.HEAT_PUMP)
    yield Metric(
        "compressor_frequency_hz", "Compressor frequency", _M.MEASUREMENT, _C.HEAT_PUMP, "Hz",
        "frequency", "measurement", noisy=True,
    )  # fmt: skip
    yield _current("compressor_current_a", "Compressor current", _C.HEAT_PUMP, noisy=True)
    yield _setting("heat_pump_enabled", "Heat pump may heat (or cool)", _C.HEAT_PUMP, None, None)
    yield _setting("heat_pump_mode", "Heat pump mode", _C.HEAT_PUMP, None, "enum")
    yield _setting(
        "heat_pump_sg_ready", "SG Ready order: block, normal, boost or force", _C.HEAT_PUMP, None,
        "enum",
    )  # fmt: skip
    yield _setting(
        "heat_pump_sg_ready_enabled", "The heat pump follows SG Ready orders", _C.HEAT_PUMP,
        None, None,
    )  # fmt: skip
    yield _setting(
        "flow_temperature_setpoint_c", "Flow temperature setpoint", _C.HEAT_PUMP, "°C",
        "temperature",
    )  # fmt: skip
    yield _setting(
        "room_temperature_setpoint_c", "Room temperature setpoint", _C.HEAT_PUMP, "°C",
        "temperature",
    )  # fmt: skip
    yield _setting("dhw_enabled", "Hot water may be heated", _C.HEAT_PUMP, None, None)
    yield _setting("dhw_mode", "Hot water mode", _C.HEAT_PUMP, None, "enum")
    yield _setting(
        "dhw_temperature_setpoint_c", "Hot water temperature setpoint", _C.HEAT_PUMP, "°C",
        "temperature",
    )  # fmt: skip
    yield _setting("heat_pump_power_limit_w", "Electrical power limit", _C.HEAT_PUMP, "W", "power")


def _tracker() -> Iterable[Metric]:
    yield Metric(
        "tracker_angle_deg", "Tracker rotation angle (0 = flat)", _M.MEASUREMENT, _C.TRACKER,
        "°", None, "measurement",
    )  # fmt: skip
    yield Metric(
        "tracker_target_angle_deg", "Angle the tracker is moving to", _M.MEASUREMENT,
        _C.TRACKER, "°", None, "measurement",
    )  # fmt: skip
    yield Metric(
        "sun_azimuth_deg", "Sun azimuth the controller computed", _M.MEASUREMENT, _C.TRACKER,
        "°", None, "measurement", noisy=True,
    )  # fmt: skip
    yield Metric(
        "sun_elevation_deg", "Sun elevation the controller computed", _M.MEASUREMENT,
        _C.TRACKER, "°", None, "measurement", noisy=True,
    )  # fmt: skip
    yield _state("tracker_mode", "Tracker control mode", _C.TRACKER)
    yield Metric("tracker_stowed", "Tracker is in its safe (stow) position", _M.FLAG, _C.TRACKER)
    yield _current("tracker_motor_current_a", "Drive motor current", _C.TRACKER, noisy=True)
    yield _flags("tracker_alarms", "Tracker alarms", _C.TRACKER)
    yield _setting("tracker_angle_setpoint_deg", "Commanded tracker angle", _C.TRACKER, "°", None)
    yield _setting("tracker_stow_command", "Stow the tracker now", _C.TRACKER, None, None)


def _weather() -> Iterable[Metric]:
    yield Metric(
        "irradiance_w_m2", "Global horizontal irradiance", _M.MEASUREMENT, _C.WEATHER, "W/m²",
        "irradiance", "measurement",
    )  # fmt: skip
    yield Metric(
        "poa_irradiance_w_m2", "Plane-of-array irradiance", _M.MEASUREMENT, _C.WEATHER,
        "W/m²", "irradiance", "measurement",
    )  # fmt: skip
    yield _temperature("ambient_temperature_c", "Ambient air temperature", _C.WEATHER)
    yield _temperature("module_temperature_c", "PV module (back-of-panel) temperature", _C.WEATHER)
    yield Metric(
        "wind_speed_m_s", "Wind speed", _M.MEASUREMENT, _C.WEATHER, "m/s", "wind_speed",
        "measurement",
    )  # fmt: skip
    yield Metric(
        "wind_direction_deg", "Wind direction (0 = north)", _M.MEASUREMENT, _C.WEATHER, "°",
        "wind_direction", "measurement_angle",
    )  # fmt: skip
    yield Metric(
        "relative_humidity_pct", "Relative humidity", _M.MEASUREMENT, _C.WEATHER, "%",
        "humidity", "measurement",
    )  # fmt: skip
    yield Metric(
        "air_pressure_hpa", "Air pressure", _M.MEASUREMENT, _C.WEATHER, "hPa",
        "atmospheric_pressure", "measurement",
    )  # fmt: skip
    yield Metric(
        "precipitation_mm", "Precipitation, accumulated", _M.COUNTER, _C.WEATHER, "mm",
        "precipitation", "total_increasing",
    )  # fmt: skip


def _device() -> Iterable[Metric]:
    yield _identity("device_manufacturer", "Manufacturer the device reports")
    yield _identity("device_model", "Model the device reports")
    yield _identity("device_serial", "Serial number")
    yield _identity("device_firmware", "Firmware version")
    yield _identity("device_hardware", "Hardware version")
    yield _identity("device_protocol_version", "Version of the register protocol the device speaks")
    yield Metric(
        "device_modbus_address", "Modbus unit id the device is set to", _M.MEASUREMENT,
        _C.DEVICE, diagnostic=True,
    )  # fmt: skip
    yield Metric(
        "rated_power_w", "Rated (nameplate) power", _M.MEASUREMENT, _C.DEVICE, "W", "power",
        "measurement", diagnostic=True,
    )  # fmt: skip
    yield _state("device_state", "Operating state the device reports", _C.DEVICE)
    yield _flags("device_alarms", "Alarms and faults the device reports", _C.DEVICE)
    yield _flags("device_warnings", "Warnings the device reports", _C.DEVICE)
    yield Metric("device_fault", "The device reports a fault", _M.FLAG, _C.DEVICE, None, "problem")
    yield Metric(
        "fault_code", "Fault code the device reports", _M.MEASUREMENT, _C.DEVICE, diagnostic=True
    )
    yield _temperature(
        "device_temperature_c", "Device internal temperature", _C.DEVICE, diagnostic=True
    )
    yield _temperature("heatsink_temperature_c", "Heatsink temperature", _C.DEVICE, diagnostic=True)
    yield Metric(
        "uptime_s", "Time since the device started", _M.MEASUREMENT, _C.DEVICE, "s", "duration",
        "measurement", diagnostic=True, noisy=True,
    )  # fmt: skip


_GROUPS = (
    _ac, _pv, _battery, _grid, _load, _inverter_controls, _ev, _heat_pump, _tracker, _weather,
    _device,
)  # fmt: skip


def build_vocabulary(
    groups: Iterable[Callable[[], Iterable[Metric]]] = _GROUPS,
) -> Mapping[str, Metric]:
    """Key the metrics of ``groups`` by name; raise ``ValueError`` on a name given twice."""
    vocabulary: dict[str, Metric] = {}
    for group in groups:
        for metric in group():
            if metric.name in vocabulary:
                raise ValueError(f"metric {metric.name!r} defined twice")
            vocabulary[metric.name] = metric
    return MappingProxyType(vocabulary)


METRICS: Mapping[str, Metric] = build_vocabulary()
"""Every canonical metric by name."""


def metric(name: str) -> Metric:
    """Return the metric called ``name``; raise ``KeyError`` naming close matches."""
    try:
        return METRICS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown metric {name!r}{hint}") from None
