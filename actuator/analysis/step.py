"""Step-response metrics of a recorded or simulated joint: ``step_metrics`` and ``StepMetrics``.

This module owns the definitions of the step metrics jointkit reports. The step goes from the initial
reference value ``y0 = reference[0]`` to the final reference value ``r = reference[-1]``; its step time is
the time of the first sample where the reference differs from ``y0``; the step size is ``r - y0`` and
every metric is sign-aware, so a negative step gives the same metrics as the mirrored positive one
(the steady-state error changes sign with it).

Definitions (all times in seconds, measured from the step time):

* rise time: from the first crossing of 10 % of the step size to the first crossing of 90 %, each crossing
  linearly interpolated between samples; NaN if the output never reaches 90 %.
* overshoot: ``100 * (max(y) - r) / (r - y0)`` over the samples from the step time on, in percent of the
  step size; 0 if the output never passes ``r``.
* settling time: the last time ``|y - r|`` exceeds ``settle_band * |r - y0|`` (2 % by default), linearly
  interpolated to the band crossing. This is the textbook definition with the band relative to the step
  size, NOT MATLAB ``stepinfo``'s, whose band is relative to the peak error. NaN if the output is still
  outside the band at the last sample (never settled within the record).
* steady-state error: ``r - mean(y)`` over the last 10 % of the record's duration (in the units of y).
* peak |u|, |torque| and |current| over the whole record when given, else None.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from actuator.errors import ConfigError

#: fraction of the record's duration over which the steady-state error is averaged
STEADY_STATE_FRACTION = 0.1


@dataclass(frozen=True)
class StepMetrics:
    """The metrics of one step response; see the module docstring for the definitions."""

    step_time_s: float
    initial_value: float
    final_reference: float
    step_size: float
    rise_time_s: float
    overshoot_pct: float
    settling_time_s: float
    steady_state_error: float
    peak_abs_u: float | None = None
    peak_abs_torque_nm: float | None = None
    peak_abs_current_a: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The metrics as a plain ``{name: value}`` dict, e.g. for a report or a CSV row."""
        return asdict(self)


def as_1d(name: str, values: ArrayLike, n: int | None = None, n_name: str = "t_s") -> NDArray[np.float64]:
    """``values`` as a finite 1-D float array (of ``n`` samples, as many as ``n_name``), or ConfigError."""
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a 1-D array of numbers, got {values!r:.80}") from exc
    if a.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array, got shape {a.shape}")
    if n is not None and a.size != n:
        raise ConfigError(f"{name} has {a.size} samples; it must have as many as {n_name} ({n})")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name} contains NaN or inf; only finite values are allowed")
    return a


def _first_crossing(t: NDArray[np.float64], s: NDArray[np.float64], start: int, level: float) -> float:
    """Time at which ``s`` first reaches ``level`` at or after index ``start``, interpolated; NaN if never."""
    hits = np.flatnonzero(s[start:] >= level)
    if hits.size == 0:
        return math.nan
    i = start + int(hits[0])
    if i == 0 or s[i - 1] >= level:
        return float(t[i])
    frac = (level - s[i - 1]) / (s[i] - s[i - 1])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


def _peak_abs(name: str, values: ArrayLike | None, n: int) -> float | None:
    if values is None:
        return None
    return float(np.max(np.abs(as_1d(name, values, n))))


