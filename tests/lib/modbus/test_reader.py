"""The adaptive block reader: caps learned from refusals, unreadable atoms and bridged registers
told apart, and no refusal once a read has settled what it met.

The reader is pure planning over an injected read function; these tests hand it a device
described by a few numbers (its cap, the registers it refuses) so hypothesis can try thousands
of them. The same reader against live servers is in ``test_caps.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ems.exceptions import DeviceConnectionError, DeviceExceptionError
from edge_ems.modbus.reader import BlockReader, ReadCap
from edge_ems.pointmap.model import RegisterSpace
from edge_ems.pointmap.plan import Limits, plan_space

HOLDING = RegisterSpace.HOLDING

type Span = tuple[int, int]


class Device:
    """Serves every register as its own address, refusing reads above ``cap`` registers
    (with ``code``) and any read that touches ``bad``."""

    def __init__(self, cap: int = 125, bad: frozenset[int] = frozenset(), code: int = 3):
        self.cap, self.bad, self.code = cap, bad, code
        self.log: list[tuple[int, int, bool]] = []

    async def read(self, space: RegisterSpace, address: int, count: int) -> list[int]:
        ok = count <= self.cap and not any(address + i in self.bad for i in range(count))
        self.log.append((address, count, ok))
        if not ok:
            raise DeviceExceptionError(f"{address}+{count} refused", code=self.code)
        return list(range(address, address + count))

    @property
    def refused(self) -> int:
        return sum(not ok for _, _, ok in self.log)


def readable(atoms: list[Span], bad: frozenset[int]) -> list[Span]:
    return [atom for atom in atoms if not any(a in bad for a in range(atom[0], atom[1] + 1))]


def fewest(atoms: list[Span], cap: int, bad: frozenset[int], limits: Limits) -> int:
    """Requests the minimal plan needs knowing everything: the cap and every bad register."""
    known = Limits(min(cap, limits.max_block), limits.max_gap, tuple((b, b) for b in bad))
    return len(plan_space(HOLDING, readable(atoms, bad), known))


@st.composite
def devices(draw: st.DrawFn) -> tuple[list[Span], Device, Limits]:
    """Atoms of 1-4 registers, mostly back to back, some gaps; a cap at least as wide as every
    atom; a few bad registers anywhere, gaps included."""
    atoms: list[Span] = []
    address = draw(st.integers(0, 100))
    for width, gap in draw(
        st.lists(st.tuples(st.integers(1, 4), st.sampled_from([0, 0, 0, 1, 3, 9])), max_size=80)
    ):
        atoms.append((address, address + width - 1))
        address += width + gap
    cap = draw(st.integers(4, 125))
    bad: frozenset[int] = frozenset()
    if atoms:
        span = st.integers(atoms[0][0], atoms[-1][1])
        bad = frozenset(draw(st.lists(span, max_size=3)))
    limits = Limits(
        max_block=draw(st.sampled_from([125, 100, 64])), max_gap=draw(st.integers(0, 8))
    )
    return atoms, Device(cap, bad, draw(st.sampled_from([2, 3]))), limits


@settings(max_examples=400, deadline=None)
@given(devices())
async def test_after_one_read_every_read_is_minimal_and_never_refused(
    case: tuple[list[Span], Device, Limits],
) -> None:
    atoms, device, limits = case
    reader = BlockReader(device.read, limits)
    want = readable(atoms, device.bad)
    try:
        first = await reader.read({HOLDING: atoms})
    except DeviceExceptionError:
        assert not want  # nothing readable at all is a failure, not a hole
        return
    got = {address for _, address in first.registers}
    assert all(a in got for start, end in want for a in range(start, end + 1))
    device.log.clear()
    second = await reader.read({HOLDING: atoms})
    assert device.refused == 0
    assert len(device.log) == fewest(atoms, device.cap, device.bad, limits)
    assert second.registers.keys() >= {(HOLDING, a) for s, e in want for a in range(s, e + 1)}


async def test_a_refused_block_is_halved_and_the_cap_learned() -> None:
    device = Device(cap=50)
    reader = BlockReader(device.read)
    atoms = [(a, a) for a in range(250)]
    await reader.read({HOLDING: atoms})
    assert (reader.cap.largest_ok, reader.cap.smallest_refused) == (50, 51)
    device.log.clear()
    await reader.read({HOLDING: atoms})
    assert device.log == [(0, 50, True), (50, 50, True), (100, 50, True), (150, 50, True),
                          (200, 50, True)]  # fmt: skip


async def test_a_restored_cap_is_never_refused() -> None:
    device = Device(cap=64)
    reader = BlockReader(device.read, cap=ReadCap.from_json({"largest_ok": 64,
                                                             "smallest_refused": 65}))  # fmt: skip
    await reader.read({HOLDING: [(a, a) for a in range(300)]})
    assert device.refused == 0
    assert [count for _, count, _ in device.log] == [64, 64, 64, 64, 44]


async def test_an_unreadable_point_is_no_cap() -> None:
    device = Device(bad=frozenset({30}))
    reader = BlockReader(device.read)
    result = await reader.read({HOLDING: [(a, a + 1) for a in range(0, 100, 2)]})
    assert reader.unreadable == {HOLDING: ((30, 31),)}
    assert not reader.cap.known
    assert (HOLDING, 31) not in result.registers
    assert (HOLDING, 99) in result.registers
    device.log.clear()
    await reader.read({HOLDING: [(a, a + 1) for a in range(0, 100, 2)]})
    assert device.log == [(0, 30, True), (32, 68, True)]


async def test_a_refused_unmapped_register_is_no_longer_bridged() -> None:
    device = Device(bad=frozenset({11}))
    reader = BlockReader(device.read, Limits(max_gap=4))
    atoms = [(0, 9), (13, 20)]  # 10-12 bridged
    await reader.read({HOLDING: atoms})
    assert not reader.cap.known  # the gap, not the size
    device.log.clear()
    await reader.read({HOLDING: atoms})
    assert device.log == [(0, 10, True), (13, 8, True)]


async def test_another_exception_costs_its_block_only() -> None:
    async def read(space: RegisterSpace, address: int, count: int) -> list[int]:
        if address == 200:
            raise DeviceExceptionError("device failure", code=4)
        return [0] * count

    reader = BlockReader(read)
    result = await reader.read({HOLDING: [(0, 9), (200, 209)]})
    assert [(block.address, block.count) for block in result.failed] == [(200, 10)]
    assert (HOLDING, 9) in result.registers


@pytest.mark.parametrize("code", [2, 3, 4])
async def test_nothing_readable_raises_the_first_answer_and_learns_nothing(code: int) -> None:
    device = Device(bad=frozenset(range(100)), code=code)
    reader = BlockReader(device.read)
    with pytest.raises(DeviceExceptionError) as caught:
        await reader.read({HOLDING: [(0, 3), (4, 7)]})
    assert str(caught.value) == "0+8 refused"
    assert reader.unreadable == {}


async def test_connection_errors_are_raised_as_they_come() -> None:
    async def read(space: RegisterSpace, address: int, count: int) -> list[int]:
        raise DeviceConnectionError("gone")

    with pytest.raises(DeviceConnectionError):
        await BlockReader(read).read({HOLDING: [(0, 3)]})


@pytest.mark.parametrize(
    "data",
    [None, {}, {"largest_ok": 0, "smallest_refused": 5}, {"largest_ok": 9, "smallest_refused": 9},
     {"largest_ok": True, "smallest_refused": 4}, {"largest_ok": "50"}, {"largest_ok": 5,
     "smallest_refused": 900}],
)  # fmt: skip
def test_an_unusable_stored_cap_is_ignored(data: dict[str, object] | None) -> None:
    assert ReadCap.from_json(data) == ReadCap()


def test_a_cap_survives_json() -> None:
    cap = ReadCap(50, 51)
    assert ReadCap.from_json(cap.as_json()) == cap
    assert ReadCap().as_json() == {}
    assert (cap.limit(125), cap.limit(40), ReadCap().limit(100)) == (50, 40, 100)
