"""The impedance loop's Coulomb feed-forward following the housing temperature (issue 17, item 4):
``ImpedanceGains.friction_temp_coeff_per_k`` (beta) and ``friction_ref_temp_c`` scale ``friction_coulomb_nm`` by
exp(-beta (T_housing - T_ref)), the grease's law of the model (actuator.model.mechanics), at the housing temperature
the firmware reads (the model's housing node, what its telemetry reports as housing_temp_c). Checked against a plain
Python reference of that formula, and off (beta 0, the default) bit-identical whatever T_ref and the temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actuator.control import cascade as C
from actuator.control.config import ControllerConfig, ImpedanceGains, compile_controller, new_controller_state
from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.params import load_preset
from firmware_iface.virtual_joint.firmware import JointFirmware

EPS = 0.01  # rad/s: at 0.5 rad/s tanh(qd / eps) = 1 to 1e-43, the smooth sign is exactly the sign


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def _feedforward_current(params, impedance: ImpedanceGains, qd: float, housing_c: float, steps: int = 4000) -> float:
    """The impedance mode's q-axis current on a joint whose encoders move at qd with the housing at ``housing_c``,
    after the velocity observer has converged; no stiffness, damping or gravity: the friction feed-forward alone."""
    c, k = compile_controller(ControllerConfig(mode="impedance", impedance=impedance), params), new_controller_state()
    x = L.initial_state(params, 0.0)
    x[L.X_TH] = housing_c
    h, ratio = params.dt_s, params.reducer.ratio
    iq = 0.0
    for i in range(steps):
        x[L.X_ENC_O] = qd * h * i
        x[L.X_ENC_M] = ratio * x[L.X_ENC_O]
        iq = C.controller_step(c, k, x, x[L.X_ENC_O], 0.0, 0.0)
    return iq


@pytest.mark.parametrize(("beta", "t_ref", "housing_c", "qd"), [
    (0.043, 25.0, 25.0, 0.5),    # at the reference: the gain itself
    (0.043, 25.0, 45.0, 0.5),    # warm: exp(-0.86) = 0.42 of it
    (0.043, 25.0, -10.0, -0.5),  # cold, moving backwards: 4.5 times it, negative
    (0.02, 40.0, 30.0, 0.5),
])
def test_coulomb_feedforward_follows_the_housing_temperature(knee, beta, t_ref, housing_c, qd) -> None:
    fc, b = 11.5, 15.5
    imp = ImpedanceGains(friction_coulomb_nm=fc, friction_viscous_nm_s_per_rad=b, friction_velocity_epsilon_rad_s=EPS,
                         friction_temp_coeff_per_k=beta, friction_ref_temp_c=t_ref)
    iq = _feedforward_current(knee, imp, qd, housing_c)
    reference = (fc * math.exp(-beta * (housing_c - t_ref)) * math.copysign(1.0, qd) + b * qd)  # plain Python
    ktn = knee.torque_constant_nm_per_a * knee.reducer.ratio
    assert iq == pytest.approx(reference / ktn, rel=1e-9)


def test_off_is_the_temperature_independent_feedforward(knee) -> None:
    """beta 0: the current at 60 °C with T_ref 80 °C is the same float as the plain gain's."""
    base = dict(friction_coulomb_nm=11.5, friction_viscous_nm_s_per_rad=15.5, friction_velocity_epsilon_rad_s=EPS)
    plain = _feedforward_current(knee, ImpedanceGains(**base), 0.5, 25.0)
    off = _feedforward_current(knee, ImpedanceGains(**base, friction_ref_temp_c=80.0), 0.5, 60.0)
    assert off == plain
    assert plain == pytest.approx((11.5 + 15.5 * 0.5) / (knee.torque_constant_nm_per_a * knee.reducer.ratio),
                                  rel=1e-9)


def _impedance_run(knee, imp: ImpedanceGains, ambient_c: float) -> np.ndarray:
    """0.3 s of the virtual firmware in impedance mode tracking a 2 Hz sine, the ambient raised (the housing warms):
    the model's state at the end."""
    gains = ControllerConfig(mode="impedance", impedance=imp)
    fw = JointFirmware(knee, gains, seed=3)
    fw.model.inject("ambient_c", ambient_c)
    fw.set_mode("impedance")
    fw.set_state("closed_loop")
    for tick in range(300):
        fw.command("impedance", 0.1 * math.sin(2 * math.pi * 2.0 * tick / 1000.0))
        fw.advance(1e-3)
    return fw.model.x.copy()


def test_off_is_bit_identical_in_closed_loop(knee) -> None:
    """The virtual firmware's whole run, with the block off by default and off with another T_ref, gives the same
    state to the last bit; on, it differs (the test can see the term)."""
    base = dict(kp_nm_per_rad=200.0, kd_nm_s_per_rad=20.0, friction_coulomb_nm=11.5,
                friction_viscous_nm_s_per_rad=15.5)
    default = _impedance_run(knee, ImpedanceGains(**base), 60.0)
    off = _impedance_run(knee, ImpedanceGains(**base, friction_temp_coeff_per_k=0.0, friction_ref_temp_c=80.0), 60.0)
    on = _impedance_run(knee, ImpedanceGains(**base, friction_temp_coeff_per_k=0.043), 60.0)
    assert np.array_equal(default, off, equal_nan=True)
    assert not np.array_equal(default, on, equal_nan=True)


def test_the_new_block_comes_last() -> None:
    """After the velocity PID, the cogging and the kinematic-error blocks: the older entries keep their indices."""
    assert C.C_FRIC_BETA == C.C_KE_PH + C.MAX_HARMONICS and C.N_CTRL == C.C_FRIC_TREF + 1


@pytest.mark.parametrize(("field", "value"), [("friction_temp_coeff_per_k", -0.01),
                                              ("friction_temp_coeff_per_k", 1.0), ("friction_ref_temp_c", 200.0)])
def test_out_of_range_values_are_refused(field, value) -> None:
    from actuator.control.config import config_from_dict

    with pytest.raises(ConfigError, match=field):
        config_from_dict({"impedance": {field: value}})


def test_the_plain_python_path_gives_the_kernel_s_value(knee) -> None:
    """``friction_coulomb_at`` without Numba (its ``py_func``, what NUMBA_DISABLE_JIT runs) and compiled agree."""
    imp = ImpedanceGains(friction_coulomb_nm=11.5, friction_temp_coeff_per_k=0.043, friction_ref_temp_c=25.0)
    c = compile_controller(ControllerConfig(mode="impedance", impedance=imp), knee)
    for housing_c in (-10.0, 25.0, 47.5):
        plain = C.friction_coulomb_at.py_func(c, housing_c)
        assert plain == pytest.approx(11.5 * math.exp(-0.043 * (housing_c - 25.0)), rel=1e-15)
        assert C.friction_coulomb_at(c, housing_c) == pytest.approx(plain, rel=1e-15)
