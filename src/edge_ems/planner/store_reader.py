"""The hub's minute store as a :class:`~edge_ems.planner.baseline.MinuteReader`: the one
place the planner reads the hub, and only through this adapter (the baseline itself never
imports the hub)."""

from __future__ import annotations

from collections.abc import Sequence

from ..hub.store import MinuteStore, Resolution, SeriesFilter


class StoreMinuteReader:
    """Five-minute means from a :class:`~edge_ems.hub.store.MinuteStore`."""

    def __init__(self, store: MinuteStore) -> None:
        self._store = store

    async def mean_power(
        self, site_id: str, asset_id: str, metric: str, start_ms: int, end_ms: int
    ) -> Sequence[tuple[int, float]]:
        """Each stored 5-minute bucket's mean in ``[start_ms, end_ms)``, oldest first."""
        selection = SeriesFilter(sites=[site_id], assets=[asset_id], metrics=[metric])
        found = await self._store.query(selection, start_ms, end_ms, Resolution.FIVE_MINUTES)
        return [(point.start_ms, point.avg) for series in found for point in series.points]
