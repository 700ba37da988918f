"""The bus executor's signals on the host's schedule (firmware_iface.experiments.grid.on_grid, without a set-point
echo) and the bode protocol's analysis on a run with skipped host ticks: they work on time (a uniform 1 kHz grid),
not on sample counts, and find the corner of a known system.

Counting samples as ticks, as the analysis did before, gave 4.37 Hz (4 Hz corner) and 7.93 Hz (8 Hz corner) on
these runs, against 4.12 and 7.78 Hz with every tick sent: the test's first assertion fails on both."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actuator.signals import chirp_period_s, periodic_chirp
from firmware_iface.experiments.grid import BusRun, on_grid
from firmware_iface.experiments.protocols import PROTOCOLS, Segment

F0_HZ, F1_HZ, AMPLITUDE, PERIODS = 1.0, 20.0, 0.002, 4
PERIOD_S = chirp_period_s(F0_HZ)
START = 0.3  # rad: the joint's position when the test began
CFG = {"f0_hz": F0_HZ, "f1_hz": F1_HZ, "home_rad": START, "amplitude_rad": AMPLITUDE, "periods": PERIODS}


def chirp(t: np.ndarray) -> np.ndarray:
    """The bode protocol's reference: the periodic chirp every Bode test sends, about the start."""
    return START + periodic_chirp(t, F0_HZ, F1_HZ, PERIOD_S, AMPLITUDE)


def bandwidth(run: BusRun) -> float:
    """The chirp segment alone (the run has no move home), through the bus executor's grid and the protocol."""
    segments = [Segment(PERIODS * PERIOD_S, "position", lambda t, q0: float(chirp(t)), tag="chirp")]
    signals = on_grid(run, segments)
    return PROTOCOLS["bode"].analyze(signals, segments, CFG).figures["bandwidth_hz"]


def first_order_run(fc_hz: float, skipped: np.ndarray, seed: int = 3) -> BusRun:
    """What the bus executor records for a joint whose position follows the set-point it holds through a first-order lag
    with its corner at ``fc_hz``. The host loop's ticks are at k ms plus up to 30 us of jitter, those in ``skipped``
    never run (overruns); the joint picks a command up 0.2 ms after it is sent and holds it until the next one; it
    reports its position every 1 ms on its own clock (0.4 ms off the host's), as the telemetry's times are."""
    rng = np.random.default_rng(seed)
    n = round(PERIODS * PERIOD_S * 1000.0) + 1
    ticks = np.setdiff1d(np.arange(n), skipped)
    send_t = ticks / 1000.0 + rng.uniform(0.0, 30e-6, ticks.size)
    send_t -= send_t[0]
    reference = chirp(send_t)  # evaluated at the tick's time, as HostLoop hands it to the callback
    # the joint, exactly discretised on a 10 us grid: y' = wc (held - y)
    dt = 1e-5
    fine = np.arange(round(send_t[-1] / dt) + 200) * dt
    held = reference[np.clip(np.searchsorted(send_t + 2e-4, fine, side="right") - 1, 0, None)]
    held[fine < 2e-4] = START
    a = math.exp(-2 * math.pi * fc_hz * dt)
    y = np.empty(fine.size)
    y[0] = START
    for i in range(1, fine.size):  # short enough in plain Python (~3 s of joint time at 10 us would not be)
        y[i] = a * y[i - 1] + (1 - a) * held[i - 1]
    t_tel = np.arange(4e-4, fine[-1], 1e-3)
    pos = np.interp(t_tel, fine, y)
    zeros = np.zeros(t_tel.size)
    return BusRun(send_t, reference, t_tel, pos, zeros, zeros, zeros, {})


def skipped_ticks() -> np.ndarray:
    """Overruns as a shared 2-core machine gives them: two 30 ms stalls (one in the second sweep, on its rising
    part, one in the third, near the corner) and 0.5 % of the other ticks one at a time."""
    rng = np.random.default_rng(11)
    n = round(PERIODS * PERIOD_S * 1000.0) + 1
    single = rng.choice(np.arange(1, n - 1), 40, replace=False)
    return np.unique(np.r_[np.arange(2500, 2530), np.arange(5200, 5230), single])


@pytest.mark.parametrize("fc_hz", [4.0, 8.0])
def test_skipped_ticks_leave_the_corner_where_it_is(fc_hz: float) -> None:
    skipped = skipped_ticks()
    run, whole = first_order_run(fc_hz, skipped), first_order_run(fc_hz, np.array([], dtype=int))
    assert run.command_t_s.size == whole.command_t_s.size - skipped.size == 8001 - 100
    bw, bw_whole = bandwidth(run), bandwidth(whole)
    # the skips change nothing the joint did not do: the same figure as with every tick sent
    assert bw == pytest.approx(bw_whole, rel=0.005)
    # and the estimate is the corner to within the estimator's own error (Welch of one sweep per segment, 0.5 Hz
    # bins, the -3 dB taken from the lowest coherent bin): +3 % at 4 Hz, -3 % at 8 Hz with every tick sent
    assert bw == pytest.approx(fc_hz, rel=0.04)

