"""Standard closed-loop experiments on the simulated joint: a step test and a frequency-response (Bode)
test, with the excitation sized to the joint so that the loop stays linear.

Excitation sizing (why the numbers below): a position sine of amplitude A at f needs a torque of about
J (2 pi f)^2 A; the chirp's amplitude is chosen so that this stays under ``TORQUE_FRACTION`` of the torque
limit at its highest frequency, where the closed loop's own roll-off is ignored (conservative). The
chirp is periodic (``PERIODS`` sweeps after one discarded settling sweep), and the H1 estimate uses one
sweep per Welch segment, so every segment sees the whole band.

The loop gain for the margins is measured by a second run: a periodic chirp current is added at the
drive's input (reference held), and L = -tau_c / (tau_c + d) is estimated by H1 from the total torque
(controller + disturbance) to minus the controller's torque. Static friction defeats this measurement
when the disturbance cannot break the joint loose (see ``_loop_gain_measurable``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actuator.analysis.frequency import (
    FrequencyResponse,
    bandwidth_hz,
    frequency_response,
    margins_above_crossover,
)
from actuator.analysis.identify import RigidBodyId, excitation_torque, identify_rigid_body
from actuator.analysis.loops import LOOPS
from actuator.analysis.step import StepMetrics, step_figures, step_metrics
from actuator.control.config import ControllerConfig
from actuator.control.reference import Chirp, Step, reference_rows
from actuator.errors import ConfigError
from actuator.params import JointParams
from actuator.signals import chirp_period_s
from actuator.simulation import Trace, simulate

TORQUE_FRACTION = 0.5
PERIODS = 4
RECORD_EVERY = 10  # 4 kHz rows at the 40 kHz model step


@dataclass(frozen=True)
class StepResult:
    trace: Trace
    metrics: StepMetrics

    loop: str = "position"

    def figures(self) -> dict:
        return step_figures(self.metrics, self.loop)


@dataclass(frozen=True)
class BodeResult:
    trace: Trace
    response: FrequencyResponse
    bandwidth_hz: float
    loop_response: FrequencyResponse | None = None
    gain_margin_db: float = math.nan
    phase_margin_deg: float = math.nan

    def figures(self) -> dict:
        return {"bandwidth_hz": self.bandwidth_hz, "gain_margin_db": self.gain_margin_db,
                "phase_margin_deg": self.phase_margin_deg}


def _inertia(params: JointParams) -> float:
    return params.load.inertia_kg_m2 + params.motor_side_inertia_kg_m2 * params.reducer.ratio ** 2


def _output(trace: Trace, loop: str) -> np.ndarray:
    return trace.velocity_rad_s if loop == "velocity" else trace.position_rad


def step_test(params: JointParams, cfg: ControllerConfig, loop: str = "position", amplitude: float = 0.1,
              duration_s: float | None = None, at_s: float = 0.05, seed: int = 0,
              record_every: int = RECORD_EVERY) -> StepResult:
    """A step of ``amplitude`` (rad, or rad/s for the velocity loop) at ``at_s``; metrics from the joint's
    output position (or velocity) against the reference."""
    if loop not in LOOPS:
        raise ConfigError(f"loop = {loop!r} is not allowed: choose one of {LOOPS}")
    if not (math.isfinite(amplitude) and amplitude != 0.0):
        raise ConfigError(f"amplitude = {amplitude!r} is not allowed: a finite, non-zero step")
    cfg = cfg.with_mode(loop)
    duration_s = duration_s or 1.0
    trace = simulate(params, duration_s=duration_s, controller=cfg, reference=Step(amplitude, at_s), seed=seed,
                     record_every=record_every)
    torque = trace.transmitted_torque_nm
    ref = trace.reference if loop != "velocity" else trace.velocity_reference_rad_s
    metrics = step_metrics(trace.t_s, _output(trace, loop), ref, torque=torque, current=trace.current_a)
    return StepResult(trace, metrics, loop)


def chirp_amplitude(params: JointParams, f1_hz: float, loop: str) -> float:
    """The largest chirp amplitude that keeps J w^2 A (J w v for velocity) under TORQUE_FRACTION of the limit."""
    w = 2 * math.pi * f1_hz
    torque = TORQUE_FRACTION * params.limits.torque_max_nm
    return torque / (_inertia(params) * w) if loop == "velocity" else torque / (_inertia(params) * w * w)


def _periodic_frf(u: np.ndarray, y: np.ndarray, seg: int) -> FrequencyResponse:
    return frequency_response(u[seg:], y[seg:], 1.0, nperseg=seg)


def bode_test(params: JointParams, cfg: ControllerConfig, loop: str = "position", f0_hz: float = 0.5,
              f1_hz: float = 100.0, amplitude: float | None = None, with_margins: bool = True,
              seed: int = 0) -> BodeResult:
    """Closed-loop frequency response (reference -> output) by a periodic chirp, its -3 dB bandwidth and,
    with ``with_margins``, the loop gain at the drive input with its gain and phase margins."""
    if loop not in ("position", "velocity"):
        raise ConfigError(f"loop = {loop!r} is not allowed for a Bode test: choose position or velocity")
    if not 0 < f0_hz < f1_hz:
        raise ConfigError(f"f0_hz = {f0_hz!r}, f1_hz = {f1_hz!r}: need 0 < f0_hz < f1_hz")
    cfg = cfg.with_mode(loop)
    period_s = chirp_period_s(f0_hz)
    amp = amplitude or chirp_amplitude(params, f1_hz, loop)
    dt_row = params.dt_s * RECORD_EVERY
    seg = round(period_s / dt_row)
    trace = simulate(params, duration_s=period_s * (PERIODS + 1), controller=cfg,
                     reference=Chirp(amp, f0_hz, f1_hz, period_s), seed=seed, record_every=RECORD_EVERY)
    ref = trace.reference if loop == "position" else trace.velocity_reference_rad_s
    fr = _scaled(_periodic_frf(ref, _output(trace, loop), seg), dt_row)
    result = BodeResult(trace, fr, bandwidth_hz(fr))
    if not with_margins:
        return result
    lfr = _loop_gain(params, cfg, f0_hz, f1_hz, period_s, seed)
    gm, pm = margins_above_crossover(lfr) if _loop_gain_measurable(lfr) else (math.nan, math.nan)
    return BodeResult(trace, fr, result.bandwidth_hz, lfr, gm, pm)


def _loop_gain_measurable(lfr: FrequencyResponse) -> bool:
    """A position cascade's loop gain is far above 0 dB at the bottom of the band (its double integrator);
    a measurement that is not (below 10 dB in the lowest coherent bins) saw the joint held by static
    friction, where the disturbance never moves it and L is not the linear loop's. Margins are then not
    measurable here and are reported as NaN rather than as wrong numbers."""
    ok = lfr.coherence > 0.9
    return bool(ok.any() and np.median(lfr.magnitude_db[ok][:5]) > 10.0)


def _scaled(fr: FrequencyResponse, dt_row: float) -> FrequencyResponse:
    """The response of ``_periodic_frf`` (computed at unit sample rate) on the real frequency axis."""
    return FrequencyResponse(fr.freq_hz / dt_row, fr.h, fr.magnitude_db, fr.phase_deg, fr.coherence)


def _loop_gain(params: JointParams, cfg: ControllerConfig, f0_hz: float, f1_hz: float, period_s: float,
               seed: int) -> FrequencyResponse:
    kt_n = params.torque_constant_nm_per_a * params.reducer.ratio
    n = round(period_s * (PERIODS + 1) / params.dt_s)
    amp_nm = 0.1 * params.limits.torque_max_nm
    d_nm = reference_rows(Chirp(amp_nm, f0_hz, f1_hz, period_s), n, params.dt_s, "torque")[:, 2]
    trace = simulate(params, duration_s=n * params.dt_s, controller=cfg, current_a=d_nm / kt_n, seed=seed,
                     record_every=RECORD_EVERY)
    tau_c = trace.torque_cmd_nm
    d_rows = d_nm[::RECORD_EVERY][: tau_c.size]
    tau_c = tau_c[: d_rows.size]
    seg = round(period_s / (params.dt_s * RECORD_EVERY))
    return _scaled(_periodic_frf(tau_c + d_rows, -tau_c, seg), params.dt_s * RECORD_EVERY)


def identification_test(params: JointParams, duration_s: float = 20.0, seed: int = 0) -> RigidBodyId:
    """Open-loop identification of the rigid body (inertia, Coulomb and viscous friction, m g l): a
    Schroeder multisine torque at twice the output breakaway torque (so the joint slides most of the time),
    0.2-1.5 Hz, torque taken as Kt N i_q and position from the output encoder. Speeds where the kinematic
    error rings the flexspline (above 0.8 sqrt(k1 / J_L) / 2N, twice per motor turn) are left out."""
    r = params.reducer
    peak_nm = max(2.0 * r.static_friction_nm * r.ratio, 0.05 * params.limits.torque_max_nm)
    torque = excitation_torque(duration_s, params.dt_s, peak_nm, 0.2, 1.5, seed=seed)
    trace = simulate(params, duration_s=duration_s, torque_nm=torque, seed=seed, record_every=RECORD_EVERY)
    ring_speed = 0.8 * math.sqrt(r.k1_nm_per_rad / params.load.inertia_kg_m2) / (2.0 * r.ratio)
    return identify_rigid_body(trace.t_s, params.torque_constant_nm_per_a * r.ratio * trace.iq_a,
                               trace.output_encoder_rad, max_speed_rad_s=ring_speed)
