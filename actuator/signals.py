"""Excitation signals for identification and tests: ``chirp`` (a logarithmic sweep) and ``prbs`` (a maximum-length
sequence, each bit held for some samples). Pure functions of their arguments, no I/O; ``actuator.control.reference``
turns them into a closed loop's references and ``actuator.analysis.frequency`` analyses the responses to them.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from actuator.errors import ConfigError


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number > 0")
    return float(value)


def chirp(f0_hz: float, f1_hz: float, duration_s: float, fs_hz: float,
          amplitude: float = 1.0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A logarithmic sweep from ``f0_hz`` to ``f1_hz`` over ``duration_s``; returns ``(t_s, u)``."""
    fs = _positive("fs_hz", fs_hz)
    f0 = _positive("f0_hz", f0_hz)
    f1 = _positive("f1_hz", f1_hz)
    duration = _positive("duration_s", duration_s)
    amp = _positive("amplitude", amplitude)
    if not f0 < f1 <= fs / 2:
        raise ConfigError(f"f0_hz={f0_hz!r}, f1_hz={f1_hz!r} are not allowed; they need "
                          f"0 < f0_hz < f1_hz <= fs_hz/2 = {fs / 2}")
    n = round(duration * fs)
    if n < 2:
        raise ConfigError(f"duration_s={duration_s!r} gives {n} samples at fs_hz={fs_hz!r}; at least 2 needed")
    t = np.arange(n) / fs
    return t, amp * signal.chirp(t, f0=f0, t1=t[-1], f1=f1, method="logarithmic", phi=-90.0)


CHIRP_MIN_PERIOD_S = 1.0


def chirp_period_s(f0_hz: float) -> float:
    """The period of every Bode test's periodic chirp: two cycles of its lowest frequency, and at least
    ``CHIRP_MIN_PERIOD_S`` (a Welch segment of one period then puts f0 on its second bin)."""
    return max(2.0 / _positive("f0_hz", f0_hz), CHIRP_MIN_PERIOD_S)


def periodic_chirp(t_s: float | NDArray[np.float64], f0_hz: float, f1_hz: float, period_s: float,
                   amplitude: float = 1.0) -> float | NDArray[np.float64]:
    """The logarithmic sweep of ``chirp`` restarted every ``period_s``, at times ``t_s`` (a number or an array): a
    periodic excitation, so each Welch segment of one period sees the whole band. Every Bode test sends this."""
    k = math.log(f1_hz / f0_hz) / period_s
    tau = np.mod(t_s, period_s)
    return amplitude * np.sin(2.0 * math.pi * f0_hz * np.expm1(k * tau) / k)


def prbs(n_bits: int, fs_hz: float, amplitude: float = 1.0, *, hold_samples: int = 1, periods: int = 1,
         seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A +-amplitude maximum-length sequence of ``2**n_bits - 1`` bits, each held ``hold_samples`` samples.

    Holding shapes the band: the power is nearly flat up to about ``fs_hz / (2.3 * hold_samples)`` (-3 dB)
    and has its first null at ``fs_hz / hold_samples``. The sequence repeats ``periods`` times; ``seed``
    picks the initial register state. Returns ``(t_s, u)``.
    """
    fs = _positive("fs_hz", fs_hz)
    amp = _positive("amplitude", amplitude)
    for name, value, low, high in (("n_bits", n_bits, 2, 32), ("hold_samples", hold_samples, 1, 10**6),
                                   ("periods", periods, 1, 10**6)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name}={value!r} is not allowed; it must be an integer in [{low}, {high}]")
    state = np.random.default_rng(seed).integers(0, 2, n_bits)
    if not state.any():
        state[0] = 1
    bits, _ = signal.max_len_seq(n_bits, state=state)
    u = amp * (2.0 * bits - 1.0)
    u = np.tile(np.repeat(u, hold_samples), periods)
    return np.arange(u.size) / fs, u
