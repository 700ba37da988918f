"""The linear model of a joint under the cascade, in the frequency domain: what model-based tuning designs
on and what it predicts.

Plant: two inertias, output-referred (motor side J1 = J_m N², load J2), joined by the flexspline's small-signal
stiffness and damping c, with input viscous friction (b_in N²) and load damping. Gravity (cancelled by the
feedforward) is left out. The stiffness is k1 at no load; at an operating torque it is the small-signal stiffness
there (``small_signal_stiffness_nm_per_rad``): the catalogue curve's slope plus what the Dahl hysteresis adds to
small motions about a loaded twist, up to k1 more; where the twist travels (in motion the kinematic error sweeps
it), that stiffness averaged over the travel (the knee's 1.3e-5 rad rms at no load: +6 % on its resonance). Coulomb
friction (F_c N at the output) is left out too, unless the response is asked at a reference amplitude A: then it
enters as its describing function, an equivalent damping 4 F_c N / (pi V) on the motor side, V the motor side's
velocity amplitude at that frequency in the closed loop (Gelb & Vander Velde's sinusoidal-input describing function
of an ideal relay), solved per frequency (V depends on the damping it sets). At a chirp's small amplitude this is
what makes the measured bandwidth fall short of the linear one; where the loop's torque cannot reach 4 F_c N / pi
the joint sticks and the response is taken as nil.

Two drive effects complete the plant (without them the simulated resonance was 4-12 % off the quasi-direct
drive's): the current loop fighting the back-EMF weighs on the motor side as an inertia J_e(s) (``back_emf_inertia``,
21 % of the knee's motor side at low frequency, fading past R / L), and the mesh loss, a Coulomb term proportional
to the flexspline torque, makes the motor carry m = 1 / eta of that torque when it drives the load and 2 - 1 / eta
when the load drives it (1 with no operating torque):

    [(J1 + J_e(s)) s² + b1 s + m (c s + k),  -m (c s + k)] [θm]   [τ]
    [-(c s + k),           J2 s² + (c + b2) s + k] [θL] = [0]

Loop elements at s = jw, with exact delays (no Padé): the drive's current loop as a first-order lag at
its bandwidth; the torque held for a velocity period (ZOH, T_v / 2) and two model steps of encoder and
computation latency; the position sample held for a position period (T_p / 2); the velocity observer
ki / (s² + kp s + ki) (the estimate is the observer's integrator), or the first-order filter of the
filtered difference; the PIDs
C_r = kp b + ki / s and C_y = kp + ki / s + kd s / (1 + s T_f) on reference and measurement.

Closed loops (output θL, reference r):
    τ = A (C_vr D_p (C_pr r - C_py θL) - C_vy O s θm)
    T_pos = G_L A C_vr D_p C_pr / (1 + A (C_vr D_p C_py G_L + C_vy O s G_m))
    T_vel = s G_L A C_vr / (1 + A C_vy O s G_m)        (output: the load velocity)
and L, the loop gain broken at the torque input, is the term added to 1 in the denominator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from actuator.analysis.frequency import FrequencyResponse, bandwidth_hz, margins_above_crossover
from actuator.analysis.step import StepMetrics, step_metrics
from actuator.control.config import ControllerConfig, LoopGains
from actuator.errors import ConfigError
from actuator.model.layout import compile_params, current_loop_design
from actuator.model.mechanics import dahl_virgin, spring_torque
from actuator.params import JointParams, ReducerParams


def operating_twist_rad(p: JointParams, torque_nm: float) -> float:
    """The twist at which the flexspline carries ``torque_nm`` in motion: K(phi) - D(phi) = torque_nm.

    The model's flexspline torque is K(phi) - D(phi) + tau_h (actuator/model/mechanics.py). Loaded from rest,
    tau_h = D(phi) and the twist is the catalogue's. In motion the kinematic error and the torque ripple cycle the
    Dahl state, whose memory fades with the twist it travels (as exp(-sigma |dphi| / tau_hmax)), so its mean settles
    on zero and the twist on K - D = torque. On the simulated wrist sliding at 0.0105 N·m (its load damping) this
    gives 1.29e-5 rad where 1.26e-5 was measured and the catalogue curve alone 1.05e-6.
    """
    return _operating_twist(compile_params(p), p, torque_nm)


def _operating_twist(v: np.ndarray, p: JointParams, torque_nm: float) -> float:
    """``operating_twist_rad`` on the compiled parameters ``v`` of ``p``."""
    target = abs(torque_nm)
    if target == 0.0:
        return 0.0

    def excess(phi: float) -> float:
        return spring_torque(v, phi) - dahl_virgin(v, phi) - target

    hi = (target + p.reducer.hysteresis_torque_nm) / p.reducer.k1_nm_per_rad
    while excess(hi) < 0.0:  # K - D >= K1 phi - tau_hmax on the piecewise curve; the cubic may need more
        hi *= 2.0
    return math.copysign(brentq(excess, 0.0, hi, xtol=1e-15, rtol=1e-12), torque_nm)


TRAVEL_POINTS = 256  # phases of the twist's travel averaged over: a knee of the curve costs O(1 / n), 0.02 %


def small_signal_stiffness_nm_per_rad(p: JointParams, torque_nm: float = 0.0, twist_rms_rad: float = 0.0) -> float:
    """The flexspline's stiffness to small motions about the twist carrying ``torque_nm`` in motion.

    d/dphi of K - D + tau_h, with tau_h's slope averaged over a small symmetric cycle: sigma (1 - tau_h / tau_hmax)
    one way, sigma (1 + tau_h / tau_hmax) back, so sigma whatever tau_h is. That is K'(phi0) + sigma - D'(phi0) =
    K'(phi0) + sigma (1 - exp(-sigma |phi0| / tau_hmax)): k1 at no load, and the catalogue slope plus sigma once the
    twist is well past tau_hmax / sigma (8e-5 rad on the shipped presets). No load gives exactly the preset's k1.

    ``twist_rms_rad``: the twist's travel about phi0 (in motion the kinematic error and the torque ripple sweep it),
    taken as a sinusoid of that rms. Small motions about each point of the travel see the slope above at that point,
    so the stiffness is its mean over the travel. Near zero twist the slope climbs from k1 to k1 + sigma within
    tau_hmax / sigma, so a travel of a fraction of that width stiffens the joint: the resonance about a sliding state
    follows this within 1.3 % at the model check's excitation and 4.2 % from a tenth to three times it, where k1
    alone is 6 % low on the knee (tests/actuator/test_small_signal.py). It assumes small motions reverse the Dahl
    state faster than the travel sweeps it, which holds while the travel is a fraction of that width (knee and wrist:
    a fifth). A travel of half the width saturates the Dahl state along its sweep and the slope added falls short of
    sigma: with a 0.1 N·m Dahl term (width 2e-5 rad) the quasi-direct drive's resonance in motion is 7-9 % below this
    model's, and its model check fails (test_catalogue.py).
    """
    r = p.reducer
    if not (math.isfinite(twist_rms_rad) and twist_rms_rad >= 0.0):
        raise ConfigError(f"twist_rms_rad = {twist_rms_rad!r}: the twist's travel must be finite and >= 0 rad")
    if torque_nm == 0.0 and twist_rms_rad == 0.0:
        return r.k1_nm_per_rad
    v = compile_params(p)
    phi0 = _operating_twist(v, p, torque_nm)
    if twist_rms_rad == 0.0:
        return _point_stiffness(v, r, abs(phi0))
    phase = np.linspace(0.0, 2.0 * math.pi, TRAVEL_POINTS, endpoint=False)
    travel = phi0 + math.sqrt(2.0) * twist_rms_rad * np.sin(phase)
    return float(np.mean([_point_stiffness(v, r, abs(phi)) for phi in travel]))


def _point_stiffness(v: np.ndarray, r: ReducerParams, a: float) -> float:
    """K'(a) + sigma (1 - exp(-sigma a / tau_hmax)) at the twist magnitude ``a`` (the law is odd in the twist)."""
    h = 1e-9 * max(a, 1e-6)  # forward (loading) difference: exact on a piecewise-linear curve away from its knees
    slope = (spring_torque(v, a + h) - spring_torque(v, a)) / h
    if r.hysteresis_torque_nm <= 0.0:
        return slope
    sigma = r.hysteresis_stiffness_nm_per_rad
    return slope + sigma * (1.0 - math.exp(-sigma * a / r.hysteresis_torque_nm))


