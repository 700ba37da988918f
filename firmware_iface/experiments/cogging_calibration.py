"""The anti-cogging calibration (issue 17, item 3): the motor's cogging torque over one revolution, as the harmonics
at multiples of its periods per revolution N_c that the controller applies as feed-forward
(``actuator.control.config.CoggingCompensation``). The protocols ``cogging_calibrate`` (the map and its harmonics)
and ``cogging_ripple`` (the velocity ripple at low speed, before and after the compensation), their configurations
(``cogging_calibrate_config``, ``cogging_ripple_config``), the analysis, ``CalibrationError`` refusals and the
certificates.

The run: in velocity mode, one slow constant speed over ``revolutions`` (>= 1) motor revolutions forward, then back
over the same angles. The speed is set by the cogging's frequency f_c = N_c x motor speed (default ``COGGING_HZ``,
where the choice is justified): fast enough that the inertia, not the velocity loop's integral, carries the cogging
(the motor does not jump from detent to detent), under the flexspline's mode so that the joint is one rigid inertia
J. The disturbance the loop meets is then the drive torque (Kt N iq) minus J dv/dt (v the velocity the joint
reports), divided by N at the motor; the loop's phase lag shifts the map one way forward and the other way back,
and the fit over both directions cancels it to first order.

The analysis, per direction: that torque at the motor against the motor encoder's reading r; friction (one
level per direction) and gravity (slow over a revolution) removed by a cubic in r per direction. The motor encoder's
own once-per-revolution error e(r) = s sin r + c cos r (its nonlinearity: 0.5 deg on the knee, 1.6 rad of cogging
phase at N_c = 180) is measured from the cogging itself: the phase of the fundamental, demodulated over each cogging
period, drifts by -N_c e(r). Then linear least squares of the harmonics k = 1..K against theta = r - e(r), shared by
both directions, with standard uncertainties (k = 1) s^2 (X^T X)^-1 (s^2 the residual variance; the residual's
colour is not modelled, so they are a lower bound). The map over one revolution (``MAP_BINS`` bins of theta, both
directions averaged) goes to the plot and the figures.

What the compensation cannot remove, and the ripple figure: the motor's 6th-harmonic torque ripple (6 p per
revolution, proportional to the current, not to the angle alone) and the motor encoder's nonlinearity in the
velocity estimate (once per revolution) also ripple the velocity. ``cogging_ripple`` reports both the whole
velocity ripple (``velocity_ripple_rms_rad_s``: std over whole cogging periods) and the cogging's own share, the
velocity's rms in bands of +-``BAND_FRACTION`` about k f_c (``cogging_velocity_ripple_rad_s``): the figure the
compensation is judged by (tests/rig/test_cogging_calibration.py measures both).

Where it is applied: the controller's ``[cogging_compensation]`` gains section, through the gains file: the joint's
protocol profile has no gain for a table of harmonics (``Profile.gain_names``), so nothing is written to the joint
(``jointkit calibrate cogging --out`` writes the gains file with the section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actuator.control.config import CoggingCompensation
from actuator.errors import CalibrationError, ConfigError
from actuator.params import JointParams
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.friction_calibration import STUCK_FRACTION, check_moving
from firmware_iface.experiments.panels import Panel, Series
from firmware_iface.experiments.segments import (
    RATE_HZ,
    Outcome,
    Segment,
    Signals,
    check_at_least,
    go_home,
    hold,
    ramp,
    tagged,
)

# the cogging's frequency during the sweep (knee: N_c 180, N 100: 0.7 rad/s at the motor, 9 s a revolution). Slow
# sweeps fail: the velocity loop's integral (ki = 5480 N·m/rad at the output) is softer than the cogging's own
# stiffness (N_c A N^2 = 180 x 0.0116 x 100^2 / 100 = 2.1e4 N·m/rad), so under ~10 Hz the motor jumps from detent to
# detent, its speed ripple exceeds its mean and friction's switching enters the map (4 Hz: amplitude 1.6x, seen).
# At 20 Hz the inertia carries it (J w^2 = 1.39 x 126^2 = 2.2e4 N·m/rad), the speed ripple stays under the mean, and
# J dv/dt + drive torque is the disturbance; still under the flexspline's mode (40 Hz), so J is the rigid joint's.
# 1 kHz signals: 50 samples a period
COGGING_HZ = 20.0
MIN_SAMPLES_PER_PERIOD = 8      # of the highest fitted harmonic, on the 1 kHz grid
HARMONICS = 2                   # the second at 40 Hz; a third would be past the flexspline's mode
MAP_BINS = 2048                 # of one motor revolution: 11 bins a cogging period at N_c = 180
DETECT_SIGMA = 5.0              # the fundamental must stand this many standard uncertainties above 0
APPLY_SIGMA = 3.0               # a harmonic under this many uncertainties is applied as 0 (noise, not cogging)
BAND_FRACTION = 0.15            # ripple band about k f_c: wide for the encoder error's +-1/rev sidebands, narrow
                                # enough to leave out the 6th-harmonic ripple (6 p / N_c = 1/3 of f_c on the knee)
FIGURES = ("cogging_amplitude_nm", "cogging_amplitude_u_nm", "cogging_phase_rad", "cogging_phase_u_rad",
           "cogging_map_pp_nm", "cogging_residual_rms_nm", "cogging_encoder_error_rad", "cogging_periods_per_rev",
           "cogging_velocity_ripple_rad_s", "velocity_ripple_rms_rad_s")
RIPPLE_FIGURES = ("cogging_velocity_ripple_rad_s", "velocity_ripple_rms_rad_s")
DEFAULT_LIMITS = {"cogging_residual_rms_nm": (None, 0.01), "cogging_amplitude_u_nm": (None, 0.001)}
METHOD = ("Cogging at the motor: drive torque (Kt N iq / N) against the motor encoder over {revs:g} revolution(s) "
          "each way at {v:.3g} rad/s (cogging at {fc:.3g} Hz), friction and gravity removed by a cubic per "
          "direction, the encoder's once-per-revolution error ({e:.2e} rad) from the fundamental's phase; "
          "harmonics k N_c (N_c = {nc}) by linear least squares over both directions, standard uncertainty (k = 1). "
          "Applied by the controller's [cogging_compensation] feed-forward through the gains file: the joint's "
          "profile has no gain for it, so nothing is written to the joint.")


def sweep_speed_rad_s(params: JointParams, cogging_hz: float) -> float:
    """The output speed at which the cogging's fundamental is at ``cogging_hz``."""
    return 2.0 * math.pi * cogging_hz / (params.cogging_periods_per_rev * params.reducer.ratio)


