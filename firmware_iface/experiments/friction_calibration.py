"""The friction map's calibration (issue 17, item 4): Coulomb, static (breakaway) and viscous friction and the
Stribeck velocity at the output, by least squares over constant-velocity plateaus at several speeds in both
directions. The protocol ``friction_calibrate`` (segments and analysis, registered in ``experiments.protocols`` and
run by its three executors), its configuration (``friction_calibrate_config``), the checks that refuse a run which
cannot give a result (``CalibrationError``), the fit (``fit_stribeck``) and its certificates.

The run: for each speed v (default 8, log-spaced from 0.02 rad/s to 0.8 of the joint's velocity limit) the joint
moves in position mode to the start of a short travel, then in velocity mode runs +v over it and -v back over the
same positions. Each direction's plateau (after a settle) is averaged: the drive torque Kt N iq, as the ``friction``
protocol measures it. Gravity on the load (m g l sin q) is the same at the same positions in both directions, so
half the difference of the two plateau means, d(v) = (tau(+v) - tau(-v)) / 2, is the friction alone; the travel
ends where it started, so the joint stays in range whatever the speeds. The fit is symmetric (one curve for both
directions: an asymmetry would need gravity known, which this routine does not assume):

    d(v) = Fc + (Fs - Fc) exp(-(v / vs)^2) + B v

(``scipy.optimize.least_squares``; standard uncertainties (k = 1) s^2 (J^T J)^-1 at the solution, s^2 the residual
variance, so what the model leaves out shows in them).

What the simulated joint adds (``actuator.model.mechanics``): its mesh loss, (1/eta - 1) of the torque the
flexspline transmits (gravity and the load's damping), in the direction of motion once the input slides past its
Stribeck speed. Its gravity share does not cancel in d(v): over travels centred on the hanging position it adds
(1/eta - 1) m g l mean|sin q| to the friction, growing with the travel, i.e. with the speed up to the travel's cap;
its load-damping share adds (1/eta - 1) b_L to B. Both are the joint's friction as the impedance loop meets it, so
they stay in the result (tests/rig/test_friction_calibration.py states the bias against the reducer's N Fc, N^2 b +
b_L and N Fs).

Temperature: the grease's friction (Fc, Fs) falls with the housing temperature; the map is valid at the temperature
of the run, reported as the winding temperature's mean over the plateaus (``friction_winding_temp_c``, kept
as it was; the signals now carry the housing temperature too, ``housing_temp_c``). The sweep over temperature, the
law of the grease's friction against the housing temperature, is ``experiments.friction_temperature``, which runs
this map several times.

Where it is applied: the impedance loop's friction feed-forward (``actuator.control.config`` ``ImpedanceGains``
``friction_coulomb_nm``, ``friction_viscous_nm_s_per_rad``): written to the joint live where its profile has those
gains (the native profile's ``impedance_friction_coulomb`` and ``_viscous``: a step's ``write_gains``, the CLI's
``--write``; ``experiments.calibrations.write_to_joint``), and to a gains file (``--gains-out``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from actuator.errors import CalibrationError, ConfigError
from actuator.params import JointParams
from firmware_iface.experiments.certificate import Certificate
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

N_SPEEDS = 8
V_MIN_RAD_S = 0.02        # output speed of the slowest plateau: 2 rad/s at the knee's input, under its 5 rad/s vs
V_MAX_FRACTION = 0.8      # of the joint's velocity limit: the fastest plateau keeps the velocity loop out of limit
MIN_SPEEDS = 5            # 4 unknowns and at least one degree of freedom for the residual variance
STUCK_FRACTION = 0.5      # a plateau whose mean speed is below this fraction of its set-point did not move
FIGURES = ("friction_coulomb_nm", "friction_static_nm", "friction_stribeck_velocity_rad_s",
           "friction_viscous_nm_s_per_rad", "friction_coulomb_u_nm", "friction_static_u_nm",
           "friction_stribeck_velocity_u_rad_s", "friction_viscous_u_nm_s_per_rad", "friction_residual_rms_nm",
           "friction_winding_temp_c", "friction_plateaus")
# the CLI's limits when no sequence gives them: a fit at the plateau means' scatter on the knee (0.05 N·m rms seen)
# and Fc, B known to a few percent of the knee's 11.5 N·m and 15.5 N·m·s/rad at 3 standard uncertainties
DEFAULT_LIMITS = {"friction_residual_rms_nm": (None, 0.5), "friction_coulomb_u_nm": (None, 0.2),
                  "friction_viscous_u_nm_s_per_rad": (None, 0.3)}
METHOD = ("Stribeck curve d(v) = Fc + (Fs - Fc) exp(-(v/vs)^2) + B v by nonlinear least squares over {n} "
          "constant-velocity plateaus, {v0:.3g}..{v1:.3g} rad/s, each the half-difference of the mean drive torque "
          "(Kt N iq) at +v and -v over the same travel (gravity cancels); symmetric in direction; standard "
          "uncertainty (k = 1) from the fit's residuals and covariance. Valid at the run's winding temperature "
          "{temp:.1f} °C (no temperature sweep). Used by the impedance loop's friction feed-forward "
          "(friction_coulomb_nm = Fc, friction_viscous_nm_s_per_rad = B): written to the joint through its "
          "profile's gain_write when the step asks (write_gains, --write), and to a gains file (--gains-out).")


def default_speeds(params: JointParams, n: int = N_SPEEDS) -> list[float]:
    """``n`` output speeds, log-spaced from V_MIN_RAD_S to V_MAX_FRACTION of the joint's velocity limit."""
    top = V_MAX_FRACTION * params.limits.velocity_max_rad_s
    return [float(v) for v in np.geomspace(V_MIN_RAD_S, top, n)]


