"""The agent's telemetry buffer: every batch the hub has not yet acknowledged as durable.

Batches are numbered here (``seq``, increasing by one) and kept in seq order until the hub's
durable mark passes them. The newest live in memory; :meth:`TelemetryBuffer.spill` moves them
to a segment file on disk, which the agent does while it is disconnected (so a restart loses
nothing) and whenever unacknowledged data outgrows the memory budget. Disk has a budget too:
past it the oldest segments are dropped and counted, so a site offline for weeks cannot fill
its SD card. After a reconnect :meth:`TelemetryBuffer.rewind` goes back to the hub's durable
mark and :meth:`TelemetryBuffer.next_unsent` hands out everything after it again, oldest first.

Every invariant here holds because disk only ever holds batches older than memory's: a spill
moves all of memory into one new segment.

Segment files are named ``<first seq>-<last seq>-<points>.seg`` and hold records of
``seq (u64) points (u32) length (u32)`` and the serialized ``Telemetry`` message; they are
written to a temporary name and renamed, so a crash leaves either the whole segment or none.
File work runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from ..gateway.proto import gateway_pb2 as pb

_LOGGER = logging.getLogger(__name__)

_RECORD = struct.Struct("<QII")
_STATE = "state.json"


@dataclass(frozen=True, slots=True)
class BufferStats:
    """What the buffer holds and what it had to give up."""

    memory_batches: int
    memory_bytes: int
    disk_segments: int
    disk_bytes: int
    next_seq: int
    dropped_batches: int
    dropped_points: int


@dataclass(frozen=True, slots=True)
class _Batch:
    seq: int
    points: int
    size: int
    message: pb.Telemetry


@dataclass(frozen=True, slots=True)
class _Segment:
    path: Path
    first: int
    last: int
    points: int
    size: int


class TelemetryBuffer:
    """Unacknowledged telemetry of one agent, in memory and (with a directory) on disk.

    Without a directory nothing survives a restart and, past the memory budget, the oldest
    batches are dropped instead of spilled.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        memory_limit: int = 4 * 1024 * 1024,
        disk_limit: int = 256 * 1024 * 1024,
    ) -> None:
        self._directory = directory
        self._memory_limit = memory_limit
        self._disk_limit = disk_limit
        self._memory: deque[_Batch] = deque()
        self._memory_bytes = 0
        self._segments: deque[_Segment] = deque()
        self._loaded: tuple[_Segment, list[_Batch]] | None = None
        self._next_seq = 1
        self._sent = 0
        self._lock = asyncio.Lock()
        self.dropped_batches = 0
        self.dropped_points = 0

    @property
    def next_seq(self) -> int:
        """The seq the next batch will get."""
        return self._next_seq

    @property
    def pending(self) -> int:
        """Batches not yet acknowledged as durable."""
        on_disk = sum(segment.last - segment.first + 1 for segment in self._segments)
        return on_disk + len(self._memory)

    @property
    def unsent(self) -> int:
        """Batches not handed out since the last rewind (dropped ones included)."""
        return max(0, self._next_seq - 1 - self._sent)

    def has_unsent(self) -> bool:
        """Whether :meth:`next_unsent` has something to hand out."""
        newest = self._memory[-1].seq if self._memory else None
        if newest is None and self._segments:
            newest = self._segments[-1].last
        return newest is not None and newest > self._sent

    def stats(self) -> BufferStats:
        """Current figures."""
        return BufferStats(
            memory_batches=len(self._memory),
            memory_bytes=self._memory_bytes,
            disk_segments=len(self._segments),
            disk_bytes=sum(segment.size for segment in self._segments),
            next_seq=self._next_seq,
            dropped_batches=self.dropped_batches,
            dropped_points=self.dropped_points,
        )

    async def open(self) -> None:
        """Find the segments and the seq counter a previous run left behind."""
        if self._directory is None:
            return
        segments, next_seq = await asyncio.to_thread(_scan, self._directory)
        async with self._lock:
            self._segments = deque(segments)
            last = segments[-1].last if segments else 0
            self._next_seq = max(self._next_seq, next_seq, last + 1)
        if segments:
            _LOGGER.info(
                "Telemetry buffer %s: %d batches from a previous run to send",
                self._directory,
                self.pending,
            )

    async def add(self, telemetry: pb.Telemetry, points: int) -> int:
        """Number ``telemetry`` (its ``seq`` is set here) and keep it; return the seq."""
        async with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            telemetry.seq = seq
            batch = _Batch(seq, points, telemetry.ByteSize(), telemetry)
            self._memory.append(batch)
            self._memory_bytes += batch.size
            over = self._memory_bytes > self._memory_limit
        if over:
            await self.spill()
        return seq

    async def acknowledge(self, durable_seq: int) -> None:
        """Forget every batch up to ``durable_seq``: the hub has it durably."""
        async with self._lock:
            while self._memory and self._memory[0].seq <= durable_seq:
                self._memory_bytes -= self._memory.popleft().size
            done = []
            while self._segments and self._segments[0].last <= durable_seq:
                done.append(self._segments.popleft())
            if self._loaded is not None and self._loaded[0] in done:
                self._loaded = None
            # A fresh agent (lost state) must not reuse seqs the hub has already stored.
            self._next_seq = max(self._next_seq, durable_seq + 1)
        if done:
            await asyncio.to_thread(_remove, [segment.path for segment in done])

    async def rewind(self, durable_seq: int) -> None:
        """Start a new session: drop what is durable, hand out the rest again."""
        await self.acknowledge(durable_seq)
        self._sent = durable_seq

    async def next_unsent(self) -> pb.Telemetry | None:
        """The oldest batch not handed out since the last rewind, or ``None``."""
        async with self._lock:
            for segment in list(self._segments):
                if segment.last <= self._sent:
                    continue
                batches = await self._load(segment)
                for batch in batches:
                    if batch.seq > self._sent:
                        self._sent = batch.seq
                        return batch.message
                self._sent = segment.last  # the rest of the segment was unreadable
            if not self._memory or self._memory[-1].seq <= self._sent:
                return None
            index = max(0, self._sent + 1 - self._memory[0].seq)
            batch = self._memory[index]
            self._sent = batch.seq
            return batch.message

    async def spill(self) -> None:
        """Move every batch in memory to a new segment on disk, then enforce the budgets."""
        async with self._lock:
            if not self._memory:
                return
            if self._directory is None:
                self._drop_oldest_memory()
                return
            batches = list(self._memory)
            segment = await asyncio.to_thread(_write_segment, self._directory, batches)
            self._segments.append(segment)
            self._memory.clear()
            self._memory_bytes = 0
            await self._enforce_disk_budget()

    async def close(self) -> None:
        """Put everything still unacknowledged on disk and remember the seq counter."""
        await self.spill()
        if self._directory is not None:
            await asyncio.to_thread(_write_state, self._directory, self._next_seq)

    def _drop_oldest_memory(self) -> None:
        while self._memory and self._memory_bytes > self._memory_limit:
            batch = self._memory.popleft()
            self._memory_bytes -= batch.size
            self._count_drop(1, batch.points)

    async def _enforce_disk_budget(self) -> None:
        dropped = []
        while len(self._segments) > 1 and sum(s.size for s in self._segments) > self._disk_limit:
            segment = self._segments.popleft()
            dropped.append(segment.path)
            self._count_drop(segment.last - segment.first + 1, segment.points)
            if self._loaded is not None and self._loaded[0] is segment:
                self._loaded = None
        if dropped:
            await asyncio.to_thread(_remove, dropped)

    def _count_drop(self, batches: int, points: int) -> None:
        if not self.dropped_batches:
            _LOGGER.warning("Telemetry buffer over budget: dropping the oldest batches")
        self.dropped_batches += batches
        self.dropped_points += points

    async def _load(self, segment: _Segment) -> list[_Batch]:
        if self._loaded is None or self._loaded[0] is not segment:
            batches = await asyncio.to_thread(_read_segment, segment)
            self._loaded = (segment, batches)
        return self._loaded[1]


