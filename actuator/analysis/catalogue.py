"""Catalogue checks of a joint model: the simulated joint measured as a vendor measures the real part.

This module owns the measurements behind ``jointkit model check``: each check runs the joint model
(``actuator.simulation.JointModel``, the same kernels as every other simulation) on a test-bench copy of
the preset, reads the quantity off its trace as a bench would, and compares it with the figure of the
preset's ``[catalogue]`` section. It does no I/O; the CLI prints and plots the rows.

Bench copies (``bench_params``) change only the fixture, never the joint's model of the motor or gear:

- the motor side *held*: the model has no rotor-lock injection, so the held rotor is a rotor of
  1e6 kg·m² (its angle moves < 1e-12 rad in a run): what a brake or a locked input shaft does;
- the load a small flange (1e-3 kg·m², no gravity) for the static twist, hysteresis and friction tests,
  or a flywheel of 1e5 kg·m² turning at a fixed speed for the efficiency (a dynamometer);
- cogging and ripple off for the gear tests (starting and backdriving torque, efficiency), which the
  catalogue measures on the gear alone.

How each quantity is measured:

- twist: from rest, an external torque at the output is ramped (smooth, 0.1 s) to T and held (0.05 s) with
  the motor held; the twist is the model's flexspline twist (motor angle / N + KE - output angle), averaged
  over the last 20 ms of the hold. One run from rest per point and sign;
- hysteresis loss: the same fixture cycled 0 -> +T -> 0 -> -T -> 0 -> +T -> 0 (T = reducer rated torque); the
  loss is the difference of the twists at zero torque after +T and after -T (the catalogue's definition);
- Kt: locked rotor at 11 angles spread over a revolution (so cogging and 6th-harmonic ripple average out),
  a q current step; Kt = mean electromagnetic torque / mean measured i_q, per peak amp (the model's
  amplitude-invariant dq), shown x √2 when the catalogue quotes per rms amp (``amps = "rms"``);
- winding temperature: holding the catalogue's continuous torque (i_q = Tc / model Kt), the steady state of
  the model's own two-node network (``layout.thermal_matrices``, with R(T)) solved exactly, and checked
  against the full joint kernel over a short locked-rotor run (``kernel_gap_k`` in the row's note); it must
  be below the limit and the drive's derating starts, or Tc is not sustained;
- starting torque: output free, motor torque ramped slowly; the torque at which the motor has turned 1 mrad
  (50 times the presliding displacement);
- backdriving torque: motor current held at zero, an output torque ramped slowly; the torque at which the
  motor has turned 1 mrad;
- efficiency: output flywheel at input speed / N, motor torque for the asked load; efficiency = mean output
  power / mean input power over 8 whole wave-generator revolutions after 0.1 s (about 0.5 point), with the
  housing (the gear's grease) soaked at the point's temperature;
- cogging periods: the model's motor torque at zero current over one revolution, the dominant FFT bin;
- small-signal resonance (item 6 of the fidelity review; its reference is jointkit's own linear model, the one
  ``tune`` designs on and ``bode`` predicts with, not the catalogue; three rows of every report, driving at T1 / 2,
  driven at -T1 and at no load, within 5 %): the load the preset's link inertia without gravity or damping, an
  external torque ramped (smooth, 1.5 s) to the operating torque while the motor, driven open loop, slides at a speed
  whose kinematic error lies below the band (the static friction breaks it free, then the sliding friction at that
  speed is driven); then a multisine of motor torque over [0.5, 2] x the predicted resonance (one period, 4 s),
  run twice with opposite signs, and the twist's response on its lines, half the two runs' difference (the kinematic
  error's own twist cancels); the resonance is where Re(torque / twist) = a - b w^2 crosses zero (the natural
  frequency of a two-mass plant, unaffected by its damping), against ``TwoMass.from_params(p, torque,
  twist_rms).resonance_hz``, the model at the twist's travel measured there (the kinematic error sweeps the twist,
  and about zero twist the hysteretic flexspline stiffens with the travel: 6 % on the knee's resonance).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq

from actuator.analysis.identify import excitation_torque
from actuator.analysis.linear import TwoMass
from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.model.electrics import motor_torque
from actuator.model.mechanics import dahl_virgin, lubricant_factor, spring_torque, stribeck_level
from actuator.params import CatalogueKt, CatalogueStiffness, CatalogueValue, JointParams
from actuator.simulation import JointModel, simulate

HELD_INERTIA_KG_M2 = 1e6
FLANGE_INERTIA_KG_M2 = 1e-3
FLYWHEEL_INERTIA_KG_M2 = 1e5
START_ANGLE_RAD = 1e-3
ARCMIN_RAD = math.pi / 10800.0
TWIST_FRACTIONS = ("0.25·T1", "T1", "(T1+T2)/2", "T2", "1.5·T2")


@dataclass(frozen=True)
class CheckRow:
    """One checked quantity: catalogue figure and source, simulated value, error and verdict."""

    quantity: str
    unit: str
    catalogue: float
    source: str
    simulated: float
    error: float
    error_kind: str  # "relative", "absolute" or "margin" (catalogue limit minus simulated)
    tolerance: float
    passed: bool
    note: str = ""
    at_nm: float | None = None  # the torque the quantity is measured at, where it has one

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


@dataclass(frozen=True)
class CatalogueReport:
    preset: str
    rows: tuple[CheckRow, ...]
    skipped: tuple[str, ...]  # catalogue quantities the preset does not give

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failed(self) -> list[str]:
        return [r.quantity for r in self.rows if not r.passed]


def _relative_row(quantity: str, unit: str, entry_value: float, source: str, simulated: float,
                  tolerance: float, note: str = "") -> CheckRow:
    error = (simulated - entry_value) / entry_value if math.isfinite(simulated) else math.inf
    return CheckRow(quantity, unit, entry_value, source, simulated, error, "relative", tolerance,
                    bool(abs(error) <= tolerance), note)


# --- fixtures ------------------------------------------------------------------------------------------

def bench_params(p: JointParams, *, hold_motor: bool = False, load_inertia_kg_m2: float = FLANGE_INERTIA_KG_M2,
                 gear_only: bool = False) -> JointParams:
    """The test-bench copy of ``p`` (module docstring): the joint's motor and gear models unchanged."""
    motor = p.motor
    if hold_motor:
        motor = replace(motor, rotor_inertia_kg_m2=HELD_INERTIA_KG_M2)
    if gear_only:
        motor = replace(motor, cogging_harmonics_nm=(0.0,) * len(motor.cogging_harmonics_nm), ripple_6th_fraction=0.0)
    load = replace(p.load, inertia_kg_m2=load_inertia_kg_m2, mass_kg=0.0, damping_nm_s_per_rad=0.0)
    return replace(p, motor=motor, load=load, ft_sensor=replace(p.ft_sensor, tool_mass_kg=0.0))


