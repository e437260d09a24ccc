"""The hub process's collector settings: young collections less often, the heap frozen
between full collections, and cycles among frozen objects still freed at the thaw."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Iterator

import pytest

from edge_ems.hub.heap import YOUNG_THRESHOLD, keep_heap_frozen, tune_collector


class _Node:
    def __init__(self) -> None:
        self.other: _Node = self


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("collector")
def test_young_collections_come_less_often() -> None:
    middle, old = gc.get_threshold()[1:]
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("collector")
async def test_a_cycle_frozen_in_the_heap_is_freed_at_the_thaw() -> None:
    node = _Node()
    freed = asyncio.Event()
    weakref.finalize(node, freed.set)
    task = asyncio.get_running_loop().create_task(
        keep_heap_frozen(freeze_every=0.05, thaw_every=0.5)
    )
    try:
        await asyncio.sleep(0.12)
        assert gc.get_freeze_count() > 0
        del node  # a cycle now: only the collector frees it, and it is frozen
        gc.collect()
        assert not freed.is_set()
        async with asyncio.timeout(5):
            await freed.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert gc.get_freeze_count() == 0  # thawed when stopped
