"""Ingest, flush, durability, queries and retention, on SQLite and on TimescaleDB."""

from __future__ import annotations

import random
from collections.abc import Callable
from statistics import fmean

import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.hub.store import (
    MinuteStore,
    QueryError,
    Resolution,
    Retention,
    SeriesFilter,
    SeriesKey,
    StoreSettings,
)

from .conftest import MINUTE, T0, Clock, batch

POWER = ("bess-1", "ac_power_w")
SOC = ("bess-1", "soc_pct")
KEY = SeriesKey("farm", *POWER)
HOUR_MS = 60 * MINUTE


def closed_at(clock: Clock, minute_ms: int) -> None:
    """Move the clock just past the flush grace after ``minute_ms``'s minute ends."""
    clock.at(minute_ms + MINUTE + 11_000)


async def test_a_flush_writes_closed_minutes_and_announces_what_is_durable(
    store: MinuteStore, clock: Clock
) -> None:
    announced: list[tuple[str, int]] = []
    store.subscribe(lambda agent, seq: announced.append((agent, seq)))
    await store.accept(batch(1, {POWER: [(T0 + 1000, 10.0), (T0 + 30_000, 30.0)]}))
    await store.accept(batch(2, {POWER: [(T0 + 50_000, 20.0), (T0 + MINUTE + 5, 99.0)]}))
    assert store.durable_seq("agent-1") == 0

    closed_at(clock, T0)
    assert await store.flush() == 1
    # Batch 2 reaches into the open minute: not durable until that minute is written.
    assert announced == [("agent-1", 1)]
    assert store.durable_seq("agent-1") == 1
    [found] = await store.query(SeriesFilter(), T0, T0 + 2 * MINUTE, written_only=True)
    assert found.key == KEY
    [point] = found.points
    assert point == (T0, 20.0, 10.0, 30.0, 20.0, 3)
    # The open minute shows as it stands, after the written ones.
    [found] = await store.query(SeriesFilter(), T0, T0 + 2 * MINUTE)
    assert found.points == [point, (T0 + MINUTE, 99.0, 99.0, 99.0, 99.0, 1)]

    closed_at(clock, T0 + MINUTE)
    await store.flush()
    assert announced[-1] == ("agent-1", 2)
    [found] = await store.query(SeriesFilter(), T0, T0 + 2 * MINUTE)
    assert [p.last for p in found.points] == [20.0, 99.0]


async def test_queries_show_open_minutes_where_nothing_is_written_yet(
    store: MinuteStore, clock: Clock
) -> None:
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0), (T0 + 2 * MINUTE + 1000, 5.0)]}))
    assert await store.series() == [KEY]  # known before any flush
    [found] = await store.query(SeriesFilter(), T0, T0 + 3 * MINUTE)
    assert [(p.start_ms, p.avg, p.samples) for p in found.points] == [
        (T0, 1.0, 1),
        (T0 + 2 * MINUTE, 5.0, 1),
    ]
    closed_at(clock, T0)
    await store.flush()
    # Late samples for a written minute: the written bucket shows until the flush merges
    # them in; an earlier gap shows in time order.
    await store.accept(batch(2, {POWER: [(T0 + 2000, 3.0), (T0 + MINUTE + 5, 7.0)]}))
    [found] = await store.query(SeriesFilter(), T0, T0 + 3 * MINUTE)
    assert [(p.start_ms, p.samples) for p in found.points] == [
        (T0, 1),
        (T0 + MINUTE, 1),
        (T0 + 2 * MINUTE, 1),
    ]
    closed_at(clock, T0 + 2 * MINUTE)
    await store.flush()
    [found] = await store.query(SeriesFilter(), T0, T0 + 3 * MINUTE)
    assert [(p.start_ms, p.samples) for p in found.points] == [
        (T0, 2),
        (T0 + MINUTE, 1),
        (T0 + 2 * MINUTE, 1),
    ]


