"""The six-axis F/T sensor's calibration: its six biases and the tool's load (mass, centre of mass), by linear least
squares over the mean readings at several output poses. The protocol's segments and analysis (``ft_calibrate``) are
in ``experiments.protocols``, run by its three executors; this module holds what they share: the configuration
(``ft_calibrate_config``), the checks that refuse a run which cannot give a result (``CalibrationError``), the fit
(``fit_ft_load``) and its certificates.

The model (the simulated sensor's, ``actuator.model.sensors``, and the usual one for a real sensor behind a joint):
at output angle theta the tool's weight reads, in the sensor frame, m g u with u = (cos(theta + phi), -sin(theta +
phi), 0) (x along the link, z along the joint axis, the link hanging at theta = -phi; phi = ``hang_offset_rad``,
0 on the simulated joint), so

    F = b_F + m g u                    (3 rows per pose: b_F, m)
    M = b_M + (m c) x (g u)            (3 rows per pose: b_M, p = m c)

Both are linear in their unknowns and separate into a force fit (4 unknowns) and a moment fit (6): each pose's mean
over ``average_s`` is one observation per axis. The standard uncertainties are s^2 (A^T A)^-1 with s^2 the fit's
residual variance per block (so what the model leaves out, a residual crosstalk or the bias drifting during the run,
shows in them), and c = p / m with first-order propagation (the blocks are independent: cov(p, m) = 0).

With u in a plane (z along the joint axis, whatever the pose), the tool's x and y centre-of-mass coordinates show
only in Mz, its z coordinate in Mx and My: at least 3 distinct poses, and they must span an angle (a fit of poses
close together cannot tell the weight from the bias: the conditioning check, ``COND_MAX``). The simulated tool's
weight acts at the sensor's origin (c = 0: the model puts no moment of it in the sensor frame); the sensor's
crosstalk of force into moment shows as an apparent c of the crosstalk coefficient (metres per N·m/N).

The bias is written to the joint with ``--write`` (or a step's ``write``): its ``ft.bias_*`` parameters
(``virtual_joint.sensor_settings``, ``bias_params``: composed with the compensation and bias the joint reported the
run through), which the joint subtracts from the raw reading before its compensation matrix (``ft_crosstalk``);
``--save`` keeps them in its flash. The tool's load is not written: it is the tool's, not the sensor's, and it is what
an admittance controller removes (``actuator.control.config`` ``tool_mass_kg``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actuator.errors import CalibrationError, ConfigError
from actuator.params import JointParams
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.segments import check_at_least
from firmware_iface.virtual_joint.sensor_settings import BIAS_PARAMS, COMPENSATION_PARAMS

DEFAULT_POSES_RAD = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)  # 3 rad of the knee's 5: u turns through 172 degrees
MIN_POSES = 3          # the moment fit's Mz row has three unknowns (b_Mz, p_x, p_y)
# largest condition number of the fits' column-scaled design matrices (the relative error of the data, times this at
# most, is that of the result). The force fit's grows as 1 / span, the moment fit's as 1 / span^2 (Mz sees the tool's
# x, y offset only through the circle's curvature): 7 poses over 3 rad give 1.9 and 3.5, 3 poses over 1 rad 4.8 and
# 32, over 0.6 rad 8.1 and 103, 4 poses over 0.2 rad 27 and 896. 50 takes 1 rad of span as the least
COND_MAX = 50.0
REACH_TOL_RAD = 0.01   # a pose whose mean position is further than this from its set-point was not reached
FIGURES = ("ft_bias_force_n", "ft_bias_moment_nm", "tool_mass_kg", "tool_com_m", "ft_bias_force_u_n",
           "ft_bias_moment_u_nm", "tool_mass_u_kg", "tool_com_u_m", "ft_bias_force_max_n", "ft_bias_moment_max_nm",
           "tool_com_max_m", "ft_residual_force_rms_n", "ft_residual_moment_rms_nm", "ft_condition_number")
SCALAR_FIGURES = tuple(f for f in FIGURES if f not in ("ft_bias_force_n", "ft_bias_moment_nm", "tool_com_m",
                                                        "ft_bias_force_u_n", "ft_bias_moment_u_nm", "tool_com_u_m"))
# what the CLI judges a calibration by when no sequence gives limits: a fit at the sensor's noise level (the knee's
# Mini45: 0.12-0.2 N, 0.004 N·m per sample; pose means of hundreds of samples sit far below these), and the tool's
# mass to the 2 % of a 1 kg tool at 3 standard uncertainties
DEFAULT_LIMITS = {"ft_residual_force_rms_n": (None, 0.2), "ft_residual_moment_rms_nm": (None, 0.01),
                  "tool_mass_u_kg": (None, 0.02 / 3), "ft_condition_number": (None, COND_MAX)}
METHOD = ("linear least squares over {n} output poses ({span:.2f} rad), pose means of {k} samples each: "
          "F = b_F + m g u(q), M = b_M + (m c) x g u(q), u = (cos q, -sin q, 0) in the sensor frame; standard "
          "uncertainty (k = 1) from the fit's residuals and covariance. The bias is written to the joint with --write "
          "(its ft.bias_* parameters, raw sensor frame; --save to its flash); the tool's load goes to the admittance "
          "controller's gains (tool_mass_kg), not to the joint.")


def ft_calibrate_config(poses_rad: list[float] | tuple[float, ...] = DEFAULT_POSES_RAD, settle_s: float = 0.4,
                        average_s: float = 0.5, move_s: float = 0.8, home_rad: float | None = None,
                        params: JointParams | None = None, gravity_m_s2: float | None = None,
                        hang_offset_rad: float = 0.0, reach_tol_rad: float = REACH_TOL_RAD) -> dict[str, Any]:
    """The routine's configuration, checked before anything moves: the poses (rad, inside ``params``' position
    limits when given), the settle and average times at each, the move between poses; gravity from ``params`` (else
    9.81 m/s²)."""
    poses = [float(q) for q in poses_rad]
    if len(poses) < MIN_POSES or not all(math.isfinite(q) for q in poses):
        raise ConfigError(f"poses_rad = {poses_rad!r}: at least {MIN_POSES} finite output angles, rad")
    if params is not None:
        lo, hi = params.limits.position_min_rad, params.limits.position_max_rad
        outside = [q for q in poses if not lo <= q <= hi]
        if outside:
            raise ConfigError(f"poses_rad = {poses!r}: {outside} outside the joint's position limits "
                              f"[{lo:g}, {hi:g}] rad")
    check_at_least(settle_s=(settle_s, 0.0), average_s=(average_s, 0.01), move_s=(move_s, 0.05),
                   reach_tol_rad=(reach_tol_rad, 1e-6))
    g = gravity_m_s2 if gravity_m_s2 is not None else (params.load.gravity_m_s2 if params else 9.81)
    return {"poses_rad": poses, "settle_s": float(settle_s), "average_s": float(average_s), "move_s": float(move_s),
            "home_rad": poses[0] if home_rad is None else float(home_rad), "gravity_m_s2": float(g),
            "hang_offset_rad": float(hang_offset_rad), "reach_tol_rad": float(reach_tol_rad)}


@dataclass(frozen=True)
class FtFit:
    bias_force_n: np.ndarray       # (3,)
    bias_moment_nm: np.ndarray     # (3,)
    mass_kg: float
    com_m: np.ndarray              # (3,)
    bias_force_u_n: np.ndarray
    bias_moment_u_nm: np.ndarray
    mass_u_kg: float
    com_u_m: np.ndarray
    residual_force_rms_n: float
    residual_moment_rms_nm: float
    condition_number: float


def _design(u: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """The force (3n x 4: b_F, m) and moment (3n x 6: b_M, p) design matrices, rows pose by pose, x y z."""
    n = u.shape[0]
    a_f, a_m = np.zeros((3 * n, 4)), np.zeros((3 * n, 6))
    for axis in range(3):
        a_f[axis::3, axis] = 1.0
        a_m[axis::3, axis] = 1.0
    a_f[0::3, 3], a_f[1::3, 3] = g * u[:, 0], g * u[:, 1]
    # p x (g u) with u_z = 0: (-p_z u_y, p_z u_x, p_x u_y - p_y u_x) g
    a_m[0::3, 5], a_m[1::3, 5] = -g * u[:, 1], g * u[:, 0]
    a_m[2::3, 3], a_m[2::3, 4] = g * u[:, 1], -g * u[:, 0]
    return a_f, a_m


def _solve(a: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares: the estimate, its standard uncertainties and the residual rms."""
    x, *_ = np.linalg.lstsq(a, y, rcond=None)
    r = y - a @ x
    dof = a.shape[0] - a.shape[1]
    s2 = float(r @ r) / dof
    cov = s2 * np.linalg.inv(a.T @ a)
    return x, np.sqrt(np.diag(cov)), float(np.sqrt(np.mean(r ** 2)))


