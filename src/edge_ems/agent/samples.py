"""Published samples, gathered into columns until the next telemetry batch is cut."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..gateway.convert import reading_sample
from ..gateway.model import SeriesSamples, TextSample
from ..readings import Reading


class SampleColumns:
    """Samples per asset and metric since the last :meth:`take`, oldest first."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self._texts: list[TextSample] = []
        self.points = 0

    def add_readings(self, asset_id: str, readings: Mapping[str, Reading]) -> None:
        """Add one read of an asset; readings that are not good samples are skipped."""
        for metric, reading in readings.items():
            sample = reading_sample(reading)
            if sample is None:
                continue
            timestamp_ms = round(reading.timestamp * 1000)
            if isinstance(sample, str):
                self._texts.append(TextSample(asset_id, metric, timestamp_ms, sample))
            else:
                timestamps, values = self._column(asset_id, metric)
                timestamps.append(timestamp_ms)
                values.append(sample)
            self.points += 1

    def add_series(
        self,
        asset_id: str,
        metric: str,
        timestamps_ms: Sequence[int],
        values: Sequence[float],
    ) -> None:
        """Add numeric samples of one metric at once (``timestamps_ms`` pairs with ``values``)."""
        if len(timestamps_ms) != len(values):
            raise ValueError(f"{len(timestamps_ms)} timestamps for {len(values)} values")
        timestamps, column = self._column(asset_id, metric)
        timestamps.extend(timestamps_ms)
        column.extend(values)
        self.points += len(values)

    def take(self) -> tuple[list[SeriesSamples], list[TextSample], int]:
        """Everything gathered (series, texts, point count), and start over."""
        series = [
            SeriesSamples(asset_id, metric, timestamps, values)
            for (asset_id, metric), (timestamps, values) in self._series.items()
        ]
        taken = (series, self._texts, self.points)
        self._series, self._texts, self.points = {}, [], 0
        return taken

    def _column(self, asset_id: str, metric: str) -> tuple[list[int], list[float]]:
        column = self._series.get((asset_id, metric))
        if column is None:
            column = self._series[asset_id, metric] = ([], [])
        return column
