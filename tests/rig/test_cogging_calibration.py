"""The anti-cogging calibration (issue 17, item 3: ``experiments.cogging_calibration``, protocols
``cogging_calibrate`` and ``cogging_ripple``): the knee's cogging recovered, the velocity ripple at low speed
before and after the compensation, a population of 20 joints from seeds/spread.toml (batch executor), refusals.

Known values (seeds/joints/knee.toml): one harmonic, 0.0116 N·m at the motor, phase 0, N_c = 180; the motor
encoder's nonlinearity 0.0087 sin(theta) rad. Bounds:
* amplitude within 5 %: the joints report torque with the nominal Kt (2 % sd in the spread: compared after
  scaling by Kt_nominal / Kt_joint) and J dv/dt uses the preset's inertia (0.2 % error seen on the nominal knee);
* phase within 0.1 rad (0.039 seen: the loop's lag, cancelled only to first order by the two directions);
* the encoder error within 10 % of 0.0087 rad (0.00866 seen);
* ripple: the velocity's rms in the cogging bands falls >= 5x (the issue's figure; 13x seen on the nominal knee).
  The whole velocity ripple also holds the 6th-harmonic torque ripple and the encoder's once-per-revolution error
  in the estimate, which no cogging compensation removes: it is measured and only required to fall.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from actuator.analysis.tuning import default_controller
from actuator.control.config import CoggingCompensation
from actuator.errors import CalibrationError, ConfigError
from actuator.params import load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.cogging_calibration import cogging_calibrate_config, cogging_ripple_config
from firmware_iface.experiments.inprocess import run_protocol
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.firmware import JointFirmware

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
AMP_REL, PHASE_TOL_RAD, ENC_REL, REDUCTION = 0.05, 0.1, 0.10, 5.0


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def _compensated(knee, figures: dict):
    cog = CoggingCompensation(**figures["cogging_compensation"])
    return replace(default_controller(knee), cogging_compensation=cog)


def test_recovers_the_knee_cogging_and_reduces_its_ripple(knee) -> None:
    steps = [("cogging_calibrate", cogging_calibrate_config(knee)), ("cogging_ripple", cogging_ripple_config(knee))]
    out = run_batch([knee], [{}], steps)
    f, before = out[0][0].figures, out[0][1].figures
    assert f["cogging_amplitude_nm"] == pytest.approx(0.0116, rel=AMP_REL)
    assert abs(f["cogging_phase_rad"]) < PHASE_TOL_RAD
    assert f["cogging_encoder_error_rad"] == pytest.approx(0.0087, rel=ENC_REL)
    assert f["cogging_amplitude_u_nm"] < 0.001 and len(f["cogging_map_nm"]) == 2048
    assert [c.quantity for c in out[0][0].certificates] == ["cogging_harmonics_nm", "cogging_phases_rad",
                                                             "cogging_residual_rms_nm"]
    assert "nothing is written to the joint" in out[0][0].certificates[0].method
    after = run_batch([knee], [{}], steps[1:], gains=_compensated(knee, f))[0][0].figures
    assert before["cogging_velocity_ripple_rad_s"] > REDUCTION * after["cogging_velocity_ripple_rad_s"]
    assert after["velocity_ripple_rms_rad_s"] < before["velocity_ripple_rms_rad_s"]


def test_a_population_of_20_joints(knee) -> None:
    drawn = draw(knee, load_spread(SPREAD), 20, seed=5)
    params, inj = [p for p, _ in drawn], [i for _, i in drawn]
    steps = [("cogging_calibrate", cogging_calibrate_config(knee)), ("cogging_ripple", cogging_ripple_config(knee))]
    out = run_batch(params, inj, steps, firmware=knee, panels=False)
    assert out.faults == [[]] * 20
    gains = [_compensated(knee, joint[0].figures) for joint in out]
    after = run_batch(params, inj, steps[1:], gains=gains, firmware=knee, panels=False)
    for p, i, joint, aft in zip(params, inj, out, after, strict=True):
        f = joint[0].figures
        scale = knee.torque_constant_nm_per_a / p.torque_constant_nm_per_a
        assert f["cogging_amplitude_nm"] == pytest.approx(scale * p.motor.cogging_harmonics_nm[0], rel=AMP_REL)
        # the phase is against the encoder's reading: its injected zero offset shifts it by -N_c x offset
        expected = -180 * i.get("encoder_offset", 0.0)
        assert abs(math.remainder(f["cogging_phase_rad"] - expected, 2 * math.pi)) < PHASE_TOL_RAD
        ratio = joint[1].figures["cogging_velocity_ripple_rad_s"] / aft[0].figures["cogging_velocity_ripple_rad_s"]
        assert ratio > REDUCTION


def test_a_joint_that_does_not_move_is_refused(knee) -> None:
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("friction_scale", 100.0)
    with pytest.raises(CalibrationError, match="cogging calibration: plateau 1") as e:
        run_protocol(fw, "cogging_calibrate", cogging_calibrate_config(knee))
    assert e.value.reason == "stuck"


def test_a_motor_without_cogging_is_refused(knee) -> None:
    smooth = replace(knee, motor=replace(knee.motor, cogging_harmonics_nm=(0.0,)))
    with pytest.raises(CalibrationError, match="no cogging above the torque's noise") as e:
        run_protocol(JointFirmware(smooth, seed=1), "cogging_calibrate", cogging_calibrate_config(knee))
    assert e.value.reason == "not_detected"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(revolutions=0.5), "revolutions = 0.5 is out of range"),
    (dict(harmonics=9), "harmonics = 9"),
    (dict(cogging_hz=200.0), "under 8 samples a period"),
    (dict(home_rad=2.49), "outside the position limits"),
])
def test_bad_configurations_are_refused_before_anything_moves(knee, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        cogging_calibrate_config(knee, **kwargs)
