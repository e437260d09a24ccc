"""A hub process for the kill -9 test: the real gateway writing to the real store.

Run: ``python hub_process.py DB PORT TOKEN [JOURNAL]``; prints ``ready <port>`` once
listening and runs until SIGTERM (a clean stop writes the open minutes) or SIGKILL (nothing
is written). With a ``JOURNAL`` directory, batches are acknowledged once journaled.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.store import StoreSettings, open_store


async def main(database: str, port: int, token: str, journal: Path | None) -> None:
    # Flush often and acknowledge open minutes soon, so a kill lands among half-written,
    # half-acknowledged minutes that the restarted hub must merge into.
    settings = StoreSettings(flush_interval=0.2, max_ack_delay=0.3, journal_interval=0.02)
    async with open_store(database, settings, journal=journal) as store:
        store.start()
        server = GatewayServer(store, {"agent-1": token})
        bound = await server.start(f"127.0.0.1:{port}")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"ready {bound}", flush=True)
        await stop.wait()
        await server.stop()


if __name__ == "__main__":
    journal = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], journal))
