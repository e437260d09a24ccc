"""Background tasks are restarted with backoff when they fail, and show it."""

from __future__ import annotations

import asyncio

from edge_ems.hub.tasks import Supervisor


async def test_a_failing_task_is_restarted_after_a_backoff_and_counts_as_well_once_stable() -> None:
    supervisor = Supervisor(backoff_base=0.02, backoff_cap=0.1, stable=0.2)
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    recovered = asyncio.Event()

    async def flaky() -> None:
        starts.append(loop.time())
        if len(starts) <= 4:
            raise ValueError(f"attempt {len(starts)}")
        recovered.set()
        await asyncio.Event().wait()  # then runs for good

    supervisor.spawn("flaky", flaky)
    try:
        async with asyncio.timeout(10):
            await recovered.wait()
        status = supervisor.status()["flaky"]
        assert (status.running, status.failing, status.failures, status.restarts) == (
            True,
            True,
            4,
            4,
        )
        assert status.last_error == "ValueError: attempt 4"
        await asyncio.sleep(0.25)  # running well for longer than ``stable``
        assert supervisor.status()["flaky"].failing is False
        assert supervisor.status()["flaky"].last_error == "ValueError: attempt 4"
    finally:
        await supervisor.stop()
    assert supervisor.status()["flaky"].running is False


async def test_a_task_that_ends_on_its_own_is_a_failure_too() -> None:
    supervisor = Supervisor(backoff_base=0.01, backoff_cap=0.01)
    ran = asyncio.Event()

    async def quits() -> None:
        ran.set()

    supervisor.spawn("quits", quits)
    try:
        await ran.wait()
        async with asyncio.timeout(5):
            while supervisor.status()["quits"].failures < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        assert supervisor.status()["quits"].last_error == "ended on its own"
    finally:
        await supervisor.stop()