def _scan(directory: Path) -> tuple[list[_Segment], int]:
    directory.mkdir(parents=True, exist_ok=True)
    segments = []
    for path in directory.iterdir():
        if path.suffix == ".tmp":
            path.unlink(missing_ok=True)  # a write the previous run did not finish
            continue
        if path.suffix != ".seg":
            continue
        try:
            first, last, points = (int(part) for part in path.stem.split("-"))
        except ValueError:
            _LOGGER.warning("Ignoring %s: not a telemetry segment", path)
            continue
        segments.append(_Segment(path, first, last, points, path.stat().st_size))
    segments.sort(key=lambda segment: segment.first)
    next_seq = 1
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        next_seq = int(json.loads((directory / _STATE).read_text())["next_seq"])
    return segments, next_seq


def _write_segment(directory: Path, batches: list[_Batch]) -> _Segment:
    first, last = batches[0].seq, batches[-1].seq
    points = sum(batch.points for batch in batches)
    path = directory / f"{first:020d}-{last:020d}-{points}.seg"
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as file:
        for batch in batches:
            payload = batch.message.SerializeToString()
            file.write(_RECORD.pack(batch.seq, batch.points, len(payload)))
            file.write(payload)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
    return _Segment(path, first, last, points, path.stat().st_size)


def _read_segment(segment: _Segment) -> list[_Batch]:
    try:
        data = segment.path.read_bytes()
    except OSError as err:
        _LOGGER.warning("Cannot read telemetry segment %s: %s", segment.path, err)
        return []
    batches, offset = [], 0
    while offset + _RECORD.size <= len(data):
        seq, points, length = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        if offset + length > len(data):
            break
        try:
            message = pb.Telemetry.FromString(data[offset : offset + length])
        except DecodeError:
            break
        batches.append(_Batch(seq, points, length, message))
        offset += length
    if offset != len(data):
        _LOGGER.warning("Telemetry segment %s is damaged; keeping what is whole", segment.path)
    return batches


def _write_state(directory: Path, next_seq: int) -> None:
    temporary = directory / f"{_STATE}.tmp"
    temporary.write_text(json.dumps({"next_seq": next_seq}))
    temporary.replace(directory / _STATE)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
