"""The firmware's supervisor over n joints (actuator.control.supervisor): each joint follows the rules on its own
clock and its own state, whatever the others do. The model is not run: the tests move each joint's clock and state
by hand, so every rule is checked against its number (the watchdog against the timeout, clamping against the limits,
tracking against its limit)."""

from __future__ import annotations

import numpy as np
import pytest

from actuator.analysis.tuning import default_controller
from actuator.control import cascade as C
from actuator.control import supervisor as S
from actuator.control.config import resolved_limits
from actuator.model import layout as L
from actuator.params import load_preset
from actuator.simulation import JointModel

N = 3


@pytest.fixture()
def sup() -> S.Supervisor:
    knee = load_preset("knee")
    gains = default_controller(knee)
    models = [JointModel(knee) for _ in range(N)]
    for m in models:
        m.attach(gains)
    P, X, K, Cv, ENV = (np.stack([getattr(m, a) for m in models]) for a in ("p", "x", "k", "c", "env"))
    return S.Supervisor([knee] * N, P, X, K, Cv, ENV, limits=[resolved_limits(gains, knee)] * N,
                        gravity_ff_nm=gains.gravity_feedforward_nm, mode="position")


def _mask(*joints: int) -> np.ndarray:
    m = np.zeros(N, dtype=bool)
    m[list(joints)] = True
    return m


def _at(sup: S.Supervisor, t_s: float) -> None:
    sup.X[:, L.X_TIME] = t_s


def test_powered_up_idle_with_the_drive_off(sup: S.Supervisor) -> None:
    assert (sup.state == S.IDLE).all() and (sup.C[:, C.C_MODE] == C.MODE_TORQUE).all()
    assert (sup.C[:, C.C_MGL] == 0.0).all() and (sup.ref == 0.0).all()


def test_closed_loop_holds_position_with_fresh_integrators(sup: S.Supervisor) -> None:
    sup.X[:, L.X_ENC_O] = [0.1, 0.2, 0.3]
    sup.K[:, C.K_POS_PID:C.K_VEL_PID] = 5.0
    sup.set_state(_mask(0, 2), S.CLOSED_LOOP)
    assert list(sup.state) == [S.CLOSED_LOOP, S.IDLE, S.CLOSED_LOOP]
    np.testing.assert_array_equal(sup.ref[:, C.R_POS], [0.1, 0.0, 0.3])
    assert (sup.K[[0, 2], C.K_POS_PID:C.K_VEL_PID] == 0.0).all() and (sup.K[1, C.K_POS_PID:C.K_VEL_PID] == 5).all()
    np.testing.assert_array_equal(sup.C[:, C.C_MODE], [C.MODE_POSITION, C.MODE_TORQUE, C.MODE_POSITION])


def test_commands_accepted_only_in_closed_loop_in_the_mode_and_clamped(sup: S.Supervisor) -> None:
    sup.set_state(_mask(0, 1), S.CLOSED_LOOP)
    far = sup.hi[0, C.R_POS] + 1.0
    values = np.array([[0.2, 0.0, 0.0], [far, 0.0, 0.0], [0.2, 0.0, 0.0]])
    ok, clamped = sup.command(None, "position", values)
    assert list(ok) == [True, True, False]  # joint 2 is idle
    assert sup.ref[1, C.R_POS] == sup.hi[1, C.R_POS] == clamped[1, C.R_POS]
    assert [int(sup.counters[k][1]) for k in ("commands", "clamped", "rejected")] == [1, 1, 0]
    assert int(sup.counters["rejected"][2]) == 1
    ok, _ = sup.command(None, "velocity", values)  # not the selected mode
    assert not ok.any() and sup.ref[0, C.R_POS] == 0.2
    ok, _ = sup.command(None, "position", np.array([[np.nan, 0, 0]] * N))
    assert not ok.any()


def test_ticks_in_a_row_leave_the_last_as_reference(sup: S.Supervisor) -> None:
    sup.set_state(None, S.CLOSED_LOOP)
    values = np.zeros((N, 5, C.N_REF))
    values[:, :, C.R_POS] = np.linspace(0.0, 0.4, 5)
    ok, clamped = sup.command(None, "position", values, t_s=np.full(N, 0.004))
    assert ok.all() and (sup.ref[:, C.R_POS] == 0.4).all() and (sup.last_command_t == 0.004).all()
    np.testing.assert_array_equal(clamped, values)