def friction_calibrate_config(speeds_rad_s: list[float] | tuple[float, ...] | None = None, plateau_s: float = 0.4,
                              settle_s: float = 0.2, ramp_s: float = 0.2, max_travel_rad: float = 1.0,
                              home_rad: float = 0.0, move_s: float = 0.5, stuck_fraction: float = STUCK_FRACTION,
                              params: JointParams | None = None) -> dict[str, Any]:
    """The routine's configuration, checked before anything moves: the speeds (rad/s at the output, > 0, under the
    joint's velocity limit; default ``default_speeds``), each plateau's averaging time (shortened so that the
    averaged travel stays under ``max_travel_rad``), the settle before it, the velocity ramps, and the travel of each
    speed's pair about ``home_rad`` inside the position limits (``params``)."""
    if speeds_rad_s is None:
        if params is None:
            raise ConfigError("speeds_rad_s: give the speeds or the joint's parameters (its velocity limit)")
        speeds_rad_s = default_speeds(params)
    speeds = [float(v) for v in speeds_rad_s]
    if len(speeds) < MIN_SPEEDS or not all(math.isfinite(v) and v > 0 for v in speeds):
        raise ConfigError(f"speeds_rad_s = {speeds_rad_s!r}: at least {MIN_SPEEDS} finite output speeds > 0, rad/s")
    check_at_least(plateau_s=(plateau_s, 0.02), settle_s=(settle_s, 0.0), ramp_s=(ramp_s, 0.01),
                   max_travel_rad=(max_travel_rad, 1e-3), move_s=(move_s, 0.05), stuck_fraction=(stuck_fraction, 0.0))
    plateaus = [max(min(plateau_s, max_travel_rad / v), 0.02) for v in speeds]
    # a pair's excursion: the ramp up and reversal (v ramp_s), two settles and the plateau at v
    travels = [v * (ramp_s + 2 * settle_s + p) for v, p in zip(speeds, plateaus, strict=True)]
    if params is not None:
        vmax = params.limits.velocity_max_rad_s
        if max(speeds) > vmax:
            raise ConfigError(f"speeds_rad_s = {speeds!r}: above the joint's velocity limit {vmax:g} rad/s")
        lo, hi = params.limits.position_min_rad, params.limits.position_max_rad
        worst = max(travels)
        if not (lo <= home_rad - worst / 2 and home_rad + worst / 2 <= hi):
            raise ConfigError(f"home_rad = {home_rad:g}: the fastest pair runs over {worst:.3g} rad about it, "
                              f"outside the position limits [{lo:g}, {hi:g}] rad; lower max_travel_rad or the speeds")
    return {"speeds_rad_s": speeds, "plateaus_s": plateaus, "travels_rad": travels, "settle_s": float(settle_s),
            "ramp_s": float(ramp_s), "home_rad": float(home_rad), "move_s": float(move_s),
            "stuck_fraction": float(stuck_fraction)}


