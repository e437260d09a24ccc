"""The hub process's cycle collector, set so that its pauses do not hold a fleet's acks.

At 10,000 agents the hub holds over a million long-lived objects: each stream's coroutines
and futures, the open minutes. Every agent's pending read lives until its next batch,
seconds, so CPython's default young threshold (a collection per 2,000 net allocations)
promoted them all, and the middle generation's collections took some 150 ms every 5 s; a
full collection, going over every object, took 600 ms. Everything waiting on the event loop,
acks first, waited that long (``make bench NAME=gateway_ingest`` shows the ack p99).

So the hub's process (``python -m edge_ems.hub``, not the library) collects the young
generation every :data:`YOUNG_THRESHOLD` allocations, by when most of them have died, and
freezes what is alive once a minute: full collections then leave it alone. Freezing keeps
objects from the collector, not from reference counting; only a cycle among frozen objects
waits, until the hourly thaw, which collects everything once.
"""

from __future__ import annotations

import asyncio
import gc

YOUNG_THRESHOLD = 20_000
"""Net allocations between young collections (CPython's default is 2,000)."""
FREEZE_INTERVAL_S = 60.0
THAW_INTERVAL_S = 3600.0


def tune_collector() -> None:
    """Collect the young generation every :data:`YOUNG_THRESHOLD` net allocations."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


async def keep_heap_frozen(
    *, freeze_every: float = FREEZE_INTERVAL_S, thaw_every: float = THAW_INTERVAL_S
) -> None:
    """Freeze what is alive every ``freeze_every`` seconds; every ``thaw_every`` seconds,
    thaw it and collect everything once first. Thawed when cancelled."""
    loop = asyncio.get_running_loop()
    thawed = loop.time()
    try:
        while True:
            await asyncio.sleep(freeze_every)
            if loop.time() - thawed >= thaw_every:
                gc.unfreeze()
                gc.collect()
                thawed = loop.time()
            gc.freeze()
    finally:
        gc.unfreeze()