async def test_every_sample_is_stored_once_across_a_restart(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    first = stores()
    await first.open()
    for seq in (1, 2, 3):
        await first.accept(batch(seq, {POWER: [(T0 + seq * 1000, float(seq))]}))
    await first.flush(full=True)
    # Batch 4 is accepted but the hub dies before it is written.
    await first.accept(batch(4, {POWER: [(T0 + 4000, 4.0)]}))
    await first.backend.close()

    second = stores()
    await second.open()
    assert second.durable_seq("agent-1") == 3
    for seq in (2, 3, 4, 5):  # the agent resends after its durable mark, and a bit before
        await second.accept(batch(seq, {POWER: [(T0 + seq * 1000, float(seq))]}))
    closed_at(clock, T0)
    await second.flush()
    [found] = await second.query(SeriesFilter(), T0, T0 + MINUTE)
    assert found.points[0].samples == 5
    assert found.points[0].avg == 3.0
    assert second.status().duplicate_batches == 2
    assert second.durable_seq("agent-1") == 5


async def test_partial_minutes_written_early_merge_with_the_rest(
    store: MinuteStore, clock: Clock
) -> None:
    await store.accept(batch(1, {POWER: [(T0 + 1000, 5.0), (T0 + 2000, 7.0)]}))
    await store.flush(full=True)
    await store.accept(batch(2, {POWER: [(T0 + 40_000, 1.0), (T0 + 3000, 9.0)]}))
    closed_at(clock, T0)
    await store.flush()
    [found] = await store.query(SeriesFilter(), T0, T0 + MINUTE)
    assert found.points == [(T0, 5.5, 1.0, 9.0, 1.0, 4)]


def _expected(samples: list[tuple[int, float]], size: int) -> list[tuple[int, float, int]]:
    buckets: dict[int, list[tuple[int, float]]] = {}
    for ts, value in samples:
        buckets.setdefault(ts // (size * MINUTE) * size * MINUTE, []).append((ts, value))
    return [
        (start, fmean(v for _, v in held), len(held)) for start, held in sorted(buckets.items())
    ]


@pytest.mark.parametrize("resolution", list(Resolution))
async def test_rollups_agree_with_the_minutes_they_summarise(
    store: MinuteStore, clock: Clock, resolution: Resolution
) -> None:
    rng = random.Random(7)
    samples: list[tuple[int, float]] = []
    seq = 0
    # Three hours, flushed minute by minute, with a late batch reaching back an hour.
    for minute in range(180):
        start = T0 + minute * MINUTE
        chunk = [(start + s * 10_000, float(rng.randint(-500, 500))) for s in range(6)]
        samples += chunk
        seq += 1
        await store.accept(batch(seq, {POWER: chunk}))
        if minute % 7 == 0:
            closed_at(clock, start - MINUTE)
            await store.flush()
        if minute == 150:
            late = [(T0 + 90 * MINUTE + 5, 1000.0), (T0 + 31 * MINUTE, -1000.0)]
            samples += late
            seq += 1
            await store.accept(batch(seq, {POWER: late}))
    closed_at(clock, T0 + 180 * MINUTE)
    await store.flush()

    [found] = await store.query(SeriesFilter(), T0, T0 + 180 * MINUTE, resolution)
    got = [(p.start_ms, p.avg, p.samples) for p in found.points]
    want = _expected(samples, resolution.minutes)
    assert [(s, c) for s, _, c in got] == [(s, c) for s, _, c in want]
    assert [a for _, a, _ in got] == pytest.approx([a for _, a, _ in want])
    assert found.points[1].max == max(
        v for t, v in samples if found.points[1].start_ms <= t < found.points[2].start_ms
    )


async def test_ranges_align_to_the_resolution_and_filter_series(
    store: MinuteStore, clock: Clock
) -> None:
    for seq, asset in enumerate(("bess-1", "bess-2", "pv-1"), start=1):
        series = {(asset, "ac_power_w"): [(T0 + m * MINUTE, float(m)) for m in range(20)]}
        await store.accept(batch(seq, series, site="farm" if asset != "pv-1" else "barn"))
    closed_at(clock, T0 + 20 * MINUTE)
    await store.flush()

    found = await store.query(
        SeriesFilter(assets={"bess-2"}),
        T0 + 7 * MINUTE,
        T0 + 8 * MINUTE + 1,
        Resolution.FIVE_MINUTES,
    )
    assert [r.key.asset_id for r in found] == ["bess-2"]
    assert [p.start_ms for p in found[0].points] == [T0 + 5 * MINUTE]
    barn = await store.query(SeriesFilter(sites={"barn"}), T0, T0 + 20 * MINUTE)
    assert [r.key for r in barn] == [SeriesKey("barn", "pv-1", "ac_power_w")]
    assert await store.series(SeriesFilter(sites={"farm"})) == [
        SeriesKey("farm", "bess-1", "ac_power_w"),
        SeriesKey("farm", "bess-2", "ac_power_w"),
    ]
    assert await store.query(SeriesFilter(assets={"nothing"}), T0, T0 + MINUTE) == []


async def test_latest_values_include_open_minutes_and_texts(
    store: MinuteStore, clock: Clock
) -> None:
    texts = [("bess-1", "work_mode", T0 + 3000, "self_use")]
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)], SOC: [(T0 + 2000, 55.0)]}, texts=texts))
    closed_at(clock, T0)
    await store.flush()
    await store.accept(batch(2, {POWER: [(T0 + MINUTE + 1000, 2.0)]}))

    latest = {item.key.metric: (item.timestamp_ms, item.value) for item in await store.latest()}
    assert latest == {
        "ac_power_w": (T0 + MINUTE + 1000, 2.0),
        "soc_pct": (T0 + 2000, 55.0),
        "work_mode": (T0 + 3000, "self_use"),
    }
    only = await store.latest(SeriesFilter(metrics={"soc_pct"}))
    assert [item.key.metric for item in only] == ["soc_pct"]