def friction_calibrate_segments(c: dict) -> list[Segment]:
    """Per speed: move (position mode) to the start of its travel, ramp to +v, settle, average (``fwd{i}``), run on
    for the settle's length, reverse, settle, average (``bwd{i}``: the same positions as ``fwd{i}``), ramp to 0 at the
    start again."""
    r, s = c["ramp_s"], c["settle_s"]
    segs: list[Segment] = []
    for i, (v, p, travel) in enumerate(zip(c["speeds_rad_s"], c["plateaus_s"], c["travels_rad"], strict=True)):
        segs += go_home(c["home_rad"] - travel / 2, c["move_s"], 0.2)
        segs += [Segment(r, "velocity", ramp(0.0, v, r)), Segment(s, "velocity", hold(v)),
                 Segment(p, "velocity", hold(v), tag=f"fwd{i}"), Segment(s, "velocity", hold(v)),
                 Segment(2 * r, "velocity", ramp(v, -v, 2 * r)), Segment(s, "velocity", hold(-v)),
                 Segment(p, "velocity", hold(-v), tag=f"bwd{i}"), Segment(r, "velocity", ramp(-v, 0.0, r))]
    return segs


@dataclass(frozen=True)
class StribeckFit:
    coulomb_nm: float
    static_nm: float
    stribeck_velocity_rad_s: float
    viscous_nm_s_per_rad: float
    uncertainty: tuple[float, float, float, float]  # standard uncertainties (k = 1), same order
    residual_rms_nm: float


