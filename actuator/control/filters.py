"""Discrete filters for the control loops: a first-order low-pass and biquads (low-pass, notch).

The per-sample step kernels run inside other kernels at 1-40 kHz, so they are tiny, allocation-free and
inlined; a filter is its coefficients (a float or a float64 array) plus a float64 state array the step
updates in place. Coefficient design is plain Python (numpy only) and validates its arguments.

Discretisation:
- first-order low-pass 1/(tau s + 1): exact for a zero-order-held input, alpha = 1 - exp(-dt/tau), so the
  step response is 1 - exp(-t/tau) at every sample time;
- biquads: the RBJ Audio EQ Cookbook designs, i.e. the bilinear transform prewarped at the cutoff or
  center frequency, so the analog gain there (-3 dB for q = 1/sqrt(2), 0 for a notch) is kept exactly.
  Coefficients are [b0, b1, b2, a1, a2] with a0 normalised to 1, run in Direct Form II transposed.

The notch q is the analog prototype's center / bandwidth (RBJ). scipy.signal.iirnotch instead defines q by
the digital -3 dB bandwidth; its filter is ours with q_rbj = sin(w0) / (2 tan(w0 / (2 q_scipy))).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from actuator.errors import ConfigError

# indices into a biquad coefficient array
B0, B1, B2, A1, A2 = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def lowpass1_step(alpha, state, x):
    """One sample of the first-order low-pass; ``state`` is a 1-element array holding the last output."""
    y = state[0] + alpha * (x - state[0])
    state[0] = y
    return y


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def biquad_step(coef, state, x):
    """One sample of a biquad in Direct Form II transposed; ``state`` is a 2-element array."""
    # DF2T: two delay states and good round-off behaviour for the low-frequency poles of a fast loop
    y = coef[B0] * x + state[0]
    state[0] = coef[B1] * x - coef[A1] * y + state[1]
    state[1] = coef[B2] * x - coef[A2] * y
    return y


@njit(cache=True, nogil=True, error_model="numpy")
def filter_array(coef, x):
    """Run ``biquad_step`` over ``x`` from a zero state; the same as scipy.signal.lfilter(b, a, x)."""
    state = np.zeros(2)
    y = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        y[i] = biquad_step(coef, state, x[i])
    return y


def check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ConfigError(f"{name} = {value!r} is out of range: allowed (0, inf)")
    return value


def _check_below_nyquist(name: str, value_hz: float, dt_s: float) -> float:
    nyquist_hz = 0.5 / dt_s
    value_hz = float(value_hz)
    if not (math.isfinite(value_hz) and 0.0 < value_hz < nyquist_hz):
        raise ConfigError(f"{name} = {value_hz!r} is out of range: allowed (0, {nyquist_hz!r}) Hz "
                          f"(the Nyquist frequency at dt_s = {dt_s!r})")
    return value_hz


def lowpass1_design(cutoff_hz: float, dt_s: float) -> float:
    """The coefficient ``alpha`` of the first-order low-pass with -3 dB at ``cutoff_hz`` (analog prototype)."""
    dt_s = check_positive("dt_s", dt_s)
    cutoff_hz = check_positive("cutoff_hz", cutoff_hz)
    tau_s = 1.0 / (2.0 * math.pi * cutoff_hz)
    # expm1 keeps alpha accurate when dt << tau, which is the usual case at kHz loop rates
    return -math.expm1(-dt_s / tau_s)


def _prewarped(freq_hz: float, q: float, dt_s: float) -> tuple[float, float]:
    w0 = 2.0 * math.pi * freq_hz * dt_s
    return math.cos(w0), math.sin(w0) / (2.0 * q)


def _normalised(b: tuple[float, float, float], a: tuple[float, float, float]) -> np.ndarray:
    return np.array([b[0] / a[0], b[1] / a[0], b[2] / a[0], a[1] / a[0], a[2] / a[0]])


def biquad_lowpass(cutoff_hz: float, q: float, dt_s: float) -> np.ndarray:
    """Second-order low-pass [b0, b1, b2, a1, a2]; q = 1/sqrt(2) is Butterworth (-3 dB at ``cutoff_hz``)."""
    dt_s = check_positive("dt_s", dt_s)
    cutoff_hz = _check_below_nyquist("cutoff_hz", cutoff_hz, dt_s)
    q = check_positive("q", q)
    cos_w0, alpha = _prewarped(cutoff_hz, q, dt_s)
    b1 = 1.0 - cos_w0
    return _normalised((0.5 * b1, b1, 0.5 * b1), (1.0 + alpha, -2.0 * cos_w0, 1.0 - alpha))


def notch(center_hz: float, q: float, dt_s: float, depth_db: float | None = None) -> np.ndarray:
    """Notch [b0, b1, b2, a1, a2] at ``center_hz``; unity gain far from it.

    ``depth_db`` None is a full notch (zero gain at the center); otherwise the gain at the center is
    -depth_db. The partial notch keeps the poles of the full one and moves the zeros off the unit circle
    (zero damping = pole damping * 10^(-depth_db/20)), so both share the same width q.
    """
    dt_s = check_positive("dt_s", dt_s)
    center_hz = _check_below_nyquist("center_hz", center_hz, dt_s)
    q = check_positive("q", q)
    gain = 0.0 if depth_db is None else 10.0 ** (-check_positive("depth_db", depth_db) / 20.0)
    cos_w0, alpha = _prewarped(center_hz, q, dt_s)
    return _normalised((1.0 + alpha * gain, -2.0 * cos_w0, 1.0 - alpha * gain),
                       (1.0 + alpha, -2.0 * cos_w0, 1.0 - alpha))
