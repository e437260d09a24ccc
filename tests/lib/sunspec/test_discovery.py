"""Finding the SunSpec marker and walking the model chain, on good maps and on garbage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modbus_connection import ModbusUnit
from modbus_connection.pymodbus import connect_tcp

from edge_ems.exceptions import DeviceProtocolError, DeviceTimeoutError, IdentificationError
from edge_ems.sunspec import discover
from edge_ems.sunspec.discovery import MAX_MODELS, find_base

from .conftest import RegisterServer

SUNS = [0x5375, 0x6E53]
END = [0xFFFF, 0]


def image(base: int, *words: int) -> dict[int, int]:
    return dict(enumerate([*SUNS, *words], start=base))


def model(model_id: int, length: int) -> list[int]:
    return [model_id, length, *range(length)]


async def test_a_plain_chain(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = image(40000, *model(1, 66), *model(101, 50), *END)
    chain = await discover(unit)
    assert [(m.id, m.address, m.length) for m in chain.models] == [
        (1, 40002, 66),
        (101, 40070, 50),
    ]
    # 124 registers, read in large blocks: 125 is refused (the device serves nothing past
    # its end marker), the common model's span is not, and the rest of the chain follows.
    assert server.reads == [(40000, 125), (40000, 72), (40072, 52)]
    assert dict(chain.registers) == server.registers


async def test_a_chain_of_devices(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = image(
        40000, *model(1, 66), *model(103, 50), *model(1, 65), *model(203, 105), *END
    )
    devices = (await discover(unit)).devices()
    assert [[m.id for m in device] for device in devices] == [[1, 103], [1, 203]]


async def test_a_chain_may_end_with_a_refusal(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = image(40000, *model(1, 66))
    chain = await discover(unit)
    assert [m.id for m in chain.models] == [1]


async def test_no_marker_is_no_sunspec_device(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = dict.fromkeys(range(40000, 40010), 0)
    with pytest.raises(IdentificationError, match="no SunSpec marker"):
        await discover(unit)
    # At each base: a block, the common model's span, then the marker alone.
    assert server.reads == [(base, count) for base in (40000, 0, 50000) for count in (125, 72, 2)]


@pytest.mark.parametrize(
    ("words", "error", "message"),
    [
        ([*model(101, 50), *END], IdentificationError, "not the common model"),
        ([*END], IdentificationError, "not the common model"),
        ([*model(1, 66), *model(0, 3), *END], DeviceProtocolError, "model ID 0"),
        ([*model(1, 66), 7, 0xFFFF], DeviceProtocolError, "past the last register"),
        ([], DeviceProtocolError, "no model header"),
        ([*model(1, 0), *[7, 0] * (MAX_MODELS + 1)], DeviceProtocolError, "does not end"),
    ],
)
async def test_garbage_is_a_clear_error(
    server: RegisterServer,
    unit: ModbusUnit,
    words: list[int],
    error: type[Exception],
    message: str,
) -> None:
    server.registers = image(40000, *words)
    with pytest.raises(error, match=message):
        await discover(unit)


async def test_a_chain_cannot_leave_the_address_space(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    # Models of 1000 registers from 50000 reach 65535 without an end marker.
    words = [1, 1000]
    for _ in range(15):
        words += [0] * 1000 + [7, 1000]
    server.registers = image(50000, *words[: 65536 - 50002])
    with pytest.raises(DeviceProtocolError, match="past the last register"):
        await discover(unit, base=50000)


headers = st.lists(
    st.tuples(
        st.sampled_from([1, 1, 7, 101, 0, 0xFFFF]) | st.integers(0, 0xFFFF),
        st.integers(0, 20) | st.integers(0, 0xFFFF),
    ),
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(headers, st.lists(st.integers(0, 0xFFFF), max_size=64))
async def test_walks_over_garbage_end_with_a_chain_or_a_clear_error(
    server: RegisterServer,
    unit: ModbusUnit,
    headers: list[tuple[int, int]],
    tail: list[int],
) -> None:
    words: list[int] = []
    for model_id, length in headers:
        words += [model_id, length, *[0] * min(length, 20)]
    server.registers = image(40000, *words, *tail)
    server.requests.clear()
    try:
        chain = await discover(unit)
    except (IdentificationError, DeviceProtocolError):
        pass
    else:
        assert chain.models[0].id == 1
        assert all(m.end <= 0xFFFF and m.id not in {0, 0xFFFF} for m in chain.models)
        assert len(chain.models) <= MAX_MODELS
    assert len(server.reads) <= 1 + MAX_MODELS + 1


class Silent(RegisterServer):
    """A peer that never answers requests for the listed addresses."""

    def __init__(self, silent: set[int]) -> None:
        super().__init__()
        self.silent = silent

    async def _action(
        self,
        function: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ):  # type: ignore[no-untyped-def]
        if address in self.silent:
            await asyncio.sleep(30)
        return await super()._action(function, start, address, count, registers, values)


@pytest_asyncio.fixture(loop_scope="session")
async def silent_unit() -> AsyncIterator[tuple[Silent, ModbusUnit]]:
    peer = Silent({40000})
    await peer.start()
    link = await connect_tcp("127.0.0.1", port=peer.port, timeout=0.5)
    yield peer, link.for_unit(1)
    await link.close()
    await peer.stop()


async def test_silence_at_one_base_does_not_hide_another(
    silent_unit: tuple[Silent, ModbusUnit],
) -> None:
    peer, unit = silent_unit
    peer.registers = image(50000, *model(1, 66), *END)
    assert await find_base(unit) == 50000
    peer.registers = {}
    with pytest.raises(DeviceTimeoutError):
        await find_base(unit)
