"""The controller's position feedback and kinematic-error table (``actuator.control.config``
``[kinematic_error_compensation]``, ``actuator.control.cascade.position_feedback``): the compiled table against a
plain-Python evaluation of KE(theta_m) = sum A_k sin(k theta_m + phi_k), motor feedback closing the position loop on
theta_m / N + KE(theta_m) - zero, and the default (output feedback, no table) leaving every run bit-identical.

Bounds: the series is the same arithmetic as the plain evaluation up to the order of summation (1e-18 rad on a
1e-4 rad sum); on a motor-feedback hold, the true output plus the model's recorded twist less the loop's estimate is
the table's error to the motor encoder's half LSB at the output (14 bits: 3.8e-4 / 2 / 100 = 1.9e-6 rad) and the
output's ripple (1e-6 rad seen): bound 3e-6 rad."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actuator.analysis.tuning import default_controller
from actuator.control import cascade as C
from actuator.control.config import ControllerConfig, compile_controller
from actuator.control.reference import Step
from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.params import load_preset
from actuator.simulation import simulate

TABLE = {"amplitudes_rad": [3e-5, 1.45e-4, 0.0, 2e-6], "phases_rad": [0.4, -1.1, 0.0, 2.5]}


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def _plain_ke(theta_m: float, amplitudes: list[float], phases: list[float]) -> float:
    return sum(a * math.sin((k + 1) * theta_m + p) for k, (a, p) in enumerate(zip(amplitudes, phases, strict=True)))


def test_the_compiled_table_is_the_plain_series(knee) -> None:
    cfg = ControllerConfig().replace("kinematic_error_compensation", position_feedback="motor", motor_zero_rad=2e-4,
                                     **TABLE)
    c = compile_controller(cfg, knee)
    x = np.zeros(L.N_STATE)
    for theta_m in np.linspace(-700.0, 700.0, 41):
        ke = _plain_ke(theta_m, TABLE["amplitudes_rad"], TABLE["phases_rad"])
        assert C.kinematic_error_table(c, theta_m) == pytest.approx(ke, abs=1e-18)
        x[L.X_ENC_M] = theta_m
        assert C.position_feedback(c, x) == pytest.approx(theta_m / 100.0 + ke - 2e-4, abs=1e-15)


def test_output_feedback_takes_the_output_encoder_less_its_zero(knee) -> None:
    x = np.zeros(L.N_STATE)
    x[L.X_ENC_O], x[L.X_ENC_M] = 0.3, 31.0
    plain = compile_controller(ControllerConfig(), knee)
    assert C.position_feedback(plain, x) == 0.3
    zeroed = compile_controller(ControllerConfig().replace("kinematic_error_compensation", output_zero_rad=0.01), knee)
    assert C.position_feedback(zeroed, x) == pytest.approx(0.29, abs=1e-15)


def test_the_twist_term_removes_the_links_weight_over_the_stiffness(knee) -> None:
    cfg = ControllerConfig(gravity_feedforward_nm=9.81).replace("kinematic_error_compensation",
                                                                position_feedback="motor", stiffness_nm_per_rad=3.1e4)
    x = np.zeros(L.N_STATE)
    x[L.X_ENC_M] = 100.0
    assert C.position_feedback(compile_controller(cfg, knee), x) == pytest.approx(1.0 - 9.81 * math.sin(1.0) / 3.1e4)


def test_the_default_is_off_and_runs_bit_identical(knee) -> None:
    """The new controller entries compile to 0 by default; a table given with output feedback (and no output zero)
    changes nothing in a closed-loop run: every sample of every column is the same."""
    gains = default_controller(knee)
    c = compile_controller(gains, knee)
    assert np.all(c[C.C_KE_FB_MOTOR:C.C_KE_PH + C.MAX_HARMONICS] == 0.0) and c.shape == (C.N_CTRL,)
    with_table = gains.replace("kinematic_error_compensation", **TABLE)
    a = simulate(knee, duration_s=0.3, controller=gains, reference=Step(0.05, at_s=0.02))
    b = simulate(knee, duration_s=0.3, controller=with_table, reference=Step(0.05, at_s=0.02))
    assert np.array_equal(a.data, b.data)


def test_motor_feedback_closes_on_the_tables_estimate(knee) -> None:
    """A hold on motor feedback: the true output less the loop's estimate theta_m / N + KE_table(theta_m), with the
    flexspline's twist added back (the model's own, recorded: its hysteresis leaves up to tau_hmax / K1 = 7.9e-5
    rad that no motor-side table can know), is the table's error: the reducer's KE and the motor encoder's INL / N
    without the table, 0 with the table of both, to the motor encoder's half LSB at the output (1.9e-6 rad).
    (The true output less the set-point also carries the loop's own friction limit cycle, +-2e-4 rad on the knee
    with either feedback: not the encoders'.)"""
    gains = default_controller(knee)
    r = knee.reducer
    inl = knee.encoders.motor.nonlinearity_rad / r.ratio  # the motor encoder's INL at the output: KE's k = 1
    own = {"amplitudes_rad": [inl, *r.kinematic_error_amplitudes_rad[1:]],
           "phases_rad": [math.pi, *r.kinematic_error_phases_rad[1:]]}
    for table in ({}, own):
        cfg = gains.replace("kinematic_error_compensation", position_feedback="motor", **table)
        tr = simulate(knee, duration_s=0.6, controller=cfg, reference=Step(0.0021, at_s=0.02), record_every=40)
        rm, q, twist = (tr[k][-300:] for k in ("motor_encoder_rad", "position_rad", "twist_rad"))
        estimate = rm / r.ratio + np.array([_plain_ke(m, table.get("amplitudes_rad", []), table.get("phases_rad", []))
                                            for m in rm])
        error = float(np.mean(q + twist - estimate))
        truth = float(np.mean([_plain_ke(m, own["amplitudes_rad"], own["phases_rad"]) for m in rm]))
        # without the table: KE - INL_m sin(theta_m) / N at theta_m ~ 0.21 (5.9e-5 - 1.8e-5 rad); with it, 0
        expected = 0.0 if table else truth
        assert abs(truth) > 3e-5 and error == pytest.approx(expected, abs=3e-6)


def test_a_table_longer_than_the_harmonics_is_refused(knee) -> None:
    cfg = ControllerConfig().replace("kinematic_error_compensation", amplitudes_rad=[1e-5] * 5, phases_rad=[0.0] * 5)
    with pytest.raises(ConfigError, match=r"amplitudes_rad = .* at most 4 harmonics"):
        compile_controller(cfg, knee)
