"""Whatever the order of batches, flushes, journal commits, crashes and restarts, the
minutes and the 5-minute and hourly rollups hold exactly what folding every sample at once
gives, with the ingest journal and without."""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ems.hub.store import MinuteStore, Resolution, SeriesFilter, StoreSettings, open_store

from .conftest import MINUTE, T0, YEAR_S, Clock, batch

SPAN = 150
"""Minutes the samples fall in."""
SERIES = (("bess-1", "ac_power_w"), ("bess-2", "ac_power_w"))

samples = st.lists(
    st.tuples(
        st.integers(0, SPAN * 60 - 1),  # second of the span
        st.sampled_from(SERIES),
        st.integers(-1000, 1000).map(float),
    ),
    min_size=1,
    max_size=12,
)
steps = st.lists(
    st.one_of(
        samples.map(lambda found: ("batch", found)),
        st.integers(1, 40).map(lambda minutes: ("flush", minutes)),
        st.sampled_from([("crash", None), ("restart", None), ("sync", None)]),
    ),
    min_size=1,
    max_size=25,
)


async def _run(plan: list[tuple[str, object]], directory: Path, journal: Path | None) -> None:
    clock = Clock(T0 - 5 * MINUTE)
    path = directory / "store.db"
    settings = StoreSettings(max_future=YEAR_S)
    store: MinuteStore = open_store(path, settings, clock=clock, journal=journal)
    await store.open()
    sent: list[dict[tuple[str, str], list[tuple[int, float]]]] = []
    seen: set[tuple[int, tuple[str, str]]] = set()
    try:
        for kind, argument in plan:
            if kind == "batch":
                series: dict[tuple[str, str], list[tuple[int, float]]] = {}
                for second, key, value in argument:  # type: ignore[attr-defined]
                    if (second, key) in seen:  # one value per instant: "last" is unambiguous
                        continue
                    seen.add((second, key))
                    series.setdefault(key, []).append((T0 + second * 1000, value))
                for held in series.values():
                    held.sort()
                sent.append(series)
                await store.accept(batch(len(sent), series))
            elif kind == "flush":
                clock.now += 60 * argument  # type: ignore[operator]
                await store.flush()
            elif kind == "sync":
                await store.sync()
            else:
                acknowledged = store.durable_seq("agent-1")  # the agent has let these go
                if kind == "crash":
                    # Open minutes and buckets are lost; the journal keeps what it committed.
                    await store.backend.close()
                else:
                    await store.close()
                store = open_store(path, settings, clock=clock, journal=journal)
                await store.open()
                assert store.durable_seq("agent-1") >= acknowledged
                # The agent resends what is not durable.
                for seq in range(store.durable_seq("agent-1") + 1, len(sent) + 1):
                    await store.accept(batch(seq, sent[seq - 1]))
        clock.now = (T0 + (SPAN + 120) * MINUTE) / 1000
        await store.flush()

        every = [(key, t, v) for series in sent for key, held in series.items() for t, v in held]
        for resolution in (Resolution.MINUTE, Resolution.FIVE_MINUTES, Resolution.HOUR):
            size = resolution.minutes * MINUTE
            expected: dict[tuple[tuple[str, str], int], list[tuple[int, float]]] = {}
            for key, t, v in every:
                expected.setdefault((key, t // size * size), []).append((t, v))
            found = await store.query(SeriesFilter(), T0, T0 + SPAN * MINUTE, resolution)
            got = {((r.key.asset_id, r.key.metric), p.start_ms): p for r in found for p in r.points}
            assert got.keys() == expected.keys(), resolution
            for bucket, held in expected.items():
                point = got[bucket]
                values = [v for _, v in held]
                assert point.samples == len(held)
                assert (point.min, point.max) == (min(values), max(values))
                assert point.last == max(held)[1]
                assert math.isclose(point.avg, sum(values) / len(values), abs_tol=1e-9)
    finally:
        await store.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.booleans())
def test_rollups_equal_folding_every_sample(plan: list[tuple[str, object]], journal: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_run(plan, Path(directory), Path(directory, "journal") if journal else None))
