"""Whether leased devices still hold what they were told (seed 003's Modbus read-back every
two minutes).

A write is read back at once by the Dispatcher; a device can still let a setpoint go later:
another master (a vendor cloud, a second EMS) overwrites the register, the device restarts
and forgets it, a firmware ignores it while in some mode. Comparing every leased command with
the device's latest good reading of the same metric shows that; a host decides how long a
deviation must last before it tells someone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..readings import Quality, Readings, Value

REL_TOLERANCE = 0.01
"""A number within 1 % of the setpoint is held (registers round to their resolution)."""
ABS_TOLERANCE = 0.5
"""And within half a unit near zero (a 6 A current read back as 6.4 A is held)."""


@dataclass(frozen=True, slots=True)
class Deviation:
    """A leased command the device does not hold."""

    device_id: str
    command: str
    expected: Value
    actual: Value


def holds(expected: Value, actual: Value) -> bool:
    """Whether ``actual`` is ``expected`` as far as a device's resolution tells."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)
    return actual == expected


def deviations(
    leases: Mapping[str, Mapping[str, tuple[Value, float]]], readings: Mapping[str, Readings]
) -> list[Deviation]:
    """Every lease (device id to command to (value, seconds left)) whose command the
    device's latest good reading shows at another value. A command the device does not
    read back, or whose reading is not good, tells nothing and is left out."""
    found = []
    for device_id, commands in sorted(leases.items()):
        latest = readings.get(device_id, {})
        for command, (expected, _left) in sorted(commands.items()):
            reading = latest.get(command)
            if reading is None or reading.quality is not Quality.GOOD:
                continue
            if not holds(expected, reading.value):
                found.append(Deviation(device_id, command, expected, reading.value))
    return found