async def test_retention_drops_old_minutes_before_old_rollups(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    retention = Retention(minute_days=1, five_minute_days=2, hour_days=3)
    store = stores(StoreSettings(retention=retention))
    await store.open()
    await store.accept(batch(1, {POWER: [(T0 + m * MINUTE, 1.0) for m in range(90)]}))
    closed_at(clock, T0 + 90 * MINUTE)
    await store.flush()

    clock.at(T0 + int(1.5 * 86_400_000))
    await store.flush()  # as the flush loop does before each retention pass
    await store.maintain()
    window = (SeriesFilter(), T0, T0 + 90 * MINUTE)
    assert await store.query(*window) == []
    assert len((await store.query(*window, Resolution.FIVE_MINUTES))[0].points) == 18
    clock.at(T0 + int(2.5 * 86_400_000))
    await store.flush()
    await store.maintain()
    assert await store.query(*window, Resolution.FIVE_MINUTES) == []
    assert [p.samples for p in (await store.query(*window, Resolution.HOUR))[0].points] == [60, 30]


async def test_unusable_samples_are_counted_not_stored(store: MinuteStore, clock: Clock) -> None:
    old = T0 - 30 * 86_400_000  # before the 14-day minute retention
    series = {POWER: [(old, 1.0), (T0 + 1, float("nan")), (T0 + 2, float("inf")), (T0 + 3, 4.0)]}
    await store.accept(batch(1, series))
    closed_at(clock, T0)
    await store.flush()
    assert store.status().dropped_samples == 3
    [found] = await store.query(SeriesFilter(), old, T0 + MINUTE)
    assert found.points == [(T0, 4.0, 4.0, 4.0, 4.0, 1)]


async def test_samples_from_the_future_are_dropped_counted_and_hold_no_ack(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    store = stores(max_future=300.0)
    await store.open()
    durable: list[int] = []
    store.subscribe(lambda agent, seq: durable.append(seq))
    ahead = T0 + 300_000  # exactly the allowance past the clock: refused
    series = {POWER: [(T0 - MINUTE, 1.0), (T0 + 299_999, 2.0), (ahead, 3.0), (2**62, 9.0)]}
    await store.accept(batch(1, series, texts=[("bess-1", "mode", 2**62, "x")]))
    assert (store.status().future_samples, store.status().dropped_samples) == (3, 3)
    assert [latest.value for latest in await store.latest()] == [2.0]
    closed_at(clock, T0 + 299_999)
    await store.flush()
    assert durable == [1]
    [found] = await store.query(SeriesFilter(), T0 - MINUTE, 2**62)
    assert [point.samples for point in found.points] == [1, 1]


async def test_status_reports_what_waits_and_what_was_written(
    store: MinuteStore, clock: Clock
) -> None:
    await store.accept(batch(1, {POWER: [(T0 + 1, 1.0)], SOC: [(T0 + 2, 2.0)]}))
    before = store.status()
    assert (before.open_rows, before.waiting_batches, before.flushes) == (2, 1, 0)
    closed_at(clock, T0)
    await store.flush()
    after = store.status()
    assert (after.open_rows, after.waiting_batches, after.rows_written) == (0, 0, 2)
    assert after.flushed_through_ms == T0 + MINUTE
    assert after.last_error is None
    assert after.backend in {"sqlite", "timescaledb"}


async def test_batches_of_one_minute_wait_together_and_become_durable_in_order(
    store: MinuteStore, clock: Clock
) -> None:
    await store.accept(batch(1, {POWER: [(T0 + 1000, 1.0)]}))
    await store.accept(batch(2, {POWER: [(T0 + 6000, 2.0)]}))
    await store.accept(batch(3, {POWER: [(T0 + 59_000, 3.0), (T0 + MINUTE + 1000, 4.0)]}))
    await store.accept(batch(4, {POWER: [(T0 + MINUTE + 6000, 5.0)]}))
    await store.accept(batch(5, {SOC: [(T0 + 7000, 50.0)]}))  # late for a minute before
    assert store.status().waiting_batches == 5
    closed_at(clock, T0)
    await store.flush()
    # Batch 5 lies before the boundary, but durability follows seq: 3 and 4 still wait.
    assert store.durable_seq("agent-1") == 2
    assert store.status().waiting_batches == 3
    closed_at(clock, T0 + MINUTE)
    await store.flush()
    assert store.durable_seq("agent-1") == 5
    assert store.status().waiting_batches == 0


async def test_malformed_queries_are_refused(store: MinuteStore) -> None:
    with pytest.raises(QueryError, match="empty time range"):
        await store.query(SeriesFilter(), T0, T0)


@pytest.mark.parametrize(
    "settings",
    [
        {"flush_interval": 0},
        {"flush_grace": 60},
        {"max_ack_delay": float("nan")},
        {"max_open_rows": 0},
    ],
)
def test_bad_settings_are_a_config_error(settings: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        StoreSettings(**settings)  # type: ignore[arg-type]


def test_retention_must_keep_coarser_data_longer() -> None:
    with pytest.raises(ConfigError, match="retention"):
        Retention(minute_days=30, five_minute_days=7)


async def test_open_rollup_buckets_are_queried_and_rebuilt_after_a_crash(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    first = stores()
    await first.open()
    await first.accept(batch(1, {POWER: [(T0 + m * MINUTE, float(m)) for m in range(8)]}))
    closed_at(clock, T0 + 7 * MINUTE)
    await first.flush()
    window = (SeriesFilter(), T0, T0 + 2 * HOUR_MS)

    async def counts(store: MinuteStore, resolution: Resolution) -> list[int]:
        [found] = await store.query(*window, resolution)
        return [p.samples for p in found.points]

    # Minutes 5-7 and the hour are still open buckets, served from memory.
    assert await counts(first, Resolution.FIVE_MINUTES) == [5, 3]
    assert await counts(first, Resolution.HOUR) == [8]
    await first.backend.close()  # the hub dies: the open buckets were never written

    second = stores()
    await second.open()
    assert await counts(second, Resolution.FIVE_MINUTES) == [5, 3]
    assert await counts(second, Resolution.HOUR) == [8]
    late = [(T0 + m * MINUTE + 1, float(m)) for m in range(8, 65)] + [(T0 + 2 * MINUTE, 2.0)]
    await second.accept(batch(2, {POWER: late}))
    closed_at(clock, T0 + 64 * MINUTE)
    await second.flush()
    await second.close()

    third = stores()
    await third.open()
    assert await counts(third, Resolution.FIVE_MINUTES) == [6] + [5] * 12
    assert await counts(third, Resolution.HOUR) == [61, 5]
    [hour] = await third.query(SeriesFilter(), T0, T0 + 1, Resolution.HOUR)
    assert hour.points[0].last == 59.0
    assert hour.points[0].avg == pytest.approx((sum(range(60)) + 2.0) / 61)


async def test_the_stored_latest_value_is_the_newest_minute_s_after_an_hour_closes(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    store = stores()
    await store.open()
    await store.accept(batch(1, {POWER: [(T0 + m * MINUTE + 7, float(m)) for m in range(62)]}))
    closed_at(clock, T0 + 61 * MINUTE)
    await store.flush()  # writes the closed hour and the minutes after it
    await store.close()
    reopened = stores()
    await reopened.open()
    [latest] = await reopened.latest()
    assert (latest.timestamp_ms, latest.value) == (T0 + 61 * MINUTE + 7, 61.0)


async def test_samples_for_closed_windows_are_recorded_late_across_restarts(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    store = stores()
    await store.open()
    await store.accept(batch(1, {POWER: [(T0 + m * MINUTE, 1.0) for m in range(12)]}))
    closed_at(clock, T0 + 11 * MINUTE)
    await store.flush()
    first = T0 // MINUTE
    assert await store.backend.late_windows(0) == ([], 0)
    # Minute 11 is closed but its window (10-14) is not: not late. Minute 7's window is.
    await store.accept(batch(2, {POWER: [(T0 + 7 * MINUTE + 5, 2.0), (T0 + 11 * MINUTE + 5, 2.0)]}))
    await store.flush()
    assert await store.backend.late_windows(0) == ([first + 5], 1)
    await store.backend.close()  # a crash: what closed stays closed

    again = stores()
    await again.open()
    assert again.flushed_through_ms == T0 + 12 * MINUTE
    await again.accept(batch(3, {POWER: [(T0 + 2 * MINUTE + 5, 3.0)]}))
    await again.flush()
    assert await again.backend.late_windows(1) == ([first], 2)
    assert await again.backend.late_windows(0) == ([first, first + 5], 2)


async def test_a_resent_batch_whose_closed_minutes_were_written_counts_once(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    first = stores()
    await first.open()
    # One batch across a minute boundary: the flush writes minute 0, minute 1 stays open,
    # so the batch is not durable when the hub dies.
    await first.accept(batch(1, {POWER: [(T0 + 50_000, 1.0), (T0 + 70_000, 2.0)]}))
    closed_at(clock, T0)
    await first.flush()
    assert first.durable_seq("agent-1") == 0
    await first.backend.close()

    second = stores()
    await second.open()
    await second.accept(batch(1, {POWER: [(T0 + 50_000, 1.0), (T0 + 70_000, 2.0)]}))
    closed_at(clock, T0 + MINUTE)
    await second.flush()
    assert second.durable_seq("agent-1") == 1
    [found] = await second.query(SeriesFilter(), T0, T0 + 2 * MINUTE)
    assert [p.samples for p in found.points] == [1, 1]
    assert second.status().resent_samples == 1


async def test_a_flush_of_many_rows_merges_each_into_the_minutes_written_before(
    store: MinuteStore, clock: Clock
) -> None:
    # 41 series over 20 minutes: more rows than one upsert statement takes, and a remainder.
    rng = random.Random(3)
    series = [(f"pv-{n:02d}", "ac_power_w") for n in range(41)]
    samples: dict[tuple[str, str], list[tuple[int, float]]] = {key: [] for key in series}
    for seq, offsets in enumerate(((1000, 20_000), (40_000, 59_000)), start=1):
        sent = {
            key: [
                (T0 + m * MINUTE + o, float(rng.randint(-99, 99)))
                for m in range(20)
                for o in offsets
            ]
            for key in series
        }
        for key, chunk in sent.items():
            samples[key] += chunk
        await store.accept(batch(seq, sent))
        if seq == 2:
            closed_at(clock, T0 + 20 * MINUTE)
        await store.flush(full=seq == 1)  # the first flush writes every minute partly

    found = await store.query(SeriesFilter(), T0, T0 + 20 * MINUTE)
    assert [item.key.asset_id for item in found] == [asset for asset, _ in series]
    for item in found:
        held = samples[(item.key.asset_id, item.key.metric)]
        want = []
        for m in range(20):
            values = [v for t, v in sorted(held) if t // MINUTE == T0 // MINUTE + m]
            want.append((T0 + m * MINUTE, fmean(values), min(values), max(values), values[-1], 4))
        assert item.points == want  # small integers: every sum and mean is exact


async def test_latest_values_of_many_series_keep_the_newest_across_flushes(
    store: MinuteStore,
) -> None:
    # More series than one upsert statement takes; the second flush is older for half.
    series = [(f"meter-{n:03d}", "energy_wh") for n in range(301)]
    await store.accept(batch(1, {key: [(T0 + 30_000, float(n))] for n, key in enumerate(series)}))
    await store.flush(full=True)
    second = {
        key: [(T0 + 10_000, -1.0)] if n % 2 == 0 else [(T0 + 50_000, 1000.0 + n)]
        for n, key in enumerate(series)
    }
    await store.accept(batch(2, second))
    await store.flush(full=True)

    found = {(item.key.asset_id, item.timestamp_ms, item.value) for item in await store.latest()}
    assert found == {
        (asset, T0 + 30_000, float(n)) if n % 2 == 0 else (asset, T0 + 50_000, 1000.0 + n)
        for n, (asset, _) in enumerate(series)
    }
