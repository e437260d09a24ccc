"""Register reads and writes for SunSpec, in the library's exceptions, over either kind of unit.

SunSpec needs two things of a Modbus unit: reading and writing holding registers
(:class:`Registers`). A ``modbus_connection.ModbusUnit`` has both and raises
modbus-connection's errors, translated here; :class:`LinkUnit` offers both over a shared
:class:`~edge_ems.modbus.ModbusLink`, which paces, retries and raises ours already.

:class:`BlockReader` reads sets of points ("atoms", never split across requests) with the
fewest requests of at most 125 registers. Some devices refuse reads that touch certain
registers (an SMA Sunny Boy refuses parts of model 160): a refused block is halved until
the refused points are found, and those are left out of every later plan.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from modbus_connection import ModbusError

from ..exceptions import (
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionError,
    DeviceProtocolError,
    DeviceTimeoutError,
)
from ..modbus.errors import translate
from ..pointmap.model import RegisterSpace
from ..pointmap.plan import Limits, plan_space

if TYPE_CHECKING:
    from ..modbus import ModbusLink

MAX_READ = 125
"""Registers one Modbus read may return."""
MAX_WRITE = 123
"""Registers one Modbus write-multiple may carry."""
REFUSAL_CODES = frozenset({2, 3})
"""Exception codes that mean "not these registers": illegal data address and value."""

type Span = tuple[int, int]
"""An inclusive register range."""


class Registers(Protocol):
    """The part of a ``modbus_connection.ModbusUnit`` SunSpec uses."""

    async def read_holding_registers(self, address: int, count: int) -> list[int]:
        """Read ``count`` holding registers from ``address`` (function 3)."""

    async def write_registers(self, address: int, values: list[int]) -> None:
        """Write consecutive holding registers from ``address`` (function 16)."""


class LinkUnit:
    """A unit id behind a shared :class:`~edge_ems.modbus.ModbusLink`, as :class:`Registers`."""

    def __init__(self, link: ModbusLink, unit: int, *, name: str = "sunspec") -> None:
        self._link = link
        self._unit = unit
        self._name = name

    async def read_holding_registers(self, address: int, count: int) -> list[int]:
        """Read through the link, which paces, retries and translates errors."""
        return await self._link.read(self._name, self._unit, RegisterSpace.HOLDING, address, count)

    async def write_registers(self, address: int, values: list[int]) -> None:
        """Write through the link with function 16, the one SunSpec requires."""
        await self._link.write(self._name, self._unit, address, values, single=False)


@contextmanager
def _translated(where: str) -> Iterator[None]:
    try:
        yield
    except DeviceError:
        raise
    except ModbusError as err:
        raise translate(err, where) from err
    except TimeoutError as err:
        raise DeviceTimeoutError(f"{where}: no answer in time") from err
    except OSError as err:
        raise DeviceConnectionError(f"{where}: {err}") from err


async def read_holding(unit: Registers, address: int, count: int) -> list[int]:
    """Read ``count`` holding registers from ``address``."""
    where = f"reading holding {address}-{address + count - 1}"
    with _translated(where):
        words = await unit.read_holding_registers(address, count)
    if len(words) != count or not all(0 <= word <= 0xFFFF for word in words):
        raise DeviceProtocolError(f"{where}: answer holds {len(words)} registers")
    return list(words)


async def write_holding(unit: Registers, address: int, words: list[int]) -> None:
    """Write ``words`` to consecutive holding registers from ``address`` (function 16)."""
    with _translated(f"writing holding {address}-{address + len(words) - 1}"):
        await unit.write_registers(address, words)


def is_refusal(error: DeviceError) -> bool:
    """Whether ``error`` says the device will not serve the registers asked for."""
    return isinstance(error, DeviceExceptionError) and error.code in REFUSAL_CODES


class BlockReader:
    """Reads atoms with the fewest requests, learning which registers the device refuses."""

    def __init__(self, unit: Registers, *, max_block: int = MAX_READ) -> None:
        self._unit = unit
        self._max_block = max_block
        self._refused: list[Span] = []
        self.requests = 0
        """Read requests sent so far; tests hold the planner to its promise with it."""

    @property
    def refused(self) -> tuple[Span, ...]:
        """Atoms the device refused to read, in address order."""
        return tuple(self._refused)

    def _is_refused(self, atom: Span) -> bool:
        index = bisect.bisect_right(self._refused, (atom[1], 0xFFFF)) - 1
        return index >= 0 and self._refused[index][1] >= atom[0]

    async def read(self, atoms: Iterable[Span]) -> dict[int, int]:
        """Register values of every atom the device serves, by address.

        Atoms the device refuses are left out, now and in later reads. When it refuses
        every atom asked for, that is no hole in its map but a failure: the refusal is
        raised and nothing is learned.
        """
        wanted = sorted({atom for atom in atoms if not self._is_refused(atom)})
        limits = Limits(max_block=self._max_block, refused=tuple(self._refused))
        known = list(self._refused)
        registers: dict[int, int] = {}
        refusals: list[DeviceError] = []
        for block in plan_space(RegisterSpace.HOLDING, wanted, limits):
            first = bisect.bisect_left(wanted, (block.address, 0))
            last = bisect.bisect_right(wanted, (block.end, 0xFFFF))
            await self._read_atoms(wanted[first:last], registers, refusals)
        if wanted and not registers:
            self._refused = known
            raise refusals[0]
        return registers

    async def _read_atoms(
        self, atoms: list[Span], registers: dict[int, int], refusals: list[DeviceError]
    ) -> None:
        start, end = atoms[0][0], max(atom[1] for atom in atoms)
        self.requests += 1
        try:
            words = await read_holding(self._unit, start, end - start + 1)
        except DeviceError as err:
            if not is_refusal(err):
                raise
            refusals.append(err)
            if len(atoms) == 1:
                bisect.insort(self._refused, atoms[0])
                return
            middle = len(atoms) // 2
            await self._read_atoms(atoms[:middle], registers, refusals)
            await self._read_atoms(atoms[middle:], registers, refusals)
            return
        registers.update(zip(range(start, end + 1), words, strict=True))
