"""Point-to-point reference trajectories from q0 to q1 within velocity, acceleration and jerk limits.

Three profiles, each starting and ending at rest:
- ``trapezoid``: bang-coast-bang acceleration (v_max, a_max), triangular when the move is too short to
  reach v_max;
- ``scurve``: the 7-segment jerk-limited profile (v_max, a_max, j_max), with the constant-acceleration
  and cruise segments shortened or dropped when a limit is not reached; peak acceleration and velocity
  come in closed form;
- ``min_jerk``: q0 + dq (10 s^3 - 15 s^4 + 6 s^5), s = t / T, with T the shortest duration meeting the
  limits (peak velocity 1.875 dq/T, peak acceleration 10/sqrt(3) dq/T^2, peak jerk 60 dq/T^3).

Planning (segment durations) is Python; sampling is a kernel that fills preallocated arrays on the grid
t_k = k dt_s, k = 0 .. ceil(T / dt_s) (T / dt_s rounded first when within 1e-9 of an integer, so a move
of whole samples gets no extra one); the last sample is the end state, whatever its t_k. Trapezoid and
S-curve share one kernel: a profile of piecewise-constant jerk given as rows [duration_s, acceleration at start, jerk],
integrated exactly (polynomials), so samples carry no discretisation error, only rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from actuator.control.filters import check_positive
from actuator.errors import ConfigError

KINDS = ("trapezoid", "scurve", "min_jerk")
MIN_JERK_PEAK_VELOCITY = 1.875  # times dq / T, at s = 1/2
MIN_JERK_PEAK_ACCELERATION = 10.0 / math.sqrt(3.0)  # times dq / T^2, at s = (3 -+ sqrt 3) / 6
MIN_JERK_PEAK_JERK = 60.0  # times dq / T^3, at s = 0 and 1
MAX_SAMPLES = 10_000_000


@njit(cache=True, nogil=True, error_model="numpy")
def sample_piecewise_jerk(q0, direction, seg, dt_s, t_s, pos, vel, acc):
    """Sample a rest-to-rest profile of piecewise-constant jerk; ``seg`` rows are [duration, a_start, jerk].

    ``direction`` (+1 or -1) mirrors the profile for negative moves; the last sample is the end state.
    Returns the number of samples.
    """
    n_seg = seg.shape[0]
    total = 0.0
    for k in range(n_seg):
        total += seg[k, 0]
    k = 0
    t_start = 0.0
    p_start = 0.0
    v_start = 0.0
    n = pos.shape[0]
    for i in range(n):
        ti = i * dt_s
        t_s[i] = ti
        at_end = ti >= total or i == n - 1
        t = total if at_end else ti
        # same summation order as ``total``, so the last segment is never left by rounding
        while k < n_seg - 1 and t >= t_start + seg[k, 0]:
            d = seg[k, 0]
            a0 = seg[k, 1]
            j = seg[k, 2]
            p_start += d * (v_start + d * (0.5 * a0 + d * j / 6.0))
            v_start += d * (a0 + 0.5 * d * j)
            t_start += d
            k += 1
        tau = t - t_start
        a0 = seg[k, 1]
        j = seg[k, 2]
        p = p_start + tau * (v_start + tau * (0.5 * a0 + tau * j / 6.0))
        v = v_start + tau * (a0 + 0.5 * tau * j)
        # at rest after T: the trapezoid's acceleration steps to zero there
        a = 0.0 if at_end else a0 + tau * j
        pos[i] = q0 + direction * p
        vel[i] = direction * v
        acc[i] = direction * a
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def sample_min_jerk(q0, dq, duration_s, dt_s, t_s, pos, vel, acc):
    """Sample the minimum-jerk move of ``dq`` in ``duration_s``; the last sample is the end state.

    Returns the number of samples.
    """
    n = pos.shape[0]
    for i in range(n):
        ti = i * dt_s
        t_s[i] = ti
        if ti >= duration_s or i == n - 1:
            pos[i] = q0 + dq
            vel[i] = 0.0
            acc[i] = 0.0
            continue
        s = ti / duration_s
        r = 1.0 - s
        pos[i] = q0 + dq * s * s * s * (10.0 + s * (-15.0 + 6.0 * s))
        vel[i] = dq / duration_s * 30.0 * s * s * r * r
        acc[i] = dq / (duration_s * duration_s) * 60.0 * s * r * (1.0 - 2.0 * s)
    return n


@dataclass(frozen=True)
class Trajectory:
    """A sampled profile; the arrays are read-only and share the grid ``t_s``."""

    t_s: np.ndarray
    position_rad: np.ndarray
    velocity_rad_s: np.ndarray
    acceleration_rad_s2: np.ndarray
    duration_s: float


def trapezoid_segments(dq_rad: float, v_max: float, a_max: float) -> np.ndarray:
    """Segments [duration, a_start, jerk] of the trapezoid (or triangle) for a move of ``dq_rad`` >= 0."""
    if dq_rad >= v_max * v_max / a_max:
        t_acc = v_max / a_max
        t_cruise = (dq_rad - v_max * t_acc) / v_max
    else:
        t_acc = math.sqrt(dq_rad / a_max)
        t_cruise = 0.0
    return np.array([[t_acc, a_max, 0.0], [t_cruise, 0.0, 0.0], [t_acc, -a_max, 0.0]])


def scurve_segments(dq_rad: float, v_max: float, a_max: float, j_max: float) -> np.ndarray:
    """Segments [duration, a_start, jerk] of the 7-segment S-curve for a move of ``dq_rad`` >= 0."""
    if dq_rad == 0.0:
        return np.zeros((7, 3))
    # the distance of an accelerate-decelerate pair to peak velocity v with peak acceleration a_p is
    # d(v) = v (v / a_p + a_p / j), a_p = min(a_max, sqrt(v j)); d grows with v, so invert it piecewise
    a_peak = min(a_max, math.sqrt(v_max * j_max))
    d_full = v_max * (v_max / a_peak + a_peak / j_max)
    if dq_rad >= d_full:
        v_peak = v_max
        t_cruise = (dq_rad - d_full) / v_max
    elif dq_rad >= 2.0 * a_max ** 3 / j_max ** 2:  # a_max still reached: v^2 + v a^2/j - a dq = 0
        c = a_max * a_max / j_max
        v_peak = 0.5 * (-c + math.sqrt(c * c + 4.0 * a_max * dq_rad))
        a_peak = a_max
        t_cruise = 0.0
    else:  # no constant-acceleration segment: dq = 2 v^1.5 / sqrt(j)
        v_peak = (0.5 * dq_rad * math.sqrt(j_max)) ** (2.0 / 3.0)
        a_peak = math.sqrt(v_peak * j_max)
        t_cruise = 0.0
    t_jerk = a_peak / j_max
    t_const = max(0.0, v_peak / a_peak - t_jerk)
    return np.array([
        [t_jerk, 0.0, j_max], [t_const, a_peak, 0.0], [t_jerk, a_peak, -j_max],
        [t_cruise, 0.0, 0.0],
        [t_jerk, 0.0, -j_max], [t_const, -a_peak, 0.0], [t_jerk, -a_peak, j_max],
    ])


def min_jerk_duration(dq_rad: float, v_max: float, a_max: float, j_max: float | None = None) -> float:
    """The shortest T for which the minimum-jerk move of ``dq_rad`` >= 0 meets the limits."""
    t = max(MIN_JERK_PEAK_VELOCITY * dq_rad / v_max, math.sqrt(MIN_JERK_PEAK_ACCELERATION * dq_rad / a_max))
    if j_max is not None:
        t = max(t, (MIN_JERK_PEAK_JERK * dq_rad / j_max) ** (1.0 / 3.0))
    return t


def plan(kind: str, q0_rad: float, q1_rad: float, v_max_rad_s: float, a_max_rad_s2: float,
         j_max_rad_s3: float | None = None, dt_s: float = 1e-3) -> Trajectory:
    """Plan and sample a rest-to-rest move from ``q0_rad`` to ``q1_rad``.

    ``kind`` is one of ``KINDS``. ``j_max_rad_s3`` is required by ``scurve``, optionally lengthens a
    ``min_jerk`` move to meet it, and is not used by ``trapezoid``.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind = {kind!r} is not allowed: choose one of {KINDS}")
    for name, value in (("q0_rad", q0_rad), ("q1_rad", q1_rad)):
        if not math.isfinite(float(value)):
            raise ConfigError(f"{name} = {value!r} is not finite: allowed (-inf, inf)")
    v_max = check_positive("v_max_rad_s", v_max_rad_s)
    a_max = check_positive("a_max_rad_s2", a_max_rad_s2)
    dt_s = check_positive("dt_s", dt_s)
    if kind == "scurve" and j_max_rad_s3 is None:
        raise ConfigError("j_max_rad_s3 = None is out of range: the scurve needs a value in (0, inf)")
    j_max = None if j_max_rad_s3 is None else check_positive("j_max_rad_s3", j_max_rad_s3)
    q0 = float(q0_rad)
    dq_signed = float(q1_rad) - q0
    dq = abs(dq_signed)
    direction = 1.0 if dq_signed >= 0.0 else -1.0
    seg = None
    if kind == "trapezoid":
        seg = trapezoid_segments(dq, v_max, a_max)
    elif kind == "scurve":
        seg = scurve_segments(dq, v_max, a_max, j_max)
    duration_s = min_jerk_duration(dq, v_max, a_max, j_max) if seg is None else float(seg[:, 0].sum())
    steps = duration_s / dt_s
    n = (round(steps) if abs(steps - round(steps)) < 1e-9 else math.ceil(steps)) + 1
    if n > MAX_SAMPLES:
        raise ConfigError(f"dt_s = {dt_s!r} gives {n} samples for a {duration_s:g} s move: "
                          f"allowed at most {MAX_SAMPLES} samples")
    t_s, pos, vel, acc = (np.empty(n) for _ in range(4))
    if seg is None:
        sample_min_jerk(q0, dq_signed, duration_s, dt_s, t_s, pos, vel, acc)
    else:
        sample_piecewise_jerk(q0, direction, seg, dt_s, t_s, pos, vel, acc)
    for arr in (t_s, pos, vel, acc):
        arr.flags.writeable = False
    return Trajectory(t_s, pos, vel, acc, duration_s)
