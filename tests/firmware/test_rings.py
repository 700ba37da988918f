"""``Ring.since`` and ``Ring.window`` (binary search, copy of the rows asked for) against the plain implementation:
the whole ring copied, then filtered. Random rings with repeated times, wrapped or not, empty, and times before,
at and after every row; and one writer racing readers."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from firmware_iface.client.rings import Ring


def plain_since(ring: Ring, t_s: float) -> np.ndarray:
    rows = ring.view()
    return rows[rows[:, 0] >= t_s]


def plain_window(ring: Ring, t0_s: float, t1_s: float) -> np.ndarray:
    rows = ring.view()
    return rows[(rows[:, 0] >= t0_s) & (rows[:, 0] < t1_s)]


def filled(capacity: int, n: int, rng: np.random.Generator) -> Ring:
    """A ring of ``n`` appended rows: non-decreasing times with repeats, two random signals."""
    ring = Ring(("a", "b"), capacity)
    t = np.cumsum(rng.choice([0.0, 0.001, 0.0025], size=n))  # zero steps: equal receive times
    for ti, (a, b) in zip(t, rng.normal(size=(n, 2)), strict=True):
        ring.append(float(ti), [float(a), float(b)])
    return ring


def probe_times(ring: Ring, rng: np.random.Generator) -> list[float]:
    """Times before, at, between and after the rows; NaN and the infinities."""
    t = ring.view()[:, 0]
    out = [-math.inf, math.inf, math.nan, 0.0, -1.0, 1e9]
    if t.size:
        out += [t[0] - 1.0, t[0], t[-1], t[-1] + 1e-9, t[-1] + 1.0]
        out += list(rng.choice(t, size=8)) + list(rng.uniform(t[0], t[-1], size=8))
    return [float(x) for x in out]


@pytest.mark.parametrize(("capacity", "n"), [(2, 0), (2, 1), (2, 2), (2, 7), (16, 5), (16, 16), (16, 17),
                                             (16, 100), (1000, 999), (1000, 1000), (1000, 3456), (997, 5000)])
def test_since_and_window_match_the_plain_implementation(capacity: int, n: int) -> None:
    rng = np.random.default_rng(capacity * 7919 + n)
    ring = filled(capacity, n, rng)
    probes = probe_times(ring, rng)
    for t0 in probes:
        np.testing.assert_array_equal(ring.since(t0), plain_since(ring, t0), err_msg=f"since({t0})")
        for t1 in probes[:6] + list(rng.choice(probes, size=4)):
            got = ring.window(t0, t1)
            np.testing.assert_array_equal(got, plain_window(ring, t0, t1), err_msg=f"window({t0}, {t1})")
            cols = ring.window(t0, t1, columns=("b", "t_s"))
            np.testing.assert_array_equal(cols, got[:, [2, 0]])
            np.testing.assert_array_equal(ring.window(t0, t1, columns=("a",)), got[:, [1]])


def test_empty_ring_gives_empty_rows_of_the_right_width() -> None:
    ring = Ring(("a", "b"), 8)
    assert ring.since(-math.inf).shape == (0, 3)
    assert ring.window(0.0, 1.0).shape == (0, 3)
    assert ring.window(0.0, columns=("b",)).shape == (0, 1)
    assert ring.view().shape == (0, 3)


def test_results_are_copies_not_views_of_the_ring() -> None:
    ring = Ring(("a",), 4)
    for i in range(6):  # wrapped: the newest rows sit at the start of the storage
        ring.append(float(i), [10.0 * i])
    rows = ring.since(3.0)
    np.testing.assert_array_equal(rows, [[3.0, 30.0], [4.0, 40.0], [5.0, 50.0]])
    one = ring.window(4.0, 5.0, columns=("a",))
    ring.data[:] = -1.0
    np.testing.assert_array_equal(rows[:, 1], [30.0, 40.0, 50.0])
    np.testing.assert_array_equal(one, [[40.0]])


def test_since_on_a_wrapped_ring_starts_at_the_oldest_kept_row() -> None:
    ring = Ring(("a",), 5)
    for i in range(12):
        ring.append(float(i), [float(i)])
    np.testing.assert_array_equal(ring.since(-math.inf)[:, 0], [7, 8, 9, 10, 11])
    np.testing.assert_array_equal(ring.since(3.0)[:, 0], [7, 8, 9, 10, 11])  # older rows were overwritten
    np.testing.assert_array_equal(ring.since(9.5)[:, 0], [10, 11])
    assert ring.since(11.5).shape == (0, 2)


def _reader_checks(ring: Ring, dt: float, stop: threading.Event, errors: list[str], lapped: bool) -> None:
    """Read the last 50 rows' worth of time over and over while the writer runs (and at least once after it has
    written 100 rows); record what breaks a promise."""
    reads = 0
    while not stop.is_set() or reads == 0:
        last = ring.last()
        if last is None or ring.count < 100:
            continue
        reads += 1
        t0 = float(last[0]) - 50 * dt
        rows = ring.window(t0, columns=("t_s", "twice_t"))
        if rows.size and rows[:, 0].min() < t0:
            errors.append(f"row at t={rows[:, 0].min()} before t0={t0}")
        if not lapped and rows.size:
            # no lap: every row is complete and the rows are consecutive writes
            if not np.array_equal(rows[:, 1], 2.0 * rows[:, 0]):
                errors.append("torn row")
            if len(rows) < 50 or not np.allclose(np.diff(rows[:, 0]), dt):
                errors.append(f"{len(rows)} rows, not consecutive")


@pytest.mark.parametrize(("capacity", "lapped"), [(400_000, False), (64, True)])
def test_one_writer_many_readers(capacity: int, lapped: bool) -> None:
    """Without a lap every row a reader gets is whole and consecutive; with laps (a tiny ring), rows may be newer
    than asked but never older than the window's start."""
    ring, dt, n = Ring(("twice_t",), capacity), 1e-3, 200_000
    stop, errors = threading.Event(), []
    readers = [threading.Thread(target=_reader_checks, args=(ring, dt, stop, errors, lapped)) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        for k in range(n):
            t = k * dt
            ring.append(t, [2.0 * t])
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert ring.count == n
    assert errors == [], errors[:5]


@pytest.mark.parametrize(("capacity", "before", "n"), [(8, 0, 3), (8, 6, 5), (8, 3, 8), (8, 5, 21), (8, 0, 0)])
def test_extend_leaves_what_appending_row_by_row_leaves(capacity: int, before: int, n: int) -> None:
    rng = np.random.default_rng(before * 100 + n)
    rows = np.column_stack([np.arange(before + n, dtype=float), rng.normal(size=before + n)])
    one_by_one, bulk = Ring(("a",), capacity), Ring(("a",), capacity)
    for r in rows:
        one_by_one.append(r[0], [r[1]])
    for r in rows[:before]:
        bulk.append(r[0], [r[1]])
    bulk.extend(rows[before:])
    assert bulk.count == one_by_one.count
    np.testing.assert_array_equal(bulk.view(), one_by_one.view())
    np.testing.assert_array_equal(bulk.since(before + 0.5), one_by_one.since(before + 0.5))
    with pytest.raises(ValueError, match="do not fit"):
        bulk.extend(np.zeros((2, 3)))
