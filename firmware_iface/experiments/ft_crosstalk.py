"""The six-axis F/T sensor's sensitivity and crosstalk matrix (issue 17, item 5), against known loads of the rig's
wrench fixture: the protocol ``ft_crosstalk_calibrate`` (segments and analysis, registered in
``experiments.protocols`` and run by its three executors), its configuration (``ft_crosstalk_config``), the checks
that refuse a run which cannot give a result (``CalibrationError``), the fit (``fit_crosstalk``), its certificates and
the compensation the joint applies (``compensation_params``).

The fixture: a sensor's calibration rig hangs known masses and applies known forces at known lever arms on the tool,
so it loads each axis of the sensor frame alone (``Segment.wrench``, N and N·m; ``bus.SimFixture`` applies it to a
simulated joint's tool, which its sensor reads and its joint feels). The joint holds one pose in position mode (its
loop carries what of the wrench turns it, Mz + d Fy); at each load case the sensor's mean reading over ``average_s``
is one observation. The default load set: no load, then +a_j and -a_j on each axis j in turn, then no load again (14
cases): a_j a fraction of the sensor's range (``force_fraction``, ``moment_fraction``), the joint-turning axes (Fy,
Mz) capped so the joint carries at most ``joint_torque_fraction`` of its rated torque.

The model: the sensor reads y = S w + b with S = I + E (its sensitivity, E the crosstalk) and b the bias plus the
tool's weight at the pose (constant over the run: the same pose). Per output axis i, y_i = sum_j S_ij w_j + b_i is
linear in 7 unknowns, the same design A = [W, 1] for the six rows: linear least squares, the standard uncertainties
s_i^2 (A^T A)^-1 with s_i^2 the row's residual variance (so a bias drifting during the run, which the model leaves
out, shows in them). With the +-a_j design, column j is orthogonal to the others and to the intercept: u(S_ij) =
s_i / (sqrt(2) a_j). The compensation the joint applies is K = S^-1 (reported wrench = K (raw - bias),
``virtual_joint.sensor_settings``), its uncertainty to first order dK = -K dS K (the rows of S independent fits).

Figures are normalised to full scale (FS, the sensor's range per axis), as sensor makers state crosstalk: the
crosstalk of axis j into axis i is E_ij FS_j / FS_i, the reading on i at a full-scale load on j, in FS of i. After
correction, K (y - b) - w at the single-axis cases, off the loaded axis, in the same normalisation: what the
compensation leaves (the fit's residuals; noise and drift, nothing systematic on a linear sensor).

Refused: a pose not held (``not_reached``), a channel that saturated during an average (``saturated``: clipped
readings, the fit through them is wrong), a load set that does not determine S (``ill_conditioned``), a sensor that
does not see the loads (``no_load``: a diagonal sensitivity outside [0.5, 1.5], a fixture that applied nothing), and
over a bus a rig without a wrench fixture (``no_fixture``, ``experiments.bus``), before anything moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actuator.errors import CalibrationError, ConfigError
from actuator.params import JointParams
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.ft_calibration import REACH_TOL_RAD, check_poses
from firmware_iface.experiments.panels import Panel, Series
from firmware_iface.experiments.segments import (
    Outcome,
    Segment,
    Signals,
    check_at_least,
    go_home,
    hold,
    tagged,
)
from firmware_iface.virtual_joint.sensor_settings import COMPENSATION_PARAMS

AXES = ("Fx", "Fy", "Fz", "Mx", "My", "Mz")
FORCE_FRACTION = 0.2     # of the sensor's force range: 116 N on the knee's Mini45 x and y, 232 N on z
MOMENT_FRACTION = 0.5    # of its moment range: 10 N·m
JOINT_TORQUE_FRACTION = 0.5  # of the rated torque: the most a load case may turn the joint (its loop holds it)
# a load case whose reading (load + the tool's weight) comes within this fraction of the sensor's range is refused
# before anything moves: the crosstalk and the bias must not take it into saturation
RANGE_FRACTION = 0.8
RAMP_STEPS = 4           # the fixture puts a load on in this many equal steps over ramp_s (a mass lowered on)
MIN_CASES = 8            # 7 unknowns per axis (its row of S and b) and a residual
COND_MAX = 100.0         # column-scaled design: the +-a design gives 1.7; fewer or collinear cases grow it
SENSITIVITY_RANGE = (0.5, 1.5)  # a diagonal outside: the sensor does not see the fixture's loads on that axis
FIGURES = ("ft_sensitivity", "ft_sensitivity_u", "ft_compensation", "ft_compensation_u", "ft_crosstalk_max_fs",
           "ft_crosstalk_after_max_fs", "ft_sensitivity_u_max_fs", "ft_gain_error_max", "ft_xt_residual_force_rms_n",
           "ft_xt_residual_moment_rms_nm", "ft_xt_condition_number", "ft_xt_cases")
SCALAR_FIGURES = tuple(f for f in FIGURES if f not in ("ft_sensitivity", "ft_sensitivity_u", "ft_compensation",
                                                        "ft_compensation_u"))
# the CLI's limits when no sequence gives them: the compensation leaves under 0.1 % FS of crosstalk (a calibrated
# six-axis sensor's 1 % FS accuracy class, with room for the drift of a longer run); the matrix known to 0.05 % FS
# (1 standard uncertainty; the knee's noise and drift give about 0.02 % FS); the raw crosstalk under 50 % FS (the
# knee's model has 23 % FS, Mz from Fz: a sensor whose axis reads half its range at another's full-scale load is
# mis-wired or broken, not one to compensate); a fit at the readings' scatter
DEFAULT_LIMITS = {"ft_crosstalk_after_max_fs": (None, 0.001), "ft_sensitivity_u_max_fs": (None, 0.0005),
                  "ft_crosstalk_max_fs": (None, 0.5), "ft_xt_residual_force_rms_n": (None, 0.1),
                  "ft_xt_residual_moment_rms_nm": (None, 0.005), "ft_xt_condition_number": (None, COND_MAX)}
METHOD = ("linear least squares over {n} fixture load cases at one pose ({q:.3g} rad), the sensor's mean of {k} "
          "samples each: y = S w + b per axis (S = I + crosstalk, b the bias and the tool's weight at the pose), "
          "loads up to {fmax:.4g} N and {mmax:.4g} N·m in the sensor frame; standard uncertainty (k = 1) from the "
          "fit's residuals and covariance; row-major 6x6, axes Fx Fy Fz Mx My Mz, N and N·m.")
METHOD_K = ("K = S^-1, first-order uncertainty dK = -K dS K. Written to the joint with --write (the native profile's "
            "ft.compensation_IJ parameters, composed with the compensation it had; --save to its flash): the joint "
            "reports K (raw - bias). The largest crosstalk it leaves, at the load cases, is ft_crosstalk_after_max_fs "
            "(of full scale, per full-scale load).")


def _ft_range(params: JointParams) -> np.ndarray:
    ft = params.ft_sensor
    return np.array([*ft.range_force_n, *ft.range_torque_nm], dtype=float)


def default_wrenches(params: JointParams, force_fraction: float = FORCE_FRACTION,
                     moment_fraction: float = MOMENT_FRACTION,
                     joint_torque_fraction: float = JOINT_TORQUE_FRACTION) -> list[list[float]]:
    """No load, +a_j and -a_j on each axis in turn, no load (the module docstring)."""
    fs = _ft_range(params)
    a = fs * np.array([force_fraction] * 3 + [moment_fraction] * 3)
    turning = joint_torque_fraction * params.limits.torque_rated_nm
    d = params.ft_sensor.distance_from_axis_m
    if d > 0:
        a[1] = min(a[1], turning / d)
    a[5] = min(a[5], turning)
    cases = [[0.0] * 6]
    for j in range(6):
        for sign in (1.0, -1.0):
            w = [0.0] * 6
            w[j] = float(sign * a[j])
            cases.append(w)
    return [*cases, [0.0] * 6]


def ft_crosstalk_config(params: JointParams, wrenches: list[list[float]] | None = None,
                        force_fraction: float = FORCE_FRACTION, moment_fraction: float = MOMENT_FRACTION,
                        joint_torque_fraction: float = JOINT_TORQUE_FRACTION, home_rad: float = 0.0,
                        settle_s: float = 0.3, average_s: float = 0.5, ramp_s: float = 0.2, move_s: float = 0.8,
                        reach_tol_rad: float = REACH_TOL_RAD) -> dict[str, Any]:
    """The routine's configuration, checked against the joint type (``params``: its sensor's range, tool, rated
    torque, position limits) before anything moves: the load cases (N, N·m in the sensor frame; at least MIN_CASES, each
    reading within RANGE_FRACTION of the range with the tool's weight, each turning the joint by at most
    ``joint_torque_fraction`` of its rated torque), the pose and the times."""
    check_at_least(force_fraction=(force_fraction, 0.0), moment_fraction=(moment_fraction, 0.0),
                   joint_torque_fraction=(joint_torque_fraction, 0.0), settle_s=(settle_s, 0.0),
                   average_s=(average_s, 0.01), ramp_s=(ramp_s, 0.0), move_s=(move_s, 0.05),
                   reach_tol_rad=(reach_tol_rad, 1e-6))
    cases = default_wrenches(params, force_fraction, moment_fraction, joint_torque_fraction) if wrenches is None \
        else [[float(v) for v in w] for w in wrenches]
    if len(cases) < MIN_CASES or any(len(w) != 6 or not all(math.isfinite(v) for v in w) for w in cases):
        raise ConfigError(f"wrenches = {wrenches!r}: at least {MIN_CASES} load cases of 6 finite numbers (Fx Fy Fz N, "
                          "Mx My Mz N·m in the sensor frame)")
    fs, weight = _ft_range(params), params.ft_sensor.tool_mass_kg * params.load.gravity_m_s2
    d, rated = params.ft_sensor.distance_from_axis_m, params.limits.torque_rated_nm
    for k, w in enumerate(cases):
        reading = np.abs(w) + np.array([weight] * 3 + [0.0] * 3)
        over = np.flatnonzero(reading > RANGE_FRACTION * fs)
        if over.size:
            j = int(over[0])
            raise ConfigError(f"wrenches: load case {k + 1} {w} would read {reading[j]:.4g} on {AXES[j]} with the "
                              f"tool's weight, over {RANGE_FRACTION:g} of the sensor's range {fs[j]:g}: lower it")
        turning = abs(w[5] + d * w[1])
        if turning > joint_torque_fraction * rated + 1e-9:
            raise ConfigError(f"wrenches: load case {k + 1} {w} turns the joint by {turning:.4g} N·m (Mz + d Fy), "
                              f"over {joint_torque_fraction:g} of its rated {rated:g} N·m")
    lo, hi = params.limits.position_min_rad, params.limits.position_max_rad
    if not lo <= home_rad <= hi:
        raise ConfigError(f"home_rad = {home_rad:g} is outside the joint's position limits [{lo:g}, {hi:g}] rad")
    return {"wrenches": cases, "home_rad": float(home_rad), "settle_s": float(settle_s),
            "average_s": float(average_s), "ramp_s": float(ramp_s), "move_s": float(move_s),
            "reach_tol_rad": float(reach_tol_rad), "ft_range": fs.tolist()}


def ft_crosstalk_segments(c: dict) -> list[Segment]:
    """Home on the pose; per load case the fixture steps from the previous load to this one (RAMP_STEPS over
    ``ramp_s``), the joint settles, the sensor is averaged (``case{i}``); the fixture unloads at the end."""
    home = c["home_rad"]
    segs = go_home(home, c["move_s"], c["settle_s"])
    previous = np.zeros(6)

    def steps(to: np.ndarray) -> list[Segment]:
        return [Segment(c["ramp_s"] / RAMP_STEPS, "position", hold(home),
                        wrench=tuple(float(v) for v in previous + (to - previous) * (k + 1) / RAMP_STEPS))
                for k in range(RAMP_STEPS)] if c["ramp_s"] > 0 else []

    for i, w in enumerate(c["wrenches"]):
        target = np.asarray(w, dtype=float)
        segs += steps(target)
        segs += [Segment(c["settle_s"], "position", hold(home), wrench=tuple(w)),
                 Segment(c["average_s"], "position", hold(home), wrench=tuple(w), tag=f"case{i}")]
        previous = target
    segs += steps(np.zeros(6))
    return segs


@dataclass(frozen=True)
class CrosstalkFit:
    sensitivity: np.ndarray        # S (6, 6)
    sensitivity_u: np.ndarray
    offset: np.ndarray             # b (6,): the bias and the tool's weight at the pose
    compensation: np.ndarray       # K = S^-1
    compensation_u: np.ndarray
    residuals: np.ndarray          # (cases, 6)
    condition_number: float


def fit_crosstalk(wrenches: np.ndarray, readings: np.ndarray) -> CrosstalkFit:
    """S, b and K from the load cases ``wrenches`` (n, 6) and the mean readings (n, 6) (module docstring);
    ``CalibrationError`` ``ill_conditioned`` when the cases do not determine S, ``no_load`` when the sensor does not
    see them."""
    w, y = np.asarray(wrenches, dtype=float), np.asarray(readings, dtype=float)
    a = np.column_stack([w, np.ones(w.shape[0])])
    norms = np.linalg.norm(a, axis=0)
    cond = float(np.linalg.cond(a / np.where(norms > 0, norms, 1.0))) if w.shape[0] >= MIN_CASES else math.inf
    if not cond <= COND_MAX or np.any(norms == 0):
        raise CalibrationError(f"F/T crosstalk calibration: the {w.shape[0]} load cases do not load each of the six "
                               f"axes independently (condition number {cond:.3g} > {COND_MAX:g}, or an axis never "
                               f"loaded); at least {MIN_CASES} cases, each axis loaded", "ill_conditioned")
    x, *_ = np.linalg.lstsq(a, y, rcond=None)          # (7, 6): column i is output axis i's row of S, then b_i
    r = y - a @ x
    s2 = np.sum(r ** 2, axis=0) / (a.shape[0] - a.shape[1])
    inv = np.linalg.inv(a.T @ a)
    s, b = x[:6].T, x[6]
    s_u = np.sqrt(np.outer(s2, np.diag(inv)[:6]))
    diag = np.diag(s)
    bad = np.flatnonzero(~((diag >= SENSITIVITY_RANGE[0]) & (diag <= SENSITIVITY_RANGE[1])))
    if bad.size:
        j = int(bad[0])
        raise CalibrationError(f"F/T crosstalk calibration: the sensor's {AXES[j]} reads {diag[j]:.4g} of the "
                               f"fixture's load on it (allowed {SENSITIVITY_RANGE[0]:g}..{SENSITIVITY_RANGE[1]:g}): "
                               "the loads do not reach the sensor (no fixture, or the wrong frame)", "no_load")
    k = np.linalg.inv(s)
    # dK = -K dS K: var(K_ij) = sum_kl (K_ik K_lj)^2 var(S_kl), the entries taken as uncorrelated
    k_u = np.sqrt((k ** 2) @ (s_u ** 2) @ (k ** 2))
    return CrosstalkFit(s, s_u, b, k, k_u, r, cond)


def check_saturation(saturated: list[np.ndarray], wrenches: list[list[float]]) -> None:
    """``CalibrationError`` (``saturated``) naming the first load case during whose average the sensor flagged
    saturation (a channel clipped: the fit through it is wrong, whatever its residuals)."""
    for i, (flags, w) in enumerate(zip(saturated, wrenches, strict=True)):
        reported = flags[np.isfinite(flags)]  # NaN: a profile without the flag
        if reported.size and reported.max() > 0:
            raise CalibrationError(f"F/T crosstalk calibration: the sensor saturated at load case {i + 1} {w} "
                                   "(Fx Fy Fz N, Mx My Mz N·m): its readings are clipped; lower the fixture's loads or "
                                   "check the sensor's bias and range", "saturated")


def figures_of(fit: CrosstalkFit, wrenches: np.ndarray, fs: np.ndarray) -> dict[str, Any]:
    """The matrices (row-major lists) and the scalar figures (module docstring: normalised to full scale)."""
    scale = fs[None, :] / fs[:, None]                   # E_ij FS_j / FS_i
    off = ~np.eye(6, dtype=bool)
    w = np.asarray(wrenches, dtype=float)
    corrected = (w @ fit.sensitivity.T + fit.residuals) @ fit.compensation.T  # K (y - b)
    error = corrected - w
    after = 0.0
    for case, row in zip(w, error, strict=True):
        loaded = np.flatnonzero(case)
        if loaded.size == 1:
            j = int(loaded[0])
            per_fs = np.abs(row) / fs * fs[j] / abs(case[j])
            after = max(after, float(np.max(np.delete(per_fs, j))))
    rf, rm = fit.residuals[:, :3], fit.residuals[:, 3:]
    return {"ft_sensitivity": fit.sensitivity.ravel().tolist(), "ft_sensitivity_u": fit.sensitivity_u.ravel().tolist(),
            "ft_compensation": fit.compensation.ravel().tolist(),
            "ft_compensation_u": fit.compensation_u.ravel().tolist(),
            "ft_crosstalk_max_fs": float(np.max(np.abs(fit.sensitivity * scale)[off])),
            "ft_crosstalk_after_max_fs": after,
            "ft_sensitivity_u_max_fs": float(np.max(fit.sensitivity_u * scale)),
            "ft_gain_error_max": float(np.max(np.abs(np.diag(fit.sensitivity) - 1.0))),
            "ft_xt_residual_force_rms_n": float(np.sqrt(np.mean(rf ** 2))),
            "ft_xt_residual_moment_rms_nm": float(np.sqrt(np.mean(rm ** 2))),
            "ft_xt_condition_number": fit.condition_number, "ft_xt_cases": int(w.shape[0])}


def analyze_ft_crosstalk(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """Per load case the pose (``check_poses``), the saturation flag (``check_saturation``) and the mean reading
    into ``fit_crosstalk``."""
    cases = c["wrenches"]
    sel = [tagged(s, segs, f"case{i}") for i in range(len(cases))]
    check_poses([s["position_rad"][k] for k in sel], [c["home_rad"]] * len(cases), c["reach_tol_rad"])
    if "ft_saturated" in s:
        check_saturation([s["ft_saturated"][k] for k in sel], cases)
    y = np.array([np.concatenate([s["force_n"][k].mean(axis=0), s["moment_nm"][k].mean(axis=0)]) for k in sel])
    w = np.asarray(cases, dtype=float)
    fit = fit_crosstalk(w, y)
    fs = np.asarray(c["ft_range"], dtype=float)
    figures = figures_of(fit, w, fs)
    samples = min(int(k.sum()) for k in sel)
    method = METHOD.format(n=len(cases), q=c["home_rad"], k=samples, fmax=float(np.max(np.abs(w[:, :3]))),
                           mmax=float(np.max(np.abs(w[:, 3:]))))
    unit = "N/N, N/(N·m), (N·m)/N, (N·m)/(N·m)"
    certs = [Certificate("ft_sensitivity", figures["ft_sensitivity"], figures["ft_sensitivity_u"], unit, method,
                         "ft_crosstalk_max_fs", "ft_sensitivity_u_max_fs"),
             Certificate("ft_compensation", figures["ft_compensation"], figures["ft_compensation_u"], unit,
                         f"{method} {METHOD_K}", "ft_crosstalk_after_max_fs")]
    t = s["t_s"]
    panels = [Panel("force (N)", [Series(a, t, s["force_n"][:, i]) for i, a in enumerate("xyz")]),
              Panel("moment (N·m)", [Series(a, t, s["moment_nm"][:, i]) for i, a in enumerate("xyz")]),
              Panel("fit residual per load case (N, N·m)",
                    [Series(a, np.arange(len(cases)) + 1.0, fit.residuals[:, i], "o") for i, a in enumerate(AXES)])]
    return Outcome(figures, panels, fit=fit, certificates=certs)


def compensation_params(figures: dict[str, Any], present: Any) -> dict[str, float]:
    """The joint's new ``ft.compensation_IJ`` from the fitted S and the compensation ``present`` (name -> value) it
    reported the run through: the run saw K_old S_raw, so the raw sensor's compensation is S_fit^-1 K_old."""
    k_old = np.array([present(n) for n in COMPENSATION_PARAMS]).reshape(6, 6)
    k_new = np.linalg.solve(np.asarray(figures["ft_sensitivity"], dtype=float).reshape(6, 6), k_old)
    return dict(zip(COMPENSATION_PARAMS, (float(v) for v in k_new.ravel()), strict=True))
