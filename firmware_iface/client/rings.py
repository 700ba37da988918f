"""Preallocated ring buffers of telemetry: one per message, a receive-time column and one column per signal.

One writer (the bus hub's thread) and any number of readers. The writer fills a row and then advances the
count, so a reader never sees a half-written row; a reader that copies while the writer laps it may get a
row newer than it asked for, never a torn one, which is what plots and metrics need.

The receive-time column (column 0) is non-decreasing in write order, so ``since`` and ``window`` find their
first row by a binary search over the logical indices and copy only the rows asked for: a plot redrawing the
last seconds of a 60 000-row ring at 60 Hz copies what it shows, not the whole ring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

    def extend(self, rows: np.ndarray) -> None:
        """Append many rows (shape (n, 1 + len(fields)), receive time first) at once: all are written before the
        count advances, as ``append`` does for one. Rows beyond the capacity push out the oldest, as appends would."""
        rows = np.asarray(rows, dtype=float)
        if rows.ndim != 2 or rows.shape[1] != len(self.fields):
            raise ValueError(f"rows of shape {rows.shape} do not fit a ring of columns {', '.join(self.fields)}")
        n, cap = len(rows), self.capacity
        kept = rows[-cap:]  # what appending them one by one would leave in the ring
        a = (self.count + n - len(kept)) % cap
        head = min(len(kept), cap - a)
        self.data[a:a + head] = kept[:head]
        self.data[:len(kept) - head] = kept[head:]
        self.count += n

    def last(self) -> np.ndarray | None:
        return None if self.count == 0 else self.data[(self.count - 1) % self.capacity].copy()

    def view(self, since_count: int = 0) -> np.ndarray:
        """The rows written at or after ``since_count`` (at most the capacity), oldest first, as a copy."""
        end = self.count
        start = max(since_count, end - self.capacity, 0)
        return self._copy(start, end, None)

    def since(self, t_s: float) -> np.ndarray:
        """The rows received at or after ``t_s``, oldest first, as a copy."""
        return self.window(t_s)

    def window(self, t0_s: float, t1_s: float = math.inf, columns: Sequence[str] | None = None) -> np.ndarray:
        """The rows received in [``t0_s``, ``t1_s``), oldest first, as a copy; with ``columns``, only those columns
        in that order (e.g. ``("t_s", "position_rad")`` for a plot of one signal: less to copy)."""
        end = self.count  # read once: every row below it is complete (count is advanced after the row is written)
        start = self._search(t0_s, max(end - self.capacity, 0), end)
        stop = end if t1_s == math.inf else start if math.isnan(t1_s) else self._search(t1_s, start, end)
        cols = None if columns is None else [self.index[name] for name in columns]
        with_t = cols is None or 0 in cols
        rows = self._copy(start, stop, cols if cols is None or with_t else [*cols, 0])  # the filter needs t
        if self.count - self.capacity >= start:
            # The writer may have lapped rows at or after ``start`` while this search or copy ran (a lapped row holds
            # a newer time, which can mislead the search to an earlier start, never a later one): filter the copy.
            t = rows[:, 0 if cols is None else (cols.index(0) if with_t else -1)]
            rows = rows[(t >= t0_s) & (t < t1_s)]
        return rows if with_t else rows[:, :-1]

    def column(self, rows: np.ndarray, name: str) -> np.ndarray:
        return rows[:, self.index[name]]

    def _search(self, t_s: float, lo: int, hi: int) -> int:
        """The first logical index in [lo, hi) whose receive time is >= ``t_s``; ``hi`` when none is (or t_s is NaN)."""
        if math.isnan(t_s):
            return hi
        data, cap = self.data, self.capacity
        while lo < hi:  # invariant: every index below lo has a time < t_s, every index from hi on a time >= t_s
            mid = (lo + hi) // 2
            if data[mid % cap, 0] < t_s:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _copy(self, start: int, stop: int, cols: list[int] | None) -> np.ndarray:
        """The rows of logical indices [start, stop) as a new array: one or two contiguous slices, no index array."""
        width = len(self.fields) if cols is None else len(cols)
        if start >= stop:
            return np.empty((0, width))
        cap = self.capacity
        a, b = start % cap, (stop - 1) % cap + 1  # physical [a, b) when not wrapped, else [a, cap) + [0, b)
        if a < b:
            return self.data[a:b].copy() if cols is None else self.data[a:b, cols]
        if cols is None:
            return np.concatenate((self.data[a:], self.data[:b]))
        return np.concatenate((self.data[a:, cols], self.data[:b, cols]))
