"""The agent's telemetry buffer: numbering, acks, rewinds, spills to disk, budgets, restarts."""

from __future__ import annotations

from pathlib import Path

from edge_ems.agent import TelemetryBuffer
from edge_ems.gateway.proto import gateway_pb2 as pb


def batch(points: int = 10) -> pb.Telemetry:
    return pb.Telemetry(
        series=[
            pb.Series(
                asset_id="bess-1",
                metric="soc_pct",
                timestamps_ms=range(points),
                values=[50.0] * points,
            )
        ]
    )


async def drain(buffer: TelemetryBuffer) -> list[int]:
    seqs = []
    while (message := await buffer.next_unsent()) is not None:
        seqs.append(message.seq)
    return seqs


async def fill(buffer: TelemetryBuffer, count: int, points: int = 10) -> list[int]:
    return [await buffer.add(batch(points), points) for _ in range(count)]


async def test_batches_are_numbered_and_handed_out_once() -> None:
    buffer = TelemetryBuffer()
    assert await fill(buffer, 3) == [1, 2, 3]
    assert buffer.has_unsent()
    assert await drain(buffer) == [1, 2, 3]
    assert not buffer.has_unsent()
    await fill(buffer, 1)
    assert await drain(buffer) == [4]
    assert buffer.pending == 4


async def test_acks_forget_and_rewind_resends_the_rest() -> None:
    buffer = TelemetryBuffer()
    await fill(buffer, 5)
    await drain(buffer)
    await buffer.acknowledge(2)
    assert buffer.pending == 3
    await buffer.rewind(3)
    assert await drain(buffer) == [4, 5]


async def test_the_hub_durable_mark_moves_a_fresh_counter_on() -> None:
    buffer = TelemetryBuffer()
    await buffer.rewind(41)  # the hub has seqs up to 41 from a previous life of this agent
    assert await fill(buffer, 1) == [42]


async def test_spills_go_to_disk_and_come_back_in_order(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path)
    await buffer.open()
    await fill(buffer, 3)
    await buffer.spill()
    await fill(buffer, 2)
    stats = buffer.stats()
    assert (stats.disk_segments, stats.memory_batches) == (1, 2)
    assert await drain(buffer) == [1, 2, 3, 4, 5]
    await buffer.acknowledge(3)
    assert not list(tmp_path.glob("*.seg"))
    await buffer.rewind(3)
    assert await drain(buffer) == [4, 5]


async def test_over_the_memory_budget_batches_spill(tmp_path: Path) -> None:
    size = batch().ByteSize() + 2  # with its seq
    buffer = TelemetryBuffer(tmp_path, memory_limit=size * 3)
    await buffer.open()
    await fill(buffer, 4)
    assert buffer.stats().memory_batches == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1
    assert await drain(buffer) == [1, 2, 3, 4]


async def test_without_a_directory_the_oldest_are_dropped_and_counted() -> None:
    size = batch().ByteSize() + 2  # with its seq
    buffer = TelemetryBuffer(memory_limit=size * 3)
    await fill(buffer, 5)
    assert buffer.stats().memory_batches == 3
    assert (buffer.dropped_batches, buffer.dropped_points) == (2, 20)
    assert await drain(buffer) == [3, 4, 5]


async def test_the_disk_budget_drops_the_oldest_segments(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path, disk_limit=1)
    await buffer.open()
    for _ in range(3):
        await fill(buffer, 2)
        await buffer.spill()
    stats = buffer.stats()
    assert stats.disk_segments == 1  # the newest always stays
    assert (stats.dropped_batches, stats.dropped_points) == (4, 40)
    assert await drain(buffer) == [5, 6]


async def test_a_restart_finds_what_was_left(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path)
    await buffer.open()
    await fill(buffer, 4)
    await buffer.acknowledge(1)
    await buffer.close()

    again = TelemetryBuffer(tmp_path)
    await again.open()
    assert again.pending == 3
    assert again.next_seq == 5
    assert await drain(again) == [2, 3, 4]
    await again.acknowledge(4)
    await again.close()

    third = TelemetryBuffer(tmp_path)
    await third.open()
    assert (third.pending, third.next_seq) == (0, 5)


async def test_damaged_segments_keep_what_is_whole(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path)
    await buffer.open()
    await fill(buffer, 3)
    await buffer.close()
    [segment] = tmp_path.glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 5])
    (tmp_path / "junk.seg").write_text("not mine")
    (tmp_path / "half-written.tmp").write_text("x")

    again = TelemetryBuffer(tmp_path)
    await again.open()
    assert await drain(again) == [1, 2]
    assert not (tmp_path / "half-written.tmp").exists()
    assert await fill(again, 1) == [4]
