"""The motor's torque constant Kt (issue 17, item 1), measured against the rig's fixture: the protocol
``kt_calibrate`` (segments and analysis, registered in ``experiments.protocols`` and run by its three executors), its
configuration (``kt_calibrate_config``), the checks that refuse a run which cannot give a result
(``CalibrationError``), the fit (``fit_kt``) and its certificates.

The run: at each of several fixture loads L (``Segment.load_nm``, a known torque about the joint axis; default
-0.8, -0.4, 0, +0.4, +0.8 of the joint's rated torque, both signs) the joint runs in velocity mode at +v over a
travel and at -v back over the same positions; each plateau's mean q-axis current (the drive's iq) is taken.
At constant speed the drive's output torque Kt_true N iq balances (``actuator.model.mechanics``)

    Kt_true N iq(+-v) = +-F(v) + tau + (1/eta - 1) |tau| sgn(+-v),    tau = m g l sin q +- b_L v - L

(F the reducer's friction, Stribeck and viscous, the same magnitude in both directions; tau what the flexspline
carries; the mesh loss (1/eta - 1) of it in the direction of motion). The mean of the two directions,

    S(L) = (iq(+v) + iq(-v)) / 2 = (G - L) / (Kt_true N) + (1/eta - 1) b_L v sgn(G - L) / (Kt_true N),

G = m g l mean(sin q) over the travel (the same positions at every load), cancels the friction and the mesh loss's
direction dependence: driving at one speed and back-driven at the other carry the same |tau| but for the load
damping's +-b_L v. Kt follows from the least-squares slope a of S against L: Kt = -1 / (N a), standard uncertainty
(k = 1) from the fit's residual variance. What is left, the bias: the mesh loss of the load damping, (1/eta - 1) b_L v
(0.072 x 0.5 x 0.5 = 0.018 N·m on the knee at 0.5 rad/s), a step in S where L crosses G, a few 1e-4 of the slope over
+-40 N·m. Cogging and the 6th-harmonic ripple average out over the travel's motor turns.

Half the difference of the directions, D(L) = Kt N (iq(+v) - iq(-v)) / 2 = F(v) + (1/eta - 1) |G - L| (the same
bias), is fitted as a line in |G - L|: its slope gives the mesh efficiency eta (``kt_mesh_efficiency``), what the
impedance loop's mesh compensation takes (``ImpedanceGains.efficiency``).

Where it is applied: the drive's Kt parameter ``motor.torque_constant_nm_per_a`` (``virtual_joint.sensor_settings``,
native profile id 43; ``kt_params``), written with ``jointkit calibrate kt --write [--save]`` or a step's ``write``:
the drive then converts torque set-points into current and its current into the reported ``torque_nm`` with it.
Unwritten, the joint reports torque with the Kt it had (the preset's nominal): ``kt_ratio_to_nominal`` scales that
host-side. The fit uses the current the joint reports, not its torque, so the Kt it held during the run does not enter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actuator.errors import CalibrationError, ConfigError
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
    mean_or_nan,
    ramp,
    tagged,
)
from firmware_iface.virtual_joint.sensor_settings import KT_PARAM

LOAD_FRACTIONS = (-0.8, -0.4, 0.0, 0.4, 0.8)  # of the rated torque: both signs, driving and back-driven
MIN_LOADS = 3              # 2 unknowns (slope, intercept) and a residual
SPEED_RAD_S = 0.5          # output: 50 rad/s at the knee's input, 10x its Stribeck speed (mesh loss fully on, e = 0)
SPEED_MAX_FRACTION = 0.5   # of the velocity limit: the velocity loop keeps its margin under the heaviest load
# a plateau whose largest |iq| reaches this fraction of the drive's ceiling (current limit, or the torque limit in
# amps) is saturated: the velocity loop's integrator no longer sets the current, the limiter does
SATURATION_FRACTION = 0.9
MIN_SPAN_FRACTION = 0.2    # of the rated torque: the loads' least span (10 N·m on the knee), see fit_kt
FIGURES = ("kt_nm_per_a", "kt_u_nm_per_a", "kt_ratio_to_nominal", "kt_relative_u", "kt_residual_rms_a",
           "kt_mesh_efficiency", "kt_mesh_efficiency_u", "kt_load_span_nm", "kt_levels")
# the CLI's limits when no sequence gives them: Kt known to 1 % at 3 standard uncertainties (the 3 % is the
# recovery bound; a fit whose own scatter used a third of it could not show it), a fit at the plateaus' scatter
# (0.0007 A seen on the knee), the mesh efficiency to 0.01 (a point of the catalogue's efficiency)
DEFAULT_LIMITS = {"kt_relative_u": (None, 0.01 / 3), "kt_residual_rms_a": (None, 0.05),
                  "kt_mesh_efficiency_u": (None, 0.01)}
METHOD = ("slope of the mean q-axis current of +{v:.3g} and -{v:.3g} rad/s plateaus over the same travel against "
          "{n} fixture loads {lo:+.3g}..{hi:+.3g} N·m (friction, gravity and the mesh loss's direction dependence "
          "cancel in the mean): Kt = -1 / (N slope), per peak amp, motor side; linear least squares, standard "
          "uncertainty (k = 1) from the fit's residuals. Written to the drive with --write (its "
          "motor.torque_constant_nm_per_a: set-points and reported torque convert with it; --save to its flash); "
          "unwritten, the joint reports torque with its Kt {kt0:.5g} N·m/A and torque_nm x kt_ratio_to_nominal is "
          "the true drive torque.")
METHOD_ETA = ("slope of half the difference of the +-v plateaus' drive torque against |G - L| (G the load at which "
              "the mean current crosses zero): (1/eta - 1); used by the impedance loop's mesh compensation "
              "(ImpedanceGains.efficiency) through the gains file. Nothing is written to the joint.")


def default_loads(params: JointParams) -> list[float]:
    return [f * params.limits.torque_rated_nm for f in LOAD_FRACTIONS]


def drive_ceiling_a(params: JointParams) -> float:
    """The largest |iq| the drive gives: its current limit, or the torque limit in amps, whichever is lower."""
    kt_n = params.torque_constant_nm_per_a * params.reducer.ratio
    return min(params.motor.current_limit_a, params.limits.torque_max_nm / kt_n)


def kt_calibrate_config(params: JointParams, loads_nm: list[float] | tuple[float, ...] | None = None,
                        speed_rad_s: float | None = None, plateau_s: float = 0.4, settle_s: float = 0.2,
                        ramp_s: float = 0.2, load_ramp_s: float = 0.3, home_rad: float = 0.0, move_s: float = 0.5,
                        stuck_fraction: float = STUCK_FRACTION, saturation_fraction: float = SATURATION_FRACTION,
                        min_load_span_nm: float | None = None) -> dict[str, Any]:
    """The routine's configuration, checked against the joint type (``params``: its nominal Kt and ratio, limits,
    friction and gravity) before anything moves: the loads (N·m, at least MIN_LOADS, each pair's drive torque
    estimated under ``saturation_fraction`` of the drive's ceiling), the speed (rad/s, > 0, under
    SPEED_MAX_FRACTION of the velocity limit), the plateau, settle, ramp times and the travel inside the position
    limits."""
    loads = default_loads(params) if loads_nm is None else [float(x) for x in loads_nm]
    if len(loads) < MIN_LOADS or not all(math.isfinite(x) for x in loads):
        raise ConfigError(f"loads_nm = {loads_nm!r}: at least {MIN_LOADS} finite fixture loads, N·m")
    v = SPEED_RAD_S if speed_rad_s is None else float(speed_rad_s)
    vmax = SPEED_MAX_FRACTION * params.limits.velocity_max_rad_s
    if not (math.isfinite(v) and 0 < v <= vmax):
        raise ConfigError(f"speed_rad_s = {speed_rad_s!r}: a speed > 0 and at most {vmax:g} rad/s "
                          f"({SPEED_MAX_FRACTION:g} of the joint's velocity limit)")
    check_at_least(plateau_s=(plateau_s, 0.05), settle_s=(settle_s, 0.0), ramp_s=(ramp_s, 0.01),
                   load_ramp_s=(load_ramp_s, 0.01), move_s=(move_s, 0.05), stuck_fraction=(stuck_fraction, 0.0),
                   saturation_fraction=(saturation_fraction, 0.1))
    r, ld = params.reducer, params.load
    kt_n = params.torque_constant_nm_per_a * r.ratio
    # the heaviest pair's drive torque: load, gravity, breakaway and viscous friction, the mesh loss on all of it
    worst = (max(abs(x) for x in loads) + ld.mass_kg * ld.gravity_m_s2 * ld.com_distance_m + r.ratio *
             r.static_friction_nm + (r.ratio ** 2 * r.viscous_friction_nm_s_per_rad + ld.damping_nm_s_per_rad) * v)
    worst /= r.efficiency
    ceiling = drive_ceiling_a(params) * kt_n
    if worst > saturation_fraction * ceiling:
        raise ConfigError(f"loads_nm = {loads!r}: the heaviest needs about {worst:.4g} N·m of drive torque, above "
                          f"{saturation_fraction:g} of the drive's {ceiling:.4g} N·m; lower the loads")
    travel = v * (ramp_s + 2 * settle_s + plateau_s)
    lo, hi = params.limits.position_min_rad, params.limits.position_max_rad
    if not (lo <= home_rad - travel / 2 and home_rad + travel / 2 <= hi):
        raise ConfigError(f"home_rad = {home_rad:g}: each pair runs over {travel:.3g} rad about it, outside the "
                          f"position limits [{lo:g}, {hi:g}] rad")
    span = MIN_SPAN_FRACTION * params.limits.torque_rated_nm if min_load_span_nm is None else min_load_span_nm
    check_at_least(min_load_span_nm=(span, 0.0))
    return {"loads_nm": loads, "speed_rad_s": v, "plateau_s": float(plateau_s), "settle_s": float(settle_s),
            "ramp_s": float(ramp_s), "load_ramp_s": float(load_ramp_s), "travel_rad": travel,
            "home_rad": float(home_rad), "move_s": float(move_s), "stuck_fraction": float(stuck_fraction),
            "saturation_fraction": float(saturation_fraction), "min_load_span_nm": float(span),
            "ratio": r.ratio, "kt_nominal_nm_per_a": params.torque_constant_nm_per_a,
            "drive_ceiling_a": drive_ceiling_a(params)}


def kt_calibrate_segments(c: dict) -> list[Segment]:
    """Per load: move (position mode, unloaded) to the start of the travel; in velocity mode at rest the fixture
    ramps its load on; ramp to +v, settle, average (``fwd{i}``), run on, reverse, settle, average (``bwd{i}``, the
    same positions), ramp to rest; the fixture ramps its load off."""
    r, s, v, p, lr = c["ramp_s"], c["settle_s"], c["speed_rad_s"], c["plateau_s"], c["load_ramp_s"]
    segs: list[Segment] = []
    for i, load in enumerate(c["loads_nm"]):
        segs += go_home(c["home_rad"] - c["travel_rad"] / 2, c["move_s"], 0.2)
        segs += [Segment(lr, "velocity", hold(0.0), load_nm=lambda t, a=load, d=lr: a * min(t / d, 1.0)),
                 Segment(r, "velocity", ramp(0.0, v, r), load_nm=load),
                 Segment(s, "velocity", hold(v), load_nm=load),
                 Segment(p, "velocity", hold(v), load_nm=load, tag=f"fwd{i}"),
                 Segment(s, "velocity", hold(v), load_nm=load),
                 Segment(2 * r, "velocity", ramp(v, -v, 2 * r), load_nm=load),
                 Segment(s, "velocity", hold(-v), load_nm=load),
                 Segment(p, "velocity", hold(-v), load_nm=load, tag=f"bwd{i}"),
                 Segment(r, "velocity", ramp(-v, 0.0, r), load_nm=load),
                 Segment(lr, "velocity", hold(0.0), load_nm=lambda t, a=load, d=lr: a * max(1.0 - t / d, 0.0))]
    return segs


@dataclass(frozen=True)
class KtFit:
    kt_nm_per_a: float
    kt_u_nm_per_a: float
    residual_rms_a: float
    zero_load_nm: float          # G: the load at which the mean current crosses zero
    mesh_efficiency: float
    mesh_efficiency_u: float


def _line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = a x + b by least squares: (a, b), their standard uncertainties, the residuals."""
    a = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    s2 = float(res @ res) / (x.size - 2)
    return coef, np.sqrt(np.diag(s2 * np.linalg.inv(a.T @ a))), res