def _smooth(n: int) -> np.ndarray:
    """A ramp 0 -> 1 over n steps with zero slope at both ends (3s² - 2s³): no ringing, no reversal."""
    s = np.linspace(0.0, 1.0, n)
    return s * s * (3.0 - 2.0 * s)


def _run(model: JointModel, iq_a: np.ndarray, ext_nm: np.ndarray) -> dict[str, np.ndarray]:
    u = np.zeros((iq_a.size, L.N_INPUTS))
    u[:, L.U_IQ_CMD] = iq_a
    u[:, L.U_EXT_TORQUE] = ext_nm
    rows, _ = model.run(u)
    return {name: rows[:, i] for i, name in enumerate(L.TRACE_FIELDS)}


# --- stiffness and hysteresis --------------------------------------------------------------------------

def catalogue_twist_rad(curve: CatalogueStiffness, torque_nm: float) -> float:
    """The catalogue's piecewise twist for an output torque (HD eq. 68.1-68.3), odd in the torque."""
    t1, t2, t = curve.t1_nm, curve.t2_nm, abs(torque_nm)
    if t <= t1:
        phi = t / curve.k1_nm_per_rad
    elif t <= t2:
        phi = t1 / curve.k1_nm_per_rad + (t - t1) / curve.k2_nm_per_rad
    else:
        phi = t1 / curve.k1_nm_per_rad + (t2 - t1) / curve.k2_nm_per_rad + (t - t2) / curve.k3_nm_per_rad
    return math.copysign(phi, torque_nm)


