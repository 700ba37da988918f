"""The encoders' calibration (issue 17, item 2: ``experiments.encoder_calibration``, protocol ``encoder_calibrate``):
the kinematic-error map, the encoders' consistency and the output encoder's zero recovered on the simulated knee and
over a population of 20 joints drawn from seeds/spread.toml (the batch executor); the map applied by the controller's
motor feedback; the refusals (``CalibrationError``) of a run that cannot give a result.

The known values (seeds/joints/knee.toml, N = 100): KE_2 = 1.45e-4 rad at phase 0; the motor encoder's INL 8.7e-3
rad at the motor is 8.7e-5 rad at the output, at k = 1 with the reducer's sign reversed (KE_1 = 8.7e-5 at phase pi:
the fit cannot tell it from KE's own first harmonic, and the table wants the sum); injected here: output encoder
offset 0.01 rad, motor encoder offset 0.004 rad (a motor zero of 4e-5 rad at the output). Bounds:
* KE_2: the link follows KE through the flexspline as a spring-mass, magnified by 1 / (1 - (2 N v / w_n)^2) with
  w_n = sqrt(K1 / J_L) = 249 rad/s: +0.94 % at the routine's 0.12 rad/s (+0.7 % seen on the knee, +0.2..0.9 % over
  the population); bound 1.5 %, phase within 0.02 rad (0.01 seen);
* KE_1 (INL / N): within 3 % (-1.3 % seen: a ripple of the velocity loop at once per motor turn, not modelled);
  KE_3, KE_4: nothing injected, under 3e-6 rad (1.3e-6 seen: the INL's second order, INL^2 / 2N);
* the ratio: motor turns over output travel differ from N by the gravity twist's change over the range,
  2 m g l sin(2.3) / K1 / 4.6 rad = 1.0e-4 (1.4e-4 seen, the mean of three sweeps, two of them forward; 9.7e-5 with
  two sweeps): bound 2e-4;
* the output zero, in LSB of the 20-bit output encoder (q = 2 pi / 2^20 = 6.0e-6 rad), against the reading's zero off -
  q / 2 (the quantiser floors: the mean reading at the hanging angle is half an LSB under the offset, and that is the
  zero a loop subtracting it needs). Three sweeps at 0.12 rad/s, the friction's drift with the housing's temperature
  taken out, the taper notched about the zero against the mesh loss's kink (``encoder_calibration``'s docstring). Seen
  on the knee +0.3 (the heating correction +0.4); over the population of 20 knees within 1 LSB on all, -0.48 .. +0.75
  (joint 1 at +0.75: 1.72 before the notch, its kinematic error moving the mesh loss's kink), mean |error| 0.22: bound 1
  LSB each (the issue's) and 0.35 LSB on the mean of |error|. Before (two sweeps at 0.2 rad/s, no drift model): -2.4 ..
  +1.5, mean -0.8, 10 of 20 within 1; -2.3 on the knee at 0.1 rad/s. The standard uncertainty (the budget: half the
  heating correction, half the two windows' difference, a 0.5 LSB floor) must cover each joint's error within 3 of it
  (1.1 at most seen) and stay under the sequence's 1.2e-5 rad limit (1.65 LSB at most seen);
* the motor zero follows the output zero's error (it is the baseline there plus the zero): within its 3 u.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from actuator.analysis.tuning import default_controller
from actuator.control.reference import Step
from actuator.errors import CalibrationError, ConfigError
from actuator.model.sensors import prime_encoders
from actuator.params import load_preset
from actuator.simulation import simulate
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.encoder_calibration import (
    encoder_calibrate_config,
    fit_gravity_zero,
    fit_mismatch,
    ke_series,
)
from firmware_iface.experiments.inprocess import run_protocol
from firmware_iface.experiments.protocols import PROTOCOLS
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.firmware import JointFirmware

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
OUTPUT_OFFSET_RAD, MOTOR_OFFSET_RAD = 0.01, 0.004
SHORT = dict(range_rad=(-0.4, 0.4), speed_rad_s=0.2)


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


@pytest.fixture(scope="module")
def nominal(knee):
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("output_encoder_offset", OUTPUT_OFFSET_RAD)
    fw.model.inject("encoder_offset", MOTOR_OFFSET_RAD)
    # a unit's offsets are there from power-up, as the batch executor primes them
    prime_encoders(fw.model.p, fw.model.x, MOTOR_OFFSET_RAD, OUTPUT_OFFSET_RAD)
    return run_protocol(fw, "encoder_calibrate", encoder_calibrate_config(params=knee))


def _truth(p) -> tuple[complex, complex]:
    """KE_1 (with the motor encoder's INL / N, reducer sign) and KE_2 as complex A e^(i phi)."""
    r = p.reducer
    amps, phases = (list(v) + [0.0] * (2 - len(v)) for v in (r.kinematic_error_amplitudes_rad,
                                                              r.kinematic_error_phases_rad))
    k1 = amps[0] * complex(math.cos(phases[0]), math.sin(phases[0])) - p.encoders.motor.nonlinearity_rad / r.ratio
    return k1, amps[1] * complex(math.cos(phases[1]), math.sin(phases[1]))


def _assert_ke(f: dict, p, k2_rel: float) -> None:
    k1, k2 = _truth(p)
    a, ph = f["ke_amplitudes_rad"], f["ke_phases_rad"]
    assert a[0] == pytest.approx(abs(k1), rel=0.03)
    assert abs(math.remainder(ph[0] - math.atan2(k1.imag, k1.real), 2 * math.pi)) < 0.03
    assert 0.0 < a[1] / abs(k2) - 1.0 < k2_rel
    assert abs(math.remainder(ph[1] - math.atan2(k2.imag, k2.real), 2 * math.pi)) < 0.02
    assert max(a[2:]) < 3e-6


LSB_RAD = 2.0 * math.pi / 2**20  # the knee's 20-bit output encoder
ZERO_BOUND_LSB = 1.0              # the bound, each joint (module docstring)
ZERO_U_MAX_RAD = 1.2e-5           # seeds/sequences/calibrate.toml's limit on the zero's standard uncertainty


def _zero_error_lsb(f: dict, output_offset: float) -> float:
    """The output zero's error in LSB against the reading's zero (the offset less half an LSB: the floor)."""
    return (f["output_zero_rad"] - (output_offset - LSB_RAD / 2)) / LSB_RAD


def _assert_zeros(f: dict, output_offset: float, motor_offset: float, ratio: float) -> None:
    u = f["output_zero_u_rad"]
    error = _zero_error_lsb(f, output_offset)
    # the certificate's uncertainty covers the error (3 u, as the motor zero's) and meets the sequence's limit
    assert abs(error) <= ZERO_BOUND_LSB and abs(error) * LSB_RAD <= 3 * u and u <= ZERO_U_MAX_RAD
    assert abs(f["motor_zero_rad"] - motor_offset / ratio) < 3 * f["motor_zero_u_rad"]


def test_recovers_the_knees_kinematic_error_and_zeros(knee, nominal) -> None:
    out, _ = nominal
    f = out.figures
    _assert_ke(f, knee, 0.015)
    assert f["ke_dominant_rad"] == f["ke_amplitudes_rad"][1] and f["ke_dominant_u_rad"] < 1.5e-6
    assert 0.0 < f["encoder_ratio_error"] < 2e-4 and f["encoder_ratio"] == pytest.approx(100.0, rel=2e-4)
    _assert_zeros(f, OUTPUT_OFFSET_RAD, MOTOR_OFFSET_RAD, 100.0)
    # the drift the third sweep cancels (the two pairs' half difference, 1.26 LSB seen) and the heating column's
    # correction (0.41 LSB seen): both there, both small against the bound's scale
    assert 0.5 < f["output_zero_drift_rad"] / LSB_RAD < 3.0 and 0.2 < f["output_zero_heating_rad"] / LSB_RAD < 1.5
    # the mean mismatch is the offsets' (4e-5 - 0.01 rad); its largest excursion KE + INL / N + the gravity twist
    assert f["encoder_mismatch_rad"] == pytest.approx(MOTOR_OFFSET_RAD / 100 - OUTPUT_OFFSET_RAD, abs=1e-4)
    assert 2e-4 < f["encoder_mismatch_max_rad"] < 1e-3
    assert f["gravity_torque_nm"] == pytest.approx(4.0 * 9.81 * 0.25, rel=0.01)
    assert f["encoder_full_turn"] is False and f["encoder_travel_rad"] == pytest.approx(4.6)
    assert f["ke_condition_number"] < 10.0
    assert [c.quantity for c in out.certificates] == ["ke_amplitudes_rad", "ke_phases_rad", "output_zero_rad",
                                                      "motor_zero_rad"]
    method = out.certificates[0].method
    assert "nothing is written to the joint" in method and "no full output turn" in method
    assert f["compensation"]["amplitudes_rad"] == f["ke_amplitudes_rad"]
    assert set(PROTOCOLS["encoder_calibrate"].figures) <= set(f)


def test_the_map_applied_by_motor_feedback_removes_the_kinematic_error(knee, nominal) -> None:
    """The calibrated table in the controller (motor feedback) at five set-points: the loop's output-angle
    estimate against the true output with the flexspline's twist added back (the model's own, recorded: what a
    motor-side estimate cannot know, up to tau_hmax / K1 = 7.9e-5 rad of hysteresis) is the table's error. Without
    the table it is KE + INL / N at each set-point's motor angle (2.3e-4 rad at most; 1.3e-4 seen at these), with
    it the fit's bias (under 3 % of it) and the motor encoder's half LSB at the output (1.9e-6 rad): a factor of
    more than 10 (bound); 2.0e-6 and a factor of 66 seen."""
    comp = {k: nominal[0].figures["compensation"][k] for k in ("amplitudes_rad", "phases_rad")}
    gains = default_controller(knee)
    worst = {}
    for name, table in (("before", {}), ("after", comp)):
        cfg = gains.replace("kinematic_error_compensation", position_feedback="motor", **table)
        errors = []
        for q in (-1.4, -0.3, 0.37, 0.8, 1.3):
            tr = simulate(knee, duration_s=0.5, controller=cfg, reference=Step(0.002, at_s=0.02), position_rad=q,
                          record_every=40)
            rm, true, twist = (tr[k][-250:] for k in ("motor_encoder_rad", "position_rad", "twist_rad"))
            ke = ke_series(rm, table.get("amplitudes_rad", ()), table.get("phases_rad", ()))
            errors.append(float(np.mean(true + twist - (rm / 100.0 + ke))))
        worst[name] = max(abs(e) for e in errors)
    assert worst["before"] > 1e-4 and worst["after"] < 1e-5
    assert worst["before"] / worst["after"] > 10.0


def test_a_population_of_20_joints_recovers_its_own_map_and_zeros(knee) -> None:
    """20 knees of seeds/spread.toml through the batch executor, each with its own kinematic error (KE_2 20 % sd, its
    phase 1.8 rad sd), output encoder zero (5e-3 rad sd) and motor encoder zero (3e-3 rad sd at the motor), besides
    stiffness, friction, Kt, ...: the spread's, like every routine's population; at the routine's 0.12 rad/s (KE_2
    +0.94 % magnified: under 1.5 % asserted, 0.9 % seen). Zeros within the issue's 1 LSB each (0.75 seen at worst,
    joint 1), their uncertainty covering each error; the mean |error| under 0.35 LSB (0.22 seen)."""
    joints, injections = zip(*draw(knee, load_spread(SPREAD), 20, seed=5), strict=True)
    cfg = encoder_calibrate_config(params=knee)
    out = run_batch(list(joints), list(injections), [("encoder_calibrate", cfg)], firmware=knee, panels=False)
    assert out.faults == [[]] * 20
    errors = []
    for p, inj, joint in zip(joints, injections, out, strict=True):
        f = joint[0].figures
        _assert_ke(f, p, 0.015)
        _assert_zeros(f, inj["output_encoder_offset"], inj["encoder_offset"], 100.0)
        assert 0.0 < f["encoder_ratio_error"] < 2e-4
        errors.append(_zero_error_lsb(f, inj["output_encoder_offset"]))
    assert np.mean(np.abs(errors)) < 0.35
    # the zeros spread far past the bound: a routine that returned the nominal zero would fail
    assert np.std([i["output_encoder_offset"] for i in injections]) > 100 * ZERO_BOUND_LSB * LSB_RAD
    assert np.std([p.reducer.kinematic_error_phases_rad[1] for p in joints]) > 1.0


def test_the_taper_removes_the_ripples_end_effect() -> None:
    """Synthetic sweeps of the knee's drive torque at 0.2 rad/s (1 kHz samples): gravity about a zero of 0.01 rad,
    friction +-11.5 N·m with the mesh loss, and a slow ripple of 0.02 N·m with a period of 0.2 rad (the beat seen in
    the simulated knee's residuals at this speed) over sweeps that end in mid-period. Uniform weights take its last
    partial period as a cos term: 6.8 LSB at the worst of eight phases (more than 5 asserted); the notched taper
    leaves 0.06 LSB at worst (under 0.2 asserted: its leakage falls as the cube of the period over the span)."""
    q = np.linspace(-2.3, 2.27, 23_000)
    r_o = np.concatenate([q, q[::-1]])
    fwd = np.arange(r_o.size) < q.size
    s = np.where(fwd, 1.0, -1.0)
    mgl, zero = 9.81, 0.01
    uniform = np.column_stack([np.sin(r_o), np.cos(r_o), np.ones_like(r_o), s, s * np.abs(np.sin(r_o))])
    worst = {"uniform": 0.0, "taper": 0.0}
    for phase in np.linspace(0.0, 2.0 * math.pi, 8, endpoint=False):
        tau = (mgl * np.sin(r_o - zero) + s * (11.5 + 0.07 * mgl * np.abs(np.sin(r_o - zero)))
               + 0.02 * np.sin(2.0 * math.pi * r_o / 0.2 + phase))
        sol = np.linalg.lstsq(uniform, tau, rcond=None)[0]
        worst["uniform"] = max(worst["uniform"], abs(math.atan2(-sol[1], sol[0]) - zero) / LSB_RAD)
        worst["taper"] = max(worst["taper"], abs(fit_gravity_zero(r_o, tau, fwd).zero_rad - zero) / LSB_RAD)
    assert worst["uniform"] > 5.0 and worst["taper"] < 0.2


def test_a_joint_that_does_not_move_is_refused(knee) -> None:
    """A hundred times the friction (1150 N·m of Coulomb at the output against the 150 N·m torque limit)."""
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("friction_scale", 100.0)
    with pytest.raises(CalibrationError, match=r"plateau 1 \(\+0.2 rad/s\) did not move") as e:
        run_protocol(fw, "encoder_calibrate", encoder_calibrate_config(params=knee, **SHORT))
    assert e.value.reason == "stuck"


def test_an_encoder_that_freezes_is_refused(knee) -> None:
    """A healthy run whose output encoder reading is then held from the middle of the first sweep on, as a dropout
    that a drive without encoder supervision would not flag (the simulated firmware does: it idles the joint, and
    the run is refused as not moving)."""
    cfg = encoder_calibrate_config(params=knee, **SHORT)
    proto = PROTOCOLS["encoder_calibrate"]
    _, s = run_protocol(JointFirmware(knee, seed=1), "encoder_calibrate", cfg)
    segs = proto.segments(cfg)
    fwd = np.flatnonzero(s["segment"] == next(i for i, g in enumerate(segs) if g.tag == "fwd"))
    frozen = dict(s)
    held = frozen["output_encoder_rad"].copy()
    held[fwd[fwd.size // 2]:] = held[fwd[fwd.size // 2]]
    frozen["output_encoder_rad"] = held
    with pytest.raises(CalibrationError, match=r"the output encoder's reading stood still for .* on sweep 1") as e:
        proto.analyze(frozen, segs, cfg)
    assert e.value.reason == "encoder_fault"


def test_too_few_motor_turns_are_refused() -> None:
    """A third of a motor turn (0.02 rad at the output): the harmonics and the baseline polynomials are not
    independent."""
    r_o = np.concatenate([np.linspace(0.0, 0.02, 500), np.linspace(0.02, 0.0, 500)])
    r_m = 100.0 * r_o
    fwd = np.arange(1000) < 500
    with pytest.raises(CalibrationError, match="ill-conditioned") as e:
        fit_mismatch(r_m, r_o - 1e-4 * np.sin(2 * r_m), fwd, 100.0)
    assert e.value.reason == "ill_conditioned"


def test_a_drive_torque_without_gravity_is_refused() -> None:
    """Friction alone (+-11.5 N·m by direction, noise 0.1 N·m): no weight to find the hanging position from."""
    r_o = np.concatenate([np.linspace(-2.0, 2.0, 2000), np.linspace(2.0, -2.0, 2000)])
    fwd = np.arange(4000) < 2000
    tau = np.where(fwd, 11.5, -11.5) + 0.1 * np.random.default_rng(0).standard_normal(4000)
    with pytest.raises(CalibrationError, match="no gravity") as e:
        fit_gravity_zero(r_o, tau, fwd)
    assert e.value.reason == "no_gravity"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(range_rad=(-0.1, 0.1)), "at least 0.2 rad"),
    (dict(range_rad=(-2.6, 2.0)), "outside the position limits"),
    (dict(speed_rad_s=4.0), "velocity limit"),
    (dict(speed_rad_s=0.0), "speed_rad_s = 0.0 is out of range"),
])
def test_bad_configurations_are_refused_before_anything_moves(knee, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        encoder_calibrate_config(params=knee, **kwargs)