@dataclass(frozen=True)
class TwoMass:
    """Output-referred linear plant of a joint."""

    motor_inertia_kg_m2: float
    load_inertia_kg_m2: float
    stiffness_nm_per_rad: float
    flex_damping_nm_s_per_rad: float
    motor_viscous_nm_s_per_rad: float
    load_viscous_nm_s_per_rad: float
    current_bandwidth_hz: float
    model_step_s: float
    coulomb_nm: float = 0.0  # output-referred, on the motor side: for the describing function only
    # the current loop's answer to the back-EMF, output-referred: an inertia at low frequency (``back_emf_inertia``)
    emf_inertia_kg_m2: float = 0.0
    emf_corners_rad_s: tuple[float, float] = (math.inf, math.inf)  # R / L and w_c, where it turns to damping
    mesh_coupling: float = 1.0  # the motor's share of the flexspline torque: 1 / eta driving, 2 - 1 / eta driven

    @classmethod
    def from_params(cls, p: JointParams, operating_torque_nm: float = 0.0, twist_rms_rad: float = 0.0) -> TwoMass:
        """The plant of ``p`` about the twist carrying ``operating_torque_nm`` in motion (0: its k1): > 0 the motor
        drives the load, < 0 the load drives the motor (the mesh loss then couples them differently); the stiffness
        averaged over a twist travelling ``twist_rms_rad`` about it (``small_signal_stiffness_nm_per_rad``)."""
        r = p.reducer
        n2 = r.ratio ** 2
        emf_j, corners = back_emf_inertia(p)
        if operating_torque_nm > 0.0:
            mesh = 1.0 / r.efficiency
        elif operating_torque_nm < 0.0:
            mesh = 2.0 - 1.0 / r.efficiency
        else:  # at rest, or loaded by nothing: the mesh loss has no torque to scale
            mesh = 1.0
        return cls(p.motor_side_inertia_kg_m2 * n2, p.load.inertia_kg_m2,
                   small_signal_stiffness_nm_per_rad(p, operating_torque_nm, twist_rms_rad),
                   r.flexspline_damping_nm_s_per_rad, r.viscous_friction_nm_s_per_rad * n2,
                   p.load.damping_nm_s_per_rad, p.drive.current_loop_bandwidth_hz, p.dt_s,
                   r.coulomb_friction_nm * r.ratio, emf_j * n2, corners, mesh)

    def with_rigid_body(self, inertia_kg_m2: float, viscous_nm_s_per_rad: float,
                        coulomb_nm: float | None = None) -> TwoMass:
        """The model rescaled to an identified total inertia and viscous friction (the split between motor
        and load side, which a rigid-body identification cannot see, is kept), and its Coulomb friction. The
        identification weighs the drive's measured current, so the back-EMF's inertia is not in its figure and is
        kept as it is."""
        from dataclasses import replace

        j = inertia_kg_m2 / self.total_inertia_kg_m2
        b_total = self.motor_viscous_nm_s_per_rad + self.load_viscous_nm_s_per_rad
        b = viscous_nm_s_per_rad / b_total if b_total > 0 else 1.0
        return replace(self, motor_inertia_kg_m2=self.motor_inertia_kg_m2 * j,
                       load_inertia_kg_m2=self.load_inertia_kg_m2 * j,
                       motor_viscous_nm_s_per_rad=self.motor_viscous_nm_s_per_rad * b,
                       load_viscous_nm_s_per_rad=self.load_viscous_nm_s_per_rad * b,
                       coulomb_nm=self.coulomb_nm if coulomb_nm is None else coulomb_nm)

    @property
    def total_inertia_kg_m2(self) -> float:
        """The rigid body's mechanical inertia: what an identification from the measured current finds."""
        return self.motor_inertia_kg_m2 + self.load_inertia_kg_m2

    @property
    def apparent_inertia_kg_m2(self) -> float:
        """What a torque command moves at low frequency: the rigid body and the back-EMF's inertia."""
        return self.total_inertia_kg_m2 + self.emf_inertia_kg_m2

    def emf_inertia_at(self, s: np.ndarray | complex) -> np.ndarray | complex:
        """The back-EMF's motor-side term over s² at ``s``: the inertia at low frequency, damping past R / L."""
        c1, c2 = self.emf_corners_rad_s
        return self.emf_inertia_kg_m2 / ((1.0 + s / c1) * (1.0 + s / c2))

    @property
    def resonance_hz(self) -> float:
        """The undamped resonance sqrt(k (m / J1' + 1 / J2)), J1' the motor side with the back-EMF's inertia at that
        frequency (its real part; solved by fixed point, it moves slowly with the frequency) and m the mesh's
        coupling."""
        k, m, j2 = self.stiffness_nm_per_rad, self.mesh_coupling, self.load_inertia_kg_m2
        w = math.sqrt(k * (m / (self.motor_inertia_kg_m2 + self.emf_inertia_kg_m2) + 1.0 / j2))
        for _ in range(100):
            j1 = self.motor_inertia_kg_m2 + float(np.real(self.emf_inertia_at(1j * w)))
            w_next = math.sqrt(k * (m / j1 + 1.0 / j2))
            if abs(w_next - w) <= 1e-13 * w:
                break
            w = w_next
        return w_next / (2 * math.pi)

    def plant(self, s: np.ndarray, motor_damping: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(θm / τ, θL / τ) at the complex frequencies ``s``, with ``motor_damping`` added on the motor side.

        The motor's row carries the flexspline's torque times the mesh coupling m; the load's row carries it whole.
        """
        k, c, m = self.stiffness_nm_per_rad, self.flex_damping_nm_s_per_rad, self.mesh_coupling
        flex = c * s + k
        a11 = ((self.motor_inertia_kg_m2 + self.emf_inertia_at(s)) * s * s
               + (self.motor_viscous_nm_s_per_rad + motor_damping) * s + m * flex)
        a22 = self.load_inertia_kg_m2 * s * s + self.load_viscous_nm_s_per_rad * s + flex
        det = a11 * a22 - m * flex * flex
        return a22 / det, flex / det


def back_emf_inertia(p: JointParams) -> tuple[float, tuple[float, float]]:
    """(J_e, (R / L, w_c)): the motor-side inertia the drive's current loop adds by fighting the back-EMF, and the
    corners above which it fades.

    The q-axis loop (PI kp = L w_c, ki = R w_c, actuator/model/electrics.py) sees the back-EMF p lambda w as a
    disturbance: i_q = -p lambda w s / ((L s + R)(s + w_c)), a torque -Kt p lambda s w / (R w_c) at low frequency
    (Kt = 1.5 p lambda): an inertia J_e = Kt p lambda / (R w_c). 21 % of the knee's rotor and wave generator, 6 % of
    the wrist's, 13 % of the quasi-direct drive's. A drive with back-EMF feedforward would not have it; this one
    has none."""
    m = p.motor
    wc = current_loop_design(m.phase_resistance_ohm, m.q_inductance_h, p.dt_s, p.drive.current_loop_bandwidth_hz)
    ke = m.pole_pairs * m.flux_linkage_wb
    return 1.5 * ke * ke / (m.phase_resistance_ohm * wc), (m.phase_resistance_ohm / m.q_inductance_h, wc)


def _pid(g: LoopGains, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C_r, C_y) of a PID with set-point weight and filtered derivative."""
    integ = g.ki / s
    deriv = 0.0
    if g.kd > 0.0:
        tf = g.kd / (g.kp * g.derivative_filter_n) if g.kp > 0 else 0.0
        deriv = g.kd * s / (1.0 + s * tf)
    return g.kp * g.setpoint_weight + integ, g.kp + integ + deriv


@dataclass(frozen=True)
class LoopResponse:
    freq_hz: np.ndarray
    closed: np.ndarray  # T(jw)
    loop: np.ndarray    # L(jw) at the torque input


def loop_response(model: TwoMass, cfg: ControllerConfig, freq_hz: np.ndarray, loop: str = "position",
                  amplitude: float | None = None) -> LoopResponse:
    """T and L of the cascade (``loop`` position or velocity) on ``model`` at ``freq_hz``; at a reference
    ``amplitude`` (rad, or rad/s for the velocity loop) with the Coulomb friction's describing function."""
    f = np.asarray(freq_hz, dtype=float)
    s = 2j * math.pi * f
    extra = 0.0
    if amplitude is not None and model.coulomb_nm > 0.0:
        extra = _friction_damping(model, cfg, s, loop, abs(amplitude))
    closed, lgain, _ = _cascade(model, cfg, s, loop, extra)
    if np.ndim(extra):
        closed = np.where(np.isinf(extra), 0.0, closed)  # stuck: the loop's torque never breaks the joint free
    return LoopResponse(f, closed, lgain)


def _cascade(model: TwoMass, cfg: ControllerConfig, s: np.ndarray, loop: str,
             motor_damping: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, L, T_m): the closed loop to the output, the loop gain at the torque input, and the closed loop to the
    motor side's velocity per unit reference (the describing function's V / A)."""
    dt = model.model_step_s
    t_v = 1.0 / cfg.velocity_loop_rate_hz
    t_p = 1.0 / cfg.position_loop_rate_hz
    g_m, g_l = model.plant(s, np.where(np.isinf(motor_damping), 1e30, motor_damping))
    a = np.exp(-s * (0.5 * t_v + 2 * dt)) / (1.0 + s / (2 * math.pi * model.current_bandwidth_hz))
    w_o = 2 * math.pi * cfg.estimator_bandwidth_hz
    observer = cfg.estimator == "observer"
    obs = w_o * w_o / (s * s + 2 * w_o * s + w_o * w_o) if observer else 1.0 / (1.0 + s / w_o)
    cvr, cvy = _pid(cfg.velocity, s)
    inner = cvy * obs * s * g_m
    if loop == "velocity":
        lgain = a * inner
        drive = a * cvr / (1.0 + lgain)  # torque per unit velocity reference
    else:
        d_p = np.exp(-s * (0.5 * t_p + dt))
        cpr, cpy = _pid(cfg.position, s)
        lgain = a * (cvr * d_p * cpy * g_l + inner)
        drive = a * cvr * d_p * cpr / (1.0 + lgain)  # torque per unit position reference
    closed = (s * g_l if loop == "velocity" else g_l) * drive
    return closed, lgain, s * g_m * drive


def _friction_damping(model: TwoMass, cfg: ControllerConfig, s: np.ndarray, loop: str,
                      amplitude: float) -> np.ndarray:
    """Per frequency, the damping b with b V(b) = 4 F_c / pi, V(b) = |T_m(b)| A (bisection on log b: b V grows
    with b towards the loop's torque amplitude); inf where even that torque cannot move the joint."""
    target = 4.0 * model.coulomb_nm / math.pi
    lo = np.full(s.shape, -6.0)
    hi = np.full(s.shape, 9.0)

    def excess(log_b: np.ndarray) -> np.ndarray:
        b = 10.0 ** log_b
        return b * np.abs(_cascade(model, cfg, s, loop, b)[2]) * amplitude - target

    stuck = excess(hi) < 0.0
    for _ in range(48):  # 15 decades to 1e-13 of a decade
        mid = 0.5 * (lo + hi)
        up = excess(mid) < 0.0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return np.where(stuck, np.inf, 10.0 ** hi)


def _as_frf(f: np.ndarray, h: np.ndarray) -> FrequencyResponse:
    return FrequencyResponse(freq_hz=f, h=h, magnitude_db=20 * np.log10(np.maximum(np.abs(h), 1e-300)),
                             phase_deg=np.degrees(np.unwrap(np.angle(h))), coherence=np.ones(f.size))


@dataclass(frozen=True)
class Prediction:
    bandwidth_hz: float
    gain_margin_db: float
    phase_margin_deg: float
    step: StepMetrics
    peak_db: float


def predict(model: TwoMass, cfg: ControllerConfig, loop: str = "position", f_max_hz: float = 2000.0,
            amplitude: float | None = None) -> Prediction:
    """Bandwidth, margins and the small-step response the linear model predicts for ``cfg``; with a reference
    ``amplitude``, the bandwidth of a test at that amplitude (Coulomb friction by its describing function; the
    margins and the step stay the linear model's)."""
    f = np.geomspace(0.05, f_max_hz, 3000)
    r = loop_response(model, cfg, f, loop)
    gm, pm = margins_above_crossover(_as_frf(f, r.loop))
    closed = r.closed if amplitude is None else loop_response(model, cfg, f, loop, amplitude).closed
    mag_db = 20 * np.log10(np.maximum(np.abs(closed), 1e-300))
    return Prediction(bandwidth_hz(_as_frf(f, closed)), gm, pm, predicted_step(model, cfg, loop),
                      float(mag_db.max() - mag_db[0]))


def predicted_step(model: TwoMass, cfg: ControllerConfig, loop: str = "position", duration_s: float = 4.0,
                   fs_hz: float = 8000.0) -> StepMetrics:
    """Unit-step metrics from the impulse response (the inverse FFT of T on a fine grid)."""
    n = int(2 ** math.ceil(math.log2(duration_s * fs_hz)))
    f = np.fft.rfftfreq(n, 1.0 / fs_hz)
    f[0] = 1e-9  # T(0) by continuity
    h = loop_response(model, cfg, f, loop).closed
    impulse = np.fft.irfft(h, n)
    y = np.cumsum(impulse)[: n // 2]
    t = np.arange(y.size) / fs_hz
    ref = np.ones(y.size)
    ref[0] = 0.0
    return step_metrics(t, y, ref)


@dataclass(frozen=True)
class LoopMargins:
    """Gain and phase margins of one loop of the cascade on the linear model (NaN: no crossing in range)."""

    loop: str
    gain_margin_db: float
    phase_margin_deg: float

    @property
    def stable(self) -> bool:
        """No negative margin. A loop gain that never reaches 0 dB (NaN phase margin) gives no control at all and
        counts as unstable: the integrators of the loop above it then wind up without bound."""
        return self.phase_margin_deg > 0.0 and not self.gain_margin_db < 0.0

    def describe(self) -> str:
        if math.isnan(self.phase_margin_deg):
            return f"{self.loop} loop: loop gain below 0 dB at every frequency (no control)"
        return (f"{self.loop} loop: phase margin {self.phase_margin_deg:.1f} deg, "
                f"gain margin {self.gain_margin_db:.1f} dB")


def loop_margins(model: TwoMass, cfg: ControllerConfig, f_max_hz: float = 2000.0) -> list[LoopMargins]:
    """The velocity loop's and the position loop's margins (each broken at the torque input)."""
    f = np.geomspace(0.05, f_max_hz, 3000)
    out = []
    for loop in ("velocity", "position"):
        gm, pm = margins_above_crossover(_as_frf(f, loop_response(model, cfg, f, loop).loop))
        out.append(LoopMargins(loop, gm, pm))
    return out
