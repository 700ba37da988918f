"""The controller kernels of ``actuator.control.cascade`` against plain-Python references written from the
module docstring, and against closed forms; the gains-file configuration; the reference rows.

The kernels are called directly (Numba dispatchers accept numpy arrays) on a parameter vector compiled by
``compile_controller`` for the knee preset: 40 kHz model step (h = 25 us), ratio 100, Kt N = 7.995 N·m/A.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
from scipy import signal

from actuator.control import cascade as C
from actuator.control.config import (
    AdmittanceGains,
    ControllerConfig,
    ImpedanceGains,
    LoopGains,
    NotchConfig,
    SafetyLimits,
    compile_controller,
    config_from_dict,
    load_gains,
    new_controller_state,
)
from actuator.control.reference import Chirp, Step, reference_rows
from actuator.control.trajectory import plan
from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.signals import chirp
from firmware_iface.files import save_gains

# --------------------------------------------------------------------------------------------------------
# safety limiter
# --------------------------------------------------------------------------------------------------------

QMIN, QMAX, QZONE = -1.0, 1.0, 0.1
VMAX, VZONE_FRACTION = 3.0, 1.0 / 3.0  # the velocity zone is 1 rad/s wide: 2..3 rad/s (the knee allows 3.2)
TMAX = 100.0
LIMITS = SafetyLimits(position_min_rad=QMIN, position_max_rad=QMAX, position_zone_rad=QZONE,
                      velocity_max_rad_s=VMAX, velocity_zone_fraction=VZONE_FRACTION, torque_max_nm=TMAX)


@pytest.fixture(scope="module")
def lim_c(knee):
    return compile_controller(ControllerConfig(limits=LIMITS), knee)


def _limit(c, q, qd, tau):
    out, bits = C.limit_torque(c, q, qd, tau)
    return float(out), int(bits)


def reference_limit(q, qd, tau):
    """The documented rule, written independently: returns (torque, bits, conflict).

    Position: within ``zone`` of a limit the torque towards it is capped at tmax * distance / zone, at least
    -tmax past the limit. Velocity: above (1 - fraction) vmax the torque along the motion is capped the same way
    over a zone of fraction * vmax. |tau| <= tmax. A bit marks the limit that sets a bound (position first; the
    velocity cap only when tighter); LIM_TORQUE when the output sits at +-tmax. ``conflict``: the lower bound
    ended above the upper one (a wall and a velocity cap disagree), left to a separate test.
    """
    def soft(distance, zone):
        return TMAX if distance >= zone else max(TMAX * distance / zone, -TMAX)

    bits = 0
    hi, lo = TMAX, -TMAX
    if soft(QMAX - q, QZONE) < hi:
        hi = soft(QMAX - q, QZONE)
        bits |= C.LIM_POSITION
    if -soft(q - QMIN, QZONE) > lo:
        lo = -soft(q - QMIN, QZONE)
        bits |= C.LIM_POSITION
    vzone = VMAX * VZONE_FRACTION
    if qd > 0 and soft(VMAX - qd, vzone) < hi:
        hi = soft(VMAX - qd, vzone)
        bits |= C.LIM_VELOCITY
    if qd <= 0 and -soft(VMAX + qd, vzone) > lo:
        lo = -soft(VMAX + qd, vzone)
        bits |= C.LIM_VELOCITY
    out = min(max(tau, lo), hi)
    if abs(out) >= TMAX:
        bits |= C.LIM_TORQUE
    return out, bits, lo > hi


def test_limiter_gives_full_torque_outside_the_zones(lim_c):
    assert _limit(lim_c, 0.0, 0.0, 60.0) == (60.0, 0)
    assert _limit(lim_c, QMAX - 1.5 * QZONE, 0.0, 99.0) == (99.0, 0)
    assert _limit(lim_c, 0.3, VMAX * (1 - VZONE_FRACTION), 99.0) == (99.0, 0)
    assert _limit(lim_c, 0.0, 0.0, 250.0) == (TMAX, C.LIM_TORQUE)
    assert _limit(lim_c, 0.0, 0.0, -250.0) == (-TMAX, C.LIM_TORQUE)


def test_position_zone_in_numbers(lim_c):
    # half way into the zone: the torque towards the limit is capped at tmax / 2, away from it it is free
    out, bits = _limit(lim_c, QMAX - QZONE / 2, 0.0, 90.0)
    assert out == pytest.approx(TMAX / 2, rel=1e-12) and bits == C.LIM_POSITION
    out, bits = _limit(lim_c, QMAX - QZONE / 2, 0.0, -90.0)
    assert out == -90.0 and bits == C.LIM_POSITION
    # at the limit the cap is 0; half a zone past it the wall pushes back with -tmax / 2 even if asked for 0
    assert _limit(lim_c, QMAX, 0.0, 30.0)[0] == pytest.approx(0.0, abs=1e-12)
    assert _limit(lim_c, QMAX + QZONE / 2, 0.0, 0.0)[0] == pytest.approx(-TMAX / 2, rel=1e-12)
    # far past the limit the push-back is bounded at -tmax
    assert _limit(lim_c, QMAX + 3 * QZONE, 0.0, 0.0) == (-TMAX, C.LIM_POSITION | C.LIM_TORQUE)
    # the lower limit, mirrored
    assert _limit(lim_c, QMIN + QZONE / 4, 0.0, -90.0)[0] == pytest.approx(-TMAX / 4, rel=1e-12)
    assert _limit(lim_c, QMIN - QZONE / 2, 0.0, 0.0)[0] == pytest.approx(TMAX / 2, rel=1e-12)


def test_velocity_zone_in_numbers(lim_c):
    vzone = VMAX * VZONE_FRACTION
    out, bits = _limit(lim_c, 0.0, VMAX - vzone / 2, 90.0)  # half way through the zone: tmax / 2 along the motion
    assert out == pytest.approx(TMAX / 2, rel=1e-12) and bits == C.LIM_VELOCITY
    assert _limit(lim_c, 0.0, VMAX - vzone / 2, -90.0)[0] == -90.0  # braking is never capped
    assert _limit(lim_c, 0.0, VMAX + vzone / 2, 0.0)[0] == pytest.approx(-TMAX / 2, rel=1e-12)  # brakes above vmax
    assert _limit(lim_c, 0.0, VMAX + 5 * vzone, 0.0)[0] == -TMAX
    assert _limit(lim_c, 0.0, -(VMAX - vzone / 4), -90.0)[0] == pytest.approx(-TMAX / 4, rel=1e-12)
    assert _limit(lim_c, 0.0, -(VMAX + vzone / 2), 0.0)[0] == pytest.approx(TMAX / 2, rel=1e-12)


def test_limiter_equals_the_documented_rule_on_a_grid(lim_c):
    qs = np.concatenate([np.linspace(QMIN - 0.3, QMIN + 0.3, 25), np.linspace(-0.2, 0.2, 3),
                         np.linspace(QMAX - 0.3, QMAX + 0.3, 25)])
    qds = np.linspace(-1.5 * VMAX, 1.5 * VMAX, 31)
    taus = np.linspace(-1.6 * TMAX, 1.6 * TMAX, 17)
    checked = 0
    for q in qs:
        for qd in qds:
            for tau in taus:
                want, want_bits, conflict = reference_limit(q, qd, tau)
                if conflict:
                    continue
                out, bits = _limit(lim_c, q, qd, tau)
                assert out == pytest.approx(want, rel=1e-12, abs=1e-12), (q, qd, tau)
                assert bits == want_bits, (q, qd, tau)
                assert abs(out) <= TMAX
                checked += 1
    assert checked > 0.8 * qs.size * qds.size * taus.size  # 14 % of the grid are conflicts


def test_limiter_is_continuous_across_the_zones(lim_c):
    """Soft zones: no step in the output anywhere (a step would kick the joint)."""
    q = np.linspace(QMAX - 0.2, QMAX + 0.2, 4001)
    out = np.array([_limit(lim_c, x, 0.0, TMAX)[0] for x in q])
    assert np.max(np.abs(np.diff(out))) <= TMAX / QZONE * (q[1] - q[0]) * (1 + 1e-9)


def test_position_wall_wins_over_the_velocity_cap(lim_c):
    q, qd = QMAX + QZONE / 2, -1.1 * VMAX  # wall: hi = -tmax / 2; velocity cap: lo = +0.3 tmax (brake)
    _, _, conflict = reference_limit(q, qd, 0.0)
    assert conflict
    assert _limit(lim_c, q, qd, 0.0)[0] == pytest.approx(-TMAX / 2, rel=1e-12)


# --------------------------------------------------------------------------------------------------------
# velocity estimators
# --------------------------------------------------------------------------------------------------------

BANDWIDTH_HZ = 400.0


def _estimator(params, kind):
    cfg = ControllerConfig(estimator=kind, estimator_bandwidth_hz=BANDWIDTH_HZ)
    return compile_controller(cfg, params), new_controller_state()


def _run_estimator(c, k, enc):
    return np.array([C.estimate_velocity(c, k, e) for e in enc])


def reference_observer(enc, h, w_o, ratio):
    """theta+ = theta + h (w + kp e), w+ = w + h ki e, kp = 2 w_o, ki = w_o^2; started on the first sample."""
    theta, w, out = enc[0], 0.0, []
    for e_k in enc:
        e = e_k - theta
        theta += h * (w + 2 * w_o * e)
        w += h * w_o * w_o * e
        out.append(w / ratio)
    return np.array(out)


@pytest.mark.parametrize("kind", ["observer", "filtered_difference"])
def test_both_estimators_converge_to_speed_over_ratio_on_a_ramp(knee, kind):
    c, k = _estimator(knee, kind)
    h, ratio = knee.dt_s, knee.reducer.ratio
    n = 2000  # 50 ms = 126 time constants of a 400 Hz estimator: the transient is below 1e-50
    enc = 0.3 + 123.0 * h * np.arange(n)  # 123 rad/s at the motor
    est = _run_estimator(c, k, enc)
    assert est[-1] == pytest.approx(123.0 / ratio, rel=1e-9)
    assert np.all(np.abs(est[-200:] - 1.23) < 1e-9)


def test_observer_equals_its_recursion_and_the_critically_damped_closed_form(knee):
    """A velocity step W at t = 0 (encoder ramp from sample 0). Continuous, the observer is
    w_hat / w = w_o^2 / (s + w_o)^2: w_hat(t) = W (1 - (1 + w_o t) e^(-w_o t)). The kernel is its forward-Euler
    discretisation at h w_o = 0.063, whose error is a time shift of about one sample on a response of slope at
    most W w_o / e: |error| <= W h w_o / e (0.023 W) plus O((h w_o)^2); the tolerance is W h w_o (0.063 W)."""
    c, k = _estimator(knee, "observer")
    h, ratio = knee.dt_s, knee.reducer.ratio
    w_o = 2 * math.pi * BANDWIDTH_HZ
    W = 50.0  # motor rad/s
    n = 800  # 20 ms, 50 time constants
    enc = W * h * np.arange(n)
    est = _run_estimator(c, k, enc) * ratio
    np.testing.assert_allclose(est, reference_observer(enc, h, w_o, 1.0), rtol=1e-12, atol=1e-12)
    t = h * np.arange(n)
    closed = W * (1 - (1 + w_o * t) * np.exp(-w_o * t))
    err = np.max(np.abs(est - closed))
    assert err <= W * h * w_o
    assert err > 0.1 * W * h * w_o / math.e  # the discretisation is visible: the bound is not vacuous
    assert est[-1] == pytest.approx(W, rel=1e-9)


def test_filtered_difference_is_a_first_order_lowpass_of_the_difference(knee):
    c, k = _estimator(knee, "filtered_difference")
    h, ratio = knee.dt_s, knee.reducer.ratio
    rng = np.random.default_rng(3)
    enc = 2.0 + np.cumsum(rng.normal(0.0, 0.01, 3000))  # a random walk of the motor angle
    est = _run_estimator(c, k, enc)
    alpha = -math.expm1(-h * 2 * math.pi * BANDWIDTH_HZ)  # exact ZOH design of 1 / (s / w_c + 1)
    raw = np.diff(enc, prepend=enc[0]) / h  # the first sample only primes the difference
    lowpass = signal.lfilter([alpha], [1.0, alpha - 1.0], raw)
    np.testing.assert_allclose(est, lowpass / ratio, rtol=1e-10, atol=1e-9)


# --------------------------------------------------------------------------------------------------------
# torque -> current (mesh-loss compensation of the impedance mode)
# --------------------------------------------------------------------------------------------------------

ETA = 0.78
EPS = 0.01


def _conversion(params, efficiency):
    cfg = ControllerConfig(impedance=ImpedanceGains(efficiency=efficiency, friction_velocity_epsilon_rad_s=EPS))
    return compile_controller(cfg, params)


@pytest.mark.parametrize(("tau", "qd", "scale"), [
    (12.0, 1.0, 1 / ETA),            # driving: tau and qd agree, |qd| = 100 eps (tanh = 1 - 3e-87)
    (-12.0, -1.0, 1 / ETA),
    (12.0, -1.0, 2 - 1 / ETA),       # back-driven
    (-12.0, 1.0, 2 - 1 / ETA),
    (12.0, 0.0, 1.0),                # at rest: no power flow, no compensation
    (12.0, EPS, 1 + (1 / ETA - 1) * math.tanh(1.0)),  # the smooth sign in between
])
def test_mesh_loss_factor_is_one_over_eta_driving_and_two_minus_one_over_eta_back_driven(knee, tau, qd, scale):
    assert C.mesh_loss_factor(_conversion(knee, ETA), tau, qd) == pytest.approx(scale, rel=1e-12)
    assert C.mesh_loss_factor(_conversion(knee, 1.0), tau, qd) == 1.0


def _motor_ramp_state(params, qd_out, q0=0.0):
    """A joint state whose encoders move at qd_out (output rad/s) from q0, indexed by model step."""
    x = L.initial_state(params, q0)
    h, ratio = params.dt_s, params.reducer.ratio

    def at(i):
        x[L.X_ENC_O] = q0 + qd_out * h * i
        x[L.X_ENC_M] = ratio * x[L.X_ENC_O]
        return x

    return at


def _impedance_current(params, impedance, qd, q_des_offset, steps=4000):
    """The q-axis current of the impedance mode on a joint moving at qd, after the 400 Hz observer has
    converged (0.1 s), with the desired position q_des_offset ahead of the joint."""
    c, k = compile_controller(ControllerConfig(mode="impedance", impedance=impedance), params), new_controller_state()
    at = _motor_ramp_state(params, qd)
    for i in range(steps):
        x = at(i)
        iq = C.controller_step(c, k, x, x[L.X_ENC_O] + q_des_offset, 0.0, 0.0)
    assert k[C.K_VEL] == pytest.approx(qd, rel=1e-6, abs=1e-9)
    return iq


@pytest.mark.parametrize(("efficiency", "qd", "offset", "scale"), [
    (1.0, 0.5, 0.04, 1.0),               # efficiency 1: tau / (Kt N)
    (ETA, 0.5, 0.04, 1 / ETA),           # driving: tau / (eta Kt N)
    (ETA, -0.5, 0.04, 2 - 1 / ETA),      # back-driven: tau (2 - 1/eta) / (Kt N)
    (ETA, -0.5, -0.04, 1 / ETA),
    (ETA, 0.0, 0.04, 1.0),
])
def test_impedance_current_is_tau_over_kt_n_with_the_mesh_loss_compensated(knee, efficiency, qd, offset, scale):
    kp = 500.0  # tau = kp * offset = +-20 N·m, no damping, friction or gravity terms
    iq = _impedance_current(knee, ImpedanceGains(kp_nm_per_rad=kp, efficiency=efficiency,
                                                 friction_velocity_epsilon_rad_s=EPS), qd, offset)
    ktn = knee.torque_constant_nm_per_a * knee.reducer.ratio
    assert iq == pytest.approx(kp * offset * scale / ktn, rel=1e-9)


def test_friction_feedforward_is_not_scaled_by_the_mesh_efficiency(knee):
    """The plant's Coulomb and viscous friction sit at the motor, before the mesh, whose loss is
    (1/eta - 1)|transmitted torque| (model/mechanics.py): compensating friction alone at zero transmitted
    torque takes (Fc + B qd) / (Kt N), not 1/eta of it (which an earlier kernel commanded, 28 % too much)."""
    fc, b, qd = 10.0, 2.5, 0.5  # qd = 50 eps: tanh = 1 to 1e-43
    iq = _impedance_current(knee, ImpedanceGains(friction_coulomb_nm=fc, friction_viscous_nm_s_per_rad=b,
                                                 friction_velocity_epsilon_rad_s=EPS, efficiency=ETA), qd, 0.0)
    ktn = knee.torque_constant_nm_per_a * knee.reducer.ratio
    assert iq == pytest.approx((fc + b * qd) / ktn, rel=1e-9)


@pytest.mark.parametrize("mode", ["torque", "velocity", "position"])
def test_other_modes_convert_without_efficiency(knee, mode):
    cfg = ControllerConfig(mode=mode, impedance=ImpedanceGains(efficiency=ETA), gravity_feedforward_nm=9.81,
                           velocity=LoopGains(kp=0.0))
    c, k = compile_controller(cfg, knee), new_controller_state()
    at = _motor_ramp_state(knee, 0.5, q0=0.3)
    for i in range(397):  # the last step, 396, is a velocity tick: K_POS is the q the torque was computed at
        iq = C.controller_step(c, k, at(i), 0.0, 0.0, 0.0)
    ktn = knee.torque_constant_nm_per_a * knee.reducer.ratio
    assert iq == pytest.approx(k[C.K_TAU] / ktn, rel=1e-12)
    assert k[C.K_TAU] == pytest.approx(9.81 * math.sin(k[C.K_POS]), rel=1e-12)  # the gravity feedforward alone


# --------------------------------------------------------------------------------------------------------
# loop rates
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("vel_hz", "pos_hz"), [(10000.0, 2000.0), (5000.0, 1000.0), (40000.0, 40000.0)])
def test_current_reference_changes_only_on_velocity_ticks_and_velocity_reference_on_position_ticks(
        knee, vel_hz, pos_hz):
    cfg = ControllerConfig(velocity_loop_rate_hz=vel_hz, position_loop_rate_hz=pos_hz,
                           position=LoopGains(kp=30.0), velocity=LoopGains(kp=100.0, ki=2000.0))
    c, k = compile_controller(cfg, knee), new_controller_state()
    vel_div, pos_div = round(40000.0 / vel_hz), round(40000.0 / pos_hz)
    assert (c[C.C_VEL_DIV], c[C.C_POS_DIV]) == (vel_div, pos_div)
    rng = np.random.default_rng(7)
    x = L.initial_state(knee)
    n = 40 * pos_div
    iq, vref = np.empty(n), np.empty(n)
    for i in range(n):  # encoders that move every step (a noisy slow ramp): every tick sees new inputs
        x[L.X_ENC_O] = 1e-3 * i * knee.dt_s + rng.normal(0.0, 1e-5)
        x[L.X_ENC_M] = 100.0 * x[L.X_ENC_O] + rng.normal(0.0, 1e-4)
        iq[i] = C.controller_step(c, k, x, 0.01, 0.0, 0.0)
        vref[i] = k[C.K_VEL_REF]
    steps = np.arange(1, n)
    iq_changed = steps[np.diff(iq) != 0]
    vref_changed = steps[np.diff(vref) != 0]
    assert np.all(iq_changed % vel_div == 0)
    assert np.all(vref_changed % pos_div == 0)
    # and they do change on (almost) every tick, so the test is not passing on a frozen controller
    assert iq_changed.size >= 0.9 * (n // vel_div - 1)
    assert vref_changed.size >= 0.9 * (n // pos_div - 1)


# --------------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------------

def test_rates_that_do_not_divide_are_rejected(knee):
    with pytest.raises(ConfigError, match=r"velocity_loop_rate_hz = 15000\.0 .*drive\.current_loop_rate_hz"):
        compile_controller(ControllerConfig(velocity_loop_rate_hz=15000.0), knee)
    with pytest.raises(ConfigError, match=r"velocity_loop_rate_hz = 80000\.0"):  # faster than the model step
        compile_controller(ControllerConfig(velocity_loop_rate_hz=80000.0), knee)
    with pytest.raises(ConfigError, match=r"position_loop_rate_hz = 3000\.0 .*velocity_loop_rate_hz"):
        compile_controller(ControllerConfig(position_loop_rate_hz=3000.0), knee)
    with pytest.raises(ConfigError, match=r"position_loop_rate_hz = 2000\.0 .*velocity_loop_rate_hz = 5000\.0"):
        compile_controller(ControllerConfig(velocity_loop_rate_hz=5000.0, position_loop_rate_hz=2000.0), knee)


@pytest.mark.parametrize(("field", "value", "joint"), [
    ("torque_max_nm", 200.0, "limits.torque_max_nm = 150.0"),
    ("velocity_max_rad_s", 4.0, "limits.velocity_max_rad_s = 3.2"),
    ("current_max_a", 30.0, "motor.current_limit_a = 25.0"),
])
def test_limits_above_the_joints_are_rejected(knee, field, value, joint):
    cfg = ControllerConfig(limits=SafetyLimits(**{field: value}))
    with pytest.raises(ConfigError, match=rf"limits\.{field} = {value!r} is not allowed: .*{joint}"):
        compile_controller(cfg, knee)


def test_inverted_position_limits_are_rejected(knee):
    cfg = ControllerConfig(limits=SafetyLimits(position_min_rad=0.5, position_max_rad=-0.5))
    with pytest.raises(ConfigError, match=r"limits\.position_max_rad = -0\.5"):
        compile_controller(cfg, knee)


def test_unknown_mode_and_choices_name_key_value_and_allowed():
    with pytest.raises(ConfigError, match=r"mode = 'turbo' is not allowed: choose one of .*'torque'.*'admittance'"):
        config_from_dict({"mode": "turbo"})
    with pytest.raises(ConfigError, match=r"mode = 'turbo' is not allowed: choose one of"):
        ControllerConfig().with_mode("turbo")
    with pytest.raises(ConfigError, match=r"estimator = 'kalman' is not allowed: choose one of .*'observer'"):
        config_from_dict({"estimator": "kalman"})
    with pytest.raises(ConfigError, match=r"velocity\.anti_windup = 'magic' is not allowed: .*'back_calculation'"):
        config_from_dict({"velocity": {"anti_windup": "magic"}})
    with pytest.raises(ConfigError, match=r"position\.kp = -1\.0 is out of range: allowed \[0, inf\]"):
        config_from_dict({"position": {"kp": -1.0}})


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"velocity\.kq: unknown key; allowed keys here: kp, ki, kd"):
        config_from_dict({"velocity": {"kp": 1.0, "kq": 2.0}})
    with pytest.raises(ConfigError, match=r"gains_hz: unknown key; allowed keys here: mode, "):
        config_from_dict({"gains_hz": 3.0})


def test_save_then_load_round_trips(tmp_path):
    cfg = ControllerConfig(
        mode="impedance", velocity_loop_rate_hz=8000.0, position_loop_rate_hz=1000.0,
        estimator="filtered_difference", estimator_bandwidth_hz=321.5, gravity_feedforward_nm=9.81,
        position=LoopGains(kp=31.4, ki=2.5, kd=0.01, anti_windup="clamping", setpoint_weight=0.7),
        velocity=LoopGains(kp=218.0, ki=8574.1, tracking_time_s=0.02),
        impedance=ImpedanceGains(kp_nm_per_rad=200.0, kd_nm_s_per_rad=23.3, friction_coulomb_nm=10.0,
                                 friction_viscous_nm_s_per_rad=2.5, efficiency=0.78),
        admittance=AdmittanceGains(mass_kg_m2=0.3, damping_nm_s_per_rad=5.0, tool_mass_kg=1.0),
        notch=NotchConfig(center_hz=49.5, q=2.0, depth_db=20.0),
        limits=SafetyLimits(position_min_rad=-1.0, position_max_rad=1.2, torque_max_nm=80.0))
    path = tmp_path / "g.toml"
    save_gains(cfg, path)
    assert load_gains(path) == cfg


def test_unknown_key_in_a_gains_file_names_the_file(tmp_path):
    path = tmp_path / "bad_gains.toml"
    path.write_text('mode = "position"\n[velocity]\nkp = 10.0\nkj = 3.0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: velocity\.kj: unknown key"):
        load_gains(path)
    broken = tmp_path / "broken.toml"
    broken.write_text("mode = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(broken))}: not valid TOML"):
        load_gains(broken)
    with pytest.raises(ConfigError, match="cannot read gains file"):
        load_gains(tmp_path / "missing.toml")


# --------------------------------------------------------------------------------------------------------
# reference rows
# --------------------------------------------------------------------------------------------------------

H_REF = 1e-3
COLUMN = {"torque": C.R_TORQUE, "velocity": C.R_VEL, "position": C.R_POS, "impedance": C.R_POS,
          "admittance": C.R_POS}


@pytest.mark.parametrize("mode", list(COLUMN))
def test_step_chirp_and_array_go_to_the_column_of_the_mode(mode):
    n, start = 500, 0.25
    col = COLUMN[mode]
    offset = start if col == C.R_POS else 0.0  # position-like modes are relative to the start position
    step = reference_rows(Step(2.0, at_s=0.1), n, H_REF, mode, start_position_rad=start)
    expected = np.where(np.arange(n) * H_REF >= 0.1, 2.0, 0.0)
    _, sweep = chirp(1.0, 50.0, n * H_REF, 1 / H_REF, 0.5)
    arr = np.sin(np.arange(n) * 0.01)
    for rows, sig in ((step, expected),
                      (reference_rows(Chirp(0.5, 1.0, 50.0), n, H_REF, mode, start_position_rad=start), sweep),
                      (reference_rows(arr, n, H_REF, mode, start_position_rad=start), arr)):
        assert rows.shape == (n, C.N_REF)
        np.testing.assert_allclose(rows[:, col], offset + sig, rtol=0, atol=1e-15)
        others = [j for j in range(C.N_REF) if j != col]
        assert not np.any(rows[:, others])


def test_trajectory_supplies_its_velocity_as_feedforward():
    traj = plan("trapezoid", 0.2, 0.7, 1.0, 4.0, dt_s=H_REF)
    n = traj.t_s.size + 50
    rows = reference_rows(traj, n, H_REF, "position", start_position_rad=0.2)
    np.testing.assert_allclose(rows[:traj.t_s.size, C.R_POS], traj.position_rad, atol=1e-12)
    np.testing.assert_allclose(rows[:traj.t_s.size, C.R_VEL], traj.velocity_rad_s, atol=1e-12)
    assert rows[-1, C.R_POS] == pytest.approx(0.7) and rows[-1, C.R_VEL] == pytest.approx(0.0, abs=1e-12)


def test_torque_feedforward_is_added_to_the_torque_column():
    rows = reference_rows(Step(3.0), 10, H_REF, "torque", torque_ff_nm=1.5)
    np.testing.assert_allclose(rows[:, C.R_TORQUE], 4.5)
    rows = reference_rows(Step(3.0), 10, H_REF, "position", torque_ff_nm=1.5)
    np.testing.assert_allclose(rows[:, C.R_TORQUE], 1.5)


def test_bad_references_raise_config_error():
    with pytest.raises(ConfigError, match=r"reference has 99 samples: expected a scalar or 100"):
        reference_rows(np.zeros(99), 100, H_REF, "position")
    with pytest.raises(ConfigError, match=r"reference has 4 samples"):
        reference_rows(np.zeros((2, 2)), 100, H_REF, "velocity")
    bad = np.zeros(100)
    bad[3] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        reference_rows(bad, 100, H_REF, "torque")
    with pytest.raises(ConfigError, match=r"mode = 'turbo' is not allowed"):
        reference_rows(Step(1.0), 100, H_REF, "turbo")


def test_scalar_reference_is_held():
    rows = reference_rows(0.4, 20, H_REF, "velocity")
    np.testing.assert_allclose(rows[:, C.R_VEL], 0.4)


def test_compiled_vector_has_the_documented_layout(knee):
    cfg = ControllerConfig(impedance=replace(ImpedanceGains(), efficiency=0.9), gravity_feedforward_nm=2.0)
    c = compile_controller(cfg, knee)
    assert c.shape == (C.N_CTRL,)
    assert c[C.C_DT] == knee.dt_s and c[C.C_RATIO] == knee.reducer.ratio
    assert c[C.C_TORQUE_PER_A] == pytest.approx(knee.torque_constant_nm_per_a * knee.reducer.ratio)
    assert c[C.C_EFF] == 0.9 and c[C.C_MGL] == 2.0
    w_o = 2 * math.pi * cfg.estimator_bandwidth_hz
    assert (c[C.C_EST_KP], c[C.C_EST_KI]) == pytest.approx((2 * w_o, w_o * w_o))
    assert new_controller_state().shape == (C.N_CSTATE,)


def test_trajectory_in_velocity_mode_uses_its_velocity_and_is_refused_in_torque_mode():
    from actuator.control.reference import reference_rows
    from actuator.control.trajectory import plan
    from actuator.errors import ConfigError

    dt = 1e-3
    traj = plan("trapezoid", 0.0, 1.0, 2.0, 10.0, dt_s=dt)
    n = traj.t_s.size
    rows = reference_rows(traj, n, dt, "velocity")
    assert np.allclose(rows[:, C.R_VEL], traj.velocity_rad_s) and not rows[:, C.R_POS].any()
    with pytest.raises(ConfigError, match="torque mode"):
        reference_rows(traj, n, dt, "torque")


def test_admittance_settles_at_wrench_over_stiffness(wrist):
    """A 1 N·m torque about the axis through the F/T sensor (Mz) moves the admittance's equilibrium by
    tau / K_adm; the tool's weight is removed from the reading, so without a wrench nothing moves."""
    from actuator import simulate
    from actuator.analysis.tuning import default_controller
    from actuator.simulation import Injection

    k_adm = 20.0
    cfg = default_controller(wrist).replace(
        "admittance", mass_kg_m2=0.5, damping_nm_s_per_rad=10.0, stiffness_nm_per_rad=k_adm,
        force_filter_hz=30.0, tool_mass_kg=wrist.ft_sensor.tool_mass_kg,
        sensor_distance_m=wrist.ft_sensor.distance_from_axis_m).with_mode("admittance")
    tr = simulate(wrist, duration_s=4.0, controller=cfg, record_every=40,
                  injections=[Injection(1.0, "external_wrench", [0, 0, 0, 0, 0, 1.0])])
    before = tr.t_s < 1.0
    # F/T noise 0.004 N·m and its drift over 1 s, through 1/K_adm: well under 1 mrad
    assert np.max(np.abs(tr.admittance_offset_rad[before])) < 1e-3
    # settled: the slow pole of 0.5 s² + 10 s + 20 is at -2.25 /s, so 3 s after the push e^-6.75 = 0.1 % is left
    assert tr.admittance_offset_rad[-1] == pytest.approx(1.0 / k_adm, rel=0.01)
    assert tr.position_rad[-1] == pytest.approx(1.0 / k_adm, rel=0.02)