def twist_points_nm(curve: CatalogueStiffness) -> tuple[float, ...]:
    """The five torques of the review: 0.25·T1, T1, (T1+T2)/2, T2, 1.5·T2."""
    t1, t2 = curve.t1_nm, curve.t2_nm
    return (0.25 * t1, t1, 0.5 * (t1 + t2), t2, 1.5 * t2)


def _torque_schedule(levels_nm: list[float], dt_s: float, ramp_s: float, hold_s: float) -> tuple[np.ndarray, list]:
    """Piecewise smooth ramps between successive levels, each followed by a hold; the hold windows' steps."""
    n_ramp, n_hold = round(ramp_s / dt_s), round(hold_s / dt_s)
    pieces, windows, start, prev = [], [], 0, 0.0
    for level in levels_nm:
        pieces += [prev + (level - prev) * _smooth(n_ramp), np.full(n_hold, level)]
        start += n_ramp + n_hold
        windows.append(slice(start - max(1, n_hold * 2 // 5), start))
        prev = level
    return np.concatenate(pieces), windows


def static_twists_rad(p: JointParams, levels_nm: list[float], *, ramp_s: float = 0.1,
                      hold_s: float = 0.05) -> list[float]:
    """Twists at the end of holds at each output torque level in turn, motor held, from rest."""
    model = JointModel(bench_params(p, hold_motor=True))
    # the load balances tau_fs + tau_ext = 0: a torque T transmitted by the flexspline is -T applied outside
    torque, windows = _torque_schedule(levels_nm, model.dt_s, ramp_s, hold_s)
    trace = _run(model, np.zeros(torque.size), -torque)
    return [float(np.mean(trace["twist_rad"][w])) for w in windows]


def check_twist(p: JointParams, curve: CatalogueStiffness, tolerance: float = 0.05) -> list[CheckRow]:
    """Static twist from rest at the five review points, both signs, within ``tolerance`` of the curve."""
    rows = []
    for sign in (1.0, -1.0):
        for label, t in zip(TWIST_FRACTIONS, twist_points_nm(curve), strict=True):
            torque = sign * t
            (sim,) = static_twists_rad(p, [torque])
            row = _relative_row(f"twist at {'+' if sign > 0 else '-'}{label} ({torque:g} N·m)", "rad",
                                catalogue_twist_rad(curve, torque), curve.source, sim, tolerance)
            rows.append(replace(row, at_nm=torque))
    return rows


def hysteresis_loss_rad(p: JointParams, torque_nm: float) -> float:
    """Twist at zero torque after +T minus after -T, on the second cycle 0 +T 0 -T 0 +T 0."""
    twists = static_twists_rad(p, [torque_nm, 0.0, -torque_nm, 0.0, torque_nm, 0.0])
    return twists[5] - twists[3]


def check_hysteresis(p: JointParams, entry: CatalogueValue) -> CheckRow:
    """Hysteresis loss at the reducer's rated torque, at most the catalogue's."""
    rated = p.reducer.rated_torque_nm
    sim = hysteresis_loss_rad(p, rated)
    return CheckRow(f"hysteresis loss at rated torque ({rated:g} N·m)", "rad", entry.value, entry.source, sim,
                    entry.value - sim, "margin", 0.0, bool(sim <= entry.value),
                    f"{sim / ARCMIN_RAD:.2f} arcmin; limit {entry.value / ARCMIN_RAD:.2f} arcmin")


# --- motor ----------------------------------------------------------------------------------------------

def torque_constant_nm_per_a(p: JointParams, current_a: float, n_angles: int = 11, run_s: float = 0.01) -> float:
    """Locked-rotor Kt: mean electromagnetic torque over mean measured i_q at ``n_angles`` rotor angles."""
    torques, currents = [], []
    for k in range(n_angles):
        theta_m = 2.0 * math.pi * k / n_angles
        model = JointModel(bench_params(p, hold_motor=True), position_rad=theta_m / p.reducer.ratio)
        n = round(run_s / model.dt_s)
        trace = _run(model, np.full(n, current_a), np.zeros(n))
        tail = slice(n // 2, None)
        torques.append(np.mean(trace["motor_torque_nm"][tail]))
        currents.append(np.mean(trace["iq_a"][tail]))
    return float(np.mean(torques) / np.mean(currents))


def check_torque_constant(p: JointParams, entry: CatalogueKt, current_a: float, tolerance: float = 0.05) -> CheckRow:
    """The model's Kt (per peak amp: amplitude-invariant dq) in the catalogue's convention (per rms amp: x √2)."""
    sim = torque_constant_nm_per_a(p, current_a)
    shown = sim * entry.value / entry.per_peak_amp  # in the catalogue's amps (CatalogueKt owns the convention)
    return _relative_row(f"motor torque constant Kt (per A {entry.amps})", "N·m/A", entry.value, entry.source, shown,
                         tolerance, f"locked rotor at {current_a:.3g} A peak; the model's Kt {sim:.4g} N·m per A peak")


def cogging_periods_per_rev(p: JointParams, n_samples: int = 1 << 14) -> int:
    """The dominant harmonic of the model's zero-current motor torque over one mechanical revolution."""
    v = L.compile_params(p)
    theta = np.arange(n_samples) * (2.0 * math.pi / n_samples)
    tau = np.array([motor_torque(v, 0.0, 0.0, th) for th in theta])
    spectrum = np.abs(np.fft.rfft(tau - tau.mean()))
    return int(np.argmax(spectrum[1:]) + 1) if spectrum[1:].max() > 0 else 0


def check_cogging(p: JointParams, entry: CatalogueValue) -> CheckRow:
    """Periods per revolution, exactly; LCM(slots, poles) is always a multiple of the pole count 2p."""
    sim = cogging_periods_per_rev(p)
    poles = 2 * p.motor.pole_pairs
    whole = float(entry.value).is_integer() and int(entry.value) % poles == 0
    note = "" if whole else (f"{entry.value:g} is not a multiple of the model's {poles} poles, so not "
                             "LCM(slots, poles) for any slot count")
    return CheckRow("cogging periods per revolution", "1/rev", entry.value, entry.source, float(sim),
                    sim - entry.value, "absolute", 0.0, bool(sim == entry.value and whole), note)


# --- thermal --------------------------------------------------------------------------------------------

def _reduced_thermal(p: JointParams, current_a: float, dt_s: float):
    """The model's thermal step at ``dt_s`` (its exact ZOH matrices) with copper loss 1.5 R(T_w) i²."""
    a, b = L.thermal_matrices(p, dt_s)
    m = p.motor

    def power_w(tw_c: float) -> float:
        r = m.phase_resistance_ohm * (1.0 + m.copper_temp_coeff_per_k * (tw_c - m.resistance_ref_temp_c))
        return 1.5 * r * current_a * current_a

    return a, b, power_w


def steady_temps_c(p: JointParams, current_a: float, ambient_c: float) -> tuple[float, float]:
    """Winding and housing at the fixed point T = A T + B [P(T_w), T_a] of the model's network (P linear in
    T_w); (inf, inf) on thermal runaway."""
    a, b, power_w = _reduced_thermal(p, current_a, 1.0)
    p0 = power_w(0.0)
    dp = power_w(1.0) - p0  # dP/dT_w
    # (I - A) T = B[:, 0] (p0 + dp T_w) + B[:, 1] T_a
    lhs = np.eye(2) - a
    lhs[:, 0] -= b[:, 0] * dp
    if np.linalg.det(lhs) <= 0.0 or np.linalg.cond(lhs) > 1e12:
        return math.inf, math.inf
    tw, th = np.linalg.solve(lhs, b[:, 0] * p0 + b[:, 1] * ambient_c)
    if tw > ambient_c - 1e-9 and th > ambient_c - 1e-9:
        return float(tw), float(th)
    return math.inf, math.inf


def steady_winding_temp_c(p: JointParams, current_a: float, ambient_c: float) -> float:
    return steady_temps_c(p, current_a, ambient_c)[0]


def thermal_kernel_gap_k(p: JointParams, current_a: float, run_s: float = 0.5, step_s: float = 0.01) -> float:
    """|T_w| of the full joint kernel (locked rotor, holding ``current_a``) minus the reduced network's after
    ``run_s``: how far the analytic steady state's model is from what the joint kernel integrates."""
    model = JointModel(bench_params(p, hold_motor=True))
    n = round(run_s / model.dt_s)
    trace = _run(model, np.full(n, current_a), np.zeros(n))
    a, b, power_w = _reduced_thermal(p, current_a, step_s)
    t = np.array([p.thermal.ambient_c, p.thermal.ambient_c])
    for _ in range(round(run_s / step_s)):
        t = a @ t + b @ np.array([power_w(t[0]), p.thermal.ambient_c])
    return float(abs(trace["winding_temp_c"][-1] - t[0]))


def check_thermal(p: JointParams, torque: CatalogueValue, limit: CatalogueValue, ambient_c: float = 25.0) -> CheckRow:
    """Steady winding temperature holding the catalogue's continuous torque at 25 °C ambient: under the
    insulation's limit, and under the drive's derating starts (winding and housing), or the joint would not
    sustain the torque but derate it."""
    current = torque.value / p.torque_constant_nm_per_a
    tw, th = steady_temps_c(p, current, ambient_c)
    gap = thermal_kernel_gap_k(replace(p, thermal=replace(p.thermal, ambient_c=ambient_c)), current)
    t = p.thermal
    allowed = min(limit.value, t.winding_derate_start_c)
    housing_ok = th <= t.housing_derate_start_c
    note = (f"holding Tc = {torque.value:g} N·m needs {current:.3g} A at the model's Kt; housing {th:.4g} °C "
            f"(derating from {t.housing_derate_start_c:g}); winding allowed up to {allowed:g} °C (the limit, or "
            f"the derating start); kernel_gap_k = {gap:.2g} over 0.5 s")
    if not math.isfinite(tw):
        note += "; thermal runaway: copper loss grows faster with T than the network sheds it"
    return CheckRow(f"steady winding temperature at Tc, {ambient_c:g} °C ambient", "°C", limit.value,
                    f"{limit.source}; Tc: {torque.source}", tw, allowed - tw, "margin", 0.0,
                    bool(tw <= allowed and housing_ok), note)


# --- friction and efficiency ---------------------------------------------------------------------------

def _angle_reached(angle: np.ndarray, threshold: float) -> int:
    hits = np.flatnonzero(np.abs(angle) > threshold)
    return int(hits[0]) if hits.size else -1


def starting_torque_nm(p: JointParams, max_nm: float, ramp_s: float = 3.0) -> float:
    """Input torque at which the free gear has turned START_ANGLE_RAD at the input (motor torque ramp)."""
    model = JointModel(bench_params(p, gear_only=True))
    n = round(ramp_s / model.dt_s)
    ramp = np.linspace(0.0, max_nm, n)
    trace = _run(model, ramp / p.torque_constant_nm_per_a, np.zeros(n))
    k = _angle_reached(trace["motor_position_rad"], START_ANGLE_RAD)
    return float(trace["motor_torque_nm"][k]) if k >= 0 else math.inf


def backdriving_torque_nm(p: JointParams, max_nm: float, ramp_s: float = 2.0) -> float:
    """Output torque at which the input of the unpowered joint (zero current) has turned START_ANGLE_RAD."""
    model = JointModel(bench_params(p, gear_only=True))
    n = round(ramp_s / model.dt_s)
    ramp = np.linspace(0.0, max_nm, n)
    trace = _run(model, np.zeros(n), ramp)
    k = _angle_reached(trace["motor_position_rad"], START_ANGLE_RAD)
    return float(ramp[k - 1]) if k >= 1 else math.inf  # row k is the state before input k


def check_starting(p: JointParams, entry: CatalogueValue, tolerance: float = 0.15) -> CheckRow:
    sim = starting_torque_nm(p, 3.0 * entry.value)
    return _relative_row("starting torque (input)", "N·m", entry.value, entry.source, sim, tolerance,
                         f"motor torque when the input has turned {START_ANGLE_RAD:g} rad")


def check_backdriving(p: JointParams, entry: CatalogueValue, tolerance: float = 0.15) -> CheckRow:
    sim = backdriving_torque_nm(p, 3.0 * entry.value)
    return _relative_row("backdriving torque (output)", "N·m", entry.value, entry.source, sim, tolerance,
                         f"output torque when the input has turned {START_ANGLE_RAD:g} rad, zero current")


def efficiency(p: JointParams, input_speed_rpm: float, load_nm: float, ambient_c: float = 25.0,
               revolutions: int = 8) -> float:
    """Output power / input power of the gear driving a flywheel at input speed / N against ``load_nm``.

    Accurate to about 0.5 point: the start's ringing of the motor on the flexspline stores and returns energy
    within the window (1.002 measured for a loss-free, undamped gear over 16 revolutions, 1.01 over 4)."""
    bench = bench_params(p, gear_only=True, load_inertia_kg_m2=FLYWHEEL_INERTIA_KG_M2)
    model = JointModel(bench)
    model.inject("ambient_c", ambient_c)
    model.x[[L.X_TW, L.X_TH]] = ambient_c  # soaked at the point's temperature, as a catalogue measures
    r = p.reducer
    w_in = input_speed_rpm * 2.0 * math.pi / 60.0
    # start in the loaded steady state: loaded from rest, the spring carries the load on its catalogue curve
    # and the Dahl state sits on its loading path
    v = model.p  # the model's compiled parameters: the kernels' own curve
    phi = float(brentq(lambda f: spring_torque(v, f) - load_nm, 0.0, 1.0)) if load_nm > 0.0 else 0.0
    model.x[[L.X_WM, L.X_WL, L.X_THM, L.X_PHI, L.X_HYS]] = (
        w_in, w_in / r.ratio, phi * r.ratio, phi, dahl_virgin(v, phi))
    grease = lubricant_factor(v, ambient_c)
    tau_m = load_nm / (r.ratio * r.efficiency) + grease * r.coulomb_friction_nm + r.viscous_friction_nm_s_per_rad * w_in
    settle = round(0.1 / model.dt_s)
    n = settle + round(revolutions * 2.0 * math.pi / w_in / model.dt_s)
    trace = _run(model, np.full(n, tau_m / p.torque_constant_nm_per_a), np.zeros(n))
    w = slice(settle, n)
    p_out = np.mean(trace["transmitted_torque_nm"][w] * trace["velocity_rad_s"][w])
    p_in = np.mean(trace["motor_torque_nm"][w] * trace["motor_velocity_rad_s"][w])
    return float(p_out / p_in)


def efficiency_map(p: JointParams, speeds_rpm: tuple[float, ...] = (500.0, 1000.0, 2000.0, 3500.0),
                   load_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)) -> dict:
    """Efficiency (%) over input speed x load (fraction of the reducer's rated torque), at 25 °C."""
    rated = p.reducer.rated_torque_nm
    grid = [[100.0 * efficiency(p, s, f * rated) for s in speeds_rpm] for f in load_fractions]
    return {"speeds_rpm": list(speeds_rpm), "load_fractions": list(load_fractions), "efficiency_pct": grid}


def check_efficiency(p: JointParams, tolerance_points: float = 5.0) -> list[CheckRow]:
    rows = []
    for pt in p.catalogue.efficiency:
        sim = 100.0 * efficiency(p, pt.input_speed_rpm, pt.load_fraction * p.reducer.rated_torque_nm,
                                 pt.temperature_c)
        err = sim - pt.efficiency_pct
        rows.append(CheckRow(f"efficiency at {pt.input_speed_rpm:g} rpm, {pt.temperature_c:g} °C, "
                             f"{pt.load_fraction:g}·rated", "%", pt.efficiency_pct, pt.source, sim, err,
                             "absolute", tolerance_points, bool(abs(err) <= tolerance_points)))
    return rows


# --- small-signal resonance: the linear model against the plant ----------------------------------------

RESONANCE_PERIOD_S = 4.0  # the multisine's period: lines 0.25 Hz apart
RESONANCE_SETTLE_S = 2.5  # the 1.5 s ramp to the operating point, then 1 s for the Dahl state to settle


class PlantResonance(NamedTuple):
    """The resonance measured about a sliding state, and the twist there: its mean and its travel (rms about it)."""

    resonance_hz: float
    twist_mean_rad: float
    twist_rms_rad: float


def plant_resonance(p: JointParams, torque_nm: float, ke_fraction: float = 0.25,
                    excitation_scale: float = 1.0) -> PlantResonance:
    """The resonance of ``p`` measured about a sliding state whose flexspline carries ``torque_nm``, sliding at a
    speed whose kinematic error runs at ``ke_fraction`` of the unloaded model's resonance, with the bench's multisine
    scaled by ``excitation_scale``; NaN where Re(torque / twist) does not cross zero in the band.

    The multisine runs twice, with opposite signs, and the twist's response to it is half the difference: the
    kinematic error's own twist, whose harmonics fall on the multisine's lines, cancels (one run read the knee 60 %
    high at a tenth of the excitation, and found no crossing on the wrist).
    """
    b = bench_params(p, load_inertia_kg_m2=p.load.inertia_kg_m2)
    r, dt = b.reducer, b.dt_s
    model = TwoMass.from_params(b, torque_nm)
    f_band = model.resonance_hz
    amplitude = excitation_scale * 0.3 * max(r.hysteresis_torque_nm, 0.1 * r.t1_nm)
    d = excitation_torque(RESONANCE_PERIOD_S, dt, amplitude, 0.5 * f_band, 2.0 * f_band)
    settle, n = round(RESONANCE_SETTLE_S / dt), d.size
    # the kinematic error (twice per wave-generator turn) below the band
    w_m = ke_fraction * TwoMass.from_params(b).resonance_hz * math.pi
    # the static friction breaks the joint free (the ramp, then 0.5 s); after that the friction at that speed: an
    # excess would accelerate a joint with little viscous friction (the quasi-direct drive) all through the record,
    # and its flexspline would carry a share of it
    sliding, _ = stribeck_level(L.compile_params(b), w_m, 1.0)
    friction = np.where(np.arange(settle + n) < round(2.0 / dt), r.static_friction_nm, sliding)
    # the mesh loss: the motor carries the flexspline's torque by 1 / eta driving, 2 - 1 / eta driven
    bias = torque_nm * model.mesh_coupling + r.ratio * (friction + r.viscous_friction_nm_s_per_rad * w_m)
    ramp = np.ones(settle + n)
    ramp[: round(1.5 / dt)] = _smooth(round(1.5 / dt))
    twists = [_sliding_twist(p, b, torque_nm, bias * ramp, -torque_nm * ramp, settle, sign * d) for sign in (1.0, -1.0)]
    response = 0.5 * (twists[0] - twists[1])
    u_f, y_f = np.fft.rfft(d), np.fft.rfft(response - response.mean())
    lines = np.abs(u_f) > 0.1 * np.abs(u_f).max()
    w = 2.0 * math.pi * np.fft.rfftfreq(n, dt)[lines]
    (a, bw), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(w), -w * w]), (u_f[lines] / y_f[lines]).real,
                                  rcond=None)
    resonance = math.sqrt(a / bw) / (2.0 * math.pi) if a > 0.0 and bw > 0.0 else math.nan
    return PlantResonance(resonance, float(np.mean([t.mean() for t in twists])),
                          float(np.mean([t.std() for t in twists])))


