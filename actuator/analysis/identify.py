"""Identification of a joint's rigid-body parameters and its reducer stiffness from test data.

This module owns how jointkit estimates, from a recorded or simulated test, the output-side rigid-body
parameters of a joint and the torsional stiffness of its reducer, each with one standard uncertainty
(``Estimate``), and the multisine excitation it uses for the rigid-body test.

Rigid body (``identify_rigid_body``). The joint is taken as one rigid body seen from the output:

    tau = J q'' + B q' + Fc sign(q') + mgl sin(q) + c

with ``tau`` the output-side torque the drive produces, ``Kt * ratio * iq`` (the ideal transmission: what
the reducer loses in the mesh is then part of the friction), ``q`` the output angle (output encoder), J the
total inertia ``J_L + J_m ratio^2``, B the viscous coefficient ``b_in ratio^2 + b_L``, Fc the Coulomb level
``Fc_in ratio``, mgl the gravity torque amplitude (the link hangs at q = 0) and c a torque offset. The
efficiency of the reducer makes friction grow with the transmitted torque, which this model does not hold.

Method. One linear low-pass F is applied to every term: to the torque, to q and to sin(q). F is the
Savitzky-Golay smoother (cubic, window ``smoothing_s``) applied twice; q' and q'' are the central differences
(``numpy.gradient``) of F q, which commute with F, so the equation holds between the filtered signals. Two
simpler choices fail (measured on the simulated wrist and on synthetic quantised records): the Savitzky-Golay
*derivative* filters are not the derivatives of the smoother, so a torque smoothed by one and a q'' from the
other disagree within the excited band (J off by +1.5 % with a 0.1 s window, +4 % with 0.2 s); and a single
pass leaks position noise (encoder quantisation, the reducer's kinematic-error ripple) through its side lobes
into q'', biasing J low (-1.5 % with a 20 ms window on quantised data, -11 % with 40 ms on the wrist).
Applied twice, the side lobes are squared. Samples where |q'| is outside [``min_speed_rad_s``,
``max_speed_rad_s``] (stiction, Stribeck curve, presliding; a resonance) are excluded, and so is every sample
whose filter support (one window each side) reaches one of them or the record's ends: there the filtered
torque mixes in the excluded region and the step of sign(q'). The parameters are the ordinary least-squares
solution (``numpy.linalg.lstsq`` on unit-norm columns).

Uncertainty. Filtered residuals are correlated between neighbouring samples, so the textbook covariance
``s^2 (X'X)^-1`` is inflated by ``n / n_eff``: the effective number of independent samples is
``n_eff = n / (1 + 2 sum_k r_k)``, with ``r_k`` the residual autocorrelation at lag k (over the pairs of
kept samples), summed from lag 1 up to its first non-positive value. This assumes regressors that are slow
next to the residual correlation, as filtered motion is. On repeated synthetic records the scatter of the
estimates matches the reported std within about 20 %. The uncertainty is statistical: a model error (the
flexible mode, load-dependent mesh friction) biases the estimate without widening its std.

Stiffness (``identify_stiffness``). The slope d tau / d phi of the torque against the twist by least
squares over the samples whose |torque| lies in a band, with one intercept per torque sign (the catalogue
curve is odd-symmetric, piecewise linear); its uncertainty as above. The twist is
``motor_encoder / ratio - output_encoder`` (``twist_from_encoders``); it leaves out the reducer's kinematic
error, which changes as the motor turns, so a record in which the motor barely turns measures it best.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, signal

from actuator.analysis.step import as_1d
from actuator.errors import ConfigError

#: polynomial order of the Savitzky-Golay smoother (cubic: flat pass band, little loss at peaks)
SAVGOL_ORDER = 3
#: kept samples needed per fitted parameter
SAMPLES_PER_PARAMETER = 20
#: condition number of the unit-norm design above which the data do not separate the parameters
MAX_CONDITION = 1e8


@dataclass(frozen=True)
class Estimate:
    """An estimated value and its one standard uncertainty, in the units of the field holding it."""

    value: float
    std: float

    def within(self, truth: float, rel: float) -> bool:
        """Whether the value lies within ``rel`` (a fraction) of ``truth``."""
        return abs(self.value - truth) <= rel * abs(truth)

    def z_score(self, truth: float) -> float:
        """(value - truth) / std: how many standard uncertainties the value is off ``truth``."""
        return (self.value - truth) / self.std if self.std > 0 else math.copysign(math.inf, self.value - truth)

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.std:.2g}"


@dataclass(frozen=True)
class RigidBodyId:
    """Output-side rigid-body parameters of a joint; see the module docstring for the model."""

    inertia_kg_m2: Estimate
    viscous_nm_s_per_rad: Estimate
    coulomb_nm: Estimate
    gravity_nm: Estimate | None  # m g l; None when fitted without gravity
    offset_nm: Estimate
    residual_rms_nm: float
    n_samples: int  # samples used in the fit
    n_effective: float  # independent samples they are worth (residual autocorrelation)

    def torque_nm(self, position_rad: ArrayLike, velocity_rad_s: ArrayLike,
                  acceleration_rad_s2: ArrayLike) -> NDArray[np.float64]:
        """The model's output-side torque for a motion (the feedforward of the identified joint)."""
        q, v, a = (np.asarray(x, dtype=float) for x in (position_rad, velocity_rad_s, acceleration_rad_s2))
        tau = (self.inertia_kg_m2.value * a + self.viscous_nm_s_per_rad.value * v
               + self.coulomb_nm.value * np.sign(v) + self.offset_nm.value)
        if self.gravity_nm is not None:
            tau = tau + self.gravity_nm.value * np.sin(q)
        return tau


