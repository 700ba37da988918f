"""Preallocated ring buffers of telemetry: one per message, a receive-time column and one column per signal.

One writer (the bus hub's thread) and any number of readers. The writer fills a row and then advances the
count, so a reader never sees a half-written row; a reader that copies while the writer laps it may get a
row newer than it asked for, never a torn one, which is what plots and metrics need.
"""

from __future__ import annotations

import numpy as np


class Ring:
    """``capacity`` rows of (t_s, *fields) float64."""

    def __init__(self, fields: tuple[str, ...], capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"ring capacity {capacity} must be at least 2")
        self.fields = ("t_s", *fields)
        self.index = {name: i for i, name in enumerate(self.fields)}
        self.data = np.full((capacity, len(self.fields)), np.nan)
        self.count = 0  # rows written since creation (monotonic)

    @property
    def capacity(self) -> int:
        return self.data.shape[0]

    def append(self, t_s: float, values: list[float]) -> None:
        row = self.data[self.count % self.capacity]
        row[0] = t_s
        row[1:] = values
        self.count += 1

    def last(self) -> np.ndarray | None:
        return None if self.count == 0 else self.data[(self.count - 1) % self.capacity].copy()

    def view(self, since_count: int = 0) -> np.ndarray:
        """The rows written at or after ``since_count`` (at most the capacity), oldest first, as a copy."""
        end = self.count
        start = max(since_count, end - self.capacity, 0)
        if start >= end:
            return np.empty((0, len(self.fields)))
        idx = np.arange(start, end) % self.capacity
        return self.data[idx]

    def since(self, t_s: float) -> np.ndarray:
        rows = self.view()
        return rows[rows[:, 0] >= t_s]

    def column(self, rows: np.ndarray, name: str) -> np.ndarray:
        return rows[:, self.index[name]]
