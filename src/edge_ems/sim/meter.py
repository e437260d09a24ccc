"""The site's grid meter: what a meter at the grid connection reads from the plant.

The Eastron SDM630 behind the Deye's gateway and the meter in the SunSpec inverter's chain
both read this: the grid power the plant settled (+ import), split over the phases, with
the voltages, currents, power factor and counters a three-phase meter shows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..metrics import PHASE_PAIRS, PHASES
from .ambient import frequency, line_voltage, phase_shares, phase_voltage, power_factor

if TYPE_CHECKING:
    from ..readings import Value
    from .plant import Plant

MAP_ID = "eastron_sdm630"
SERIAL = 21_045_977
REACTIVE_SHARE = 0.25
"""Reactive energy per active energy moved: what a power factor near 0.97 gives."""


def grid_meter_values(plant: Plant, *, unit_id: int = 1) -> dict[str, Value]:
    """The meter's readings at the plant's latest tick, by metric."""
    flows = plant.flows
    assert flows is not None
    timestamp, grid = flows.timestamp, flows.grid_w
    shares, pf = phase_shares(timestamp), power_factor(timestamp)
    values: dict[str, Value] = {
        "grid_power_w": grid,
        "ac_frequency_hz": frequency(timestamp),
        "ac_power_factor": pf,
        "grid_import_energy_wh": round(plant.physics.grid_import_wh, 1),
        "grid_export_energy_wh": round(plant.physics.grid_export_wh, 1),
        "grid_reactive_energy_varh": round(
            REACTIVE_SHARE * (plant.physics.grid_import_wh + plant.physics.grid_export_wh), 1
        ),
        "device_modbus_address": unit_id,
        "device_serial": SERIAL,
    }
    total_current = 0.0
    for phase in PHASES:
        power = grid * shares[phase]
        volts = phase_voltage(timestamp, phase)
        current = abs(power) / (volts * pf)
        total_current += current
        values |= {
            f"grid_power_{phase}_w": round(power, 1),
            f"ac_voltage_{phase}_v": volts,
            f"ac_current_{phase}_a": round(current, 2),
        }
    for pair in PHASE_PAIRS:
        first, second = pair.split("_")
        values[f"ac_voltage_{pair}_v"] = line_voltage(timestamp, first, second)
    apparent = abs(grid) / pf
    values |= {
        "ac_current_a": round(total_current, 2),
        "ac_apparent_power_va": round(apparent, 1),
        "ac_reactive_power_var": round(apparent * math.sin(math.acos(pf)), 1),
    }
    return values
