"""The encoders' calibration (issue 17, item 2): the motor and output encoders' consistency over the joint's range,
the reducer's kinematic-error map, and the output encoder's absolute zero from gravity. The protocol
``encoder_calibrate`` (segments and analysis, registered in ``experiments.protocols`` and run by its three
executors), its configuration (``encoder_calibrate_config``), the checks that refuse a run which cannot give a
result (``CalibrationError``), the fits (``fit_mismatch``, ``fit_gravity_zero``) and the certificates.

The run: in velocity mode three slow sweeps over the joint's whole range, +v, -v back and +v again (a full output
turn where the position limits allow it; the knee's +-2.5 rad do not: its range less a margin at each end). Per
sample, with
r_m, r_o the motor and output readings (``actuator.model.sensors``: reading = angle + INL sin(angle) + offset,
quantised) and the model's output theta_L = theta_m / N + KE(theta_m) - twist (``actuator.model.mechanics``):

    m = r_m / N - r_o = -KE(theta_m) + INL_m sin(theta_m) / N + twist - INL_o sin(theta_L) + off_m / N - off_o

(the ``friction`` protocol's ``_twist``, ``protocols._twist``). Fitted by linear least squares against the motor
reading: the harmonics k = 1..MAX_HARMONICS of the wave-generator angle (shared by both sweeps), and per sweep a
smooth baseline in the output angle (Legendre polynomials, ``BASELINE_DEGREE``): the twist (the link's weight
m g l sin q / K, the load damping and the flexspline's hysteresis, whose direction-dependent part the two sweeps'
baselines take apart and their mean cancels), the output encoder's once-per-turn INL and the offsets. What is and
is not separable:
* the motor encoder's once-per-turn INL is at k = 1 of the motor angle, as KE's first harmonic: the k = 1 term is
  their sum (KE_1 - INL_m / N in the reducer's sign). What a motor-side position needs is that sum, so the table
  takes it as it is;
* the output encoder's once-per-turn INL has the shape of the gravity twist (both sin theta_L): inseparable without
  the flexspline's stiffness, it stays in the baseline and is not reported;
* KE is reported in the reducer's convention (``reducer.kinematic_error_amplitudes_rad`` / ``_phases_rad``):
  amplitude >= 0, phase in (-pi, pi]; a standard uncertainty (k = 1) from s^2 (A^T A)^-1 of the fit, widened by
  half the difference of the two sweeps' own estimates (what the sweeps disagree on is not noise).
The sweeps must be slow: the link follows KE through the flexspline as a spring-mass (sqrt(K / J_L) = 249 rad/s on
the knee), which magnifies what the output encoder sees by 1 / (1 - (k w_m / w_n)^2): at 0.1 rad/s, 0.65 % at k = 2.

The output encoder's zero: the link hangs at theta = 0 under gravity. The drive torque at constant speed is
m g l sin(theta_L) plus friction; friction and the mesh loss change sign with the direction, gravity does not. So

    tau = a sin r_o + b cos r_o + c + s (d + e |sin r_o| + f h(t)),  s = +-1 the sweep's direction

with a = m g l cos(off_o), b = -m g l sin(off_o): off_o = atan2(-b, a). The fit is weighted by a Hann taper over the
span (``taper``: the torque ripple's leakage), notched about the zero (the mesh loss's kink: below), and balanced
between the directions, each weighing half. What limits it is the grease's friction drifting with the housing
temperature (``actuator.model.mechanics``: Fc exp(-beta (T_h - T_ref)), 4.3 %/K of 11.5 N·m on the knee) as the sweeps'
copper loss warms the housing (0.05 K over the run). A drift s D(t) of the friction: at output angle r the forward sweep
meets it at t_f(r), the back one at t_b(r), and what the fit takes for gravity is their common part (D(t_f) - D(t_b)) /
2, a function of r alone that no fit of one +v and one -v sweep can tell from gravity. With two sweeps it cancels only
where D is even about the run's middle; it is not (the housing warms faster as the winding does): -2.3 LSB on the knee
at 0.1 rad/s, -2.4 .. +1.5 over 20 knees at 0.2 rad/s. Hence:
* a third sweep, +v again over the same span: the balanced fit is the symmetric combination (fwd1 + 2 bwd + fwd2)
  / 4, in which a drift linear in time cancels at every r (fwd1 and fwd2 straddle bwd in time, and the pairs
  fwd1 + bwd and bwd + fwd2 see it with opposite signs: ``output_zero_drift_rad``, half their difference, is
  1.25 LSB on the knee at 0.12 rad/s);
* what is left is not linear in time: the housing warms at the rate of the winding's copper loss, (m g l sin r +
  s F)^2 / Kt^2 R, so faster where the link is lifted, different in the two directions and lagging through the
  winding's 17 s time constant. The routine models it: h(t), the housing's rise from the drive torque's square (i^2
  R: i = tau / Kt) through the joint type's two-node thermal network (``housing_rise``, ``actuator.model.layout.
  thermal_matrices`` from the preset's thermal section: a real rig has the type's thermal model from its
  datasheet or a thermal soak), and fits the friction's share f as the column s h(t). It removes the drift to
  about 0.25 LSB (with the housing's true temperature as the column the same) and needs no temperature sensor:
  the native profile reports the housing to 0.25 K, five times the run's whole rise. A column for the warmth the
  winding brings from an earlier step (s exp(-t / 17 s)) is not identifiable from gravity over three sweeps (it
  moves the zero by 8 LSB on a cold joint), so none is fitted; a sequence that heats the joint just before leaves
  that transient in (the budget does not know it either): 3.6 LSB after the Kt and friction steps, 25.6 (before the
  notch) straight after the drive's own calibration, so ``seeds/sequences/calibrate.toml`` runs the routine first after
  enabling and a 90 s wait (five of the winding's time constants): -0.3 LSB there.
The sweeps are at 0.12 rad/s: three take 118 s against the 95 s of two at 0.1 rad/s (+25 %); KE_2's magnification
through the flexspline is 0.94 % (module's first part).
The notch: the mesh loss, (1/eta - 1)|tau_fs (1/N + KE')| at the input (``actuator.model.mechanics``), follows the
flexspline torque's magnitude, whose kink is where tau_fs crosses zero; two things put a step there that is common to
both directions and so reaches the gravity columns: the load's damping b_L w_L = s D (s|G + s D| = s|G| + D sign G:
(1/eta - 1) D = 6.6e-3 N·m on joint 1 of the population at 0.12 rad/s), a step odd about the crossing, which the Hann
taper (symmetric about the span's middle, not the zero) turns into a cos term in proportion to the zero's distance from
the middle; and the link's inertial ripple J_L KE'' w_m^2 (0.042 N·m on the knee at 0.12 rad/s), which moves the
crossing by up to its amplitude over m g l, 4e-3 rad, as KE's phase there. Found on the population's joint 1 (1.7 LSB,
with the motor encoder at 24 bits 1.44; each effect switched off in turn): 0.6 with KE off; KE's share +0.83 LSB at its
own phase, -0.88 at phase + pi, -0.21 and +0.24 at +-pi/2 (linear in KE), 0.49 at 0.1 rad/s, 1.38 at 0.15 (the inertial
ripple's w^2); with the mesh's efficiency at 1, -0.36 with KE and -0.34 without; cogging, torque ripple, the motor
encoder's INL, hysteresis, the flexspline's damping and the grease's coefficient move it by 0.1 or less, the output
encoder's INL by +0.35, the motor encoder's 14-bit quantisation by +-0.3 (its velocity estimate). Columns for the
ripple, the torque divided by the measured transmission 1 + N KE' or weights by the output's sample spacing change it by
0.2 at most (the ripple does not leak: its product with the kink does). Hence the notch (``taper``, ``NOTCH_RAD``): the
samples within about 0.4 rad of the zero weigh nothing, so the step is odd about the weight and leaves no cos term
(centred on the zero: a first pass notched at the reading's 0 is up to 1.25 LSB off, one re-centred on its zero within
0.003 LSB of a further pass). Joint 1 is then 0.75 LSB (0.38 at 24 bits, 0.33 .. 0.42 over KE's phase and amplitude) and
over 20 knees of seeds/spread.toml (each with its own kinematic error, friction, stiffness, output zero, ...:
tests/rig/test_encoder_calibration.py) the zero is within 1 LSB of the 20-bit output encoder (6.0e-6 rad) on all: -0.48
.. +0.75, mean +0.02, mean |error| 0.22, rms 0.28 (before the notch 19 within 1, joint 1 at 1.72, mean |error| 0.40; two
sweeps at 0.2 rad/s gave -2.4 .. +1.5, mean -0.8).
The standard uncertainty (k = 1, ``zero_budget``): the fit's covariance is useless here (its residuals are the
motor-angle ripple, periodic, which the taper rejects; as if white it is 30 LSB), so a budget of type-B terms the
run gives: half the heating correction applied (``output_zero_heating_rad``: the thermal network is the type's,
not this unit's), half the difference of the Hann and sine windows' zeros (``output_zero_window_rad``: a smooth
misfit of the model pulls them apart) and a floor ``ZERO_U_FLOOR_RAD`` of 0.5 LSB (above the population's rms error
of 0.28). 0.70 .. 1.65 LSB over the 20 knees, covering each one's error within 1.1 of it.
The motor zero (``motor_zero_rad``: the output angle that r_m / N + KE reads at the true zero, off_m / N) is the
mismatch's mean baseline at r_o = off_o plus off_o.

Where it goes: the joint's protocol profile has no encoder offset or kinematic-error parameter (dbc/
jointkit_native.toml ``[params]``, ``JointFirmware.param_names``), so the results are written to the gains file,
section ``[kinematic_error_compensation]`` (``actuator.control.config``): the table, the motor zero and the output
zero, which the controller applies when ``position_feedback = "motor"`` (output angle from the motor encoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actuator.errors import CalibrationError, ConfigError
from actuator.model.layout import MAX_HARMONICS, thermal_matrices
from actuator.params import JointParams
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.friction_calibration import STUCK_FRACTION, check_moving
from firmware_iface.experiments.panels import Panel, Series
from firmware_iface.experiments.segments import (
    Outcome,
    Segment,
    Signals,
    check_at_least,
    go_home,
    hold,
    ramp,
    tagged,
)

SPEED_RAD_S = 0.12      # output: the KE magnification at k = 2 stays under 1 % on the knee (module docstring), and
                        # three sweeps take 25 % longer than two at 0.1 rad/s did
MARGIN_RAD = 0.2        # from each position limit: twice the limiter's 0.1 rad soft zone
MIN_TRAVEL_RAD = 0.2    # 20 motor turns at N = 100: the harmonics and the baseline apart (the conditioning check)
BASELINE_DEGREE = 6     # the twist's m g l sin q / K over up to 2 pi, to under 1e-6 rad of the knee's 3e-4 rad
# largest condition number of the column-scaled design matrix: the harmonics against the baseline, 2 x 7 polynomial
# columns and 8 harmonic ones. The knee's +-2.3 rad sweeps give 20; a single motor turn's travel several thousand
COND_MAX = 200.0
SWEEPS = ("fwd", "bwd", "fwd2")  # the sweeps' tags, in their order: +v, -v, +v
THERMAL_STEP_S = 0.01   # the heating model's grid: the winding's 17 s time constant over a thousand and more steps
# the gravity fit's notch about the zero (``taper``): a Gaussian of this width, wide against where the mesh loss's
# kink sits (the zero less the link's KE-driven inertial ripple over m g l: 4e-3 rad on the knee at 0.12 rad/s) and
# the output zero's 3 sd of 0.015 rad, smooth against the ripple's 0.031 rad period (module docstring)
NOTCH_RAD = 0.4
# passes re-centring the notch on the zero found after a first notched at the reading's 0: that one is up to 1.25 LSB
# off over the population (the notch must sit on the step), one re-centred within 0.003 LSB of a second
NOTCH_PASSES = 1
# the output zero's floor in its budget, 0.5 LSB of the 20-bit encoder: above what the zero keeps with the friction's
# drift and the mesh loss's step taken out, over 20 knees of seeds/spread.toml at 0.12 rad/s, 0.28 LSB rms
# (tests/rig/test_encoder_calibration.py)
ZERO_U_FLOOR_RAD = 3e-6
FROZEN_S = 0.1          # an encoder whose reading stays the same this long while the joint moves has dropped out
FIGURES = ("encoder_ratio", "encoder_ratio_error", "encoder_mismatch_rad", "encoder_mismatch_max_rad",
           "ke_amplitudes_rad", "ke_phases_rad", "ke_amplitudes_u_rad", "ke_phases_u_rad", "ke_dominant_rad",
           "ke_dominant_u_rad", "ke_residual_rms_rad", "ke_condition_number", "output_zero_rad", "output_zero_u_rad",
           "output_zero_drift_rad", "output_zero_heating_rad", "output_zero_window_rad", "motor_zero_rad",
           "motor_zero_u_rad", "gravity_torque_nm", "gravity_residual_rms_nm", "encoder_travel_rad",
           "encoder_full_turn")
SCALAR_FIGURES = tuple(f for f in FIGURES if not f.startswith(("ke_amplitudes", "ke_phases")))
# the CLI's limits when no sequence gives them: counted motor turns against the output's travel to 0.1 % (a wrong
# ratio or a slipping encoder is percents); the k = 2 term known to 3 % of the knee's 1.45e-4 rad at 3 standard
# uncertainties; the zero to 2 LSB of the knee's 20-bit output encoder (1.2e-5 rad) at one standard uncertainty
# (1.65 LSB the largest over 20 knees of seeds/spread.toml, module docstring)
DEFAULT_LIMITS = {"encoder_ratio_error": (-1e-3, 1e-3), "ke_dominant_u_rad": (None, 1.5e-6),
                  "output_zero_u_rad": (None, 1.2e-5), "ke_condition_number": (None, COND_MAX)}
METHOD = ("{n} samples of three constant-speed sweeps (+v, -v, +v) at {v:g} rad/s over {lo:.3g}..{hi:.3g} rad "
          "({turn}); mismatch motor/N - output by linear least squares: harmonics k = 1..{k} of the motor angle and a "
          "degree-{d} Legendre baseline in the output angle per direction (the twist's direction part cancels in "
          "their mean); the k = 1 term holds the motor encoder's INL / N (inseparable), the output encoder's INL "
          "stays in the baseline (inseparable from the gravity twist). Output zero from the gravity torque's "
          "phase under a Hann taper notched about the zero (the mesh loss's kink): the directions' drive torque "
          "weighed equally (the friction's drift linear in time cancels) and "
          "its drift with the housing temperature taken out (a column: the copper loss through the joint type's "
          "thermal network). Standard uncertainty (k = 1): the KE's the fit's covariance widened by half the "
          "sweeps' difference; the zero's half its heating correction, half the Hann and sine windows' "
          "difference and a 0.5 LSB floor. Applied through the gains file's "
          "[kinematic_error_compensation] (amplitudes_rad, phases_rad, motor_zero_rad, output_zero_rad): the "
          "joint's profile has no encoder or kinematic-error parameter, so nothing is written to the joint.")


def sweep_range(params: JointParams, margin_rad: float = MARGIN_RAD) -> tuple[float, float, bool]:
    """The sweeps' ends: a full output turn (-pi..pi) where the position limits allow it, else the limits less
    ``margin_rad``; and whether it is a full turn."""
    lo = max(params.limits.position_min_rad + margin_rad, -math.pi)
    hi = min(params.limits.position_max_rad - margin_rad, math.pi)
    return lo, hi, lo <= -math.pi and hi >= math.pi


def encoder_calibrate_config(speed_rad_s: float = SPEED_RAD_S, range_rad: tuple[float, float] | None = None,
                             ramp_s: float = 0.5, settle_s: float = 0.5, move_s: float = 1.0,
                             stuck_fraction: float = STUCK_FRACTION, ratio: float | None = None,
                             params: JointParams | None = None) -> dict[str, Any]:
    """The routine's configuration, checked before anything moves: the sweep speed (rad/s at the output, > 0,
    under the joint's velocity limit), the range (default ``sweep_range``: inside the position limits), the
    velocity ramps and the settle before each sweep's averaged part, the move to the start, and the ratio (from
    ``params`` unless given)."""
    if ratio is None:
        if params is None:
            raise ConfigError("ratio: give the reducer's ratio or the joint's parameters")
        ratio = params.reducer.ratio
    if range_rad is None:
        if params is None:
            raise ConfigError("range_rad: give the sweep's range or the joint's parameters (its position limits)")
        lo, hi, _ = sweep_range(params)
    else:
        lo, hi = (float(x) for x in range_rad)
    check_at_least(speed_rad_s=(speed_rad_s, 1e-4), ramp_s=(ramp_s, 0.01), settle_s=(settle_s, 0.0),
                   move_s=(move_s, 0.05), stuck_fraction=(stuck_fraction, 0.0), ratio=(ratio, 1.0))
    travel = hi - lo - speed_rad_s * (ramp_s + settle_s)  # the averaged part of each sweep
    if not (math.isfinite(travel) and travel >= MIN_TRAVEL_RAD):
        raise ConfigError(f"range_rad = {[lo, hi]!r}: the sweeps would average over {travel:.3g} rad, at least "
                          f"{MIN_TRAVEL_RAD:g} rad is needed (ramps and settle take speed x {ramp_s + settle_s:g} s)")
    if params is not None:
        lim = params.limits
        if not lim.position_min_rad < lo < hi < lim.position_max_rad:
            raise ConfigError(f"range_rad = {[lo, hi]!r}: outside the position limits [{lim.position_min_rad:g}, "
                              f"{lim.position_max_rad:g}] rad")
        if speed_rad_s > lim.velocity_max_rad_s:
            raise ConfigError(f"speed_rad_s = {speed_rad_s!r}: above the joint's velocity limit "
                              f"{lim.velocity_max_rad_s:g} rad/s")
    # the joint type's thermal network (winding, housing) at the heating model's step: x+ = A x + b P_copper
    thermal = None
    if params is not None:
        a, b = thermal_matrices(params, THERMAL_STEP_S)
        thermal = {"a": a.tolist(), "b": b[:, 0].tolist()}
    return {"speed_rad_s": float(speed_rad_s), "range_rad": [lo, hi], "sweep_s": travel / speed_rad_s,
            "thermal": thermal,
            "ramp_s": float(ramp_s), "settle_s": float(settle_s), "move_s": float(move_s),
            "stuck_fraction": float(stuck_fraction), "ratio": float(ratio),
            "full_turn": bool(lo <= -math.pi and hi >= math.pi)}


def encoder_calibrate_segments(c: dict) -> list[Segment]:
    """Move (position mode) to the range's low end, ramp to +v, settle, sweep (``fwd``) to half a ramp's travel
    short of the high end, reverse, settle, sweep back (``bwd``) to half a ramp's travel above the low end, reverse,
    settle, sweep forward again (``fwd2``) over the first sweep's span, ramp to 0."""
    v, r, s, t = c["speed_rad_s"], c["ramp_s"], c["settle_s"], c["sweep_s"]
    return [*go_home(c["range_rad"][0], c["move_s"], 0.3),
            Segment(r, "velocity", ramp(0.0, v, r)), Segment(s, "velocity", hold(v)),
            Segment(t, "velocity", hold(v), tag=SWEEPS[0]), Segment(2 * r, "velocity", ramp(v, -v, 2 * r)),
            Segment(s, "velocity", hold(-v)), Segment(t, "velocity", hold(-v), tag=SWEEPS[1]),
            Segment(2 * r, "velocity", ramp(-v, v, 2 * r)), Segment(s, "velocity", hold(v)),
            Segment(t, "velocity", hold(v), tag=SWEEPS[2]), Segment(r, "velocity", ramp(v, 0.0, r))]


