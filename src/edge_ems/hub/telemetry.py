"""What crosses from the gateway into the store: telemetry batches, columnar per series.

Agents number their batches per agent (``seq``, increasing by one). The store folds a batch
into per-minute aggregates and reports, per agent, the highest ``seq`` up to which everything
is durable; the gateway acknowledges exactly that, so an agent resends what was not, and a
resent batch at or below the durable mark is dropped: every sample is stored exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SeriesSamples:
    """Numeric samples of one metric of one asset, oldest first."""

    asset_id: str
    metric: str
    timestamps_ms: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class TextSample:
    """A non-numeric reading (a mode, a state): kept as the latest value, not aggregated."""

    asset_id: str
    metric: str
    timestamp_ms: int
    value: str


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """One batch from one agent."""

    agent_id: str
    site_id: str
    seq: int
    series: Sequence[SeriesSamples]
    texts: Sequence[TextSample] = field(default=())

    @property
    def points(self) -> int:
        """Samples in the batch."""
        return sum(len(series.values) for series in self.series) + len(self.texts)


type DurableCallback = Callable[[str, int], None]
"""Called with (agent id, durable seq) whenever more of an agent's telemetry is durable."""


class TelemetrySink(Protocol):
    """Where the gateway hands telemetry; implemented by the minute store's ingest side."""

    def durable_seq(self, agent_id: str) -> int:
        """The highest seq of ``agent_id`` whose samples are all durably stored (0 if none)."""

    async def accept(self, batch: TelemetryBatch) -> None:
        """Fold a batch into the open aggregates; a seq at or below the durable mark is dropped.

        Returns once the batch is folded in memory, not once it is durable: durability is
        announced through the callback given to :meth:`subscribe`.
        """

    def subscribe(self, callback: DurableCallback) -> Callable[[], None]:
        """Call ``callback`` as telemetry becomes durable; returns an unsubscribe."""
