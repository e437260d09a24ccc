"""The ingest journal: accepted telemetry on disk before the minute store writes it.

The minute store writes each minute once, after it closes, so without a journal a batch is
acknowledged only after the next minute flush (about a minute later), or open minutes are
written early and again and again (a headend wanting prompt acknowledgements). With the
journal, every batch the store accepts is appended here, and a group commit (one write and
one fsync for every batch that arrived in the last ``journal_interval`` seconds) makes it
durable: the agent is acknowledged within a fraction of a second, while the minutes are
still written once.

Files. A directory of segments ``segment-<n>.log``; the store starts a new one after each
minute flush, and a segment is deleted once every batch in it is in the database (the
backend's durable seq of each agent covers it). A record is its length and CRC-32, then the
agent id, the site id and the batch as the gateway's protobuf ``Telemetry``. At start, the
segments are read back in order: what a crash cut short (a torn last record) was never
acknowledged, so it is dropped and the agent sends it again.

Each hub process has a journal of its own (on its own disk), also when hubs share a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError

from ...gateway.convert import batch_from_proto, batch_to_proto
from ...gateway.errors import ProtocolViolationError
from ...gateway.model import TelemetryBatch
from ...gateway.proto import gateway_pb2 as pb
from .errors import StoreError

_LOGGER = logging.getLogger(__name__)

_RECORD = struct.Struct("<II")
"""A record's header: payload length and its CRC-32."""
_IDS = struct.Struct("<HH")
"""The payload's start: the lengths of the agent id and the site id."""
REPLAY_CHUNK = 1000
"""Batches read back from the journal at a time."""
_NAME = "segment-{:08d}.log"
_NAMES = "segment-*.log"


@dataclass(slots=True)
class _Segment:
    path: Path
    seqs: dict[str, int] = field(default_factory=dict)
    """Per agent, the highest seq in the segment."""

    def covered(self, durable: Mapping[str, int]) -> bool:
        return all(seq <= durable.get(agent, 0) for agent, seq in self.seqs.items())


def encode(batch: TelemetryBatch) -> bytes:
    """One record for ``batch``."""
    agent, site = batch.agent_id.encode(), batch.site_id.encode()
    message = batch.encoded
    if message is None:
        message = batch_to_proto(batch).SerializeToString()
    payload = b"".join((_IDS.pack(len(agent), len(site)), agent, site, message))
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> TelemetryBatch:
    """The batch of a record's payload; :class:`ValueError` if it is not one."""
    try:
        agent_size, site_size = _IDS.unpack_from(payload)
    except struct.error as err:
        raise ValueError(str(err)) from err
    start = _IDS.size
    agent = payload[start : start + agent_size].decode()
    site = payload[start + agent_size : start + agent_size + site_size].decode()
    message = pb.Telemetry()
    try:
        message.ParseFromString(payload[start + agent_size + site_size :])
        return batch_from_proto(message, agent_id=agent, site_id=site)
    except (DecodeError, ProtocolViolationError) as err:
        raise ValueError(str(err)) from err