def reflected_inertia_kg_m2(params: JointParams) -> float:
    """The joint's inertia at the output below the flexspline's mode: rotor and wave generator through N^2, and the
    load (the preset's: a rig's fixture is part of its preset)."""
    n = params.reducer.ratio
    return (params.motor.rotor_inertia_kg_m2 + params.reducer.wave_generator_inertia_kg_m2) * n * n \
        + params.load.inertia_kg_m2


def cogging_calibrate_config(params: JointParams, cogging_hz: float = COGGING_HZ, revolutions: float = 1.0,
                             harmonics: int = HARMONICS, settle_s: float = 1.0, ramp_s: float = 0.5,
                             home_rad: float = 0.0, move_s: float = 0.5, map_bins: int = MAP_BINS,
                             stuck_fraction: float = STUCK_FRACTION) -> dict[str, Any]:
    """The routine's configuration, checked before anything moves: the cogging frequency of the sweep (its speed),
    whole motor revolutions each way (>= 1), the harmonics fitted (1..8, the highest sampled at least
    MIN_SAMPLES_PER_PERIOD times a period), the settle after each reversal, the ramps, the start ``home_rad`` and the
    travel inside the position limits."""
    nc, ratio = params.cogging_periods_per_rev, params.reducer.ratio
    if nc <= 0:
        raise ConfigError("cogging_periods_per_rev = 0: the joint's parameters give no cogging period (motor.slots)")
    check_at_least(cogging_hz=(cogging_hz, 0.01), revolutions=(revolutions, 1.0), settle_s=(settle_s, 0.0),
                   ramp_s=(ramp_s, 0.01), move_s=(move_s, 0.05), stuck_fraction=(stuck_fraction, 0.0),
                   map_bins=(map_bins, 64))
    if not (isinstance(harmonics, int) and 1 <= harmonics <= 8):
        raise ConfigError(f"harmonics = {harmonics!r} is out of range: a whole number 1..8")
    if harmonics * cogging_hz * MIN_SAMPLES_PER_PERIOD > RATE_HZ:
        raise ConfigError(f"cogging_hz = {cogging_hz:g}: harmonic {harmonics} at {harmonics * cogging_hz:g} Hz has "
                          f"under {MIN_SAMPLES_PER_PERIOD} samples a period at {RATE_HZ:g} Hz; lower cogging_hz")
    v = sweep_speed_rad_s(params, cogging_hz)
    plateau_s = revolutions * 2.0 * math.pi / (v * ratio)
    travel = v * (plateau_s + settle_s + ramp_s)
    lo, hi = params.limits.position_min_rad, params.limits.position_max_rad
    if not (lo <= home_rad - 0.01 and home_rad + travel <= hi - 0.01):
        raise ConfigError(f"home_rad = {home_rad:g}: the sweep runs {travel:.3g} rad from it, outside the position "
                          f"limits [{lo:g}, {hi:g}] rad")
    return {"speed_rad_s": v, "plateau_s": plateau_s, "settle_s": float(settle_s), "ramp_s": float(ramp_s),
            "home_rad": float(home_rad), "move_s": float(move_s), "revolutions": float(revolutions),
            "cogging_hz": float(cogging_hz), "harmonics": harmonics, "periods_per_rev": int(nc),
            "ratio": float(ratio), "map_bins": int(map_bins), "stuck_fraction": float(stuck_fraction),
            "inertia_kg_m2": reflected_inertia_kg_m2(params)}