def fit_kt(loads_nm: np.ndarray, iq_fwd_a: np.ndarray, iq_bwd_a: np.ndarray, ratio: float,
           min_span_nm: float) -> KtFit:
    """Kt from the per-load plateau means (module docstring). ``CalibrationError`` ``ill_conditioned`` when the loads
    (as the fixture applied them) are fewer than MIN_LOADS distinct ones or span less than ``min_span_nm`` (the
    slope's relative uncertainty grows as the plateaus' scatter over the span: a fixture that applied nothing, or
    loads too close together, cannot tell Kt), ``not_converged`` for a slope that is not negative."""
    x = np.asarray(loads_nm, dtype=float)
    s = (np.asarray(iq_fwd_a, dtype=float) + np.asarray(iq_bwd_a, dtype=float)) / 2.0
    distinct = np.unique(np.round(x, 6)).size
    span = float(np.ptp(x)) if x.size else 0.0
    if distinct < MIN_LOADS or not span >= min_span_nm:
        raise CalibrationError(f"Kt calibration: the fixture's loads {np.round(x, 3).tolist()} N·m ({distinct} "
                               f"distinct, span {span:.3g} N·m) cannot determine the slope: at least {MIN_LOADS} "
                               f"distinct loads over at least {min_span_nm:g} N·m; check the fixture",
                               "ill_conditioned")
    (a, b), (ua, _), res = _line(x, s)
    if not (math.isfinite(a) and a < 0 and math.isfinite(ua)):
        raise CalibrationError(f"Kt calibration: the mean current does not fall with the load (slope {a:.4g} A/N·m): "
                               "the fixture's torque does not reach the joint", "not_converged")
    kt = -1.0 / (ratio * a)
    g = -b / a
    d = kt * ratio * (np.asarray(iq_fwd_a, dtype=float) - np.asarray(iq_bwd_a, dtype=float)) / 2.0
    (c, _), (uc, _), _ = _line(np.abs(g - x), d)
    eta = 1.0 / (1.0 + c)
    return KtFit(kt, kt * ua / abs(a), float(np.sqrt(np.mean(res ** 2))), float(g), float(eta),
                 float(eta ** 2 * uc))