def fit_ft_load(angles_rad: np.ndarray, force_n: np.ndarray, moment_nm: np.ndarray,
                gravity_m_s2: float) -> FtFit:
    """The biases and the tool's load from the pose means (n poses: angles (n,), force and moment (n, 3), the
    angle with the hang offset already added). ``CalibrationError`` (``ill_conditioned``) when the poses do not
    determine them."""
    q = np.asarray(angles_rad, dtype=float)
    if q.size < MIN_POSES:
        raise CalibrationError(f"F/T calibration: {q.size} poses, at least {MIN_POSES} are needed", "too_few_poses")
    u = np.column_stack([np.cos(q), -np.sin(q), np.zeros_like(q)])
    a_f, a_m = _design(u, gravity_m_s2)
    # column-scaled: the condition number is then a property of the poses, not of the units
    cond = max(float(np.linalg.cond(a / np.linalg.norm(a, axis=0))) for a in (a_f, a_m))
    if not cond <= COND_MAX:
        raise CalibrationError(
            f"F/T calibration: the poses {np.round(q, 3).tolist()} rad (span {np.ptp(q):.3f} rad) cannot tell the "
            f"tool's weight from the bias: condition number {cond:.3g} > {COND_MAX:g}; spread the poses wider",
            "ill_conditioned")
    xf, uf, rms_f = _solve(a_f, np.asarray(force_n, dtype=float).ravel())
    xm, um, rms_m = _solve(a_m, np.asarray(moment_nm, dtype=float).ravel())
    m, u_m = float(xf[3]), float(uf[3])
    if not m > 0:
        raise CalibrationError(f"F/T calibration: fitted tool mass {m:.4g} kg is not positive: the sensor does not "
                               "see a weight turning with the output (no tool, or a wrong hang offset)", "no_load")
    p, u_p = xm[3:], um[3:]
    com = p / m
    com_u = np.sqrt((u_p / m) ** 2 + (p * u_m / m ** 2) ** 2)
    return FtFit(xf[:3], xm[:3], m, com, uf[:3], um[:3], u_m, com_u, rms_f, rms_m, cond)


