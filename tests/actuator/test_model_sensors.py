"""Sensors, faults, injection and the batch form of the simulated joint."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import variant

from actuator.errors import SimulationError
from actuator.model import layout as L
from actuator.model.sensors import encoder_reading
from actuator.simulation import Injection, simulate, simulate_batch

FT = ("fx_n", "fy_n", "fz_n", "mx_nm", "my_nm", "mz_nm")
ZERO_XT = tuple((0.0,) * 6 for _ in range(6))


def _quiet_ft(p, **ft):
    fields = dict(tool_mass_kg=0.0, crosstalk=ZERO_XT, bias_walk_force_n_per_sqrt_s=(0.0,) * 3,
                  bias_walk_torque_nm_per_sqrt_s=(0.0,) * 3)
    fields.update(ft)
    return variant(p, ft_sensor=fields)


def test_ft_noise_statistics_match_parameters(wrist):
    """At rest with no load on the sensor each channel is white noise of the configured sigma.

    8000 samples per channel: the sample standard deviation has a relative standard error of
    1/sqrt(2 N) = 0.8 %, so 4 % is five standard errors; the mean is within 5 sigma / sqrt(N).
    Successive F/T samples are independent (lag-1 autocorrelation within 5 / sqrt(N)).
    """
    params = _quiet_ft(wrist)
    decim = round(1 / (params.ft_sensor.sample_rate_hz * params.dt_s))
    tr = simulate(params, duration_s=1.0, record_every=decim, seed=3)
    sigma = params.ft_sensor.noise_force_n + params.ft_sensor.noise_torque_nm
    n = len(tr) - 1
    for name, s in zip(FT, sigma, strict=True):
        x = tr[name][1:]
        assert np.std(x) == pytest.approx(s, rel=0.04), name
        assert abs(np.mean(x)) < 5 * s / math.sqrt(n), name
        assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 5 / math.sqrt(n), name


def test_ft_noise_is_seeded_and_reproducible(wrist):
    a = simulate(wrist, duration_s=0.02, seed=7).fz_n
    b = simulate(wrist, duration_s=0.02, seed=7).fz_n
    c = simulate(wrist, duration_s=0.02, seed=8).fz_n
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ft_bias_random_walk_grows_as_sqrt_time(wrist):
    """64 joints, noise off, walk on: the bias spread after 1 s is walk x sqrt(1 s); with 64 samples the
    standard deviation estimate has a relative standard error of 9 %, so the band is +-30 %."""
    walk = 0.05
    params = _quiet_ft(wrist, noise_force_n=(0.0,) * 3, noise_torque_nm=(0.0,) * 3,
                       bias_walk_force_n_per_sqrt_s=(walk,) * 3)
    traces = simulate_batch([params] * 64, duration_s=1.0, record_every=400)
    finals = np.array([t.fx_n[-1] for t in traces])
    assert np.std(finals) == pytest.approx(walk, rel=0.3)


def test_ft_sees_tool_weight_and_crosstalk(knee):
    """Hanging at rest: the tool weight reads m g on x; crosstalk row i leaks E[i][0] m g into channel i."""
    params = variant(knee, ft_sensor=dict(noise_force_n=(0.0,) * 3, noise_torque_nm=(0.0,) * 3,
                                          bias_walk_force_n_per_sqrt_s=(0.0,) * 3,
                                          bias_walk_torque_nm_per_sqrt_s=(0.0,) * 3))
    tr = simulate(params, duration_s=0.002)
    weight = params.ft_sensor.tool_mass_kg * params.load.gravity_m_s2
    xt = np.array(params.ft_sensor.crosstalk)
    for i, name in enumerate(FT):
        expected = weight * ((1.0 if i == 0 else 0.0) + xt[i, 0])
        assert tr[name][-1] == pytest.approx(expected, abs=1e-9), name


def test_ft_saturation_flag_and_fault(wrist):
    """A wrench beyond 105 % of range clips at the saturation level and raises the fault."""
    fz_range = wrist.ft_sensor.range_force_n[2]
    tr = simulate(wrist, duration_s=0.01, injections=[Injection(0.005, "external_wrench",
                                                                (0, 0, 1.2 * fz_range, 0, 0, 0))])
    assert tr.ft_saturated[0] == 0.0
    assert tr.ft_saturated[-1] == 1.0
    assert tr.fz_n[-1] == pytest.approx(wrist.ft_sensor.saturation_fraction * fz_range)
    assert "ft_saturation" in tr.summary()["faults"]


def test_encoder_step_is_exact():
    """Readings are whole multiples of the LSB and step by exactly one LSB at each boundary."""
    lsb = 2 * math.pi / 2**14
    for k in (0, 1, 5, 1000, -3, -1000):
        edge = k * lsb
        assert encoder_reading(edge + 1e-12, 0.0, 0.0, lsb) == pytest.approx(edge, abs=1e-15)
        assert encoder_reading(edge + lsb - 1e-12, 0.0, 0.0, lsb) == pytest.approx(edge, abs=1e-15)
        below = encoder_reading(edge - 1e-12, 0.0, 0.0, lsb)
        assert encoder_reading(edge + 1e-12, 0.0, 0.0, lsb) - below == pytest.approx(lsb, rel=1e-9)


def test_encoders_in_the_model_quantise_and_delay_by_their_latency(knee):
    """With nonlinearity off, each reading is floor(theta / q) q of the angle one model step earlier
    (latency 25 us = one step); the output encoder's 20-bit LSB is 6.0e-6 rad."""
    params = variant(knee, encoders=dict(motor=_no_inl(knee.encoders.motor), output=_no_inl(knee.encoders.output)))
    tr = simulate(params, torque_nm=30.0, duration_s=0.05)
    for enc, true, bits in (("motor_encoder_rad", "motor_position_rad", 14),
                            ("output_encoder_rad", "position_rad", 20)):
        q = 2 * math.pi / 2**bits
        reading, angle = tr[enc][2:], tr[true][1:-1]
        np.testing.assert_array_equal(reading, q * np.floor(angle / q))
        assert np.ptp(reading) > 100 * q  # it moved through many counts


