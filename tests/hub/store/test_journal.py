"""The ingest journal: batches are durable once journaled, the minutes are still written
once, and a restart takes back what the journal holds (on SQLite and on TimescaleDB)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ems.gateway.convert import batch_from_proto, batch_to_proto
from edge_ems.hub.store import MinuteStore, SeriesFilter, StoreError, StoreSettings
from edge_ems.hub.store import journal as journal_module
from edge_ems.hub.store.journal import encode, read_segment

from .conftest import MINUTE, T0, Clock, batch

POWER = ("bess-1", "ac_power_w")


def closed_at(clock: Clock, minute_ms: int) -> None:
    clock.at(minute_ms + MINUTE + 11_000)


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.log"))


async def samples(store: MinuteStore, start: int, end: int) -> list[int]:
    [found] = await store.query(SeriesFilter(), start, end)
    return [point.samples for point in found.points]


async def test_a_journaled_batch_is_durable_before_its_minute_is_written(
    stores: Callable[..., MinuteStore], tmp_path: Path
) -> None:
    store = stores(journal=tmp_path / "journal")
    await store.open()
    announced: list[tuple[str, int]] = []
    store.subscribe(lambda agent, seq: announced.append((agent, seq)))
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))
    await store.accept(batch(2, {POWER: [(T0 + 2000, 2.0)]}))
    assert store.durable_seq("agent-1") == 0
    assert store.status().journal_pending == 2

    await store.sync()
    assert announced == [("agent-1", 2)]
    assert store.durable_seq("agent-1") == 2
    assert store.status().journal_pending == 0
    assert store.status().rows_written == 0  # the minute is still open, and unwritten


async def test_a_restart_takes_back_what_the_journal_holds_and_stores_it_once(
    stores: Callable[..., MinuteStore], clock: Clock, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    first = stores(journal=journal)
    await first.open()
    # Batch 1 lies in minute 0, batch 2 across minutes 0 and 1, batch 3 in minute 1.
    await first.accept(batch(1, {POWER: [(T0 + 10_000, 1.0)]}))
    await first.accept(batch(2, {POWER: [(T0 + 50_000, 2.0), (T0 + 70_000, 3.0)]}))
    await first.sync()
    closed_at(clock, T0)
    await first.flush()  # writes minute 0: batch 1 is in the database, batch 2 in part
    await first.accept(batch(3, {POWER: [(T0 + 80_000, 4.0)]}))
    await first.sync()
    await first.accept(batch(4, {POWER: [(T0 + 90_000, 5.0)]}))  # never journaled
    assert first.durable_seq("agent-1") == 3
    await first.backend.close()  # the hub dies: nothing else is written

    second = stores(journal=journal)
    await second.open()
    assert second.durable_seq("agent-1") == 3
    for seq, value in ((3, 4.0), (4, 5.0)):  # the agent sends what was not acknowledged
        await second.accept(batch(seq, {POWER: [(T0 + 80_000 + (seq - 3) * 10_000, value)]}))
    closed_at(clock, T0 + MINUTE)
    await second.flush()
    assert await samples(second, T0, T0 + 2 * MINUTE) == [2, 3]
    assert second.status().duplicate_batches == 1
    assert second.status().resent_samples == 1  # batch 2's sample in minute 0
    assert second.durable_seq("agent-1") == 4


async def test_a_journal_is_read_back_a_chunk_at_a_time(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    first = journal_module.IngestJournal(directory)
    assert [chunk async for chunk in first.replay()] == []
    for seq in range(1, 6):
        first.append(batch(seq, {POWER: [(T0 + seq * 1000, float(seq))]}))
    await first.commit()
    await first.close({})
    second = journal_module.IngestJournal(directory)
    chunks = [[b.seq for b in chunk] async for chunk in second.replay(chunk=2)]
    assert chunks == [[1, 2], [3, 4], [5]]
    assert second.segments == 2  # the one read back, and the new one
    await second.close({"agent-1": 5})
    assert segment_files(directory) == []


async def test_segments_go_once_the_database_holds_them(
    stores: Callable[..., MinuteStore], clock: Clock, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    store = stores(journal=journal)
    await store.open()
    for seq in range(1, 4):
        await store.accept(batch(seq, {POWER: [(T0 + seq * 1000, float(seq))]}))
        await store.sync()
    assert len(segment_files(journal)) == 1
    await store.accept(batch(4, {POWER: [(T0 + MINUTE + 1000, 4.0)]}))
    await store.sync()
    closed_at(clock, T0)
    await store.flush()
    # Batch 4 waits for minute 1: its segment stays, a new one takes what comes next.
    assert store.status().journal_segments == 2
    closed_at(clock, T0 + MINUTE)
    await store.flush()
    assert store.status().journal_segments == 1
    [kept] = segment_files(journal)
    assert kept.stat().st_size == 0
    await store.close()
    assert segment_files(journal) == []


async def test_a_record_cut_short_by_a_crash_is_dropped_and_sent_again(
    stores: Callable[..., MinuteStore],
    clock: Clock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = tmp_path / "journal"
    first = stores(journal=journal)
    await first.open()
    await first.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))
    await first.sync()
    await first.backend.close()
    [segment] = segment_files(journal)
    whole = segment.stat().st_size
    torn = encode(batch(2, {POWER: [(T0 + 2000, 2.0)]}))
    with segment.open("ab") as file:
        file.write(torn[: len(torn) // 2])

    second = stores(journal=journal)
    with caplog.at_level(logging.WARNING):
        await second.open()
    assert "cut short" in caplog.text
    assert segment.stat().st_size == whole
    assert second.durable_seq("agent-1") == 1
    await second.accept(batch(2, {POWER: [(T0 + 2000, 2.0)]}))
    closed_at(clock, T0)
    await second.flush()
    assert await samples(second, T0, T0 + MINUTE) == [2]


async def test_a_journal_that_cannot_be_written_keeps_its_batches_and_says_so(
    stores: Callable[..., MinuteStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores(journal=tmp_path / "journal")
    await store.open()
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))

    def full(descriptor: int, data: bytes) -> None:
        os.write(descriptor, data[: len(data) // 2])  # a torn record
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(journal_module, "_write", full)
        with pytest.raises(StoreError, match="No space left"):
            await store.sync()
    status = store.status()
    assert (status.journal_pending, status.flush_failures) == (1, 1)
    assert "No space left" in (status.last_error or "")
    assert store.durable_seq("agent-1") == 0
    await store.sync()  # the disk has room again
    assert store.durable_seq("agent-1") == 1
    await store.accept(batch(2, {POWER: [(T0 + 2000, 2.0)]}))
    await store.sync()
    # Read back after a crash: what was acknowledged does not sit behind the torn record.
    await store.backend.close()
    again = stores(journal=tmp_path / "journal")
    await again.open()
    assert again.durable_seq("agent-1") == 2


async def test_a_segment_that_cannot_be_started_is_tried_again_at_the_next_commit(
    stores: Callable[..., MinuteStore],
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = tmp_path / "journal"
    store = stores(journal=journal)
    await store.open()
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))
    await store.sync()
    refusals = []
    start = journal_module.IngestJournal._start_segment

    def refuse_once(self: journal_module.IngestJournal) -> None:
        if not refusals:
            refusals.append(True)
            raise OSError(errno.EMFILE, "Too many open files")
        start(self)

    monkeypatch.setattr(journal_module.IngestJournal, "_start_segment", refuse_once)
    closed_at(clock, T0)
    await store.flush()  # the rotation cannot open the next segment
    await store.accept(batch(2, {POWER: [(T0 + MINUTE + 1000, 2.0)]}))
    await store.sync()
    assert store.durable_seq("agent-1") == 2
    assert [path.name for path in segment_files(journal)] == ["segment-00000002.log"]


async def test_a_failing_journal_is_said_once_and_tried_less_often(
    stores: Callable[..., MinuteStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = stores(StoreSettings(journal_interval=0.01), journal=tmp_path / "journal")
    await store.open()
    attempts: list[bytes] = []

    def full(descriptor: int, data: bytes) -> None:
        attempts.append(data)
        raise OSError(errno.ENOSPC, "No space left on device")

    store.start()
    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        patched.setattr(journal_module, "_write", full)
        await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))
        await asyncio.sleep(0.5)
        # 10, 20, 40, 80, 160 ms apart: five or so tries, one log line.
        assert 3 <= len(attempts) <= 7
        assert caplog.text.count("Ingest journal write failed") == 1
    done = asyncio.Event()
    store.subscribe(lambda agent, seq: done.set())
    async with asyncio.timeout(10):
        await done.wait()
    assert "writes again" in caplog.text
    assert store.status().last_error is None


async def test_a_journal_directory_that_cannot_be_made_stops_the_start(
    stores: Callable[..., MinuteStore], tmp_path: Path
) -> None:
    taken = tmp_path / "journal"
    taken.write_text("a file, not a directory")
    with pytest.raises(StoreError, match="cannot open the ingest journal"):
        await stores(journal=taken).open()


async def test_the_store_commits_the_journal_on_its_own(
    stores: Callable[..., MinuteStore], tmp_path: Path
) -> None:
    store = stores(StoreSettings(journal_interval=0.01), journal=tmp_path / "journal")
    await store.open()
    store.start()
    done = asyncio.Event()
    store.subscribe(lambda agent, seq: done.set())
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))
    async with asyncio.timeout(10):
        await done.wait()
    assert store.durable_seq("agent-1") == 1


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=64), cut=st.integers(min_value=0, max_value=200))
def test_whatever_follows_the_whole_records_is_never_taken_for_a_batch(
    tmp_path_factory: pytest.TempPathFactory, tail: bytes, cut: int
) -> None:
    path = tmp_path_factory.mktemp("segment") / "segment-00000001.log"
    records = [encode(batch(seq, {POWER: [(T0 + seq, float(seq))]})) for seq in (1, 2)]
    damaged = records[1][: min(cut, len(records[1]) - 1)] + tail
    path.write_bytes(records[0] + damaged)
    found, whole = read_segment(path)
    assert [b.seq for b in found][:1] == [1]
    assert whole >= len(records[0])
    if len(found) == 1:
        assert whole == len(records[0])


def test_a_batch_off_the_wire_is_journaled_as_it_came() -> None:
    built = batch(3, {POWER: [(T0, 1.5), (T0 + 1000, 2.5)]})
    message = batch_to_proto(built)
    received = batch_from_proto(message, agent_id=built.agent_id, site_id=built.site_id)
    assert received.encoded == message.SerializeToString()
    assert encode(received) == encode(built)  # the same record, not encoded again
    assert encode(replace(received, encoded=b"as it came")).endswith(b"as it came")
