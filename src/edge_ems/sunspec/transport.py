"""Register reads and writes over a ``modbus_connection.ModbusUnit``, in our exceptions.

Units from ``modbus_connection`` raise its ``ModbusError`` family; units from
``edge_ems.modbus`` may already raise ours. Both come out of here as
:class:`~edge_ems.exceptions.DeviceError` subclasses.

:class:`BlockReader` reads sets of points ("atoms", never split across requests) with the
fewest requests of at most 125 registers. Some devices refuse reads that touch certain
registers (an SMA Sunny Boy refuses parts of model 160): a refused block is halved until
the refused points are found, and those are left out of every later plan.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modbus_connection import (
    AcknowledgeError,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusTimeoutError,
    ServerDeviceBusyError,
)

from ..exceptions import (
    DeviceBusyError,
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionError,
    DeviceProtocolError,
    DeviceTimeoutError,
)
from ..pointmap.model import RegisterSpace
from ..pointmap.plan import Limits, plan_space

if TYPE_CHECKING:
    from modbus_connection import ModbusUnit

MAX_READ = 125
"""Registers one Modbus read may return."""
MAX_WRITE = 123
"""Registers one Modbus write-multiple may carry."""
REFUSAL_CODES = frozenset({2, 3})
"""Exception codes that mean "not these registers": illegal data address and value."""

type Span = tuple[int, int]
"""An inclusive register range."""


def translate(error: Exception) -> DeviceError:
    """The library's exception for an error a Modbus unit raised."""
    if isinstance(error, DeviceError):
        return error
    message = str(error) or type(error).__name__
    if isinstance(error, ServerDeviceBusyError | AcknowledgeError):
        return DeviceBusyError(message)
    if isinstance(error, ModbusExceptionError):
        return DeviceExceptionError(message, code=int(error.exception_code or 0))
    if isinstance(error, ModbusTimeoutError | TimeoutError):
        return DeviceTimeoutError(message)
    if isinstance(error, ModbusConnectionError | OSError):
        return DeviceConnectionError(message)
    return DeviceProtocolError(message)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except DeviceError:
        raise
    except (ModbusError, TimeoutError, OSError) as err:
        raise translate(err) from err


async def read_holding(unit: ModbusUnit, address: int, count: int) -> list[int]:
    """Read ``count`` holding registers from ``address``."""
    with _translated():
        words = await unit.read_holding_registers(address, count)
    if len(words) != count or not all(0 <= word <= 0xFFFF for word in words):
        raise DeviceProtocolError(
            f"read of {count} registers at {address} returned {len(words)} values"
        )
    return list(words)


async def write_holding(unit: ModbusUnit, address: int, words: list[int]) -> None:
    """Write ``words`` to consecutive holding registers from ``address`` (function 16)."""
    with _translated():
        await unit.write_registers(address, words)


def is_refusal(error: DeviceError) -> bool:
    """Whether ``error`` says the device will not serve the registers asked for."""
    return isinstance(error, DeviceExceptionError) and error.code in REFUSAL_CODES


class BlockReader:
    """Reads atoms with the fewest requests, learning which registers the device refuses."""

    def __init__(self, unit: ModbusUnit, *, max_block: int = MAX_READ) -> None:
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