def _no_inl(enc):
    return replace(enc, nonlinearity_rad=0.0)


def test_encoder_dropout_latches_fault_and_drive_stops_current(knee):
    tr = simulate(knee, current_a=7.0, duration_s=0.05, injections=[Injection(0.02, "encoder_dropout", 1)])
    t = tr.t_s
    # the PI's integrator lags the back-EMF ramp of the accelerating rotor: 12 % short after 20 ms (measured)
    assert tr.iq_a[(t > 0.01) & (t < 0.02)].min() > 0.85 * 7.0
    assert abs(tr.iq_a[-1]) < 0.5  # driven to zero but for the back-EMF tracking error of the coasting motor
    frozen = tr.motor_encoder_rad[t > 0.0201]
    assert np.all(frozen == frozen[0])
    assert tr.summary()["faults"] == ["encoder_fault"]


@pytest.mark.parametrize(("name", "value", "fault"), [
    ("bus_voltage_v", 15.0, "under_voltage"),
    ("bus_voltage_v", 70.0, "over_voltage"),
    ("ambient_c", 140.0, None),
])
def test_supply_faults(knee, name, value, fault):
    tr = simulate(knee, current_a=5.0, duration_s=0.01, injections=[Injection(0.005, name, value)])
    if fault:
        assert tr.summary()["faults"] == [fault]
        assert abs(tr.iq_a[-1]) < 1.0
    else:
        assert tr.summary()["faults"] == []  # ambient alone does not heat the winding in 5 ms