def test_watchdog_per_joint_on_its_own_clock(sup: S.Supervisor) -> None:
    """Joint 0 is fed, joint 1 is not: only joint 1 starts a damped stop once its clock passes the timeout, and latches
    ``watchdog`` when the stop time is over (it is not still: its speed is held above STILL_RAD_S)."""
    sup.set_state(_mask(0, 1), S.CLOSED_LOOP)
    timeout = float(sup.watchdog_timeout_s[0])
    _at(sup, timeout)  # exactly the timeout: not late
    sup.command(_mask(0), "position", np.zeros((N, 3)))
    sup.before_chunk()
    assert (sup.stop_until_t < 0).all()
    _at(sup, timeout + 0.001)
    sup.K[:, C.K_VEL] = 1.0
    sup.before_chunk()
    assert list(sup.stop_until_t >= 0) == [False, True, False]
    assert sup.C[1, C.C_MODE] == C.MODE_VELOCITY and (sup.ref[1] == 0.0).all()
    assert int(sup.counters["watchdog_trips"][1]) == 1
    assert not sup.command(_mask(1), "position", np.zeros((N, 3)))[0][1]  # no command during the stop
    _at(sup, timeout + 0.001 + S.STOP_TIME_S)
    sup.before_chunk()
    assert list(sup.state) == [S.CLOSED_LOOP, S.FAULT, S.IDLE]
    assert sup.stop_until_t[0] >= 0 and sup.stop_until_t[1] < 0  # joint 0, fed at `timeout`, late by now: its stop
    assert sup.faults[1] == S.FAULT_WATCHDOG
    np.testing.assert_array_equal(sup.C[:, C.C_MODE], [C.MODE_VELOCITY, C.MODE_TORQUE, C.MODE_TORQUE])


def test_fault_is_left_only_by_clear_faults(sup: S.Supervisor) -> None:
    sup.set_state(None, S.CLOSED_LOOP)
    sup.estop(_mask(2))
    assert sup.state[2] == S.FAULT and sup.faults[2] == S.FAULT_ESTOP and sup.C[2, C.C_MODE] == C.MODE_TORQUE
    refused = sup.set_state(None, S.CLOSED_LOOP)
    assert list(refused) == [False, False, True]
    assert not sup.set_state(_mask(2), S.IDLE).any() and sup.state[2] == S.FAULT  # idle asked: no change
    sup.clear_faults(_mask(2))
    assert sup.state[2] == S.IDLE and sup.faults[2] == 0
    assert list(sup.state[:2]) == [S.CLOSED_LOOP, S.CLOSED_LOOP]


def test_tracking_and_model_faults_per_joint(sup: S.Supervisor) -> None:
    sup.set_state(None, S.CLOSED_LOOP)
    limit = float(sup.tracking_limit_rad[0])
    before = sup.X.copy()
    error = np.array([limit * 0.99, limit * 1.01, 0.0])
    bits = np.array([0, 0, L.FAULT_OVERCURRENT])
    assert not sup.after_chunk(bits, before, before[:, L.X_TIME] + 0.001, error).any()
    assert list(sup.state) == [S.CLOSED_LOOP, S.FAULT, S.FAULT]
    assert list(sup.faults) == [0, S.FAULT_TRACKING, L.FAULT_OVERCURRENT]


def test_diverged_joint_is_put_back_at_rest(sup: S.Supervisor) -> None:
    sup.set_state(None, S.CLOSED_LOOP)
    sup.X[:, L.X_THL] = 0.3
    before = sup.X.copy()
    sup.X[0, L.X_WL] = np.nan
    sup.X[1, L.X_WL] = 1.01 * sup.diverged_rad_s[1]
    sup.X[2, L.X_WL] = 0.99 * sup.diverged_rad_s[2]
    diverged = sup.after_chunk(np.zeros(N, dtype=np.int64), before, np.full(N, 0.5))
    assert list(diverged) == [True, True, False]
    assert list(sup.faults) == [S.FAULT_UNSTABLE, S.FAULT_UNSTABLE, 0]
    assert (sup.X[:2, L.X_WL] == 0.0).all() and (sup.X[:2, L.X_THL] == 0.3).all()
    assert (sup.X[:2, L.X_TIME] == 0.5).all() and np.isfinite(sup.X).all()
