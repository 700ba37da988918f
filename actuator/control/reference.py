"""References for a closed-loop run: a step, a trajectory, a chirp, a PRBS or an array, turned into the
per-model-step rows (position, velocity feedforward, torque) that ``run_closed_loop`` reads.

The scalar signal of a reference goes to the column of the controller's mode: position (position,
impedance, admittance; relative to the start position), velocity (velocity mode, with no position) or
torque (torque mode). A trajectory also supplies its velocity as feedforward; in velocity mode its
velocity profile is the reference, and it cannot drive torque mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actuator.control import cascade as C
from actuator.control.trajectory import Trajectory
from actuator.errors import ConfigError
from actuator.signals import chirp, periodic_chirp, prbs


@dataclass(frozen=True)
class Step:
    amplitude: float
    at_s: float = 0.0


@dataclass(frozen=True)
class Chirp:
    """A logarithmic sweep ``amplitude`` sin(...) from ``f0_hz`` to ``f1_hz`` over the run, or repeated
    every ``period_s`` (a periodic excitation: each Welch segment of one period then sees the whole band)."""

    amplitude: float
    f0_hz: float
    f1_hz: float
    period_s: float | None = None


@dataclass(frozen=True)
class Prbs:
    """A maximum-length sequence of +-``amplitude``, each bit held ``hold_s``, repeated over the run."""

    amplitude: float
    hold_s: float
    n_bits: int = 10


Reference = Step | Chirp | Prbs | Trajectory | np.ndarray | float


def _signal(reference: Reference, n: int, dt_s: float) -> tuple[np.ndarray, np.ndarray | None]:
    t = np.arange(n) * dt_s
    if isinstance(reference, Step):
        return np.where(t >= reference.at_s, float(reference.amplitude), 0.0), None
    if isinstance(reference, Chirp):
        if reference.period_s:
            return periodic_chirp(t, reference.f0_hz, reference.f1_hz, reference.period_s, reference.amplitude), None
        _, u = chirp(reference.f0_hz, reference.f1_hz, n * dt_s, 1.0 / dt_s, reference.amplitude)
        return np.resize(u, n), None
    if isinstance(reference, Prbs):
        hold = max(1, round(reference.hold_s / dt_s))
        _, one = prbs(reference.n_bits, 1.0 / dt_s, reference.amplitude, hold_samples=hold)
        return np.resize(one, n), None
    if isinstance(reference, Trajectory):
        q = np.interp(t, reference.t_s, reference.position_rad) - reference.position_rad[0]
        return q, np.interp(t, reference.t_s, reference.velocity_rad_s)
    arr = np.asarray(reference, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr)), None
    if arr.shape != (n,):
        raise ConfigError(f"reference has {arr.size} samples: expected a scalar or {n} (one per model step)")
    if not np.all(np.isfinite(arr)):
        raise ConfigError("reference contains NaN or infinity")
    return arr, None


def reference_rows(reference: Reference, n: int, dt_s: float, mode: str, start_position_rad: float = 0.0,
                   torque_ff_nm: np.ndarray | float = 0.0) -> np.ndarray:
    """The (n, N_REF) rows of ``reference`` for a controller in ``mode``."""
    if mode not in C.MODES:
        raise ConfigError(f"mode = {mode!r} is not allowed: choose one of {tuple(C.MODES)}")
    sig, vel = _signal(reference, n, dt_s)
    rows = np.zeros((n, C.N_REF))
    rows[:, C.R_TORQUE] = torque_ff_nm
    if mode == "torque":
        if vel is not None:
            raise ConfigError("a trajectory is a position reference: it cannot drive a controller in torque mode")
        rows[:, C.R_TORQUE] += sig
    elif mode == "velocity":
        rows[:, C.R_VEL] = sig if vel is None else vel  # a trajectory gives its velocity profile
    else:
        rows[:, C.R_POS] = start_position_rad + sig
        if vel is not None:
            rows[:, C.R_VEL] = vel
    return rows