def test_over_temperature_derates_then_faults(wrist):
    """A winding started hot: derating cuts the current to sqrt(derate) of its limit, then the fault."""
    params = variant(wrist, thermal={"ambient_c": 100.0})
    tr = simulate(params, current_a=10.0, duration_s=0.02)
    assert tr.winding_temp_c[0] == 100.0
    # housing at 100 °C is beyond its 80 °C derating end: no current at all may be driven
    assert tr.derate[-1] == 0.0 and abs(tr.iq_a[-1]) < 0.05
    hot = variant(wrist, thermal={"ambient_c": 99.0, "winding_limit_c": 120.0, "housing_derate_start_c": 150.0,
                                  "housing_derate_end_c": 160.0})
    tr = simulate(hot, current_a=30.0, duration_s=3.0, record_every=400)
    assert tr.derate.min() < 1.0
    assert tr.winding_temp_c.max() < hot.thermal.winding_derate_end_c + 0.5


def test_friction_scale_raises_breakaway_torque(knee):
    """18 N·m moves the nominal knee (breakaway N F_s = 15 N·m at the output) but not one with 1.5x friction."""
    free = simulate(knee, torque_nm=18.0, duration_s=0.3, record_every=40)
    stuck = simulate(knee, torque_nm=18.0, duration_s=0.3, record_every=40,
                     injections=[Injection(0.0, "friction_scale", 1.5)])
    assert free.position_rad[-1] > 0.01
    assert abs(stuck.position_rad[-1]) < 1e-3


def test_driving_and_back_driving_differ(knee):
    """The mesh loss opposes motion: the motor-side torque to hold a speed differs from the torque the
    load delivers when it back-drives the motor at that speed (forward eta, backward 2 - 1/eta)."""
    params = variant(knee, load={"mass_kg": 0.0})
    drive = simulate(params, torque_nm=40.0, duration_s=0.4, record_every=40)
    back = simulate(params, external_torque_nm=40.0, duration_s=0.4, record_every=40)
    assert drive.position_rad[-1] > 0.05
    assert back.position_rad[-1] < drive.position_rad[-1]


def test_batch_equals_single_runs_and_parallel_equals_serial(knee, wrist):
    single = [simulate(p, current_a=3.0, duration_s=0.02, seed=s) for s, p in enumerate((knee, wrist))]
    par = simulate_batch([knee, wrist], current_a=3.0, duration_s=0.02)
    ser = simulate_batch([knee, wrist], current_a=3.0, duration_s=0.02, parallel=False)
    for a, b, c in zip(single, par, ser, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(b.data, c.data)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"duration_s": 0.0}, "duration_s"),
    ({"duration_s": float("nan")}, "duration_s"),
    ({"duration_s": 0.01, "torque_nm": 1.0, "current_a": 1.0}, "not both"),
    ({"duration_s": 0.01, "current_a": [1.0, 2.0]}, "current_a has 2 samples"),
    ({"duration_s": 0.01, "record_every": 0}, "record_every"),
    ({"duration_s": 0.01, "injections": [Injection(0.0, "gremlins", 1)]}, "unknown injection"),
    ({"duration_s": 0.01, "injections": [Injection(0.0, "friction_scale", -1)]}, "out of range"),
    ({"duration_s": 0.01, "injections": [Injection(0.5, "friction_scale", 2)]}, "at_s"),
])
def test_bad_simulation_requests_raise(knee, kwargs, match):
    with pytest.raises(SimulationError, match=match):
        simulate(knee, **kwargs)


def test_trace_has_named_si_fields(knee):
    tr = simulate(knee, current_a=1.0, duration_s=0.001)
    assert len(tr) == 41 and tr.t_s[-1] == pytest.approx(1e-3)
    assert set(L.TRACE_FIELDS) <= set(tr.fields)
    with pytest.raises(AttributeError, match="no trace field"):
        _ = tr.not_a_field


def test_two_injections_at_one_time_apply_in_order(knee):
    """Injections at the same step are applied in the order given (the later one wins)."""
    tr = simulate(knee, current_a=2.0, duration_s=0.004,
                  injections=[Injection(0.002, "bus_voltage_v", 15.0), Injection(0.002, "bus_voltage_v", 48.0)])
    assert tr.summary()["faults"] == []
