"""Filters against closed forms and scipy.signal; trajectories against their limits and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from actuator.control import filters as F
from actuator.control import trajectory as T
from actuator.errors import ConfigError

DT = 1e-4  # 10 kHz
FS = 1.0 / DT


def ba(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return coef[:3], np.array([1.0, coef[3], coef[4]])


def gain_db(coef: np.ndarray, freq_hz: float) -> float:
    _, h = signal.freqz(*ba(coef), worN=[freq_hz], fs=FS)
    return 20.0 * math.log10(abs(h[0]))


def prewarped_bilinear(b_analog: list[float], a_analog: list[float], w_analog: float, w0: float) -> np.ndarray:
    """scipy's bilinear transform with s = k (z - 1)/(z + 1), k chosen so w_analog maps to w0 exactly."""
    b, a = signal.bilinear(b_analog, a_analog, fs=w_analog / (2.0 * math.tan(w0 / 2.0)))
    return np.concatenate([b, a[1:]])


# ---------------------------------------------------------------- first-order low-pass


@pytest.mark.parametrize("step", [F.lowpass1_step, F.lowpass1_step.py_func])
def test_lowpass1_step_response_is_exact_at_samples(step):
    cutoff_hz = 50.0
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    alpha = F.lowpass1_design(cutoff_hz, DT)
    state = np.zeros(1)
    y = np.array([step(alpha, state, 1.0) for _ in range(2000)])
    t = DT * np.arange(1, 2001)
    np.testing.assert_allclose(y, -np.expm1(-t / tau), rtol=1e-12)


# ---------------------------------------------------------------- biquad designs


def test_biquad_lowpass_butterworth_equals_scipy_butter_and_is_3db_at_cutoff():
    coef = F.biquad_lowpass(800.0, 1.0 / math.sqrt(2.0), DT)
    b, a = signal.butter(2, 800.0, fs=FS)
    np.testing.assert_allclose(coef, np.concatenate([b, a[1:]]), rtol=0, atol=1e-12)
    assert abs(gain_db(coef, 800.0) + 3.0) < 0.05  # exactly -10 log10(2) = -3.0103 dB
    assert abs(gain_db(coef, 1e-3)) < 1e-6


@pytest.mark.parametrize("q", [0.5, 2.0])
def test_biquad_lowpass_is_prewarped_bilinear_of_analog_prototype(q):
    f0 = 1200.0
    w_a = 2.0 * math.pi * f0
    ref = prewarped_bilinear([w_a ** 2], [1.0, w_a / q, w_a ** 2], w_a, w_a * DT)
    np.testing.assert_allclose(F.biquad_lowpass(f0, q, DT), ref, rtol=0, atol=1e-12)
    assert abs(gain_db(F.biquad_lowpass(f0, q, DT), f0) - 20.0 * math.log10(q)) < 1e-9


