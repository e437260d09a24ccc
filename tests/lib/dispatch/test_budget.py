"""EEPROM budgets survive restarts and roll over at UTC midnight; rates slide."""

from __future__ import annotations

from edge_ems.dispatch import EepromBudget, RateLimiter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budget_counts_per_device_and_rolls_over() -> None:
    clock = Clock(1_700_000_000.0)
    budget = EepromBudget(2, clock=clock)
    budget.spend("deye")
    budget.spend("deye")
    assert budget.remaining("deye") == 0
    assert budget.remaining("other") == 2
    clock.now += 86_400
    assert budget.remaining("deye") == 2


def test_budget_state_survives_a_restart_on_the_same_day_only() -> None:
    clock = Clock(1_700_000_000.0)
    budget = EepromBudget(5, clock=clock)
    budget.spend("deye")
    restarted = EepromBudget(5, clock=clock)
    restarted.restore(budget.state())
    assert restarted.remaining("deye") == 4
    clock.now += 86_400
    tomorrow = EepromBudget(5, clock=clock)
    tomorrow.restore(budget.state())
    assert tomorrow.remaining("deye") == 5


def test_rate_limiter_slides() -> None:
    clock = Clock(0.0)
    rate = RateLimiter(2, clock=clock)
    assert rate.allow("a")
    assert rate.allow("a")
    assert not rate.allow("a")
    assert rate.allow("b")
    clock.now = 60.0
    assert rate.allow("a")
