"""Token buckets per client, on a clock the test moves."""

from __future__ import annotations

import pytest

from edge_ems.hub.api.ratelimit import RateLimiter, retry_after


def test_burst_then_rate_per_client() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # one token every half second
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] = 0.5
    assert limiter.take("a") == 0.0
    now[0] = 100.0  # a long pause refills to the burst, not beyond
    assert [limiter.take("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_forgets_the_least_recent_clients_past_the_bound() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, 1, max_clients=2, clock=lambda: now[0])
    limiter.take("a")
    limiter.take("b")
    limiter.take("c")  # "a" is forgotten: it starts again with a full bucket
    assert limiter.take("a") == 0.0
    assert limiter.take("c") > 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(wait) for wait in (0.01, 1.0, 1.2, 59.9)] == ["1", "1", "2", "60"]
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(0, 1)