def check_poses(position_rad: list[np.ndarray], poses_rad: list[float], tol_rad: float) -> np.ndarray:
    """Each pose's mean position (what the fit uses); ``CalibrationError`` (``not_reached``) naming the first pose
    the joint did not reach (a joint that does not move, a stuck or faulted one)."""
    means = np.array([float(np.mean(p)) if p.size else math.nan for p in position_rad])
    for i, (mean, pose) in enumerate(zip(means, poses_rad, strict=True)):
        if not abs(mean - pose) <= tol_rad:
            raise CalibrationError(f"F/T calibration: pose {i + 1} ({pose:g} rad) not reached: the output stood at "
                                   f"{mean:.4g} rad (tolerance {tol_rad:g} rad); stopped", "not_reached")
    return means


def check_saturation(saturated: list[np.ndarray], poses_rad: list[float]) -> None:
    """``CalibrationError`` (``saturated``) when the sensor flagged saturation during a pose's average (its
    readings are clipped there: a fit through them is wrong, whatever its residuals)."""
    for i, (flags, pose) in enumerate(zip(saturated, poses_rad, strict=True)):
        reported = flags[np.isfinite(flags)]  # NaN: a profile without the flag (nothing to check on it)
        if reported.size and reported.max() > 0:
            raise CalibrationError(f"F/T calibration: the sensor saturated at pose {i + 1} ({pose:g} rad): its "
                                   "readings are clipped; unload the tool or check the sensor's range", "saturated")