@dataclass(frozen=True)
class _Fit:
    coef: NDArray[np.float64]
    std: NDArray[np.float64]
    residual_rms: float
    n: int
    n_eff: float


# --- validation ------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _positive(name: str, value: float, *, zero_ok: bool = False) -> float:
    ok = _is_number(value) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number {'>=' if zero_ok else '>'} 0")
    return float(value)


def _sample_step(t: NDArray[np.float64]) -> float:
    """The sampling interval of ``t``, which must increase in equal steps (Savitzky-Golay needs them)."""
    if t.size < 2:
        raise ConfigError(f"t_s has {t.size} samples; at least {SAMPLES_PER_PARAMETER} are needed")
    steps = np.diff(t)
    dt = float(np.median(steps))
    if not dt > 0 or np.any(np.abs(steps - dt) > 1e-3 * dt):
        raise ConfigError(f"t_s must increase in equal steps (uniform sampling); its steps range over "
                          f"[{steps.min():.6g}, {steps.max():.6g}] s")
    return dt


def _window(smoothing_s: float, dt: float, n: int) -> int:
    """The odd window length, in samples, nearest to ``smoothing_s``."""
    w = 2 * round(_positive("smoothing_s", smoothing_s) / dt / 2) + 1
    if w < SAVGOL_ORDER + 2 or w > n:
        raise ConfigError(f"smoothing_s={smoothing_s!r} is {w} samples at a {dt:.6g} s step; it must span "
                          f"{SAVGOL_ORDER + 2} to {n} samples (the record's length)")
    return w


# --- least squares with correlated residuals -------------------------------------------------------------