@pytest.mark.parametrize("depth_db", [None, 6.0, 20.0])
def test_notch_is_prewarped_bilinear_of_analog_prototype(depth_db):
    f0, q = 350.0, 3.0
    w_a = 2.0 * math.pi * f0
    g = 0.0 if depth_db is None else 10.0 ** (-depth_db / 20.0)
    ref = prewarped_bilinear([1.0, g * w_a / q, w_a ** 2], [1.0, w_a / q, w_a ** 2], w_a, w_a * DT)
    np.testing.assert_allclose(F.notch(f0, q, DT, depth_db), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("q_scipy", [0.7, 5.0, 30.0])
def test_full_notch_equals_scipy_iirnotch_with_q_mapped(q_scipy):
    # iirnotch defines q by the digital -3 dB bandwidth, RBJ by the analog one (see filters docstring)
    f0 = 1500.0
    w0 = 2.0 * math.pi * f0 * DT
    q_rbj = math.sin(w0) / (2.0 * math.tan(w0 / (2.0 * q_scipy)))
    b, a = signal.iirnotch(f0, q_scipy, fs=FS)
    b_ours, a_ours = ba(F.notch(f0, q_rbj, DT))
    np.testing.assert_allclose(b_ours, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a_ours, a, rtol=0, atol=1e-12)


def test_notch_gain_at_center_and_far_away():
    f0 = 350.0
    assert gain_db(F.notch(f0, 2.0, DT), f0) < -60.0
    for depth in (3.0, 12.0, 40.0):
        coef = F.notch(f0, 2.0, DT, depth_db=depth)
        assert abs(gain_db(coef, f0) + depth) < 0.01
        assert abs(gain_db(coef, 1.0)) < 1e-3
        assert abs(gain_db(coef, 0.45 * FS)) < 0.05


# ---------------------------------------------------------------- running biquads


@pytest.mark.parametrize("coef", [F.biquad_lowpass(300.0, 0.9, DT), F.notch(1000.0, 1.5, DT, 10.0)])
def test_filter_array_equals_lfilter(coef):
    x = np.random.default_rng(7).normal(size=5000)
    np.testing.assert_allclose(F.filter_array(coef, x), signal.lfilter(*ba(coef), x), rtol=0, atol=1e-12)


def test_filters_compiled_equal_python_path():
    coef = F.notch(700.0, 2.0, DT, 15.0)
    x = np.random.default_rng(3).normal(size=64)
    np.testing.assert_allclose(F.filter_array.py_func(coef, x), F.filter_array(coef, x), rtol=1e-12, atol=1e-15)
    s_jit, s_py = np.zeros(2), np.zeros(2)
    for xi in x:
        assert math.isclose(F.biquad_step(coef, s_jit, xi), F.biquad_step.py_func(coef, s_py, xi),
                            rel_tol=1e-12, abs_tol=1e-15)
    alpha = F.lowpass1_design(100.0, DT)
    s_jit, s_py = np.zeros(1), np.zeros(1)
    for xi in x:
        assert math.isclose(F.lowpass1_step(alpha, s_jit, xi), F.lowpass1_step.py_func(alpha, s_py, xi),
                            rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("call, name", [
    (lambda: F.lowpass1_design(0.0, DT), "cutoff_hz"),
    (lambda: F.lowpass1_design(10.0, -1.0), "dt_s"),
    (lambda: F.biquad_lowpass(5000.0, 0.7, DT), "cutoff_hz"),
    (lambda: F.biquad_lowpass(-1.0, 0.7, DT), "cutoff_hz"),
    (lambda: F.biquad_lowpass(100.0, 0.0, DT), "q"),
    (lambda: F.notch(6000.0, 1.0, DT), "center_hz"),
    (lambda: F.notch(100.0, -2.0, DT), "q"),
    (lambda: F.notch(100.0, 2.0, DT, depth_db=0.0), "depth_db"),
    (lambda: F.notch(100.0, 2.0, math.nan), "dt_s"),
])
def test_filter_bad_arguments_raise(call, name):
    with pytest.raises(ConfigError, match=rf"^{name} = .* allowed \("):
        call()


# ---------------------------------------------------------------- trajectories

V, A, J = 2.0, 10.0, 200.0
CASES = [  # (kind, q0, q1): long moves reach v_max, short ones do not
    (kind, q0, q1) for kind in T.KINDS for q0, q1 in ((0.3, 3.3), (0.3, 0.35), (-1.0, -1.6), (0.0, 0.003))
]


def planned(kind: str, q0: float, q1: float, dt_s: float = 1e-3) -> T.Trajectory:
    return T.plan(kind, q0, q1, V, A, J if kind != "trapezoid" else None, dt_s=dt_s)


@pytest.mark.parametrize("kind, q0, q1", CASES)
def test_profile_starts_and_ends_at_rest_within_limits(kind, q0, q1):
    tr = planned(kind, q0, q1)
    assert tr.position_rad[0] == q0 and tr.velocity_rad_s[0] == 0.0
    assert abs(tr.position_rad[-1] - q1) < 1e-9 and abs(tr.velocity_rad_s[-1]) < 1e-9
    assert tr.acceleration_rad_s2[-1] == 0.0
    assert tr.duration_s - 1e-12 <= tr.t_s[-1] < tr.duration_s + 1e-3
    assert np.max(np.abs(tr.velocity_rad_s)) <= V * (1 + 1e-9)
    assert np.max(np.abs(tr.acceleration_rad_s2)) <= A * (1 + 1e-9)
    # monotone: no overshoot
    steps = np.diff(tr.position_rad) * np.sign(q1 - q0)
    assert np.all(steps >= -1e-12)


@pytest.mark.parametrize("q1", [3.3, 0.35, 0.003, 0.02])
def test_scurve_jerk_within_limit(q1):
    dt = 1e-4
    tr = planned("scurve", 0.0, q1, dt_s=dt)
    jerk = np.diff(tr.acceleration_rad_s2) / dt
    # the difference quotient across a segment boundary averages neighbouring jerks, so it stays within
    # j_max; the tolerance is one sample's rounding: a few ulps of the acceleration divided by dt
    assert np.max(np.abs(jerk)) <= J * (1 + 1e-9) + 4 * np.finfo(float).eps * A / dt


def test_scurve_reaches_limits_on_long_move():
    tr = planned("scurve", 0.0, 5.0)
    assert np.max(tr.velocity_rad_s) == pytest.approx(V, rel=1e-12)
    assert np.max(tr.acceleration_rad_s2) == pytest.approx(A, rel=1e-12)
    # closed form when both limits are reached: dq/v + v/a + a/j
    assert tr.duration_s == pytest.approx(5.0 / V + V / A + A / J, rel=1e-12)


@pytest.mark.parametrize("dq", [3.0, 0.1])
def test_trapezoid_duration_closed_form(dq):
    tr = planned("trapezoid", 1.0, 1.0 + dq)
    expected = dq / V + V / A if dq >= V * V / A else 2.0 * math.sqrt(dq / A)
    assert abs(tr.duration_s - expected) < 1e-12
    assert expected - 1e-12 <= tr.t_s[-1] < expected + 1e-3


def test_min_jerk_peak_velocity_and_duration():
    dq = 3.0
    tr = T.plan("min_jerk", 0.0, dq, V, A, dt_s=1e-3)
    assert tr.duration_s == pytest.approx(max(1.875 * dq / V, math.sqrt(5.7735027 * dq / A)), rel=1e-7)
    t_s, pos, vel, acc = (np.empty(3) for _ in range(4))
    T.sample_min_jerk(0.0, dq, tr.duration_s, 0.5 * tr.duration_s, t_s, pos, vel, acc)  # s = 0, 1/2, 1
    assert vel[1] == pytest.approx(1.875 * dq / tr.duration_s, rel=1e-14)
    assert pos[1] == pytest.approx(0.5 * dq, rel=1e-14) and acc[1] == pytest.approx(0.0, abs=1e-12)
    assert np.max(tr.velocity_rad_s) <= 1.875 * dq / tr.duration_s * (1 + 1e-12)


@pytest.mark.parametrize("kind", T.KINDS)
def test_negative_moves_are_mirrored(kind):
    up = planned(kind, 0.5, 1.7)
    down = planned(kind, 0.5, -0.7)
    np.testing.assert_array_equal(up.t_s, down.t_s)
    np.testing.assert_allclose(down.position_rad - 0.5, -(up.position_rad - 0.5), rtol=0, atol=1e-12)
    np.testing.assert_allclose(down.velocity_rad_s, -up.velocity_rad_s, rtol=0, atol=1e-12)
    np.testing.assert_allclose(down.acceleration_rad_s2, -up.acceleration_rad_s2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", T.KINDS)
def test_zero_move_is_one_sample_at_rest(kind):
    tr = planned(kind, 0.4, 0.4)
    assert tr.duration_s == 0.0 and tr.position_rad.tolist() == [0.4]
    assert tr.velocity_rad_s.tolist() == [0.0] and tr.acceleration_rad_s2.tolist() == [0.0]


def test_trajectory_kernels_compiled_equal_python_path():
    seg = T.scurve_segments(0.4, V, A, J)
    n = 80
    jit_out = [np.empty(n) for _ in range(4)]
    py_out = [np.empty(n) for _ in range(4)]
    T.sample_piecewise_jerk(0.1, -1.0, seg, 5e-3, *jit_out)
    T.sample_piecewise_jerk.py_func(0.1, -1.0, seg, 5e-3, *py_out)
    for x, y in zip(jit_out, py_out, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)
    T.sample_min_jerk(0.1, 0.4, 0.3, 5e-3, *jit_out)
    T.sample_min_jerk.py_func(0.1, 0.4, 0.3, 5e-3, *py_out)
    for x, y in zip(jit_out, py_out, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)


def test_trajectory_arrays_are_read_only():
    tr = planned("trapezoid", 0.0, 1.0)
    with pytest.raises(ValueError):
        tr.position_rad[0] = 1.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(kind="cubic"), "kind"),
    (dict(v_max_rad_s=0.0), "v_max_rad_s"),
    (dict(a_max_rad_s2=-1.0), "a_max_rad_s2"),
    (dict(kind="scurve", j_max_rad_s3=None), "j_max_rad_s3"),
    (dict(kind="scurve", j_max_rad_s3=math.inf), "j_max_rad_s3"),
    (dict(dt_s=0.0), "dt_s"),
    (dict(dt_s=1e-9), "dt_s"),
    (dict(q1_rad=math.nan), "q1_rad"),
])
def test_plan_bad_arguments_raise(kwargs, name):
    args = dict(kind="trapezoid", q0_rad=0.0, q1_rad=1.0, v_max_rad_s=V, a_max_rad_s2=A, j_max_rad_s3=J, dt_s=1e-3)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=rf"^{name} = "):
        T.plan(**args)


@pytest.mark.parametrize("dq", [3.0, 0.2, 0.01])
def test_scurve_when_velocity_limit_caps_acceleration(dq):
    # sqrt(v j) < a: the acceleration peaks at sqrt(v j) before a_max is reached
    v, a, j, dt = 2.0, 10.0, 20.0, 1e-4
    tr = T.plan("scurve", 0.0, dq, v, a, j, dt_s=dt)
    assert abs(tr.position_rad[-1] - dq) < 1e-9 and abs(tr.velocity_rad_s[-1]) < 1e-9
    assert np.max(np.abs(tr.velocity_rad_s)) <= v * (1 + 1e-9)
    assert np.max(np.abs(tr.acceleration_rad_s2)) <= math.sqrt(v * j) * (1 + 1e-9)
    jerk = np.diff(tr.acceleration_rad_s2) / dt
    assert np.max(np.abs(jerk)) <= j * (1 + 1e-9) + 4 * np.finfo(float).eps * a / dt