def check_saturation(iq_a: list[np.ndarray], loads_nm: list[float], ceiling_a: float, fraction: float) -> None:
    """``CalibrationError`` (``saturated``) naming the first plateau whose |iq| reached ``fraction`` of the drive's
    ceiling: the limiter, not the velocity loop, set its current, so its mean is not the torque balance."""
    for w, load in zip(iq_a, loads_nm, strict=True):
        peak = float(np.max(np.abs(w))) if w.size else math.nan
        if not peak < fraction * ceiling_a:
            raise CalibrationError(f"Kt calibration: the current saturated at load {load:+.4g} N·m: |iq| reached "
                                   f"{peak:.4g} A, {fraction:g} of the drive's {ceiling_a:.4g} A; lower the loads or "
                                   "check the joint's friction", "saturated")


def analyze_kt_calibrate(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """Per load the plateaus' speed (``check_moving``), current (``check_saturation``), the fixture's applied
    load and the mean iq of each direction into ``fit_kt``."""
    loads, v = c["loads_nm"], c["speed_rad_s"]
    fwd = [tagged(s, segs, f"fwd{i}") for i in range(len(loads))]
    bwd = [tagged(s, segs, f"bwd{i}") for i in range(len(loads))]
    pairs = [k for pair in zip(fwd, bwd, strict=True) for k in pair]
    check_moving([s["velocity_rad_s"][k] for k in pairs], [x for _ in loads for x in (v, -v)], c["stuck_fraction"],
                 "Kt calibration")
    check_saturation([s["iq_a"][k] for k in pairs], [x for x in loads for _ in (0, 1)], c["drive_ceiling_a"],
                     c["saturation_fraction"])
    applied = np.array([mean_or_nan(s["load_nm"][f | b]) for f, b in zip(fwd, bwd, strict=True)])
    iq_f = np.array([mean_or_nan(s["iq_a"][f]) for f in fwd])
    iq_b = np.array([mean_or_nan(s["iq_a"][b]) for b in bwd])
    fit = fit_kt(applied, iq_f, iq_b, c["ratio"], c["min_load_span_nm"])
    figures = {"kt_nm_per_a": fit.kt_nm_per_a, "kt_u_nm_per_a": fit.kt_u_nm_per_a,
               "kt_ratio_to_nominal": fit.kt_nm_per_a / c["kt_nominal_nm_per_a"],
               "kt_relative_u": fit.kt_u_nm_per_a / fit.kt_nm_per_a, "kt_residual_rms_a": fit.residual_rms_a,
               "kt_mesh_efficiency": fit.mesh_efficiency, "kt_mesh_efficiency_u": fit.mesh_efficiency_u,
               "kt_load_span_nm": float(np.ptp(applied)), "kt_levels": len(loads)}
    method = METHOD.format(v=v, n=len(loads), lo=min(applied), hi=max(applied), kt0=c["kt_nominal_nm_per_a"])
    certs = [Certificate("kt_nm_per_a", fit.kt_nm_per_a, fit.kt_u_nm_per_a, "N·m/A (peak)", method,
                         uncertainty_figure="kt_relative_u"),
             Certificate("kt_mesh_efficiency", fit.mesh_efficiency, fit.mesh_efficiency_u, "1", METHOD_ETA,
                         uncertainty_figure="kt_mesh_efficiency_u")]
    x = np.linspace(min(applied), max(applied), 50)
    t = s["t_s"]
    panels = [Panel("velocity (rad/s)", [Series("velocity", t, s["velocity_rad_s"])]),
              Panel("mean q-axis current of +v and -v (A) against fixture load (N·m)",
                    [Series("plateaus", applied, (iq_f + iq_b) / 2.0, "o"),
                     Series("fit", x, (fit.zero_load_nm - x) / (fit.kt_nm_per_a * c["ratio"]))])]
    return Outcome(figures | {"kt_mean_iq_a": [float(a) for a in (iq_f + iq_b) / 2.0]}, panels, fit=fit,
                   certificates=certs)


def kt_params(figures: dict[str, Any], present: Any = None) -> dict[str, float]:
    """The drive's Kt parameter (``virtual_joint.sensor_settings``): the measured Kt. The fit uses the current the
    joint reports, not its torque, so what the drive held before does not enter."""
    return {KT_PARAM: float(figures["kt_nm_per_a"])}