def step_metrics(
    t_s: ArrayLike,
    y: ArrayLike,
    reference: ArrayLike,
    *,
    u: ArrayLike | None = None,
    torque: ArrayLike | None = None,
    current: ArrayLike | None = None,
    settle_band: float = 0.02,
) -> StepMetrics:
    """Measure one step response of ``y`` to ``reference`` sampled at the times ``t_s``.

    ``u``, ``torque`` (N m) and ``current`` (A), if given, must have as many samples as ``t_s``; only their
    peak absolute values are reported. ``settle_band`` is the settling band as a fraction of the step size,
    in (0, 1). Raises ConfigError for mismatched lengths, fewer than 3 samples, non-finite values, times
    that do not increase strictly, or a reference that never changes.
    """
    t = as_1d("t_s", t_s)
    n = t.size
    if n < 3:
        raise ConfigError(f"t_s has {n} samples; a step response needs at least 3")
    if not np.all(np.diff(t) > 0):
        raise ConfigError("t_s must increase strictly from sample to sample")
    yv = as_1d("y", y, n)
    ref = as_1d("reference", reference, n)
    if not (isinstance(settle_band, int | float) and 0.0 < settle_band < 1.0):
        raise ConfigError(f"settle_band={settle_band!r} is not allowed; it must be a fraction in (0, 1)")

    y0 = float(ref[0])
    r = float(ref[-1])
    changed = np.flatnonzero(ref != y0)
    if changed.size == 0 or r == y0:
        raise ConfigError(f"reference never steps: it starts and ends at {y0!r}; a step needs a final value "
                          "different from the initial one")
    k = int(changed[0])
    t_step = float(t[k])
    step = r - y0

    s = (yv - y0) / step  # normalised response: 0 at the start, 1 at the final reference
    t10 = _first_crossing(t, s, k, 0.1)
    t90 = _first_crossing(t, s, k, 0.9)
    rise = t90 - t10 if math.isfinite(t90) and math.isfinite(t10) else math.nan

    overshoot = max(0.0, 100.0 * (float(np.max(s[k:])) - 1.0))

    err = np.abs(s - 1.0)
    outside = np.flatnonzero(err[k:] > settle_band)
    if outside.size == 0:
        settling = 0.0
    else:
        j = k + int(outside[-1])
        if j == n - 1:
            settling = math.nan
        else:
            frac = (err[j] - settle_band) / (err[j] - err[j + 1])
            settling = float(t[j] + frac * (t[j + 1] - t[j])) - t_step

    tail = t >= t[-1] - STEADY_STATE_FRACTION * (t[-1] - t[0])
    ess = r - float(np.mean(yv[tail]))

    return StepMetrics(
        step_time_s=t_step,
        initial_value=y0,
        final_reference=r,
        step_size=step,
        rise_time_s=rise,
        overshoot_pct=overshoot,
        settling_time_s=settling,
        steady_state_error=ess,
        peak_abs_u=_peak_abs("u", u, n),
        peak_abs_torque_nm=_peak_abs("torque", torque, n),
        peak_abs_current_a=_peak_abs("current", current, n),
    )


def step_figures(m: StepMetrics, loop: str = "position") -> dict[str, float]:
    """The figures of a step test, under the names every executor reports (in-process, bus, batch, replay, GUI):
    the steady-state error in the loop's unit (rad, or rad/s for the velocity loop); the peaks where measured."""
    unit = "rad_s" if loop == "velocity" else "rad"
    figures = {"rise_time_s": m.rise_time_s, "overshoot_pct": m.overshoot_pct, "settling_time_s": m.settling_time_s,
               f"steady_state_error_{unit}": m.steady_state_error}
    if m.peak_abs_torque_nm is not None:
        figures["peak_torque_nm"] = m.peak_abs_torque_nm
    if m.peak_abs_current_a is not None:
        figures["peak_current_a"] = m.peak_abs_current_a
    return figures


def friction_hold_rad(breakaway_nm: float, velocity_ki: float, position_kp: float, rest_s: float) -> float:
    """The largest position error a joint held by static friction can keep for ``rest_s`` under a P position loop
    (``position_kp``, (rad/s)/rad) over a PI velocity loop (``velocity_ki``, N·m/rad): stuck, the velocity
    integrator charges at ki kp e N·m/s and must swing by up to twice the breakaway torque (from holding one way
    to breaking free the other) before the joint moves, so an error e stays for 2 breakaway / (ki kp e) s.
    A bound for the steady-state error of a step on a joint with stiction (the record's rest after settling)."""
    if velocity_ki <= 0.0 or position_kp <= 0.0 or rest_s <= 0.0:
        return math.inf
    return 2.0 * breakaway_nm / (velocity_ki * position_kp * rest_s)
