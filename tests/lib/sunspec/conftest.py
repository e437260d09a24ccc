"""A real Modbus TCP peer for SunSpec tests, and the public register dumps it can serve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from modbus_connection import ModbusUnit
from modbus_connection.pymodbus import ModbusConnection, connect_tcp
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_ems.sim.sunspec_dump import read_dump

DUMPS = Path(__file__).parent / "dumps"
READ_FUNCTIONS = frozenset({3, 4})


def load_dump(name: str) -> dict[int, int]:
    """The registers of a dump in ``dumps/``; refused registers ("----") are left out."""
    return read_dump(DUMPS / name)


class RegisterServer:
    """A Modbus TCP server on a free loopback port serving :attr:`registers`.

    A request touching an address missing from :attr:`registers` gets exception 2
    (illegal data address), as real devices answer for registers they do not serve.
    Every request is recorded in :attr:`requests` as (function, address, count).
    """

    def __init__(self) -> None:
        self.registers: dict[int, int] = {}
        self.requests: list[tuple[int, int, int]] = []
        self.ignored_writes: set[int] = set()
        """Addresses whose writes are acknowledged but not stored, as a device that
        overrides a setpoint does."""
        device = SimDevice(
            id=0,
            simdata=[SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)],
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        self.port = 0

    async def _action(
        self,
        function: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests.append((function, address, count))
        if any(address + i not in self.registers for i in range(count)):
            return ExcCodes.ILLEGAL_ADDRESS
        if values is None:
            for i in range(count):
                registers[address + i - start] = self.registers[address + i]
        else:
            for offset, value in enumerate(values):
                if address + offset not in self.ignored_writes:
                    self.registers[address + offset] = int(value)
        return None

    @property
    def reads(self) -> list[tuple[int, int]]:
        """(address, count) of every read request."""
        return [(a, c) for f, a, c in self.requests if f in READ_FUNCTIONS]

    @property
    def writes(self) -> list[tuple[int, int]]:
        """(address, count) of every write request."""
        return [(a, c) for f, a, c in self.requests if f not in READ_FUNCTIONS]

    def serves(self, address: int, count: int) -> bool:
        """Whether a request for these registers is answered."""
        return all(address + i in self.registers for i in range(count))

    async def start(self) -> None:
        await self._server.serve_forever(background=True)
        assert self._server.transport is not None
        self.port = self._server.transport.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self._server.shutdown()

    def reset(self) -> None:
        """Forget the image, the request log and the ignored writes."""
        self.registers = {}
        self.requests.clear()
        self.ignored_writes = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run this directory's async tests in one event loop, the loop the shared peer
    lives in: pymodbus takes 0.1 s to open a client connection, once per session here."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and pytest_asyncio.is_async_test(item):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def _peer() -> AsyncIterator[RegisterServer]:
    peer = RegisterServer()
    await peer.start()
    yield peer
    await peer.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def _link(_peer: RegisterServer) -> AsyncIterator[ModbusConnection]:
    link = await connect_tcp("127.0.0.1", port=_peer.port, timeout=5)
    yield link
    await link.close()


@pytest.fixture
def server(_peer: RegisterServer) -> RegisterServer:
    """The peer, serving nothing yet."""
    _peer.reset()
    return _peer


@pytest.fixture
def unit(_link: ModbusConnection, server: RegisterServer) -> ModbusUnit:
    """Unit 1 on a link to :func:`server`."""
    del server  # requested for its reset
    return _link.for_unit(1)