def _stribeck(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    fc, fs, vs, b = x
    return fc + (fs - fc) * np.exp(-((v / vs) ** 2)) + b * v


def _start(v: np.ndarray, d: np.ndarray) -> np.ndarray:
    """An initial guess: Fc and B from a line through the faster half, Fs from the slowest plateau, vs at the
    geometric middle of the speeds below the faster half."""
    fast = v >= np.median(v)
    b, fc = np.polyfit(v[fast], d[fast], 1)
    fs = max(float(d[0] - b * v[0]), fc)
    return np.array([max(fc, 0.0), fs, float(np.sqrt(v[0] * np.median(v))), max(b, 0.0)])


def fit_stribeck(speeds_rad_s: np.ndarray, friction_nm: np.ndarray) -> StribeckFit:
    """The Stribeck curve through the per-speed friction (``CalibrationError``: ``too_few_plateaus`` under
    MIN_SPEEDS finite ones, ``not_converged`` for a fit that did not converge or leaves a parameter undetermined)."""
    v, d = np.asarray(speeds_rad_s, dtype=float), np.asarray(friction_nm, dtype=float)
    ok = np.isfinite(v) & np.isfinite(d) & (v > 0)
    v, d = v[ok], d[ok]
    order = np.argsort(v)
    v, d = v[order], d[order]
    if v.size < MIN_SPEEDS:
        raise CalibrationError(f"friction calibration: {v.size} usable plateaus, at least {MIN_SPEEDS} are needed "
                               "(4 parameters and a residual)", "too_few_plateaus")
    # bounds: non-negative friction; vs between a tenth of the slowest and the fastest speed (outside that range the
    # data hold no Stribeck drop to fit, and exp(-(v/vs)^2) is flat in vs)
    lo, hi = [0.0, 0.0, 0.1 * v[0], 0.0], [np.inf, np.inf, v[-1], np.inf]
    x0 = np.clip(_start(v, d), lo, [h if math.isfinite(h) else 1e9 for h in hi])
    res = least_squares(lambda x: _stribeck(x, v) - d, x0, bounds=(lo, hi), x_scale="jac", max_nfev=2000)
    r = res.fun
    s2 = float(r @ r) / (v.size - 4)
    try:
        cov = s2 * np.linalg.inv(res.jac.T @ res.jac)
    except np.linalg.LinAlgError:
        cov = np.full((4, 4), np.nan)
    u = np.sqrt(np.diag(cov)) if np.all(np.isfinite(cov)) else np.full(4, np.nan)
    if not (res.success and np.all(np.isfinite(u)) and np.all(np.isfinite(res.x))):
        raise CalibrationError(f"friction calibration: the Stribeck fit did not converge ({res.message}; "
                               f"uncertainties {np.round(u, 4).tolist()}): the plateaus do not determine Fc, Fs, vs "
                               "and B; add slow speeds (under the Stribeck velocity) and check the torque signal",
                               "not_converged")
    fc, fs, vs, b = (float(x) for x in res.x)
    return StribeckFit(fc, fs, vs, b, tuple(float(x) for x in u), float(np.sqrt(np.mean(r ** 2))))


def check_moving(velocity_rad_s: list[np.ndarray], setpoints_rad_s: list[float], fraction: float,
                 routine: str = "friction calibration") -> None:
    """``CalibrationError`` (``stuck``) naming the first plateau whose mean speed is under ``fraction`` of its
    set-point (a joint jammed, or held by more friction than the drive's torque limit); ``routine`` names the
    calibration in the message."""
    for i, (w, v) in enumerate(zip(velocity_rad_s, setpoints_rad_s, strict=True)):
        mean = mean_or_nan(w)
        if not mean * math.copysign(1.0, v) >= fraction * abs(v):
            raise CalibrationError(f"{routine}: plateau {i + 1} ({v:+.4g} rad/s) did not move: mean "
                                   f"speed {mean:.4g} rad/s, under {fraction:g} of the set-point; stopped", "stuck")


def figures_of(fit: StribeckFit, temp_c: float, n: int) -> dict[str, Any]:
    u = fit.uncertainty
    return {"friction_coulomb_nm": fit.coulomb_nm, "friction_static_nm": fit.static_nm,
            "friction_stribeck_velocity_rad_s": fit.stribeck_velocity_rad_s,
            "friction_viscous_nm_s_per_rad": fit.viscous_nm_s_per_rad, "friction_coulomb_u_nm": u[0],
            "friction_static_u_nm": u[1], "friction_stribeck_velocity_u_rad_s": u[2],
            "friction_viscous_u_nm_s_per_rad": u[3], "friction_residual_rms_nm": fit.residual_rms_nm,
            "friction_winding_temp_c": temp_c, "friction_plateaus": n}


def certificates_of(figures: dict[str, Any], speeds_rad_s: list[float]) -> list[Certificate]:
    method = METHOD.format(n=len(speeds_rad_s), v0=min(speeds_rad_s), v1=max(speeds_rad_s),
                           temp=figures["friction_winding_temp_c"])
    rows = (("friction_coulomb_nm", "friction_coulomb_u_nm", "N·m"), ("friction_static_nm", "friction_static_u_nm",
                                                                       "N·m"),
            ("friction_stribeck_velocity_rad_s", "friction_stribeck_velocity_u_rad_s", "rad/s"),
            ("friction_viscous_nm_s_per_rad", "friction_viscous_u_nm_s_per_rad", "N·m·s/rad"))
    return [Certificate(q, figures[q], figures[uq], unit, method, uncertainty_figure=uq) for q, uq, unit in rows]


def analyze_friction_calibrate(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """Per speed the plateaus' mean speed (``check_moving``) and mean drive torque, their half-difference into
    ``fit_stribeck``; the winding temperature over the plateaus."""
    speeds = c["speeds_rad_s"]
    fwd = [tagged(s, segs, f"fwd{i}") for i in range(len(speeds))]
    bwd = [tagged(s, segs, f"bwd{i}") for i in range(len(speeds))]
    check_moving([s["velocity_rad_s"][k] for pair in zip(fwd, bwd, strict=True) for k in pair],
                 [x for v in speeds for x in (v, -v)], c["stuck_fraction"])
    friction = np.array([(mean_or_nan(s["torque_nm"][f]) - mean_or_nan(s["torque_nm"][b])) / 2.0
                         for f, b in zip(fwd, bwd, strict=True)])
    fit = fit_stribeck(np.array(speeds), friction)
    on_plateau = np.logical_or.reduce(fwd + bwd)
    figures = figures_of(fit, mean_or_nan(s["winding_temp_c"][on_plateau]), len(speeds))
    v = np.geomspace(min(speeds), max(speeds), 100)
    curve = _stribeck(np.array([fit.coulomb_nm, fit.static_nm, fit.stribeck_velocity_rad_s,
                                fit.viscous_nm_s_per_rad]), v)
    t = s["t_s"]
    panels = [Panel("velocity (rad/s)", [Series("velocity", t, s["velocity_rad_s"])]),
              Panel("friction (N·m) against speed (rad/s)", [Series("plateaus", np.array(speeds), friction, "o"),
                                                             Series("Stribeck fit", v, curve)])]
    return Outcome(figures | {"friction_map_nm": [float(x) for x in friction]}, panels, fit=fit,
                   certificates=certificates_of(figures, speeds))