class SegmentReader:
    """A segment's records, read a chunk at a time (blocking; run it in a thread)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.whole = 0
        """Bytes of whole records read so far."""
        self.ended = False

    def read(self, limit: int) -> list[TelemetryBatch]:
        """Up to ``limit`` more batches; none once the whole records are read (what follows
        them, if anything, is a record a stop cut short)."""
        found: list[TelemetryBatch] = []
        while len(found) < limit and not self.ended:
            header = self._file.read(_RECORD.size)
            if len(header) < _RECORD.size:
                self.ended = True
                break
            size, crc = _RECORD.unpack(header)
            payload = self._file.read(size)
            try:
                if len(payload) < size or zlib.crc32(payload) != crc:
                    raise ValueError("a record cut short")
                found.append(decode(payload))
            except ValueError:
                self.ended = True
                break
            self.whole += _RECORD.size + size
        return found

    def close(self) -> None:
        self._file.close()


def read_segment(path: Path) -> tuple[list[TelemetryBatch], int]:
    """The batches of a segment and how many bytes of it hold whole records (blocking)."""
    reader = SegmentReader(path)
    try:
        batches: list[TelemetryBatch] = []
        while found := reader.read(1000):
            batches += found
        return batches, reader.whole
    finally:
        reader.close()


class IngestJournal:
    """Accepted batches on disk until the database holds them; see the module's docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._segments: list[_Segment] = []
        self._current: _Segment | None = None
        self._file: int | None = None
        self._pending: list[bytes] = []
        self._pending_seqs: list[tuple[str, int]] = []
        self._number = 0
        self._lock = asyncio.Lock()
        """Writes and rotations take turns: a rotation closes the file a write goes to."""

    @property
    def pending(self) -> int:
        """Batches appended and not yet written."""
        return len(self._pending)

    @property
    def segments(self) -> int:
        """Segment files on disk."""
        return len(self._segments) + (self._current is not None)

    async def replay(self, chunk: int = REPLAY_CHUNK) -> AsyncIterator[list[TelemetryBatch]]:
        """What an earlier run journaled, oldest first, ``chunk`` batches at a time (a
        headend's journal holds minutes of a fleet's data); then a new segment is started."""
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
            paths = await asyncio.to_thread(lambda: sorted(self.directory.glob(_NAMES)))
            for path in paths:
                segment = _Segment(path)
                reader = await asyncio.to_thread(SegmentReader, path)
                try:
                    while batches := await asyncio.to_thread(reader.read, chunk):
                        for batch in batches:
                            held = segment.seqs.get(batch.agent_id, 0)
                            segment.seqs[batch.agent_id] = max(batch.seq, held)
                        yield batches
                finally:
                    await asyncio.to_thread(reader.close)
                if reader.whole < (await asyncio.to_thread(path.stat)).st_size:
                    _LOGGER.warning(
                        "Journal %s ends in a record a stop cut short; its agent sends it again",
                        path,
                    )
                    await asyncio.to_thread(os.truncate, path, reader.whole)
                self._segments.append(segment)
                self._number = max(self._number, int(path.stem.split("-")[1]))
            await asyncio.to_thread(self._start_segment)
        except OSError as err:
            raise StoreError(f"cannot open the ingest journal {self.directory}: {err}") from err

    def _start_segment(self) -> None:
        path = self.directory / _NAME.format(self._number + 1)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._file = os.open(path, flags, 0o600)
        self._number += 1
        self._current = _Segment(path)

    def append(self, batch: TelemetryBatch) -> None:
        """Queue ``batch`` for the next :meth:`commit`."""
        self._pending.append(encode(batch))
        self._pending_seqs.append((batch.agent_id, batch.seq))

    async def commit(self) -> list[tuple[str, int]]:
        """Write and fsync what was appended; return the (agent, seq) now durable. On an
        error nothing counts as written and it is tried again at the next commit, in a new
        segment (a record written twice is read back as a duplicate, which the store
        drops)."""
        async with self._lock:
            if not self._pending:
                return []
            if self._current is None or self._file is None:  # a rotation could not open one
                try:
                    await asyncio.to_thread(self._start_segment)
                except OSError as err:
                    raise StoreError(f"cannot start an ingest journal segment: {err}") from err
            segment, descriptor = self._current, self._file
            assert segment is not None
            assert descriptor is not None
            records, seqs = self._pending, self._pending_seqs
            self._pending, self._pending_seqs = [], []
            try:
                await asyncio.to_thread(_write, descriptor, b"".join(records))
            except OSError as err:
                self._pending[:0], self._pending_seqs[:0] = records, seqs
                # The failed write may have left a torn record, which ends a read-back: the
                # next commit goes to a new segment, so nothing acknowledged follows it.
                self._segments.append(segment)
                self._current = self._file = None
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(os.close, descriptor)
                raise StoreError(f"cannot write the ingest journal {segment.path}: {err}") from err
            for agent, seq in seqs:
                if seq > segment.seqs.get(agent, 0):
                    segment.seqs[agent] = seq
            return seqs

    async def rotate(self, durable: Mapping[str, int]) -> None:
        """Start a new segment (if the current one holds anything) and delete the segments
        whose every batch is at or below ``durable`` (per agent, what the database holds)."""
        async with self._lock:
            await asyncio.to_thread(self._rotate, durable, reopen=True)

    async def close(self, durable: Mapping[str, int]) -> None:
        """Close the current segment and delete what ``durable`` covers."""
        async with self._lock:
            await asyncio.to_thread(self._rotate, durable, reopen=False)

    def _rotate(self, durable: Mapping[str, int], *, reopen: bool) -> None:
        current = self._current
        closing = current is not None and bool(current.seqs or not reopen)
        if current is not None and closing:
            self._segments.append(current)
            if self._file is not None:
                os.close(self._file)
            self._current = self._file = None
        kept = []
        for segment in self._segments:
            if segment.covered(durable):
                segment.path.unlink(missing_ok=True)
            else:
                kept.append(segment)
        self._segments = kept
        if closing and reopen:
            self._start_segment()  # failing, the next commit tries again


def _write(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
    os.fsync(descriptor)
