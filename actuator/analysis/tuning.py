"""Auto-tuning math of the position cascade: the model-based design (on the linear model) and the relay
feedback experiment (Åström-Hägglund), the model-free alternative. The tuners that verify and correct a design by
the step and bode protocols on the simulated joint (``tune_model``, ``tune_relay``) are experiments, in
``firmware_iface.experiments.tune``; this module gives them the design, the next gain and the result's type.

Model-based design for a requested position bandwidth f_b and damping zeta (``tune_model`` first
identifies the rigid body on the simulated joint, the ``identify`` protocol of ``firmware_iface.experiments``, and
rescales the model's inertia and viscous friction to it):
* velocity PI by pole placement on the inertia J a torque command moves (output side: the rigid body and the
  back-EMF's inertia, ``TwoMass.apparent_inertia_kg_m2``): J s² + kp s + ki with natural
  frequency w_v = ``velocity_ratio`` 2 pi f_b and damping zeta: kp = 2 zeta J w_v, ki = J w_v²;
* the velocity estimator's bandwidth at ``estimator_ratio`` w_v (it must not dominate the inner loop); where the
  loop crosses unity a second time above the reducer's resonance (only the motor side's inertia J_m answers
  there, so the loop gain rises by J / J_m, and crosses at kp / J_m), at ``estimator_ratio`` w_v J / J_m: on a
  quasi-direct drive, whose load is 4 J_m, an estimator at 10 w_v sat on that crossover and took the phase margin
  below zero at any request;
* the position P gain solved (brentq) so that the linear two-mass model of ``actuator.analysis.linear``
  (delays, current loop and estimator included) has its -3 dB point at f_b;
* verification: a periodic-chirp Bode test and a small step in simulation; if the measured bandwidth is
  off by more than ``tolerance`` the position gain is scaled by the ratio (bandwidth is close to
  proportional to it) and the test repeated, at most ``max_iterations`` times. The result carries both
  the predicted and the measured figures, and is never returned unverified.

Relay (Åström & Hägglund 1984): the position controller is replaced by a relay of amplitude h (a velocity
reference, with hysteresis eps) around the closed velocity loop; the limit cycle's amplitude a and period
T_u give the ultimate gain K_u = 4 h / (pi sqrt(a² - eps²)) and w_u = 2 pi / T_u. The position gain is
then K_u / A_m for a gain margin A_m (default 4, 12 dB: the small limit cycle runs in the friction-damped
regime, where the simulated joint tolerates about twice the linear model's ultimate gain, and A_m = 2.5
left the knee at 29 % overshoot). It needs no model, and no bandwidth can be requested: the bandwidth it
achieves is measured and reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import brentq

from actuator.analysis.frequency import FrequencyResponse
from actuator.analysis.identify import RigidBodyId
from actuator.analysis.linear import Prediction, TwoMass, loop_response, predict
from actuator.control.config import GAINS_DIR, ControllerConfig, load_gains
from actuator.errors import ConfigError
from actuator.params import JointParams
from actuator.simulation import simulate


@dataclass(frozen=True)
class TuneResult:
    config: ControllerConfig
    requested_bandwidth_hz: float
    predicted: Prediction | None
    measured_bandwidth_hz: float = math.nan
    # the verification's figures (the step protocol's, the loop gain's margins) and the measured closed loop
    measured: dict | None = None
    response: FrequencyResponse | None = None
    iterations: int = 0
    method: str = "model"
    notes: list[str] = field(default_factory=list)
    identified: RigidBodyId | None = None

    def figures(self) -> dict:
        cfg = self.config
        out = {"method": self.method, "loop": "position", "requested_bandwidth_hz": self.requested_bandwidth_hz,
               "gains": {"position": {"kp": cfg.position.kp, "ki": cfg.position.ki, "kd": cfg.position.kd},
                         "velocity": {"kp": cfg.velocity.kp, "ki": cfg.velocity.ki},
                         "estimator_bandwidth_hz": cfg.estimator_bandwidth_hz},
               "achieved_bandwidth_hz": self.measured_bandwidth_hz, "iterations": self.iterations}
        if self.measured is not None:
            out["overshoot_pct"] = self.measured.get("overshoot_pct", math.nan)
            out["measured"] = {**self.measured, "bandwidth_hz": self.measured_bandwidth_hz}
        if self.predicted is not None:
            pr = self.predicted
            out["predicted"] = {"bandwidth_hz": pr.bandwidth_hz, "overshoot_pct": pr.step.overshoot_pct,
                                "rise_time_s": pr.step.rise_time_s, "settling_time_s": pr.step.settling_time_s,
                                "gain_margin_db": pr.gain_margin_db, "phase_margin_deg": pr.phase_margin_deg}
        if self.identified is not None:
            ident = self.identified
            out["identified"] = {name: {"value": e.value, "std": e.std} for name, e in (
                ("inertia_kg_m2", ident.inertia_kg_m2), ("coulomb_nm", ident.coulomb_nm),
                ("viscous_nm_s_per_rad", ident.viscous_nm_s_per_rad))}
        out["notes"] = list(self.notes)
        return out


def _check(name: str, value: float, lo: float, hi: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and lo < value <= hi):
        raise ConfigError(f"{name} = {value!r} is out of range: allowed ({lo:g}, {hi:g}]")
    return float(value)


def _velocity_design(model: TwoMass, cfg: ControllerConfig, w_v: float, zeta: float,
                     estimator_ratio: float) -> ControllerConfig:
    j = model.apparent_inertia_kg_m2
    vel = replace(cfg.velocity, kp=2 * zeta * j * w_v, ki=j * w_v * w_v, kd=0.0)
    # above the resonance only the motor side answers: the loop gain rises by J / J_m there, and crosses unity
    # again at kp / J_m when that lies above the resonance (J_m without the back-EMF's, faded by then)
    rises = 2 * zeta * w_v * j / model.motor_inertia_kg_m2 > 2 * math.pi * model.resonance_hz
    crossover = w_v * j / model.motor_inertia_kg_m2 if rises else w_v
    est_hz = min(estimator_ratio * crossover / (2 * math.pi), 0.15 * cfg.velocity_loop_rate_hz)
    return replace(cfg, velocity=vel, estimator="observer", estimator_bandwidth_hz=est_hz)


def with_position_gain(cfg: ControllerConfig, kp: float) -> ControllerConfig:
    return replace(cfg, position=replace(cfg.position, kp=kp, ki=0.0, kd=0.0))


def _position_gain_for(model: TwoMass, cfg: ControllerConfig, bandwidth_hz: float) -> float:
    """The position P gain for which the model's closed loop is -3 dB at ``bandwidth_hz``."""
    def gap(kp: float) -> float:
        t = loop_response(model, with_position_gain(cfg, kp), np.array([bandwidth_hz])).closed[0]
        return 20 * math.log10(abs(t)) + 3.0103
    w = 2 * math.pi * bandwidth_hz
    lo, hi = 0.05 * w, 5.0 * w
    if gap(lo) > 0 or gap(hi) < 0:
        raise ConfigError(f"bandwidth_hz = {bandwidth_hz!r} cannot be reached by the position gain with this "
                          "velocity loop: lower the bandwidth or raise velocity_ratio")
    return float(brentq(gap, lo, hi, xtol=1e-6 * w))


