"""The simulated Deye's read-only registers: identity and live data from the plant, as data.

One entry per read-only point of the ``deye_sun_sg_hybrid`` map; the settings are not here,
they live in the register image (:mod:`edge_ems.sim.deye`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from ..readings import Value
from .ambient import frequency, phase_shares, phase_voltage
from .plant import Plant

SERIAL = "2306178452"
RATED_W = 12_000


def _pv_string(index: int, quantity: str) -> Callable[[Plant], Value]:
    def value(plant: Plant) -> Value:
        pv = plant.pv
        if index >= pv.strings:
            return 0
        timestamp = _now(plant)
        power = pv.string_power_w(timestamp)[index]
        volts = pv.string_voltage(timestamp)
        found = {"power_w": power, "voltage_v": volts, "current_a": power / volts if volts else 0}
        return round(found[quantity], 1)

    return value


def _phase(phase: str, quantity: str) -> Callable[[Plant], Value]:
    def value(plant: Plant) -> Value:
        flows = plant.flows
        assert flows is not None
        share = phase_shares(flows.timestamp)[phase]
        volts = phase_voltage(flows.timestamp, phase)
        found = {
            "grid": flows.grid_w * share,
            "ac": flows.deye_ac_w * share,
            "current": flows.deye_ac_w * share / volts,
            "voltage": volts,
        }
        return round(found[quantity], 2)

    return value


def _now(plant: Plant) -> float:
    assert plant.flows is not None
    return plant.flows.timestamp


def _flow(name: str) -> Callable[[Plant], Value]:
    return lambda plant: round(getattr(plant.flows, name))


READINGS: Mapping[str, Callable[[Plant], Value]] = MappingProxyType(
    {
        "device_model": lambda _: "LV three-phase hybrid inverter",
        "device_protocol_version": lambda _: 0x0105,
        "device_serial": lambda _: SERIAL,
        "device_firmware": lambda _: 0x1106,
        "rated_power_w": lambda _: RATED_W,
        "inverter_state": lambda _: "normal",
        "battery_charge_energy_wh": lambda p: p.physics.battery.charge_energy_wh,
        "battery_discharge_energy_wh": lambda p: p.physics.battery.discharge_energy_wh,
        "grid_import_energy_wh": lambda p: p.physics.grid_import_wh,
        "grid_export_energy_wh": lambda p: p.physics.grid_export_wh,
        "load_energy_wh": lambda p: p.house_energy_wh,
        "pv_energy_today_wh": lambda p: p.pv_energy_today_wh(),
        "pv_energy_wh": lambda p: p.pv.energy_wh,
        "device_temperature_c": lambda p: round(p.deye_dc_side.temperature_c, 1),
        "heatsink_temperature_c": lambda p: round(p.deye_heatsink.temperature_c, 1),
        "device_warnings": lambda _: 0,
        "device_alarms": lambda _: 0,
        "battery_temperature_c": lambda p: round(p.physics.battery.temperature_c, 1),
        "battery_voltage_v": lambda p: p.physics.battery.voltage_v,
        "soc_pct": lambda p: p.physics.battery.soc_pct,
        "battery_power_w": lambda p: round(p.physics.battery.power_w),
        "battery_current_a": lambda p: p.physics.battery.current_a,
        "grid_power_w": _flow("grid_w"),
        "ac_power_w": _flow("deye_ac_w"),
        "load_power_w": _flow("house_w"),
        "ac_frequency_hz": lambda p: frequency(_now(p)),
        **{f"grid_power_{ph}_w": _phase(ph, "grid") for ph in ("l1", "l2", "l3")},
        **{f"ac_voltage_{ph}_v": _phase(ph, "voltage") for ph in ("l1", "l2", "l3")},
        **{f"ac_current_{ph}_a": _phase(ph, "current") for ph in ("l1", "l2", "l3")},
        **{f"ac_power_{ph}_w": _phase(ph, "ac") for ph in ("l1", "l2", "l3")},
        **{
            f"pv{index + 1}_{quantity}": _pv_string(index, quantity)
            for index in range(4)
            for quantity in ("power_w", "voltage_v", "current_a")
        },
    }
)
"""Every read-only point of the Deye's map, from the plant."""


def deye_values(plant: Plant) -> dict[str, Value]:
    """The Deye's read-only points at the plant's latest tick."""
    return {metric: reading(plant) for metric, reading in READINGS.items()}