def _sliding_twist(p: JointParams, b: JointParams, torque_nm: float, drive_nm: np.ndarray, external_nm: np.ndarray,
                   settle: int, d: np.ndarray) -> np.ndarray:
    """The bench ``b``'s twist over the excitation ``d``, added to the motor's torque ``drive_nm`` once it slides and
    has settled (``settle`` steps)."""
    tr = simulate(b, duration_s=drive_nm.size * b.dt_s, torque_nm=drive_nm + np.concatenate([np.zeros(settle), d]),
                  external_torque_nm=external_nm)
    v = tr["velocity_rad_s"][settle:]
    if not np.all(v > 0.0):
        raise ConfigError(f"preset {p.name!r}: the joint did not slide at {torque_nm:g} N·m (output speed "
                          f"{v.min():.3g}..{v.max():.3g} rad/s): no resonance about a sliding state to measure")
    return np.asarray(tr["twist_rad"][settle:settle + d.size])


RESONANCE_POINTS = ((0.5, "+T1/2", "driving the load"), (-1.0, "-T1", "driven by the load"),
                    (0.0, "no load", "no torque carried"))
LINEAR_MODEL_SOURCE = "jointkit's linear model (actuator.analysis.linear.TwoMass), what tune designs on"


def check_resonance(p: JointParams, tolerance: float = 0.05) -> list[CheckRow]:
    """The resonance measured in motion against the linear model's, driving at T1 / 2, driven at -T1 and at no load;
    the model at the twist's travel the bench measured (the kinematic error sweeps it)."""
    bench = bench_params(p, load_inertia_kg_m2=p.load.inertia_kg_m2)
    rows = []
    for fraction, label, flow in RESONANCE_POINTS:
        torque = fraction * p.reducer.t1_nm
        measured = plant_resonance(p, torque)
        model = TwoMass.from_params(bench, torque, measured.twist_rms_rad)
        rows.append(replace(_relative_row(
            f"resonance in motion at {label} ({torque:.3g} N·m)", "Hz", model.resonance_hz, LINEAR_MODEL_SOURCE,
            measured.resonance_hz, tolerance, f"{flow}; the multisine's twist response about a sliding state, the "
            f"model at its twist travel ({measured.twist_rms_rad:.2g} rad rms)" + (
                "" if math.isfinite(measured.resonance_hz) else "; no resonance in the band: Re(torque / twist) "
                "does not cross zero")), at_nm=torque))
    return rows


