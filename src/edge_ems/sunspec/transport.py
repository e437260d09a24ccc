"""Register reads and writes for SunSpec, in the library's exceptions, over either kind of unit.

SunSpec needs two things of a Modbus unit: reading and writing holding registers
(:class:`Registers`). A ``modbus_connection.ModbusUnit`` has both and raises
modbus-connection's errors, translated here; :class:`LinkUnit` offers both over a shared
:class:`~edge_ems.modbus.ModbusLink`, which paces, retries and raises ours already.

:class:`BlockReader` reads sets of points ("atoms", never split across requests) with the
fewest requests of at most 125 registers, through :class:`edge_ems.modbus.reader.BlockReader`:
some devices refuse reads that touch certain registers (an SMA Sunny Boy refuses parts of
model 160), others (and the gateways in front of them) refuse reads above some size; a refused
block is halved, refused points are left out of every later plan and the read cap is learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from modbus_connection import ModbusError

from ..exceptions import (
    DeviceConnectionError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeoutError,
)
from ..modbus.errors import translate
from ..modbus.reader import MAX_READ, REFUSAL_CODES, ReadCap, is_refusal
from ..modbus.reader import BlockReader as _Reader
from ..pointmap.model import RegisterSpace
from ..pointmap.plan import Limits

if TYPE_CHECKING:
    from ..modbus import ModbusLink

__all__ = [
    "MAX_READ",
    "MAX_WRITE",
    "REFUSAL_CODES",
    "BlockReader",
    "LinkUnit",
    "Registers",
    "Span",
    "is_refusal",
    "read_holding",
    "write_holding",
]

MAX_WRITE = 123
"""Registers one Modbus write-multiple may carry."""
HOLDING = RegisterSpace.HOLDING

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


class BlockReader:
    """Reads holding-register atoms with the fewest requests, learning which registers the
    device refuses (starting from ``refused``, learned before) and the largest read it takes
    (into ``cap``)."""

    def __init__(
        self,
        unit: Registers,
        *,
        max_block: int = MAX_READ,
        cap: ReadCap | None = None,
        refused: Iterable[Span] = (),
    ) -> None:
        self._unit = unit
        self._reader = _Reader(
            self._read, Limits(max_block=max_block), cap=cap, unreadable={HOLDING: refused}
        )

    async def _read(self, space: RegisterSpace, address: int, count: int) -> list[int]:
        return await read_holding(self._unit, address, count)

    @property
    def cap(self) -> ReadCap:
        """What the device showed of the largest read it takes."""
        return self._reader.cap

    @property
    def requests(self) -> int:
        """Read requests sent so far; tests hold the planner to its promise with it."""
        return self._reader.requests

    @property
    def refused(self) -> tuple[Span, ...]:
        """Atoms the device refused to read, in address order."""
        return self._reader.unreadable.get(HOLDING, ())

    def plan_size(self, atoms: Iterable[Span]) -> int:
        """Requests :meth:`read` sends for ``atoms`` when nothing new is refused."""
        return len(self._reader.plan({HOLDING: atoms}))

    async def read(
        self, atoms: Iterable[Span], *, horizon: Iterable[Span] | None = None
    ) -> dict[int, int]:
        """Register values of every atom the device serves, by address.

        Atoms the device refuses are left out, now and in later reads; ``horizon`` holds
        every atom later reads may ask for (see :meth:`edge_ems.modbus.reader.BlockReader.read`).
        When it refuses every atom asked for, that is no hole in its map but a failure: the
        refusal is raised and nothing is learned. Any other exception answer is raised.
        """
        later: Mapping[RegisterSpace, Iterable[Span]] | None = (
            None if horizon is None else {HOLDING: horizon}
        )
        result = await self._reader.read({HOLDING: atoms}, horizon=later)
        if result.failed:
            raise next(iter(result.failed.values()))
        return {address: value for (_, address), value in result.registers.items()}
