"""Register dumps for diagnostics: raw registers by space and address, private ones redacted.

A dump is JSON-ready data a simulator serves again (``UnitImage.from_dump`` in
:mod:`edge_ems.sim.modbus_server`)::

    {"spaces": {"holding": {0: 5, 1: 0, ...}, "input": {...}},
     "redacted": {"holding": [[3, 7]]}}

Registers that carry identity or secrets (serial numbers, network addresses, passwords) keep
their place but hold :data:`REDACTED` ("**" in ASCII), so the dump still replays: a redacted
text reads as asterisks, a redacted number as 10794 per register. ``redacted`` lists the
inclusive address ranges, by space, that were replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..pointmap.model import RegisterSpace
from ..pointmap.plan import merge_spans

REDACTED = 0x2A2A
"""What a redacted register holds: "**" in ASCII."""

type Dump = dict[str, Any]


def redacted_dump(
    registers: Mapping[tuple[RegisterSpace, int], int],
    private: Iterable[tuple[RegisterSpace, int, int]],
) -> Dump:
    """``registers`` as a dump, every register of the inclusive ``private`` ranges that was
    read replaced by :data:`REDACTED`."""
    spaces: dict[str, dict[int, int]] = {}
    for (space, address), value in sorted(registers.items()):
        spaces.setdefault(str(space), {})[address] = value
    hidden: dict[str, list[tuple[int, int]]] = {}
    for space, first, last in private:
        values = spaces.get(str(space), {})
        read = [address for address in range(first, last + 1) if address in values]
        for address in read:
            values[address] = REDACTED
        if read:
            hidden.setdefault(str(space), []).append((read[0], read[-1]))
    redacted = {space: [list(span) for span in merge_spans(hidden[space])] for space in hidden}
    return {"spaces": spaces, "redacted": redacted}


def dump_registers(dump: Mapping[str, Any]) -> dict[RegisterSpace, dict[int, int]]:
    """The registers of a dump (also one that went through JSON, its addresses as text), by
    space. Raises ``ValueError`` for a dump that is not one."""
    spaces = dump.get("spaces")
    if not isinstance(spaces, Mapping):
        raise ValueError("a register dump holds its registers under 'spaces'")
    registers: dict[RegisterSpace, dict[int, int]] = {}
    for space, values in spaces.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"registers of {space!r} are not a mapping")
        try:
            registers[RegisterSpace(space)] = {
                int(address): int(value) & 0xFFFF for address, value in values.items()
            }
        except (TypeError, ValueError) as err:
            raise ValueError(f"registers of {space!r}: {err}") from err
    return registers