VELOCITY_RATIOS = (2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
# a design below these predicted margins is refused rather than returned (the model leaves out friction,
# which adds damping, and the catalogue's stiffening, which raises the resonance: both make it pessimistic)
MIN_GAIN_MARGIN_DB = 3.0
MIN_PHASE_MARGIN_DEG = 20.0


def _robustness(pr: Prediction) -> float:
    """A design's score: its worst margin relative to 6 dB and 45 deg, minus penalties for a resonance
    peak above 3 dB or a predicted overshoot above 5 %."""
    gm = pr.gain_margin_db if math.isfinite(pr.gain_margin_db) else 20.0
    pm = pr.phase_margin_deg if math.isfinite(pr.phase_margin_deg) else 90.0
    score = min(gm / 6.0, pm / 45.0)
    return score - max(pr.peak_db - 3.0, 0.0) - max(pr.step.overshoot_pct - 5.0, 0.0) / 5.0


def design_cascade(params: JointParams, bandwidth_hz: float | None = None, *, zeta: float = 1.0,
                   velocity_ratio: float | None = None, estimator_ratio: float = 10.0,
                   base: ControllerConfig | None = None, model: TwoMass | None = None) -> TuneResult:
    """Gains from the linear model only (no simulation): the design step of ``tune_model``.

    Without ``velocity_ratio`` every ratio of ``VELOCITY_RATIOS`` is designed and the most robust one
    kept (``_robustness``). The default bandwidth is a tenth of the reducer resonance's. ``model`` (default:
    from the parameters) is the plant designed on, e.g. one rescaled to an identification.
    """
    model = model or TwoMass.from_params(params)
    f_b = round(0.1 * model.resonance_hz, 1) if bandwidth_hz is None else bandwidth_hz  # 0 is refused, not defaulted
    _check("bandwidth_hz", f_b, 0.0, 0.5 * model.resonance_hz)
    _check("zeta", zeta, 0.0, 3.0)
    mgl = params.load.mass_kg * params.load.gravity_m_s2 * params.load.com_distance_m
    start = (base or ControllerConfig(gravity_feedforward_nm=mgl)).with_mode("position")
    best = None
    for ratio in (velocity_ratio,) if velocity_ratio else VELOCITY_RATIOS:
        cfg = _velocity_design(model, start, ratio * 2 * math.pi * f_b, zeta, estimator_ratio)
        try:
            cfg = with_position_gain(cfg, _position_gain_for(model, cfg, f_b))
        except ConfigError:
            if velocity_ratio:
                raise
            continue
        pr = predict(model, cfg)
        if not abs(pr.bandwidth_hz / f_b - 1.0) <= 0.02:
            continue  # |T| dips below -3 dB before f_b: the request is met only at a second crossing
        if not (pr.gain_margin_db >= MIN_GAIN_MARGIN_DB and pr.phase_margin_deg >= MIN_PHASE_MARGIN_DEG):
            continue
        if best is None or _robustness(pr) > best[0]:
            best = (_robustness(pr), cfg, pr, ratio)
    if best is None:
        raise ConfigError(f"bandwidth_hz = {f_b!r} cannot be reached with any velocity-loop ratio {VELOCITY_RATIOS} "
                          f"at gain margin >= {MIN_GAIN_MARGIN_DB:g} dB and phase margin >= "
                          f"{MIN_PHASE_MARGIN_DEG:g} deg: request a lower bandwidth")
    _, cfg, pr, ratio = best
    return TuneResult(cfg, f_b, pr, notes=[f"velocity loop at {ratio:g} x the position bandwidth (zeta {zeta:g})"])


def tune_band_hz(bandwidth_hz: float) -> tuple[float, float]:
    """The chirp band that measures a tuned loop of ``bandwidth_hz``, on the model and on a joint alike: from a
    fifth of it (at least 0.5 Hz: the chirp's period is two cycles of f0) to three times it (at most 250 Hz, a
    quarter of the bus's 1 kHz set-point rate)."""
    return max(0.5, 0.2 * bandwidth_hz), min(250.0, 3.0 * bandwidth_hz)


def relay_test(params: JointParams, cfg: ControllerConfig, relay_rad_s: float, hysteresis_rad: float = 1e-5,
               duration_s: float = 3.0) -> tuple[float, float]:
    """(K_u, f_u) from the relay's limit cycle in closed loop with the simulated joint, measured over the
    last half of the record (the cycle settled): a from the position's peak-to-peak, T_u from the mean
    spacing of the relay's switches."""
    cfg = replace(cfg, mode="relay", relay=replace(cfg.relay, amplitude_rad_s=relay_rad_s,
                                                   hysteresis_rad=hysteresis_rad))
    trace = simulate(params, duration_s=duration_s, controller=cfg, record_every=4)
    half = trace.t_s >= 0.5 * duration_s
    q = trace.position_rad[half]
    v_ref = trace.velocity_reference_rad_s[half]
    switches = trace.t_s[half][1:][np.diff(np.sign(v_ref)) != 0]
    if switches.size < 4:
        raise ConfigError(f"relay test: no sustained limit cycle in {duration_s:g} s "
                          f"({switches.size} switches); raise relay_rad_s = {relay_rad_s!r}")
    a = 0.5 * (q.max() - q.min())
    t_u = 2.0 * float(np.mean(np.diff(switches)))
    ku = 4.0 * relay_rad_s / (math.pi * math.sqrt(max(a * a - hysteresis_rad ** 2, 1e-30)))
    return ku, 1.0 / t_u


def next_position_gain(history: list[tuple[float, float]], target_hz: float) -> float:
    """The next position gain from ``history`` (log kp, log measured bandwidth): proportional at first, then a
    secant on log(bandwidth) over log(kp) (the measured bandwidth grows more slowly than the gain when friction
    stiffens the small-signal response); steps are bounded to a factor of 3."""
    log_kp, log_bw = history[-1]
    slope = 1.0
    if len(history) >= 2 and history[-1][0] != history[-2][0]:
        slope = (history[-1][1] - history[-2][1]) / (history[-1][0] - history[-2][0])
        slope = min(max(slope, 0.2), 2.0)
    step = (math.log(target_hz) - log_bw) / slope
    return math.exp(log_kp + min(max(step, -math.log(3.0)), math.log(3.0)))


def check_gain_margin(gain_margin: float) -> float:
    return _check("gain_margin", gain_margin, 1.0, 10.0)


def default_controller(params: JointParams | str) -> ControllerConfig:
    """The default gains of a preset (``seeds/gains/NAME.toml``); a joint without one gets a model-based
    design (``design_cascade``)."""
    name = params if isinstance(params, str) else params.name
    path = GAINS_DIR / f"{name}.toml"
    if path.exists():
        return load_gains(path)
    if isinstance(params, str):
        raise ConfigError(f"no default gains for {name!r}: expected {path}")
    return design_cascade(params).config
