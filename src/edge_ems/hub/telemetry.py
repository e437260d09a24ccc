"""Where the gateway hands telemetry inside the hub: the store's ingest side.

Agents number their batches per agent (``seq``, increasing by one). The store folds a batch
into per-minute aggregates and reports, per agent, the highest ``seq`` up to which everything
is durable; the gateway acknowledges exactly that, so an agent resends what was not, and a
resent batch at or below the durable mark is dropped: every sample is stored exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..gateway.model import TelemetryBatch

type DurableCallback = Callable[[str, int], None]
"""Called with (agent id, durable seq) whenever more of an agent's telemetry is durable."""


class TelemetrySink(Protocol):
    """Where the gateway hands telemetry; implemented by the minute store's ingest side."""

    def durable_seq(self, agent_id: str) -> int:
        """The highest seq of ``agent_id`` whose samples are all durably stored (0 if none)."""

    async def resume(self, agent_id: str) -> int:
        """:meth:`durable_seq` once ``agent_id`` (re)connects, brought up to date with what
        other hubs on a shared database made durable of it meanwhile."""

    async def accept(self, batch: TelemetryBatch) -> None:
        """Fold a batch into the open aggregates; a seq at or below the durable mark is dropped.

        Returns once the batch is folded in memory, not once it is durable: durability is
        announced through the callback given to :meth:`subscribe`.
        """

    def subscribe(self, callback: DurableCallback) -> Callable[[], None]:
        """Call ``callback`` as telemetry becomes durable; returns an unsubscribe."""
