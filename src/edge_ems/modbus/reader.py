"""Reads that adapt to what a device refuses: the fewest requests under a learned read cap.

Many devices, and most RS-485 gateways and data loggers in front of them, accept at most some
number of registers in one read (often 50 or 64) and answer exception 3 (illegal data value)
or 2 (illegal data address) above it. Others refuse certain registers whatever the size of
the request. :class:`BlockReader` reads sets of atoms (register spans never split across
requests: a point, a scale-factor register) in the blocks the minimal planner
(:func:`edge_ems.pointmap.plan.plan_space`) gives, and when the device refuses a block it splits
the block and reads the parts. What the parts show tells the two kinds of refusal apart:

* an atom refused on its own is unreadable: it is left out of every later plan;
* a block whose halves, and the unrequested registers between them, all read was refused for
  its size, so the device's cap is below the block's count;
* a block whose halves read but whose registers between them are refused was refused for
  those registers, which later plans no longer bridge.

The read that met a refusal then settles what it left open before it returns: it reads every
block a later plan would hold that no read has shown the device to take, and while the cap is
uncertain (the largest read that worked is below the smallest refused one, less one) it probes
with blocks planned halfway between, then at the upper bound, so every probe reads data the
caller asks for anyway. Later reads plan under the largest read that worked: they are minimal
for the cap and never refused. :class:`ReadCap` is what was learned, as JSON-ready data a
caller can store and hand back on the next start.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import DeviceError, DeviceExceptionError
from ..pointmap.model import RegisterSpace
from ..pointmap.plan import Block, Limits, merge_spans, plan_space

MAX_READ = 125
"""Registers one Modbus read may return."""
MAX_SETTLE = 32
"""Reads one :meth:`BlockReader.read` may add to settle what a refusal left open."""
REFUSAL_CODES = frozenset({2, 3})
"""Exception codes that mean "not these registers": illegal data address and value."""

type Span = tuple[int, int]
"""An inclusive register range."""
type ReadRegisters = Callable[[RegisterSpace, int, int], Awaitable[list[int]]]
"""Reads ``count`` registers of a space from an address, raising :class:`DeviceError`."""
type Registers = dict[tuple[RegisterSpace, int], int]
"""Register values by space and address."""


def is_refusal(error: DeviceError) -> bool:
    """Whether ``error`` says the device will not serve the registers asked for."""
    return isinstance(error, DeviceExceptionError) and error.code in REFUSAL_CODES


@dataclass(slots=True)
class ReadCap:
    """What a device has shown about the largest read it accepts.

    ``smallest_refused`` stays ``None`` until a read was refused for its size; until then the
    cap is whatever the device's limits say.
    """

    largest_ok: int = 0
    """The most registers one read returned."""
    smallest_refused: int | None = None
    """The fewest registers of a read refused for its size."""

    @property
    def known(self) -> bool:
        """Whether a read was refused for its size."""
        return self.smallest_refused is not None

    @property
    def uncertain(self) -> bool:
        """Whether reads between the largest that worked and the smallest refused were never
        tried."""
        return self.smallest_refused is not None and self.largest_ok < self.smallest_refused - 1

    def limit(self, max_block: int = MAX_READ) -> int:
        """The largest read to plan with: what worked, once a larger one was refused."""
        if self.smallest_refused is None:
            return max_block
        return max(1, min(max_block, self.largest_ok, self.smallest_refused - 1))

    @property
    def middle(self) -> int:
        """Halfway between the largest read that worked and the smallest refused: where a
        search for an uncertain cap probes next."""
        refused = self.smallest_refused if self.smallest_refused is not None else MAX_READ + 1
        return (self.largest_ok + refused) // 2

    def note_ok(self, count: int) -> None:
        """A read of ``count`` registers worked."""
        self.largest_ok = max(self.largest_ok, count)

    def as_json(self) -> dict[str, int]:
        """The cap as JSON-ready data (empty when nothing was refused for its size)."""
        if self.smallest_refused is None:
            return {}
        return {"largest_ok": self.largest_ok, "smallest_refused": self.smallest_refused}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ReadCap:
        """A cap from :meth:`as_json`; anything unusable is ignored, as if nothing was known."""
        if not data:
            return cls()
        largest, refused = data.get("largest_ok"), data.get("smallest_refused")
        if (
            isinstance(largest, int)
            and isinstance(refused, int)
            and not isinstance(largest, bool)
            and not isinstance(refused, bool)
            and 0 < largest < refused <= MAX_READ + 1
        ):
            return cls(largest, refused)
        return cls()


@dataclass(slots=True)
class ReadResult:
    """What one :meth:`BlockReader.read` got."""

    registers: Registers = field(default_factory=dict)
    failed: dict[Block, DeviceError] = field(default_factory=dict)
    """Planned blocks the device answered with another exception (device failure, gateway
    path unavailable, ...): their registers are missing."""


class BlockReader:
    """Reads atoms with the fewest requests a device accepts, learning what it refuses.

    ``read`` performs the requests; ``limits`` are the device's declared limits (largest
    read, bridgeable gap, refused ranges); ``cap`` is what an earlier run learned (the
    reader keeps learning into it), ``unreadable`` the atoms it found the device refuses.
    Unreadable atoms are remembered for the reader's life. ``refusals`` are the exception
    codes taken as a refusal of the registers asked for (a scan, where unmapped addresses
    are the usual answer, splits only on 3); any other answer costs its block.

    Probing for the cap happens only within the :meth:`read` that met the first refusal: a
    later read plans under the largest read that worked, so it is never refused for its size.
    """

    def __init__(
        self,
        read: ReadRegisters,
        limits: Limits | None = None,
        *,
        cap: ReadCap | None = None,
        unreadable: Mapping[RegisterSpace, Iterable[Span]] | None = None,
        refusals: frozenset[int] = REFUSAL_CODES,
    ) -> None:
        self._read = read
        self._refusal_codes = refusals
        self._limits = limits or Limits()
        self.cap = cap or ReadCap()
        self._unreadable: dict[RegisterSpace, list[Span]] = {
            space: merge_spans(spans) for space, spans in (unreadable or {}).items()
        }
        self._refused_gaps: dict[RegisterSpace, list[Span]] = {}
        self._size_refusals: list[int] = []
        self._probing = False
        self.requests = 0
        """Read requests sent so far."""
        self.refusals = 0
        """Read requests the device refused so far."""
        self.version = 0
        """Bumped whenever what the reader knows changes plans (for callers that cache)."""

    @property
    def unreadable(self) -> Mapping[RegisterSpace, tuple[Span, ...]]:
        """Atoms the device refused on their own, by space, in address order."""
        return {space: tuple(spans) for space, spans in self._unreadable.items() if spans}

    def wanted(self, space: RegisterSpace, atoms: Iterable[Span]) -> list[Span]:
        """``atoms`` merged where they overlap, less those known to be unreadable."""
        known = self._unreadable.get(space, [])
        return [atom for atom in merge_spans(atoms) if not _touches(known, atom)]

    def plan(self, atoms: Mapping[RegisterSpace, Iterable[Span]]) -> list[Block]:
        """The blocks :meth:`read` requests for ``atoms`` when nothing new is refused."""
        blocks: list[Block] = []
        for space in sorted(atoms):
            wanted = self.wanted(space, atoms[space])
            blocks += plan_space(space, wanted, self._limits_for(space, wanted))
        return blocks

    async def read(
        self,
        atoms: Mapping[RegisterSpace, Iterable[Span]],
        *,
        horizon: Mapping[RegisterSpace, Iterable[Span]] | None = None,
    ) -> ReadResult:
        """Register values of every atom the device serves.

        ``horizon`` holds every atom later reads may ask for (all of a device's points, say):
        a read that meets a refusal settles what plans over those would need, so no later
        read is refused and the cap is pinned down as far as any plan can tell.

        Refused atoms are left out, now and later. A planned block the device answers with
        another exception code is left out of this read (see :attr:`ReadResult.failed`).
        When nothing at all could be read, that is no hole in the device's map but a failure:
        the first error is raised and nothing is learned about unreadable atoms. Connection,
        timeout and protocol errors are raised as they come.
        """
        result = ReadResult()
        errors: list[DeviceError] = []
        known = {space: list(spans) for space, spans in self._unreadable.items()}
        wanted = {space: self.wanted(space, spans) for space, spans in atoms.items()}
        try:
            for space in sorted(wanted):
                rest = wanted[space]
                while rest:
                    block = plan_space(space, rest, self._limits_for(space, rest))[0]
                    taken = bisect.bisect_right(rest, (block.end, 0xFFFF))
                    part, rest = rest[:taken], rest[taken:]
                    await self._read_block(space, block, part, result, errors)
            if self._probing:
                await self._settle(wanted, _union(atoms, horizon or {}), result, errors)
        finally:
            self._probing = False
        read = result.registers
        got = any((space, atom[0]) in read for space, spans in wanted.items() for atom in spans)
        if any(wanted.values()) and not got and errors:
            self._unreadable = known
            raise errors[0]
        return result

    async def _settle(
        self,
        atoms: Mapping[RegisterSpace, list[Span]],
        horizon: Mapping[RegisterSpace, Iterable[Span]],
        result: ReadResult,
        errors: list[DeviceError],
    ) -> None:
        """After a refusal: read again, in this read, every block a later plan of ``atoms``
        would hold that no read has shown the device to take, so later reads are never
        refused. Once a read was refused for its size, do the same for blocks of plans over
        the ``horizon`` larger than any read that worked, and while the cap is uncertain
        probe it with blocks that plans at its upper bound would hold, so later plans are
        no longer than they need be."""
        for _ in range(MAX_SETTLE):
            pending = self._pending(atoms, horizon, result.registers, None)
            refused = self.cap.smallest_refused
            if pending is None and refused is not None:
                pending = self._pending(atoms, horizon, result.registers, refused - 1)
            if pending is None:
                return
            space, block, part = pending
            await self._read_block(space, block, part, result, errors)
            if block in result.failed:
                return  # another exception: nothing more to learn here

    def _pending(
        self,
        atoms: Mapping[RegisterSpace, list[Span]],
        horizon: Mapping[RegisterSpace, Iterable[Span]],
        registers: Registers,
        size: int | None,
    ) -> tuple[RegisterSpace, Block, list[Span]] | None:
        """The first block that plans (at ``size`` registers, or as limits stand) would hold
        and reads have not shown the device to serve."""
        for space in sorted(atoms):
            wanted = self.wanted(space, atoms[space])
            for block in plan_space(space, wanted, self._limits_for(space, wanted, size)):
                if not self._proven(block, registers):
                    return space, block, _within(wanted, block)
        if not self.cap.known:
            return None
        for space in sorted(horizon):
            wanted = self.wanted(space, horizon[space])
            for block in plan_space(space, wanted, self._limits_for(space, wanted, size)):
                if block.count > self.cap.largest_ok:
                    return space, block, _within(wanted, block)
        return None

    def _proven(self, block: Block, registers: Registers) -> bool:
        """Whether reads have shown the device to serve ``block``: no larger than a read that
        worked, and every register of it read."""
        return block.count <= self.cap.largest_ok and all(
            (block.space, address) in registers for address in range(block.address, block.end + 1)
        )

    async def _read_block(
        self,
        space: RegisterSpace,
        block: Block,
        atoms: list[Span],
        result: ReadResult,
        errors: list[DeviceError],
    ) -> None:
        try:
            await self._read_atoms(space, atoms, result.registers, errors)
        except DeviceExceptionError as err:
            result.failed[block] = err
            errors.append(err)

    def _limits_for(
        self, space: RegisterSpace, atoms: Sequence[Span], size: int | None = None
    ) -> Limits:
        """Limits for planning ``atoms`` at ``size`` registers, by default under the learned
        cap (or, while probing an uncertain cap, the middle of what worked and what was
        refused): never above the declared largest read, never bridging registers the device
        refused, never below the largest atom (one the device cannot serve is refused on its
        own)."""
        if size is None:
            size = self.cap.limit(self._limits.max_block)
            if self._probing and self.cap.uncertain:
                size = self.cap.middle
        widest = max((end - start + 1 for start, end in atoms), default=1)
        size = max(min(size, self._limits.max_block), widest)
        gaps = tuple(gap for gap in self._refused_gaps.get(space, ()) if not _touches(atoms, gap))
        return Limits(size, self._limits.max_gap, self._limits.refused + gaps)

    async def _read_atoms(
        self,
        space: RegisterSpace,
        atoms: list[Span],
        registers: Registers,
        errors: list[DeviceError],
    ) -> bool:
        """Read ``atoms`` in one request, halving on refusal. Whether every register from the
        first atom to the last was shown to be readable (so a refusal of a block holding them
        all was for its size)."""
        start, end = atoms[0][0], max(atom[1] for atom in atoms)
        count = end - start + 1
        refused = self.cap.smallest_refused
        if len(atoms) > 1 and refused is not None and count >= refused:
            # Learned meanwhile: the device takes no block this large.
            for block in plan_space(space, atoms, self._limits_for(space, atoms)):
                part = [a for a in atoms if block.address <= a[0] and a[1] <= block.end]
                await self._read_atoms(space, part, registers, errors)
            return False  # nothing new to learn from a refusal of a larger block
        self.requests += 1
        try:
            words = await self._read(space, start, count)
        except DeviceExceptionError as err:
            if err.code not in self._refusal_codes:
                raise
            self.refusals += 1
            self._probing = True
            errors.append(err)
            if len(atoms) == 1:
                bisect.insort(self._unreadable.setdefault(space, []), atoms[0])
                self.version += 1
                return False
            cut = _cut(atoms, count // 2)
            head = await self._read_atoms(space, atoms[:cut], registers, errors)
            tail = await self._read_atoms(space, atoms[cut:], registers, errors)
            gap = (max(atom[1] for atom in atoms[:cut]) + 1, atoms[cut][0] - 1)
            if not (head and tail):
                return False
            if gap[0] <= gap[1] and not await self._gap_readable(space, gap, registers):
                return False
            self._note_size_refusal(count)
            return True
        self._note_ok(count)
        registers.update(((space, address), word) for address, word in enumerate(words, start))
        return True

    async def _gap_readable(self, space: RegisterSpace, gap: Span, registers: Registers) -> bool:
        """Whether the unrequested registers between two halves that were both read are
        readable: if so, the block that held all three was refused for its size."""
        count = gap[1] - gap[0] + 1
        self.requests += 1
        try:
            words = await self._read(space, gap[0], count)
        except DeviceExceptionError as err:
            if err.code not in self._refusal_codes:
                raise
            self.refusals += 1
            self._refused_gaps.setdefault(space, []).append(gap)
            self.version += 1
            return False
        self._note_ok(count)
        registers.update(((space, address), word) for address, word in enumerate(words, gap[0]))
        return True

    def _note_ok(self, count: int) -> None:
        before = self.cap.limit(self._limits.max_block)
        self.cap.note_ok(count)
        refused = self.cap.smallest_refused
        if refused is not None and count >= refused:
            # The device took what it refused before: that refusal was no cap after all.
            self._size_refusals = [size for size in self._size_refusals if size > count]
            self.cap.smallest_refused = min(self._size_refusals, default=None)
        if self.cap.limit(self._limits.max_block) != before:
            self.version += 1

    def _note_size_refusal(self, count: int) -> None:
        if count <= self.cap.largest_ok:
            return  # a larger read worked: a flaky answer, not a cap
        self._size_refusals.append(count)
        refused = self.cap.smallest_refused
        self.cap.smallest_refused = count if refused is None else min(refused, count)
        self.version += 1


def _within(atoms: list[Span], block: Block) -> list[Span]:
    return [atom for atom in atoms if block.address <= atom[0] and atom[1] <= block.end]


def _union(
    first: Mapping[RegisterSpace, Iterable[Span]], second: Mapping[RegisterSpace, Iterable[Span]]
) -> dict[RegisterSpace, list[Span]]:
    union: dict[RegisterSpace, list[Span]] = {}
    for atoms in (first, second):
        for space, spans in atoms.items():
            union.setdefault(space, []).extend(spans)
    return union


def _touches(spans: Sequence[Span], atom: Span) -> bool:
    """Whether any of the sorted, disjoint ``spans`` overlaps ``atom``."""
    index = bisect.bisect_right(spans, (atom[1], 0xFFFF)) - 1
    return index >= 0 and spans[index][1] >= atom[0]


def _cut(atoms: list[Span], size: int) -> int:
    """Where to halve ``atoms``: at about ``size`` registers, where two atoms meet if one
    pair does nearby (nothing unrequested between the halves, so a refusal that both halves
    survive can only be for size); at least one atom each side."""
    start = atoms[0][0]
    middle = 1
    while middle < len(atoms) - 1 and atoms[middle][1] - start + 1 <= size:
        middle += 1
    reach = size // 2
    meeting = [
        index
        for index in range(1, len(atoms))
        if atoms[index][0] == atoms[index - 1][1] + 1
        and abs(atoms[index][0] - start - size) <= reach
    ]
    return min(meeting, key=lambda index: abs(index - middle), default=middle)