def cogging_ripple_config(params: JointParams, cogging_hz: float = COGGING_HZ, periods: int = 40,
                          **kwargs: Any) -> dict[str, Any]:
    """The ripple measurement: the calibration's sweep over ``periods`` whole cogging periods each way."""
    check_at_least(periods=(periods, 4))
    c = cogging_calibrate_config(params, cogging_hz, **kwargs)
    c["plateau_s"] = float(periods) / cogging_hz
    return c


def cogging_calibrate_segments(c: dict) -> list[Segment]:
    """Move (position mode) home, ramp to +v, settle, sweep (``fwd``), reverse, settle, sweep back (``bwd``), stop."""
    v, r, s, p = c["speed_rad_s"], c["ramp_s"], c["settle_s"], c["plateau_s"]
    return [*go_home(c["home_rad"], c["move_s"], 0.2),
            Segment(r, "velocity", ramp(0.0, v, r)), Segment(s, "velocity", hold(v)),
            Segment(p, "velocity", hold(v), tag="fwd"), Segment(2 * r, "velocity", ramp(v, -v, 2 * r)),
            Segment(s, "velocity", hold(-v)), Segment(p, "velocity", hold(-v), tag="bwd"),
            Segment(r, "velocity", ramp(-v, 0.0, r))]


@dataclass(frozen=True)
class CoggingFit:
    periods_per_rev: int
    amplitudes_nm: tuple[float, ...]     # at the motor, harmonic k = 1.. (k N_c per revolution)
    phases_rad: tuple[float, ...]
    amplitudes_u_nm: tuple[float, ...]   # standard uncertainties (k = 1)
    phases_u_rad: tuple[float, ...]
    encoder_error_sin_rad: float
    encoder_error_cos_rad: float
    residual_rms_nm: float

    def compensation(self, apply_sigma: float = APPLY_SIGMA) -> CoggingCompensation:
        """The controller's section: harmonics under ``apply_sigma`` uncertainties applied as 0."""
        amps = tuple(a if a > apply_sigma * u else 0.0 for a, u in zip(self.amplitudes_nm, self.amplitudes_u_nm,
                                                                      strict=True))
        return CoggingCompensation(periods_per_rev=self.periods_per_rev, harmonics_nm=amps,
                                   phases_rad=self.phases_rad, encoder_error_sin_rad=self.encoder_error_sin_rad,
                                   encoder_error_cos_rad=self.encoder_error_cos_rad)


