"""The simulated joint against analytic results: electrics, current loop, stiffness, energy, thermal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ideal_reducer, variant

from actuator.model import layout as L
from actuator.model.electrics import rl_step, thermal_step
from actuator.model.mechanics import catalogue_twist, spring_torque
from actuator.simulation import JointModel, simulate

LOCKED = 1e9  # kg·m²: an inertia that a few N·m cannot move measurably in a test's duration


def test_locked_rotor_voltage_step_settles_to_v_over_r_with_l_over_r(knee):
    """The RL step is the exact ZOH discretisation, so it matches V/R (1 - exp(-t R/L)) to rounding."""
    p = L.compile_params(knee)
    x = L.initial_state(knee)
    r, lq, v, dt = knee.motor.phase_resistance_ohm, knee.motor.q_inductance_h, 2.0, knee.dt_s
    x[L.X_R_CACHED] = -1.0
    i_q = []
    for _ in range(400):  # 10 ms = 10 L/R
        rl_step(p, x, 0.0, v, 0.0, r)
        i_q.append(x[L.X_IQ])
    t = dt * np.arange(1, 401)
    np.testing.assert_allclose(i_q, v / r * (1 - np.exp(-t * r / lq)), rtol=1e-9, atol=1e-12)
    k63 = int(np.argmax(np.array(i_q) >= v / r * (1 - math.exp(-1))))
    assert t[k63] == pytest.approx(lq / r, abs=dt)  # the time constant is L/R to one step
    assert x[L.X_ID] == 0.0


def _locked_rotor(p):
    return variant(p, motor={"rotor_inertia_kg_m2": LOCKED})


def _sine_gain(params, f_hz: float, amp_a: float = 1.0) -> float:
    """|i_q / i_q,ref| of the closed current loop at f_hz, from a least-squares fit over whole periods."""
    model = JointModel(params)
    dt = model.dt_s
    periods = 12
    n = round(periods / (f_hz * dt))
    t = dt * np.arange(n)
    u = np.zeros((n, L.N_INPUTS))
    u[:, L.U_IQ_CMD] = amp_a * np.sin(2 * np.pi * f_hz * t)
    rows, _ = model.run(u, 1)
    iq = rows[1:, L.TRACE_FIELDS.index("iq_a")]  # row k+1 is the state after step k
    keep = t >= 4 / f_hz  # skip the start transient
    basis = np.column_stack([np.sin(2 * np.pi * f_hz * t[keep]), np.cos(2 * np.pi * f_hz * t[keep])])
    coef, *_ = np.linalg.lstsq(basis, iq[keep], rcond=None)
    return float(np.hypot(*coef)) / amp_a


def test_current_loop_bandwidth_within_10_percent_of_design(knee, wrist):
    """kp = L wc, ki = R wc design a first-order loop at wc; the -3 dB point of the sampled loop, with
    its one-sample delay, must lie within 10 % of current_loop_bandwidth_hz (issue acceptance)."""
    for base in (knee, wrist):
        params = _locked_rotor(base)
        design = base.drive.current_loop_bandwidth_hz
        freqs = np.array([0.6, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4]) * design
        gains = np.array([_sine_gain(params, f) for f in freqs])
        assert _sine_gain(params, 0.05 * design) == pytest.approx(1.0, abs=0.01)
        assert np.all(np.diff(gains) < 0), gains
        f3db = np.interp(-1 / math.sqrt(2), -gains, freqs)
        assert abs(f3db / design - 1) < 0.10, (base.name, f3db)


@pytest.mark.parametrize("torque_nm", [8.0, 30.0, 80.0, -30.0])
def test_static_twist_follows_catalogue_curve(knee, torque_nm):
    """Output locked, lossless reducer, steady motor torque: twist = catalogue twist of N Kt i_q.

    Damping is raised so that the motor settles within the run; it does not change the static twist.
    Tolerance 0.2 %: the integrating current loop has no steady-state error, what is left is the
    residual of the decaying oscillation after 0.4 s.
    """
    params = variant(knee, load={"inertia_kg_m2": LOCKED, "mass_kg": 0.0},
                     reducer=ideal_reducer(knee, kinematic_error_amplitudes_rad=(0.0, 0.0),
                                           flexspline_damping_nm_s_per_rad=400.0),
                     motor={"cogging_harmonics_nm": (0.0,), "ripple_6th_fraction": 0.0})
    i_q = torque_nm / (params.torque_constant_nm_per_a * params.reducer.ratio)
    tr = simulate(params, current_a=i_q, duration_s=0.4, record_every=40)
    p = L.compile_params(params)
    expected = catalogue_twist(p, params.torque_constant_nm_per_a * tr.iq_a[-1] * params.reducer.ratio)
    assert tr.twist_rad[-1] == pytest.approx(expected, rel=2e-3)
    assert spring_torque(p, expected) == pytest.approx(torque_nm, rel=2e-3)


def test_catalogue_curve_breakpoints(knee):
    """eq. 68.1-68.3: the twist at T1 and T2, and the slopes K1, K2, K3 between and beyond them."""
    p = L.compile_params(knee)
    r = knee.reducer
    phi1 = r.t1_nm / r.k1_nm_per_rad
    phi2 = phi1 + (r.t2_nm - r.t1_nm) / r.k2_nm_per_rad
    assert catalogue_twist(p, r.t1_nm) == pytest.approx(phi1, rel=1e-12)
    assert catalogue_twist(p, r.t2_nm) == pytest.approx(phi2, rel=1e-12)
    assert catalogue_twist(p, r.t2_nm + 10) == pytest.approx(phi2 + 10 / r.k3_nm_per_rad, rel=1e-12)
    for t in (1.0, 20.0, 100.0, -60.0):
        assert spring_torque(p, catalogue_twist(p, t)) == pytest.approx(t, rel=1e-12)


def _spring_energy(params, phi: np.ndarray) -> np.ndarray:
    r = params.reducer
    a = np.abs(phi)
    phi1 = r.t1_nm / r.k1_nm_per_rad
    phi2 = phi1 + (r.t2_nm - r.t1_nm) / r.k2_nm_per_rad
    e1 = 0.5 * r.k1_nm_per_rad * np.minimum(a, phi1) ** 2
    d2 = np.clip(a - phi1, 0, phi2 - phi1)
    e2 = r.t1_nm * d2 + 0.5 * r.k2_nm_per_rad * d2**2
    d3 = np.clip(a - phi2, 0, None)
    return e1 + e2 + r.t2_nm * d3 + 0.5 * r.k3_nm_per_rad * d3**2


def test_frictionless_lossless_free_motion_conserves_energy(knee):
    """A pendulum on the compliant reducer, with kinematic error, released from 0.5 rad.

    Symplectic Euler conserves a modified energy; the true energy oscillates with a relative amplitude
    of order h w_max (h = 25 us, w_max ~ 310 rad/s for the knee's stiffest mode, so ~0.8 %). Bound: 1 %
    of the initial energy, and no drift: the last 0.2 s average within 0.5 % of the first 0.2 s.
    """
    params = variant(knee, reducer=ideal_reducer(knee), load={"damping_nm_s_per_rad": 0.0},
                     motor={"flux_linkage_wb": 1e-9, "cogging_harmonics_nm": (0.0,), "ripple_6th_fraction": 0.0})
    tr = simulate(params, duration_s=2.0, position_rad=0.5, record_every=4)
    r, ld = params.reducer, params.load
    thm, thl = tr.motor_position_rad, tr.position_rad
    ke = sum(a * np.sin((k + 1) * thm + ph)
             for k, (a, ph) in enumerate(zip(r.kinematic_error_amplitudes_rad, r.kinematic_error_phases_rad,
                                             strict=True)))
    phi = thm / r.ratio + ke - thl
    energy = (0.5 * params.motor_side_inertia_kg_m2 * tr.motor_velocity_rad_s**2
              + 0.5 * ld.inertia_kg_m2 * tr.velocity_rad_s**2 + _spring_energy(params, phi)
              + ld.mass_kg * ld.gravity_m_s2 * ld.com_distance_m * (1 - np.cos(thl)))
    e0 = energy[0]
    assert e0 == pytest.approx(4.0 * 9.81 * 0.25 * (1 - math.cos(0.5)), rel=0.01)
    assert np.max(np.abs(energy - e0)) < 0.01 * e0
    n = len(energy) // 10
    assert abs(energy[-n:].mean() - energy[:n].mean()) < 0.005 * e0
    assert np.ptp(thl) > 0.9  # it did swing


def test_thermal_steady_state_equals_analytic_solution(knee):
    """Exact discretisation at a 1 s step, run for 20 h: T_w = T_a + 1.5 I² R(T_w) (R_wh + R_ha)."""
    th, m = knee.thermal, knee.motor
    a, b = L.thermal_matrices(knee, 1.0)
    p = L.compile_params(knee)
    p[[L.P_TH_A00, L.P_TH_A01, L.P_TH_A10, L.P_TH_A11]] = a.ravel()
    p[[L.P_TH_BP0, L.P_TH_BP1, L.P_TH_BA0, L.P_TH_BA1]] = b[0, 0], b[1, 0], b[0, 1], b[1, 1]
    x = L.initial_state(knee)
    i_a, ta = 8.0, th.ambient_c
    for _ in range(72_000):
        r = m.phase_resistance_ohm * (1 + m.copper_temp_coeff_per_k * (x[L.X_TW] - m.resistance_ref_temp_c))
        thermal_step(p, x, 1.5 * r * i_a**2, ta)
    r_th = th.winding_to_housing_k_per_w + th.housing_to_ambient_k_per_w
    k = 1.5 * i_a**2 * m.phase_resistance_ohm
    alpha, t0 = m.copper_temp_coeff_per_k, m.resistance_ref_temp_c
    tw = (ta + k * r_th * (1 - alpha * t0)) / (1 - k * alpha * r_th)
    power = k * (1 + alpha * (tw - t0))
    assert x[L.X_TW] == pytest.approx(tw, abs=1e-6)
    assert x[L.X_TH] == pytest.approx(ta + power * th.housing_to_ambient_k_per_w, abs=1e-6)


def test_winding_heats_at_i2r_over_c_in_the_full_model(knee):
    """Locked rotor, 10 A for 2 s: the winding follows P R_wh (1 - exp(-t / (R_wh C_w))) within 2 %
    (the housing, with a 16 min time constant, stays within 0.05 K of ambient; R(T) rises ~1 %)."""
    tr = simulate(_locked_rotor(knee), current_a=10.0, duration_s=2.0, record_every=400)
    th = knee.thermal
    power = 1.5 * knee.motor.phase_resistance_ohm * 10.0**2
    tau = th.winding_to_housing_k_per_w * th.winding_capacity_j_per_k
    expected = power * th.winding_to_housing_k_per_w * (1 - math.exp(-2.0 / tau))
    assert tr.winding_temp_c[-1] - th.ambient_c == pytest.approx(expected, rel=0.02)
    assert tr.housing_temp_c[-1] - th.ambient_c < 0.05