def _effective_samples(residual: NDArray[np.float64], keep: NDArray[np.bool_]) -> float:
    """n / (1 + 2 sum_k r_k) over the kept samples, r_k summed up to its first non-positive lag."""
    e = np.where(keep, residual, 0.0)
    n = int(keep.sum())
    c = signal.correlate(e, e, mode="full", method="fft")[e.size - 1:]
    if not c[0] > 0:
        return float(n)
    r = c[1:n // 2] / c[0]
    first_low = np.flatnonzero(r <= 0.0)
    stop = int(first_low[0]) if first_low.size else r.size
    inflation = 1.0 + 2.0 * float(np.sum(r[:stop]))
    return n / max(inflation, 1.0)


def _fit(X: NDArray[np.float64], y: NDArray[np.float64], keep: NDArray[np.bool_], names: Sequence[str]) -> _Fit:
    """OLS of y on the columns of X over the kept rows; std inflated for correlated residuals."""
    Xk = X[keep]
    scale = np.linalg.norm(Xk, axis=0)
    if np.any(scale == 0):
        dead = [name for name, s in zip(names, scale, strict=True) if s == 0]
        raise ConfigError(f"the data do not excite {', '.join(dead)}: its regressor is zero on every kept sample")
    Xs = Xk / scale
    sv = np.linalg.svd(Xs, compute_uv=False)
    if sv[-1] <= sv[0] / MAX_CONDITION:
        raise ConfigError(f"the data do not separate the parameters {', '.join(names)} (condition number "
                          f"{sv[0] / max(sv[-1], 1e-300):.3g} > {MAX_CONDITION:g}): excite the joint more richly")
    coef_s, *_ = np.linalg.lstsq(Xs, y[keep], rcond=None)
    residual = np.zeros_like(y)
    residual[keep] = y[keep] - Xs @ coef_s
    n, p = Xk.shape
    s2 = float(residual @ residual) / (n - p)
    n_eff = _effective_samples(residual, keep)
    cov = np.linalg.inv(Xs.T @ Xs) * s2 * (n / n_eff)
    return _Fit(coef=coef_s / scale, std=np.sqrt(np.diag(cov)) / scale,
                residual_rms=math.sqrt(float(residual @ residual) / n), n=n, n_eff=n_eff)


# --- rigid body --------------------------------------------------------------------------------------------


def _smooth(x: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """The smoothing filter F: the Savitzky-Golay smoother applied twice (support 2 window - 1 samples)."""
    return signal.savgol_filter(signal.savgol_filter(x, window, SAVGOL_ORDER), window, SAVGOL_ORDER)


def _kept_samples(velocity: NDArray[np.float64], speed_band: tuple[float, float], half: int) -> NDArray[np.bool_]:
    """Samples at least ``half`` samples from the record's ends and from any sample with |v| out of the band."""
    speed = np.abs(velocity)
    out = (speed < speed_band[0]) | (speed > speed_band[1])
    keep = ndimage.maximum_filter1d(out.astype(np.uint8), size=2 * half + 1, mode="nearest") == 0
    keep[:half] = False
    keep[velocity.size - half:] = False
    return keep


def _check_motion(velocity: NDArray[np.float64], keep: NDArray[np.bool_], n_params: int, what: str) -> None:
    need = SAMPLES_PER_PARAMETER * n_params
    if int(keep.sum()) < need:
        raise ConfigError(f"only {int(keep.sum())} samples move at {what} with their whole smoothing support; "
                          f"at least {need} are needed: excite the joint more or widen the speed band")
    for direction, moving in (("positive", velocity > 0), ("negative", velocity < 0)):
        if not np.any(keep & moving):
            raise ConfigError(f"no kept sample moves in the {direction} direction: Coulomb friction cannot be "
                              "told from the offset; excite the joint both ways")


def identify_rigid_body(t_s: ArrayLike, torque_nm: ArrayLike, position_rad: ArrayLike, *, gravity: bool = True,
                        min_speed_rad_s: float = 0.1, max_speed_rad_s: float = math.inf,
                        smoothing_s: float = 0.1) -> RigidBodyId:
    """Fit J, B, Fc, mgl and an offset to a record of output-side torque and output position.

    ``torque_nm`` is the output-side torque the drive produces, ``Kt * ratio * iq`` (N·m); ``position_rad``
    the output angle, 0 with the link hanging; ``t_s`` uniformly spaced times. ``gravity=False`` leaves the
    mgl term out (a joint whose axis is vertical). Only samples with ``min_speed_rad_s <= |q'| <=
    max_speed_rad_s`` are fitted: the low bound above the output-side Stribeck velocity, the high bound, if
    given, below a speed where the reducer misbehaves (the kinematic error, twice per wave-generator turn,
    resonating the flexspline at ``2 ratio q' = first mode``). ``smoothing_s`` is the Savitzky-Golay window:
    flat within 1 % up to ``0.35 / smoothing_s`` Hz, -3 dB at ``0.88 / smoothing_s``; keep the excitation
    below the first and the ripple to reject above ~``2 / smoothing_s``. See the module docstring. Raises
    ConfigError for bad arrays or settings, too few moving samples, or data that move one way only or do
    not separate the parameters.
    """
    t = as_1d("t_s", t_s)
    tau = as_1d("torque_nm", torque_nm, t.size, "t_s")
    q = as_1d("position_rad", position_rad, t.size, "t_s")
    min_speed = _positive("min_speed_rad_s", min_speed_rad_s, zero_ok=True)
    if not (_is_number(max_speed_rad_s) and max_speed_rad_s > min_speed):
        raise ConfigError(f"max_speed_rad_s={max_speed_rad_s!r} is not allowed; it must be a number (inf allowed) "
                          f"greater than min_speed_rad_s={min_speed_rad_s!r}")
    dt = _sample_step(t)
    w = _window(smoothing_s, dt, t.size)
    v = np.gradient(_smooth(q, w), dt)
    # F reaches w - 1 samples each side, the two central differences 2 more
    keep = _kept_samples(v, (min_speed, float(max_speed_rad_s)), w + 1)
    names = ["inertia", "viscous", "coulomb", "offset"] + (["gravity"] if gravity else [])
    _check_motion(v, keep, len(names), f"min_speed_rad_s={min_speed_rad_s!r} <= |velocity| <= "
                                       f"max_speed_rad_s={max_speed_rad_s!r}")
    # sign(v) and 1 are constant over the support of every kept sample: F leaves them as they are
    columns = [np.gradient(v, dt), v, np.sign(v), np.ones_like(v)] + ([_smooth(np.sin(q), w)] if gravity else [])
    fit = _fit(np.column_stack(columns), _smooth(tau, w), keep, names)
    est = [Estimate(float(c), float(s)) for c, s in zip(fit.coef, fit.std, strict=True)]
    return RigidBodyId(inertia_kg_m2=est[0], viscous_nm_s_per_rad=est[1], coulomb_nm=est[2],
                       gravity_nm=est[4] if gravity else None, offset_nm=est[3],
                       residual_rms_nm=fit.residual_rms, n_samples=fit.n, n_effective=fit.n_eff)


# --- stiffness -------------------------------------------------------------------------------------------


def twist_from_encoders(motor_encoder_rad: ArrayLike, output_encoder_rad: ArrayLike,
                        ratio: float) -> NDArray[np.float64]:
    """The reducer's twist at the output, ``motor_encoder / ratio - output_encoder`` (rad)."""
    m = as_1d("motor_encoder_rad", motor_encoder_rad)
    o = as_1d("output_encoder_rad", output_encoder_rad, m.size, "motor_encoder_rad")
    return m / _positive("ratio", ratio) - o


def identify_stiffness(twist_rad: ArrayLike, torque_nm: ArrayLike, *,
                       torque_band_nm: tuple[float, float]) -> Estimate:
    """The stiffness d torque / d twist (N·m/rad) over the samples with ``lo <= |torque| <= hi``.

    One line per torque sign with a common slope (the catalogue curve is odd-symmetric): see the module
    docstring. A hysteretic reducer gives a different line loading and unloading; give one branch (a
    monotonic ramp) for the stiffness of the curve itself. Raises ConfigError for bad arrays or band, or
    fewer than ``2 * SAMPLES_PER_PARAMETER`` samples in the band.
    """
    phi = as_1d("twist_rad", twist_rad)
    tau = as_1d("torque_nm", torque_nm, phi.size, "twist_rad")
    try:
        lo, hi = (float(b) for b in torque_band_nm)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"torque_band_nm={torque_band_nm!r} is not allowed; it must be a pair (lo, hi)") from exc
    if not (math.isfinite(lo) and 0 <= lo < hi):
        raise ConfigError(f"torque_band_nm={torque_band_nm!r} is not allowed; it needs 0 <= lo < hi (N·m, finite lo)")
    keep = (np.abs(tau) >= lo) & (np.abs(tau) <= hi)
    need = 2 * SAMPLES_PER_PARAMETER
    if int(keep.sum()) < need:
        raise ConfigError(f"only {int(keep.sum())} samples have |torque| in torque_band_nm={torque_band_nm!r}; "
                          f"at least {need} are needed")
    columns, names = [phi], ["stiffness"]
    for name, side in (("positive intercept", tau > 0), ("negative intercept", tau < 0)):
        if np.any(keep & side):
            columns.append(side.astype(float))
            names.append(name)
    fit = _fit(np.column_stack(columns), tau, keep, names)
    return Estimate(float(fit.coef[0]), float(fit.std[0]))


# --- excitation -----------------------------------------------------------------------------------------


def excitation_torque(duration_s: float, dt_s: float, amplitude_nm: float, f_low_hz: float, f_high_hz: float,
                      seed: int | None = None) -> NDArray[np.float64]:
    """A zero-mean multisine torque, one value per step of ``dt_s`` over ``duration_s``, peak ``amplitude_nm``.

    Equal-amplitude lines at every multiple of ``1 / duration_s`` in [f_low_hz, f_high_hz] (the signal is
    periodic over the record, so each line falls on one DFT bin and its mean is zero), with Schroeder phases
    ``-pi k (k - 1) / K`` for a low crest factor, scaled so that max |torque| = ``amplitude_nm``. A ``seed``
    shifts the period circularly by a random number of steps (another start, the same spectrum and peak);
    None starts at the Schroeder phases.
    """
    duration = _positive("duration_s", duration_s)
    dt = _positive("dt_s", dt_s)
    amp = _positive("amplitude_nm", amplitude_nm)
    f_lo = _positive("f_low_hz", f_low_hz)
    f_hi = _positive("f_high_hz", f_high_hz)
    n = round(duration / dt)
    if n < 4:
        raise ConfigError(f"duration_s={duration_s!r} is {n} steps of dt_s={dt_s!r}; at least 4 are needed")
    if not f_lo <= f_hi < 0.5 / dt:
        raise ConfigError(f"f_low_hz={f_low_hz!r}, f_high_hz={f_high_hz!r} are not allowed; they need "
                          f"0 < f_low_hz <= f_high_hz < the Nyquist frequency {0.5 / dt:g} Hz")
    period = n * dt
    k = np.arange(math.ceil(f_lo * period - 1e-9), math.floor(f_hi * period + 1e-9) + 1)
    if k.size == 0 or k[0] < 1:
        raise ConfigError(f"no multiple of 1/duration_s = {1 / period:.6g} Hz lies in [f_low_hz, f_high_hz] = "
                          f"[{f_low_hz!r}, {f_high_hz!r}]: widen the band or lengthen duration_s")
    phases = -math.pi * np.arange(1, k.size + 1) * np.arange(k.size) / k.size
    spectrum = np.zeros(n // 2 + 1, dtype=complex)
    spectrum[k] = np.exp(1j * (phases - math.pi / 2))  # sin(2 pi f t + phase)
    u = np.fft.irfft(spectrum, n)
    if seed is not None:
        u = np.roll(u, int(np.random.default_rng(seed).integers(n)))
    return u * (amp / np.max(np.abs(u)))