def _trend(r: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """A cubic in r per direction (friction's level, gravity's slow change): the design's nuisance columns."""
    cols = []
    for d in (0, 1):
        on = direction == d
        x = np.where(on, (r - r[on].mean()) / max(float(np.ptp(r[on])), 1e-9), 0.0)
        cols += [on * x ** j for j in range(4)]
    return np.column_stack(cols)


def _encoder_error(r: np.ndarray, y: np.ndarray, nc: int) -> tuple[float, float]:
    """s, c of e(r) = s sin r + c cos r from the fundamental's phase over each cogging period: y ~ A sin(N_c (r -
    e) + phi), so the mean of y exp(-i N_c r) over a period has phase phi - pi/2 - N_c e(r)."""
    period = np.floor(nc * r / (2 * math.pi)).astype(np.int64)
    z = y * np.exp(-1j * nc * r)
    _, inv, counts = np.unique(period, return_inverse=True, return_counts=True)
    full = counts >= 0.8 * counts.max()
    zm = np.bincount(inv, z.real) / counts + 1j * np.bincount(inv, z.imag) / counts
    rm = np.bincount(inv, r) / counts
    order = np.argsort(rm[full])
    psi = np.unwrap(np.angle(zm[full][order]))
    rr = rm[full][order]
    x = np.column_stack([np.ones_like(rr), np.sin(rr), np.cos(rr)])
    sol, *_ = np.linalg.lstsq(x, psi, rcond=None)
    return float(-sol[1] / nc), float(-sol[2] / nc)


def fit_cogging(r: np.ndarray, torque_nm: np.ndarray, direction: np.ndarray, nc: int, harmonics: int) -> CoggingFit:
    """The harmonics of the cogging (the negative of the drive's ripple) against the corrected encoder angle, with
    a cubic trend per direction; ``CalibrationError`` ``not_detected`` when the fundamental is under DETECT_SIGMA
    standard uncertainties."""
    t = _trend(r, direction)
    y = -(torque_nm - t @ np.linalg.lstsq(t, torque_nm, rcond=None)[0])
    es, ec = _encoder_error(r, y, nc)
    if max(abs(es), abs(ec)) > 0.1:  # beyond any encoder's nonlinearity: the phase track followed noise
        es, ec = 0.0, 0.0
    th = r - es * np.sin(r) - ec * np.cos(r)
    ks = np.arange(1, harmonics + 1)
    x = np.column_stack([t, np.sin(np.outer(th, ks * nc)), np.cos(np.outer(th, ks * nc))])
    sol, *_ = np.linalg.lstsq(x, torque_nm, rcond=None)
    res = torque_nm - x @ sol
    s2 = float(res @ res) / (r.size - x.shape[1])
    cov = s2 * np.linalg.inv(x.T @ x)
    n0 = t.shape[1]
    # drive torque = -cogging: a sin x + b cos x of the torque is -(A sin(x + phi))
    a, b = -sol[n0:n0 + harmonics], -sol[n0 + harmonics:]
    va, vb = np.diag(cov)[n0:n0 + harmonics], np.diag(cov)[n0 + harmonics:]
    amp = np.hypot(a, b)
    u_amp = np.sqrt((a ** 2 * va + b ** 2 * vb) / np.maximum(amp ** 2, 1e-300))
    u_ph = np.sqrt((b ** 2 * va + a ** 2 * vb) / np.maximum(amp ** 4, 1e-300))
    if not amp[0] > DETECT_SIGMA * u_amp[0]:
        raise CalibrationError(f"cogging calibration: the fundamental ({nc} per revolution) is {amp[0]:.3g} N·m at "
                               f"the motor, under {DETECT_SIGMA:g} standard uncertainties ({u_amp[0]:.3g} N·m): no "
                               "cogging above the torque's noise", "not_detected")
    return CoggingFit(nc, tuple(float(v) for v in amp), tuple(float(v) for v in np.arctan2(b, a)),
                      tuple(float(v) for v in u_amp), tuple(float(v) for v in u_ph), es, ec,
                      float(np.sqrt(np.mean(res ** 2))))


def cogging_map(th: np.ndarray, cogging_nm: np.ndarray, bins: int) -> np.ndarray:
    """The binned map over one revolution of theta (NaN in a bin no sample fell in)."""
    b = (np.mod(th, 2 * math.pi) / (2 * math.pi) * bins).astype(np.int64) % bins
    n = np.bincount(b, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(b, cogging_nm, minlength=bins) / n


def velocity_ripple(v: np.ndarray, f_hz: float, harmonics: int) -> tuple[float, float]:
    """(rms in bands +-BAND_FRACTION about k f_hz, k = 1..harmonics; std of the whole) of a plateau's velocity,
    trimmed to whole periods of f_hz."""
    n = int(math.floor(v.size * f_hz / RATE_HZ) * RATE_HZ / f_hz)
    w = v[:n] - np.mean(v[:n])
    spec = np.fft.rfft(w)
    f = np.fft.rfftfreq(n, 1.0 / RATE_HZ)
    band = np.zeros(f.size, dtype=bool)
    for k in range(1, harmonics + 1):
        band |= np.abs(f - k * f_hz) <= BAND_FRACTION * f_hz
    power = 2.0 * np.abs(spec[band]) ** 2 / n ** 2
    return float(np.sqrt(power.sum())), float(np.std(w))


def _sweep(s: Signals, segs: list[Segment], c: dict) -> tuple[np.ndarray, np.ndarray]:
    """The two plateaus' masks, after ``check_moving``."""
    fwd, bwd = tagged(s, segs, "fwd"), tagged(s, segs, "bwd")
    v = c["speed_rad_s"]
    check_moving([s["velocity_rad_s"][fwd], s["velocity_rad_s"][bwd]], [v, -v], c["stuck_fraction"],
                 "cogging calibration")
    return fwd, bwd


def _ripple_figures(s: Signals, fwd: np.ndarray, bwd: np.ndarray, c: dict) -> dict[str, float]:
    both = [velocity_ripple(s["velocity_rad_s"][m], c["cogging_hz"], c["harmonics"]) for m in (fwd, bwd)]
    return {"cogging_velocity_ripple_rad_s": float(np.mean([b[0] for b in both])),
            "velocity_ripple_rms_rad_s": float(np.mean([b[1] for b in both]))}


def analyze_cogging_ripple(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    fwd, bwd = _sweep(s, segs, c)
    t = s["t_s"]
    return Outcome(_ripple_figures(s, fwd, bwd, c),
                   [Panel("velocity (rad/s)", [Series("velocity", t, s["velocity_rad_s"])])])


def figures_of(fit: CoggingFit, map_nm: np.ndarray, ripple: dict[str, float]) -> dict[str, Any]:
    return {"cogging_amplitude_nm": fit.amplitudes_nm[0], "cogging_amplitude_u_nm": fit.amplitudes_u_nm[0],
            "cogging_phase_rad": fit.phases_rad[0], "cogging_phase_u_rad": fit.phases_u_rad[0],
            "cogging_map_pp_nm": float(np.nanmax(map_nm) - np.nanmin(map_nm)),
            "cogging_residual_rms_nm": fit.residual_rms_nm,
            "cogging_encoder_error_rad": float(math.hypot(fit.encoder_error_sin_rad, fit.encoder_error_cos_rad)),
            "cogging_periods_per_rev": fit.periods_per_rev, **ripple}


def certificates_of(fit: CoggingFit, figures: dict[str, Any], c: dict) -> list[Certificate]:
    method = METHOD.format(revs=c["revolutions"], v=c["speed_rad_s"], fc=c["cogging_hz"],
                           e=figures["cogging_encoder_error_rad"], nc=fit.periods_per_rev)
    return [Certificate("cogging_harmonics_nm", list(fit.amplitudes_nm), list(fit.amplitudes_u_nm), "N·m", method,
                        limit_figure="cogging_amplitude_nm", uncertainty_figure="cogging_amplitude_u_nm"),
            Certificate("cogging_phases_rad", list(fit.phases_rad), list(fit.phases_u_rad), "rad", method,
                        uncertainty_figure="cogging_phase_u_rad"),
            Certificate("cogging_residual_rms_nm", fit.residual_rms_nm, 0.0, "N·m", method)]


def analyze_cogging_calibrate(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """The sweep's drive torque at the motor against the motor encoder into ``fit_cogging``; the map over one
    revolution; the velocity ripple of the sweep (before any compensation the routine's result brings)."""
    fwd, bwd = _sweep(s, segs, c)
    on = fwd | bwd
    r = s["motor_encoder_rad"][on]
    # what the drive did not reject moved the inertia: J dv/dt + drive torque is the disturbance the loop met
    accel = np.gradient(s["velocity_rad_s"], 1.0 / RATE_HZ)
    tau = (s["torque_nm"][on] - c["inertia_kg_m2"] * accel[on]) / c["ratio"]
    direction = bwd[on].astype(np.int64)
    fit = fit_cogging(r, tau, direction, c["periods_per_rev"], c["harmonics"])
    th = r - fit.encoder_error_sin_rad * np.sin(r) - fit.encoder_error_cos_rad * np.cos(r)
    t = _trend(r, direction)
    cog = -(tau - t @ np.linalg.lstsq(t, tau, rcond=None)[0])
    map_nm = cogging_map(th, cog, c["map_bins"])
    figures = figures_of(fit, map_nm, _ripple_figures(s, fwd, bwd, c))
    angle = (np.arange(c["map_bins"]) + 0.5) * 2 * math.pi / c["map_bins"]
    k = np.arange(1, c["harmonics"] + 1)
    series = np.sin(np.outer(angle, k * c["periods_per_rev"]) + np.array(fit.phases_rad)) @ np.array(fit.amplitudes_nm)
    panels = [Panel("velocity (rad/s)", [Series("velocity", s["t_s"], s["velocity_rad_s"])]),
              Panel("cogging at the motor (N·m) against the motor angle (rad)",
                    [Series("map", angle, map_nm, "."), Series("harmonics", angle, series)])]
    comp = fit.compensation()
    return Outcome(figures | {"cogging_map_nm": [float(x) for x in map_nm],
                              "cogging_compensation": {"periods_per_rev": comp.periods_per_rev,
                                                       "harmonics_nm": list(comp.harmonics_nm),
                                                       "phases_rad": list(comp.phases_rad),
                                                       "encoder_error_sin_rad": comp.encoder_error_sin_rad,
                                                       "encoder_error_cos_rad": comp.encoder_error_cos_rad}},
                   panels, fit=fit, certificates=certificates_of(fit, figures, c))
