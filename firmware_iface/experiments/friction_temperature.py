"""The friction map over temperature (issue 17, item 4): the grease's Coulomb and static friction against the housing
temperature, Fc(T), Fs(T) = F(T_ref) exp(-beta (T - T_ref)), the law of the simulated joint's reducer
(``actuator.model.mechanics``: ``reducer.lubricant_temp_coeff_per_k``, ``lubricant_ref_temp_c``). The protocol
``friction_temperature_calibrate`` (segments and analysis, registered in ``experiments.protocols``, run by its three
executors), its configuration, the fit (``fit_temperature``), the refusals and the certificates.

The run: the friction map of ``experiments.friction_calibration`` (its segments and its analysis, unchanged) ``maps``
times; between two maps the joint heats itself: a position hold at ``home_rad`` with the fixture loading it by
``heat_load_nm`` for ``heat_s``, as the ``thermal`` protocol does, its copper loss warming the winding and through it
the housing (the knee: 0.85 x 150 N·m, 18 W, about 7 K per 240 s; the housing's time constant is about 1000 s, so a
higher ambient, which the simulated model offers as an injection but a protocol cannot set, would be no quicker).
Each map is fitted alone (Fc, Fs, vs, B with their uncertainties) and stands at the mean housing temperature over its
plateaus (``housing_temp_c``: the temperature the joint reports, its motor_telemetry in the native profile).

The fit: ln F_k = ln F_c,s(T_ref) - beta (T_k - T_ref) over the maps' Fc and Fs together (one beta, two intercepts),
weighted least squares with the maps' standard uncertainties of ln F (u_F / F); the covariance scaled by the
weighted residual variance (chi^2 / dof), so what the law leaves out shows in the stated uncertainties. The viscous
friction is not the grease's boundary film and the model does not scale it: reported as the maps' mean.

What biases beta (tests/rig/test_friction_temperature.py states the figures seen): the map's Fc holds a small share
that does not follow the grease (the mesh loss of gravity over the travels, 0.04 N·m on the knee), which flattens
ln Fc by that share over Fc (under 1 %); the housing cools by a few tenths of a kelvin during a map after a heat, and
the fast plateaus that fix Fc come last.

Where it is applied: the impedance loop's friction feed-forward follows the housing temperature the firmware reads,
``ImpedanceGains.friction_coulomb_nm`` = Fc(T_ref), ``friction_temp_coeff_per_k`` = beta, ``friction_ref_temp_c`` =
T_ref (``actuator.control.cascade``): written to the joint through its profile's gains where it has them (a step's
``write_gains``, the CLI's ``--write``), and to a gains file (``--gains-out``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from actuator.errors import CalibrationError, ConfigError
from actuator.params import JointParams
from firmware_iface.experiments import friction_calibration as fcal
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.kt_calibration import drive_ceiling_a
from firmware_iface.experiments.panels import Panel, Series
from firmware_iface.experiments.segments import (
    Outcome,
    Segment,
    Signals,
    check_at_least,
    go_home,
    hold,
    mean_or_nan,
    tagged,
)

MAPS = 3                  # 2 intercepts and beta from 2 x maps values: 3 leave 3 degrees of freedom
HEAT_S = 240.0            # per heat: about 7 K of the knee's housing at 18 W (its time constant about 1000 s)
HEAT_LOAD_FRACTION = 0.85  # of the drive's ceiling: the most copper loss that leaves the position loop its margin
LOAD_RAMP_S = 1.0
MIN_SPAN_K = 3.0          # the maps' temperatures span at least this: beta's uncertainty grows as 1 / span
FIGURES = ("friction_beta_per_k", "friction_beta_u_per_k", "friction_coulomb_ref_nm", "friction_coulomb_ref_u_nm",
           "friction_static_ref_nm", "friction_static_ref_u_nm", "friction_viscous_mean_nm_s_per_rad",
           "friction_ref_temp_c", "friction_temp_span_k", "friction_temp_residual_rms", "friction_temp_maps")
# the CLI's limits when no sequence gives them: beta to a tenth of the knee's 0.043/K at 3 standard uncertainties,
# Fc(T_ref) to 0.2 N·m as the friction map's own default
DEFAULT_LIMITS = {"friction_beta_u_per_k": (None, 0.0043 / 3), "friction_coulomb_ref_u_nm": (None, 0.2)}
METHOD = ("friction map (Stribeck fit over +-v plateau pairs, experiments.friction_calibration) at {n} housing "
          "temperatures {t0:.1f}..{t1:.1f} °C reached by the joint's own heating (position hold with the fixture "
          "loading it {load:.3g} N·m for {heat:.0f} s between maps); ln Fc, ln Fs = ln F(T_ref) - beta (T - T_ref), "
          "T_ref = {tref:g} °C, weighted least squares with the maps' uncertainties, standard uncertainty (k = 1) "
          "scaled by the residuals. Used by the impedance loop's friction feed-forward (friction_coulomb_nm = "
          "Fc(T_ref), friction_temp_coeff_per_k = beta, friction_ref_temp_c = T_ref): written to the joint through "
          "its profile's gain_write when the step asks (write_gains, --write), and to a gains file (--gains-out).")


def friction_temperature_config(params: JointParams, maps: int = MAPS, heat_s: float = HEAT_S,
                                heat_load_nm: float | None = None, ref_temp_c: float | None = None,
                                min_span_k: float = MIN_SPAN_K, **friction: Any) -> dict[str, Any]:
    """The routine's configuration, checked before anything moves: the number of maps (>= 2), each heat's time and
    load (under 0.9 of the drive's ceiling, ``kt_calibration.drive_ceiling_a``), the reference temperature (default
    the preset's ``lubricant_ref_temp_c``); ``friction`` are the friction map's own keys
    (``friction_calibrate_config``), checked by it."""
    if isinstance(maps, bool) or int(maps) != maps or maps < 2:
        raise ConfigError(f"maps = {maps!r}: a whole number >= 2 (beta and two intercepts from 2 x maps values)")
    kt_n = params.torque_constant_nm_per_a * params.reducer.ratio
    ceiling = drive_ceiling_a(params) * kt_n
    load = HEAT_LOAD_FRACTION * ceiling if heat_load_nm is None else float(heat_load_nm)
    check_at_least(heat_s=(heat_s, 1.0), heat_load_nm=(load, 0.0), min_span_k=(min_span_k, 0.0))
    if load > 0.9 * ceiling:
        raise ConfigError(f"heat_load_nm = {load:g}: above 0.9 of the drive's {ceiling:.4g} N·m (the position loop "
                          "must hold it)")
    tref = params.reducer.lubricant_ref_temp_c if ref_temp_c is None else float(ref_temp_c)
    sub = fcal.friction_calibrate_config(params=params, **friction)
    return {"maps": int(maps), "heat_s": float(heat_s), "heat_load_nm": load, "ref_temp_c": tref,
            "min_span_k": float(min_span_k), "friction": sub}


def friction_temperature_segments(c: dict) -> list[Segment]:
    """Map 0, then per further map: home, the fixture's load ramped on, held ``heat_s``, ramped off; the map. A map's
    segments keep their tags behind ``m{k}:``."""
    sub, load, home = c["friction"], c["heat_load_nm"], c["friction"]["home_rad"]
    segs: list[Segment] = []
    for k in range(c["maps"]):
        if k:
            segs += go_home(home, sub["move_s"], 0.2)
            segs += [Segment(LOAD_RAMP_S, "position", hold(home), load_nm=lambda t: load * min(t / LOAD_RAMP_S, 1.0)),
                     Segment(c["heat_s"], "position", hold(home), load_nm=load),
                     Segment(LOAD_RAMP_S, "position", hold(home),
                             load_nm=lambda t: load * max(1.0 - t / LOAD_RAMP_S, 0.0))]
        segs += [replace(s, tag=f"m{k}:{s.tag}") if s.tag else s for s in fcal.friction_calibrate_segments(sub)]
    return segs


def _map_segments(segs: list[Segment], k: int) -> list[Segment]:
    """The segments with map k's tags as the friction map's analysis knows them, every other tag cleared."""
    prefix = f"m{k}:"
    return [replace(s, tag=s.tag[len(prefix):] if s.tag.startswith(prefix) else "") for s in segs]


def fit_temperature(temps_c: np.ndarray, values: np.ndarray, u: np.ndarray,
                    ref_temp_c: float) -> tuple[np.ndarray, np.ndarray, float]:
    """ln values[:, j] = a_j - beta (T - T_ref) for the columns j (Fc, Fs), weights 1 / (u / value)^2: (a_c, a_s,
    beta), their standard uncertainties, the weighted residuals' rms."""
    t = np.asarray(temps_c, dtype=float)
    n, m = values.shape
    y = np.log(values).T.ravel()
    sigma = (u / values).T.ravel()
    a = np.zeros((n * m, m + 1))
    for j in range(m):
        a[j * n:(j + 1) * n, j] = 1.0
        a[j * n:(j + 1) * n, m] = -(t - ref_temp_c)
    w = 1.0 / sigma
    x, *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
    r = (y - a @ x) * w
    dof = n * m - (m + 1)
    cov = float(r @ r) / dof * np.linalg.inv((a * w[:, None]).T @ (a * w[:, None]))
    return x, np.sqrt(np.diag(cov)), float(np.sqrt(np.mean((y - a @ x) ** 2)))


def _maps(s: Signals, segs: list[Segment], c: dict) -> tuple[list[Outcome], np.ndarray]:
    """Each map's friction outcome and mean housing temperature over its plateaus (``CalibrationError``
    ``no_temperature`` where the joint reports none)."""
    sub, outs, temps = c["friction"], [], []
    housing = s.get("housing_temp_c")
    for k in range(c["maps"]):
        segs_k = _map_segments(segs, k)
        outs.append(fcal.analyze_friction_calibrate(s, segs_k, sub))
        plateaus = np.logical_or.reduce([tagged(s, segs_k, f"{d}{i}") for i in range(len(sub["speeds_rad_s"]))
                                         for d in ("fwd", "bwd")])
        temps.append(mean_or_nan(housing[plateaus]) if housing is not None else math.nan)
    if not np.all(np.isfinite(temps)):
        raise CalibrationError("friction over temperature: the joint reports no housing temperature "
                               "(telemetry.housing_temp_c): the grease's temperature is unknown", "no_temperature")
    return outs, np.array(temps)


def analyze_friction_temperature(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """The maps (``_maps``), the temperatures' span checked (``CalibrationError`` ``ill_conditioned``: the heats
    did not warm the joint enough to see beta), then ``fit_temperature``."""
    outs, temps = _maps(s, segs, c)
    span = float(np.ptp(temps))
    if not span >= c["min_span_k"]:
        raise CalibrationError(f"friction over temperature: the maps stood at {np.round(temps, 2).tolist()} °C, a "
                               f"span of {span:.3g} K under {c['min_span_k']:g} K: beta cannot be told from the "
                               "maps' scatter; heat longer or with more load", "ill_conditioned")
    f = [o.figures for o in outs]
    vals = np.array([[x["friction_coulomb_nm"], x["friction_static_nm"]] for x in f])
    u = np.array([[x["friction_coulomb_u_nm"], x["friction_static_u_nm"]] for x in f])
    tref = c["ref_temp_c"]
    x, ux, rms = fit_temperature(temps, vals, u, tref)
    fc0, fs0 = math.exp(x[0]), math.exp(x[1])
    figures = {"friction_beta_per_k": float(x[2]), "friction_beta_u_per_k": float(ux[2]),
               "friction_coulomb_ref_nm": fc0, "friction_coulomb_ref_u_nm": fc0 * float(ux[0]),
               "friction_static_ref_nm": fs0, "friction_static_ref_u_nm": fs0 * float(ux[1]),
               "friction_viscous_mean_nm_s_per_rad": float(np.mean([x["friction_viscous_nm_s_per_rad"] for x in f])),
               "friction_ref_temp_c": tref, "friction_temp_span_k": span, "friction_temp_residual_rms": rms,
               "friction_temp_maps": c["maps"]}
    method = METHOD.format(n=c["maps"], t0=temps.min(), t1=temps.max(), load=c["heat_load_nm"], heat=c["heat_s"],
                           tref=tref)
    certs = [Certificate("friction_beta_per_k", figures["friction_beta_per_k"], figures["friction_beta_u_per_k"],
                         "1/K", method, uncertainty_figure="friction_beta_u_per_k"),
             Certificate("friction_coulomb_ref_nm", fc0, figures["friction_coulomb_ref_u_nm"], "N·m", method,
                         uncertainty_figure="friction_coulomb_ref_u_nm"),
             Certificate("friction_static_ref_nm", fs0, figures["friction_static_ref_u_nm"], "N·m", method)]
    tt = np.linspace(temps.min(), temps.max(), 50)
    panels = [Panel("housing (°C)", [Series("housing", s["t_s"], s["housing_temp_c"])]),
              Panel("friction (N·m) against housing temperature (°C)",
                    [Series("Fc of each map", temps, vals[:, 0], "o"), Series("Fs of each map", temps, vals[:, 1], "o"),
                     Series("Fc fit", tt, fc0 * np.exp(-x[2] * (tt - tref))),
                     Series("Fs fit", tt, fs0 * np.exp(-x[2] * (tt - tref)))])]
    lists = {"friction_map_temps_c": temps.tolist(), "friction_map_coulomb_nm": vals[:, 0].tolist(),
             "friction_map_static_nm": vals[:, 1].tolist()}
    return Outcome(figures | lists, panels, fit=x, certificates=certs)
