"""Register dumps of real SunSpec devices as text, served again by the Modbus simulator.

The format (``tests/lib/sunspec/dumps/README.md``): ``@ADDRESS`` sets the address of the
next word; words are four hex digits separated by whitespace; ``----`` marks a register the
device refused to read; ``#`` starts a comment.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..pointmap.model import RegisterSpace
from .modbus_server import UnitImage

_WORD = re.compile(r"[0-9A-Fa-f]{4}")


def read_dump(path: Path) -> dict[int, int]:
    """The registers of a dump file by address; refused registers are left out.

    Raises ``ValueError`` naming the line of anything that is not a register word."""
    registers: dict[int, int] = {}
    address = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if text.startswith("@"):
            address = int(text[1:])
            continue
        for word in text.split():
            if word != "----":
                if not _WORD.fullmatch(word):
                    raise ValueError(f"{path}:{number}: {word!r} is no register word")
                registers[address] = int(word, 16)
            address += 1
    return registers


def dump_image(registers: dict[int, int]) -> UnitImage:
    """An image serving ``registers`` as holding registers, refusing (exception 2) every
    address between them that is missing, as the device refused it."""
    refused: list[tuple[int, int]] = []
    for address in range(min(registers), max(registers) + 1):
        if address in registers:
            continue
        if refused and refused[-1][1] == address - 1:
            refused[-1] = (refused[-1][0], address)
        else:
            refused.append((address, address))
    return UnitImage({RegisterSpace.HOLDING: registers}, refused=refused)