def figures_of(fit: FtFit) -> dict[str, Any]:
    def vec(a: np.ndarray) -> list[float]:
        return [float(v) for v in a]

    return {"ft_bias_force_n": vec(fit.bias_force_n), "ft_bias_moment_nm": vec(fit.bias_moment_nm),
            "tool_mass_kg": fit.mass_kg, "tool_com_m": vec(fit.com_m), "ft_bias_force_u_n": vec(fit.bias_force_u_n),
            "ft_bias_moment_u_nm": vec(fit.bias_moment_u_nm), "tool_mass_u_kg": fit.mass_u_kg,
            "tool_com_u_m": vec(fit.com_u_m), "ft_bias_force_max_n": float(np.max(np.abs(fit.bias_force_n))),
            "ft_bias_moment_max_nm": float(np.max(np.abs(fit.bias_moment_nm))),
            "tool_com_max_m": float(np.max(np.abs(fit.com_m))),
            "ft_residual_force_rms_n": fit.residual_force_rms_n,
            "ft_residual_moment_rms_nm": fit.residual_moment_rms_nm, "ft_condition_number": fit.condition_number}


def certificates_of(figures: dict[str, Any], n_poses: int, span_rad: float, samples: int) -> list[Certificate]:
    """The four calibrated quantities, each judged by its own figure or, for a vector, its largest component."""
    method = METHOD.format(n=n_poses, span=span_rad, k=samples)
    return [Certificate("ft_bias_force_n", figures["ft_bias_force_n"], figures["ft_bias_force_u_n"], "N", method,
                        "ft_bias_force_max_n"),
            Certificate("ft_bias_moment_nm", figures["ft_bias_moment_nm"], figures["ft_bias_moment_u_nm"], "N·m",
                        method, "ft_bias_moment_max_nm"),
            Certificate("tool_mass_kg", figures["tool_mass_kg"], figures["tool_mass_u_kg"], "kg", method,
                        uncertainty_figure="tool_mass_u_kg"),
            Certificate("tool_com_m", figures["tool_com_m"], figures["tool_com_u_m"], "m", method, "tool_com_max_m")]


def bias_params(figures: dict[str, Any], present: Any) -> dict[str, float]:
    """The joint's new ``ft.bias_*`` (raw sensor frame) from the fitted bias and the compensation and bias
    ``present`` (name -> value) it reported the run through: the run saw K (raw - b_old), whose bias is
    K (b_raw - b_old), so b_raw = b_old + K^-1 b_fit. The tool's load is not written: it is the tool's, not the
    sensor's, and the admittance controller's gains hold it (``tool_mass_kg``)."""
    k = np.array([present(n) for n in COMPENSATION_PARAMS]).reshape(6, 6)
    b_old = np.array([present(n) for n in BIAS_PARAMS])
    b_fit = np.array([*figures["ft_bias_force_n"], *figures["ft_bias_moment_nm"]], dtype=float)
    return dict(zip(BIAS_PARAMS, (float(v) for v in b_old + np.linalg.solve(k, b_fit)), strict=True))