@dataclass(frozen=True)
class MismatchFit:
    amplitudes_rad: tuple[float, ...]     # KE, the reducer's convention: A_k >= 0
    phases_rad: tuple[float, ...]         # phi_k in (-pi, pi]
    amplitudes_u_rad: tuple[float, ...]   # standard uncertainties (k = 1)
    phases_u_rad: tuple[float, ...]
    residual_rms_rad: float
    condition_number: float
    baselines: tuple[np.ndarray, np.ndarray]  # Legendre coefficients of the fwd and bwd baselines
    span_rad: tuple[float, float]             # the output angles the baselines' x = -1..1 map to


def _x(r_o: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    lo, hi = span
    return (2.0 * r_o - (lo + hi)) / (hi - lo)


def _harmonic_columns(r_m: np.ndarray, k_max: int) -> np.ndarray:
    return np.column_stack([f(k * r_m) for k in range(1, k_max + 1) for f in (np.sin, np.cos)])


def _ls(a: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Least squares on column-scaled ``a``: the solution, its covariance s^2 (A^T A)^-1, the residuals and the
    scaled matrix's condition number."""
    scale = np.sqrt(np.sum(a * a, axis=0))
    scale[scale == 0.0] = 1.0
    a_s = a / scale
    sol, _, _, sv = np.linalg.lstsq(a_s, y, rcond=None)  # and the scaled matrix's singular values
    res = y - a_s @ sol
    s2 = float(res @ res) / max(y.size - a.shape[1], 1)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    cov = s2 * np.linalg.pinv(a_s.T @ a_s) / np.outer(scale, scale)
    return sol / scale, cov, res, cond


def _polar(sin_c: float, cos_c: float, cov2: np.ndarray) -> tuple[float, float, float, float]:
    """a sin t + b cos t = A sin(t + psi): A, psi and their first-order standard uncertainties."""
    amp = math.hypot(sin_c, cos_c)
    if amp == 0.0:
        return 0.0, 0.0, math.sqrt(max(np.trace(cov2) / 2, 0.0)), math.pi
    g_amp = np.array([sin_c, cos_c]) / amp
    g_psi = np.array([-cos_c, sin_c]) / amp ** 2
    return amp, math.atan2(cos_c, sin_c), math.sqrt(g_amp @ cov2 @ g_amp), math.sqrt(g_psi @ cov2 @ g_psi)


def _mismatch_ls(r_m: np.ndarray, m: np.ndarray, x: np.ndarray, fwd: np.ndarray, k_max: int,
                 degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    legendre = np.polynomial.legendre.legvander(x, degree)
    a = np.column_stack([_harmonic_columns(r_m, k_max), legendre * fwd[:, None], legendre * ~fwd[:, None]])
    return _ls(a, m)


def fit_mismatch(r_m: np.ndarray, r_o: np.ndarray, fwd: np.ndarray, ratio: float, k_max: int = MAX_HARMONICS,
                 degree: int = BASELINE_DEGREE) -> MismatchFit:
    """The KE harmonics and the two sweeps' baselines of m = r_m / N - r_o (``fwd``: the +v sweep's samples).
    ``CalibrationError`` (``ill_conditioned``) when the harmonics cannot be told from the baselines (too few motor
    turns) or a sweep has too few samples."""
    r_m, r_o, fwd = np.asarray(r_m, float), np.asarray(r_o, float), np.asarray(fwd, bool)
    n_cols = 2 * k_max + 2 * (degree + 1)
    if min(fwd.sum(), (~fwd).sum()) < 2 * n_cols:
        raise CalibrationError(f"encoder calibration: {fwd.sum()} and {(~fwd).sum()} samples in the two sweeps, "
                               f"at least {2 * n_cols} each for {n_cols} unknowns", "ill_conditioned")
    m = r_m / ratio - r_o
    span = (float(r_o.min()), float(r_o.max()))
    sol, cov, res, cond = _mismatch_ls(r_m, m, _x(r_o, span), fwd, k_max, degree)
    if not (cond <= COND_MAX and np.all(np.isfinite(sol))):
        raise CalibrationError(f"encoder calibration: the fit is ill-conditioned (condition number {cond:.3g}, "
                               f"at most {COND_MAX:g}): {np.ptp(r_m) / (2 * math.pi):.3g} motor turns cannot tell "
                               "the kinematic error from the twist's baseline; sweep a wider range", "ill_conditioned")
    # each sweep alone: what the two disagree on widens the uncertainty
    own = [_mismatch_ls(r_m[s], m[s], _x(r_o[s], span), fwd[s], k_max, degree)[0] for s in (fwd, ~fwd)]
    amps, phases, u_amps, u_phases = [], [], [], []
    for k in range(k_max):
        i = 2 * k
        # KE = -(harmonic of m): the reducer's sign
        amp, psi, u_a, u_p = _polar(-sol[i], -sol[i + 1], cov[i:i + 2, i:i + 2])
        split = [_polar(-o[i], -o[i + 1], cov[i:i + 2, i:i + 2])[:2] for o in own]
        d_amp = abs(split[0][0] - split[1][0]) / 2
        d_psi = abs(math.remainder(split[0][1] - split[1][1], 2 * math.pi)) / 2
        amps.append(amp)
        phases.append(psi)
        u_amps.append(math.hypot(u_a, d_amp))
        u_phases.append(math.hypot(u_p, d_psi))
    h = 2 * k_max
    return MismatchFit(tuple(amps), tuple(phases), tuple(u_amps), tuple(u_phases),
                       float(np.sqrt(np.mean(res ** 2))), cond, (sol[h:h + degree + 1], sol[h + degree + 1:]), span)


def ke_series(r_m: np.ndarray | float, amplitudes_rad: tuple[float, ...], phases_rad: tuple[float, ...]) -> Any:
    """KE(r_m) = sum A_k sin(k r_m + phi_k), plain numpy (the controller's ``kinematic_error_table`` compiled)."""
    return sum(a * np.sin((k + 1) * np.asarray(r_m) + p) for k, (a, p) in enumerate(zip(amplitudes_rad, phases_rad,
                                                                                      strict=True)))


def mean_baseline(fit: MismatchFit, r_o: np.ndarray | float) -> np.ndarray:
    """The two sweeps' mean baseline at output readings ``r_o``: the mismatch with the twist's direction part gone
    and the harmonics removed."""
    x = _x(np.asarray(r_o, float), fit.span_rad)
    leg = np.polynomial.legendre.legval
    return 0.5 * (leg(x, fit.baselines[0]) + leg(x, fit.baselines[1]))


@dataclass(frozen=True)
class GravityFit:
    zero_rad: float
    zero_u_rad: float
    torque_nm: float        # m g l as the drive torque sees it
    residual_rms_nm: float


def taper(r_o: np.ndarray, power: float = 2.0, notch_at_rad: float | None = None) -> np.ndarray:
    """The Hann window sin^2(pi x) over the sweeps' span of output readings (x = 0..1): the weight the gravity fit
    gives each sample (``power`` 1: the sine window, the budget's comparison), times a notch 1 - exp(-((r - z) /
    ``NOTCH_RAD``)^2) about ``notch_at_rad`` (z) when given. The drive torque's residuals about the fit are not white:
    besides the ripple at the motor angle's harmonics (0.18 N·m rms on the knee) they beat slowly (+-0.02 N·m with a
    period of 0.2 rad at 0.2 rad/s). A fit with uniform weights over sweeps that end in mid-period takes the last
    partial period as a cos term, the zero's: up to 39 LSB of the output encoder (2.3e-4 rad) over a population of 20
    knees, varying with each joint's kinematic error and the sweep's ends. A weight that goes to zero smoothly at both
    ends leaves no end term (the leakage of a period p over a span L falls as (p / L)^3 instead of p / L). The notch
    takes out the mesh loss's kink where the load torque crosses zero (module docstring)."""
    lo, hi = float(np.min(r_o)), float(np.max(r_o))
    w = np.sin(np.pi * (r_o - lo) / (hi - lo)) ** power if hi > lo else np.ones_like(r_o)
    if notch_at_rad is not None:
        w = w * -np.expm1(-(((r_o - notch_at_rad) / NOTCH_RAD) ** 2))
    return w


def housing_rise(t_s: np.ndarray, torque_nm: np.ndarray, thermal: dict) -> np.ndarray:
    """The housing's temperature rise over the run (K per N·m^2: the scale is the fit's) from the drive torque's
    square, the copper loss's shape (i^2 R, i = torque / Kt), through the joint type's two-node thermal network
    (``actuator.model.layout.thermal_matrices``, a step of ``THERMAL_STEP_S``) from the run's start; at ``t_s``."""
    ok = np.isfinite(torque_nm)
    grid = np.arange(t_s[0], t_s[-1] + THERMAL_STEP_S, THERMAL_STEP_S)
    power = np.interp(grid, t_s[ok], torque_nm[ok] ** 2)
    (a00, a01), (a10, a11) = thermal["a"]
    b0, b1 = thermal["b"]
    tw = th = 0.0
    housing = np.empty(grid.size)
    for i, pw in enumerate(power):
        housing[i] = th
        tw, th = a00 * tw + a01 * th + b0 * pw, a10 * tw + a11 * th + b1 * pw
    return np.interp(t_s, grid, housing)


def fit_gravity_zero(r_o: np.ndarray, torque_nm: np.ndarray, fwd: np.ndarray, heating: np.ndarray | None = None,
                     taper_power: float = 2.0, notch_at_rad: float | None = None) -> GravityFit:
    """The output reading at which the link hangs (the gravity torque's zero) from the sweeps' drive torque, by
    least squares weighted by ``taper`` with its notch about the zero (at ``notch_at_rad`` when given, a zero already
    found; else a first pass notched at the reading's 0, then ``NOTCH_PASSES`` re-centred on the zero found) and
    balanced between the directions (each direction's samples
    weigh as much in all as the other's: with two forward sweeps and one back, their symmetric combination);
    ``heating``, the housing's modelled temperature rise at each sample (``housing_rise``), adds the friction's drift
    with it as a column s x heating (module docstring). The fit's standard uncertainty (``zero_u_rad``) by the
    sandwich (A^T W A)^-1 A^T W^2 A (A^T W A)^-1 s^2 (the taper is a window, not an inverse variance), s^2 the
    residuals' variance under the taper, as if white: they are not (periodic in the motor angle, which the taper
    rejects), so it is a loose upper bound (30 LSB on the knee for errors under 1); the certificate's is the
    analysis's budget. ``CalibrationError`` (``no_gravity``) when the fitted m g l is under 10 of its standard
    uncertainties (a link without weight, a horizontal axis: nothing to find the zero from)."""
    r_o, tau, fwd = np.asarray(r_o, float), np.asarray(torque_nm, float), np.asarray(fwd, bool)
    heat = np.zeros_like(r_o) if heating is None else np.asarray(heating, float)
    ok = np.isfinite(r_o) & np.isfinite(tau) & np.isfinite(heat)
    r_o, tau, fwd, heat = r_o[ok], tau[ok], fwd[ok], heat[ok]
    s = np.where(fwd, 1.0, -1.0)
    columns = [np.sin(r_o), np.cos(r_o), np.ones_like(r_o), s, s * np.abs(np.sin(r_o))]
    if heating is not None:
        columns.append(s * (heat - np.mean(heat)))  # the grease's friction following the housing's temperature
    a = np.column_stack(columns)
    zero = 0.0 if notch_at_rad is None else notch_at_rad
    for _ in range(1 + (NOTCH_PASSES if notch_at_rad is None else 0)):
        sol, res, w = _weighted_fit(a, tau, fwd, taper(r_o, taper_power, zero))
        zero = math.atan2(-sol[1], sol[0])
    s2 = float(np.sum(w * res ** 2) / np.sum(w)) * res.size / max(res.size - a.shape[1], 1)  # where it weighs
    bread = np.linalg.pinv(a.T @ (a * w[:, None]))
    cov = bread @ (a.T @ (a * (w ** 2)[:, None])) @ bread * s2
    mgl, psi, u_mgl, u_psi = _polar(sol[0], sol[1], cov[:2, :2])
    if not (mgl > 10.0 * u_mgl):
        raise CalibrationError(f"encoder calibration: the drive torque shows no gravity to find the output's zero "
                               f"from (m g l = {mgl:.3g} +- {u_mgl:.2g} N·m)", "no_gravity")
    # a sin q + b cos q = mgl sin(q + psi) = mgl sin(q - zero)
    return GravityFit(float(-psi), u_psi, mgl, float(np.sqrt(np.sum(w * res ** 2) / np.sum(w))))


def _weighted_fit(a: np.ndarray, tau: np.ndarray, fwd: np.ndarray,
                  w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``tau`` on the columns ``a`` under the weights ``w`` balanced between the directions: the
    solution, the residuals and the balanced weights."""
    totals = [float(np.sum(w[fwd])), float(np.sum(w[~fwd]))]
    if min(totals) > 0.0:
        w = w * np.where(fwd, 0.5 / totals[0], 0.5 / totals[1]) * w.size
    sw = np.sqrt(w)
    sol, *_ = np.linalg.lstsq(a * sw[:, None], tau * sw, rcond=None)
    return sol, tau - a @ sol, w


def zero_budget(r_o: np.ndarray, torque_nm: np.ndarray, fwd: np.ndarray, heating: np.ndarray | None,
                grav: GravityFit) -> dict[str, float]:
    """The output zero's standard uncertainty (k = 1) from what the run shows, each a type-B term: half the heating
    correction (the thermal network is the joint type's, not this unit's), half the difference of the Hann and sine
    windows (a smooth misfit of the model pulls them differently) and ``ZERO_U_FLOOR_RAD`` (module docstring)."""
    z = grav.zero_rad  # the others notched where this one found the zero
    heat_fix = 0.0 if heating is None else z - fit_gravity_zero(r_o, torque_nm, fwd, notch_at_rad=z).zero_rad
    window = z - fit_gravity_zero(r_o, torque_nm, fwd, heating, taper_power=1.0, notch_at_rad=z).zero_rad
    return {"output_zero_heating_rad": heat_fix, "output_zero_window_rad": window,
            "output_zero_u_rad": math.sqrt((heat_fix / 2) ** 2 + (window / 2) ** 2 + ZERO_U_FLOOR_RAD ** 2)}


def check_encoders(s: Signals, sweeps: list[np.ndarray], ratio: float) -> None:
    """``CalibrationError`` (``encoder_fault``) for an encoder whose reading stood still for FROZEN_S on a sweep
    (a dropout freezes it), or that did not travel with the other (a slipping magnet, a wrong ratio by far)."""
    t = s["t_s"]
    for i, sel in enumerate(sweeps):
        travel = {}
        for name in ("motor_encoder_rad", "output_encoder_rad"):
            r = s[name][sel]
            moved = np.flatnonzero(np.diff(r) != 0.0)
            ts = t[sel]
            edges = np.concatenate([[ts[0]], ts[moved + 1], [ts[-1]]])
            if not np.all(np.isfinite(r)) or np.max(np.diff(edges)) >= FROZEN_S:
                raise CalibrationError(f"encoder calibration: the {name.split('_')[0]} encoder's reading stood "
                                       f"still for {np.max(np.diff(edges)):.3g} s on sweep {i + 1} while the "
                                       "joint moved: an encoder fault; stopped", "encoder_fault")
            travel[name] = r[-1] - r[0]
        out, mot = travel["output_encoder_rad"], travel["motor_encoder_rad"] / ratio
        if not abs(mot - out) <= 0.1 * abs(out):
            raise CalibrationError(f"encoder calibration: on sweep {i + 1} the motor encoder travelled "
                                   f"{mot:.4g} rad at the output and the output encoder {out:.4g} rad: more than "
                                   "10 % apart, an encoder fault or a wrong ratio", "encoder_fault")


def figures_of(mis: MismatchFit, grav: GravityFit, ratio_measured: float, c: dict, mismatch: np.ndarray,
               motor_zero: tuple[float, float]) -> dict[str, Any]:
    k2 = 1 if len(mis.amplitudes_rad) > 1 else 0  # two per wave-generator turn: the harmonic that dominates
    lo, hi = c["range_rad"]
    return {"encoder_ratio": ratio_measured, "encoder_ratio_error": ratio_measured / c["ratio"] - 1.0,
            "encoder_mismatch_rad": float(np.mean(mismatch)),
            "encoder_mismatch_max_rad": float(np.max(np.abs(mismatch - np.mean(mismatch)))),
            "ke_amplitudes_rad": list(mis.amplitudes_rad), "ke_phases_rad": list(mis.phases_rad),
            "ke_amplitudes_u_rad": list(mis.amplitudes_u_rad), "ke_phases_u_rad": list(mis.phases_u_rad),
            "ke_dominant_rad": mis.amplitudes_rad[k2], "ke_dominant_u_rad": mis.amplitudes_u_rad[k2],
            "ke_residual_rms_rad": mis.residual_rms_rad, "ke_condition_number": mis.condition_number,
            "output_zero_rad": grav.zero_rad, "output_zero_u_rad": grav.zero_u_rad,
            "motor_zero_rad": motor_zero[0], "motor_zero_u_rad": motor_zero[1],
            "gravity_torque_nm": grav.torque_nm, "gravity_residual_rms_nm": grav.residual_rms_nm,
            "encoder_travel_rad": hi - lo, "encoder_full_turn": c["full_turn"]}


def certificates_of(figures: dict[str, Any], c: dict, n: int) -> list[Certificate]:
    lo, hi = c["range_rad"]
    turn = "a full output turn" if c["full_turn"] else "the joint's range less margins: no full output turn"
    method = METHOD.format(n=n, v=c["speed_rad_s"], lo=lo, hi=hi, turn=turn, k=len(figures["ke_amplitudes_rad"]),
                           d=BASELINE_DEGREE)
    return [Certificate("ke_amplitudes_rad", figures["ke_amplitudes_rad"], figures["ke_amplitudes_u_rad"], "rad",
                        method, limit_figure="ke_dominant_rad", uncertainty_figure="ke_dominant_u_rad"),
            Certificate("ke_phases_rad", figures["ke_phases_rad"], figures["ke_phases_u_rad"], "rad", method),
            Certificate("output_zero_rad", figures["output_zero_rad"], figures["output_zero_u_rad"], "rad", method,
                        uncertainty_figure="output_zero_u_rad"),
            Certificate("motor_zero_rad", figures["motor_zero_rad"], figures["motor_zero_u_rad"], "rad", method,
                        uncertainty_figure="motor_zero_u_rad")]


def compensation_of(figures: dict[str, Any]) -> dict[str, Any]:
    """The gains file's ``[kinematic_error_compensation]`` entries of a calibration (feedback left as it is)."""
    return {"amplitudes_rad": figures["ke_amplitudes_rad"], "phases_rad": figures["ke_phases_rad"],
            "motor_zero_rad": figures["motor_zero_rad"], "output_zero_rad": figures["output_zero_rad"]}


def analyze_encoder_calibrate(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """The sweeps' speed (``check_moving``) and encoders (``check_encoders``), the ratio over each sweep, the
    mismatch fit, the gravity zero and the motor zero."""
    v, n = c["speed_rad_s"], c["ratio"]
    sweeps = [tagged(s, segs, tag) for tag in SWEEPS]
    check_moving([s["velocity_rad_s"][k] for k in sweeps], [v, -v, v], c["stuck_fraction"], "encoder calibration")
    check_encoders(s, sweeps, n)
    ratios = [(s["motor_encoder_rad"][k][-1] - s["motor_encoder_rad"][k][0])
              / (s["output_encoder_rad"][k][-1] - s["output_encoder_rad"][k][0]) for k in sweeps]
    on = np.logical_or.reduce(sweeps)
    r_m, r_o, fwd = s["motor_encoder_rad"][on], s["output_encoder_rad"][on], (sweeps[0] | sweeps[2])[on]
    mis = fit_mismatch(r_m, r_o, fwd, n)
    tau = s["torque_nm"][on]
    heating = None if c.get("thermal") is None else housing_rise(s["t_s"], s["torque_nm"], c["thermal"])[on]
    grav = fit_gravity_zero(r_o, tau, fwd, heating)
    budget = zero_budget(r_o, tau, fwd, heating, grav)
    # each forward sweep with the back one, without the heating: their half difference is the drift's effect
    pairs = [fit_gravity_zero(s["output_encoder_rad"][k], s["torque_nm"][k], ~sweeps[1][k],
                              notch_at_rad=grav.zero_rad).zero_rad
             for k in (sweeps[0] | sweeps[1], sweeps[1] | sweeps[2])]
    # the twist-cancelled mismatch: the harmonics (as the mismatch sees them, -KE) and the mean baseline
    ke = ke_series(r_m, mis.amplitudes_rad, mis.phases_rad)
    mismatch = -ke + mean_baseline(mis, r_o)
    # the motor zero: the mean baseline where the link hangs, plus the output zero; its uncertainty the zero's
    # carried through the baseline's slope there (the baseline's own is far smaller)
    at = float(mean_baseline(mis, grav.zero_rad))
    slope = float(mean_baseline(mis, grav.zero_rad + 1e-3) - mean_baseline(mis, grav.zero_rad - 1e-3)) / 2e-3
    motor_zero = (at + grav.zero_rad, abs(1.0 + slope) * budget["output_zero_u_rad"])
    figures = figures_of(mis, grav, float(np.mean(ratios)), c, mismatch, motor_zero) | budget
    figures["output_zero_drift_rad"] = (pairs[1] - pairs[0]) / 2
    t = s["t_s"]
    order = np.argsort(r_m[fwd])
    panels = [Panel("velocity (rad/s)", [Series("velocity", t, s["velocity_rad_s"])]),
              Panel("motor/N - output (rad) against the output angle (rad)",
                    [Series("+v", r_o[fwd], (r_m / n - r_o)[fwd]), Series("-v", r_o[~fwd], (r_m / n - r_o)[~fwd]),
                     Series("twist-cancelled", r_o[fwd], mismatch[fwd])]),
              Panel("drive torque (N·m) against the output angle (rad)",
                    [Series("+v", r_o[fwd], tau[fwd]), Series("-v", r_o[~fwd], tau[~fwd])]),
              Panel("kinematic error (rad) against the motor angle (rad), first turns",
                    [Series("KE fit", r_m[fwd][order][:2000], ke[fwd][order][:2000])])]
    return Outcome(figures | {"compensation": compensation_of(figures)}, panels, fit=(mis, grav),
                   certificates=certificates_of(figures, c, int(on.sum())))
