"""Merging partial aggregates, in any split, equals folding every sample at once."""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given
from hypothesis import strategies as st

from edge_ems.gateway.model import SeriesSamples, TelemetryBatch
from edge_ems.hub.store.aggregate import MinuteAggregator
from edge_ems.hub.store.model import SeriesKey

KEY = SeriesKey("farm", "bess-1", "ac_power_w")
T0 = 1_796_515_200_000

samples = st.lists(
    st.tuples(
        st.integers(T0, T0 + 5 * 60_000 - 1),
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda sample: sample[0],  # one value per instant: "last" is then unambiguous
)


type Folded = dict[int, tuple[float, int, float, float, float, int]]


def fold(parts: list[list[tuple[int, float]]]) -> Folded:
    aggregator = MinuteAggregator()
    for seq, part in enumerate(parts, start=1):
        series = SeriesSamples(KEY.asset_id, KEY.metric, [t for t, _ in part], [v for _, v in part])
        aggregator.add(TelemetryBatch("a", KEY.site_id, seq, [series]), horizon=0)
    return {
        minute: (a.sum, a.count, a.min, a.max, a.last, a.last_ms)
        for minute, by_key in aggregator.take(None).minutes.items()
        for a in [by_key[KEY]]
    }


def merged(parts: list[list[tuple[int, float]]]) -> Folded:
    """Each part folded alone, then the aggregates merged, as flushes and upserts do."""
    total: Folded = {}
    for part in parts:
        for minute, values in fold([part]).items():
            held = total.get(minute)
            if held is None:
                total[minute] = values
                continue
            s, c, lo, hi, last, last_ms = held
            s2, c2, lo2, hi2, last2, last_ms2 = values
            total[minute] = (
                s + s2,
                c + c2,
                min(lo, lo2),
                max(hi, hi2),
                last2 if last_ms2 >= last_ms else last,
                max(last_ms, last_ms2),
            )
    return total


@given(samples, st.lists(st.integers(0, 60), max_size=6), st.randoms())
def test_any_split_merges_to_the_whole(
    values: list[tuple[int, float]], cuts: list[int], rng: random.Random
) -> None:
    shuffled = list(values)
    rng.shuffle(shuffled)
    bounds = sorted({0, len(shuffled), *(min(c, len(shuffled)) for c in cuts)})
    parts = [shuffled[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    whole = fold([sorted(values)])
    for got in (fold(parts), merged(parts)):
        assert got.keys() == whole.keys()
        for minute, (s, c, lo, hi, last, last_ms) in got.items():
            ws, wc, wlo, whi, wlast, wlast_ms = whole[minute]
            assert math.isclose(s, ws, rel_tol=1e-9, abs_tol=1e-6)
            assert (c, lo, hi, last, last_ms) == (wc, wlo, whi, wlast, wlast_ms)


@given(samples)
def test_a_minute_holds_exactly_its_samples(values: list[tuple[int, float]]) -> None:
    folded = fold([values])
    for minute, (s, c, lo, hi, last, last_ms) in folded.items():
        inside = sorted((t, v) for t, v in values if t // 60_000 == minute)
        assert c == len(inside)
        assert (lo, hi) == (min(v for _, v in inside), max(v for _, v in inside))
        assert (last_ms, last) == inside[-1]
        assert math.isclose(s, sum(v for _, v in inside), rel_tol=1e-9, abs_tol=1e-6)


def test_series_keys_share_their_strings_across_batches_and_agents() -> None:
    aggregator = MinuteAggregator()
    for agent in ("gw-1", "gw-2"):
        for seq in (1, 2):
            # Strings made at run time, as decoding a batch makes them: equal, not the same.
            names = [f"{agent}-meter", "".join(["ac_", "power_w"]), "".join(["soc", "_pct"])]
            series = [SeriesSamples(names[0], metric, [T0 + seq], [1.0]) for metric in names[1:]]
            aggregator.add(TelemetryBatch(agent, f"site-{agent}", seq, series), horizon=0)
    keys = aggregator.take(None).minutes[T0 // 60_000]
    assert len(keys) == 4
    assert len({id(key.metric) for key in keys}) == 2
    assert len({id(key.asset_id) for key in keys}) == 2  # one per agent's meter