# --- all checks -----------------------------------------------------------------------------------------

def run_checks(p: JointParams) -> CatalogueReport:
    """Every check whose catalogue figure the preset gives; ``ConfigError`` when it has no ``[catalogue]``."""
    c = p.catalogue
    if c is None:
        raise ConfigError(f"preset {p.name!r} has no [catalogue] section: nothing to check the model against "
                          "(allowed: a preset with a [catalogue] table, see seeds/joints/knee.toml)")
    rows: list[CheckRow] = []
    skipped: list[str] = []

    def given(name: str) -> bool:
        present = getattr(c, name) not in (None, ())
        if not present:
            skipped.append(name)
        return present

    if given("stiffness"):
        rows += check_twist(p, c.stiffness)
    if given("hysteresis_loss_rad"):
        rows.append(check_hysteresis(p, c.hysteresis_loss_rad))
    if given("torque_constant_nm_per_a"):
        ic = c.continuous_torque_nm.value / c.torque_constant_nm_per_a.per_peak_amp if c.continuous_torque_nm else None
        rows.append(check_torque_constant(p, c.torque_constant_nm_per_a, ic or 0.5 * p.motor.current_limit_a))
    if given("continuous_torque_nm") & given("winding_limit_c"):
        rows.append(check_thermal(p, c.continuous_torque_nm, c.winding_limit_c))
    if given("starting_torque_nm"):
        rows.append(check_starting(p, c.starting_torque_nm))
    if given("backdriving_torque_nm"):
        rows.append(check_backdriving(p, c.backdriving_torque_nm))
    if given("efficiency"):
        rows += check_efficiency(p)
    if given("cogging_periods_per_rev"):
        rows.append(check_cogging(p, c.cogging_periods_per_rev))
    rows += check_resonance(p)  # against the linear model, which every preset has
    return CatalogueReport(p.name, tuple(rows), tuple(skipped))
