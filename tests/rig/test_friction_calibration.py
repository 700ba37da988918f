"""The friction map's calibration (issue 17, item 4: ``experiments.friction_calibration``, protocol
``friction_calibrate``): the reducer's friction recovered on the simulated knee, over a population of 20 joints drawn
from seeds/spread.toml (the batch executor), and the refusals (``CalibrationError``) of a run that cannot give one.

The known values (seeds/joints/knee.toml, output side, N = 100): Fc = N x 0.115 = 11.5 N·m, Fs = N x 0.15 = 15 N·m,
B = N^2 x 1.5e-3 + the load's 0.5 = 15.5 N·m·s/rad, vs = 5 rad/s at the input = 0.05 rad/s at the output. What the
model adds on top, and the bounds (the routine's default run: 8 speeds 0.02..2.56 rad/s, 23 s of joint time):
* the mesh loss, (1/eta - 1) = 0.072 of the torque the flexspline carries, in the direction of motion: of the load's
  damping, 0.072 x 0.5 = 0.036 N·m·s/rad on B; of gravity (m g l = 9.81 N·m), 0.072 x 9.81 x mean|sin q| over each
  plateau's travel (the travel about 0 grows with the speed up to 1 rad: mean|sin q| up to 0.25), 0 at the slow
  plateaus and up to 0.18 N·m at the fast ones, a slope of about 0.07 N·m·s/rad on B. Measured on the nominal knee:
  Fc -0.04 N·m, B +0.18 N·m·s/rad, Fs +0.19 N·m, vs 0.0486 rad/s (-3 %);
* a joint of the population reports its torque with the nominal Kt (a rig knows no other), so its figures are its
  own scaled by Kt_nominal / Kt_joint (the spread's flux linkage: 2 % sd): compared after that scaling;
* bounds: Fc within 0.4 N·m (the gravity mesh share's largest, 0.072 x 9.81 x sin 0.5 = 0.34, + the fit's scatter);
  B within -0.2 .. +0.5 N·m·s/rad (the biases above, and the spread's efficiency, 2 % sd, moving the mesh share);
  Fs within 1.0 N·m (the Stribeck drop rests on the two slowest plateaus: +0.19 nominal); vs within 15 % of 0.05.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actuator.errors import CalibrationError, ConfigError
from actuator.params import load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.friction_calibration import (
    fit_stribeck,
    friction_calibrate_config,
)
from firmware_iface.experiments.inprocess import run_protocol
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.firmware import JointFirmware

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
FC_TOL_NM, B_LO, B_HI, FS_TOL_NM, VS_REL = 0.4, -0.2, 0.5, 1.0, 0.15
SHORT = dict(speeds_rad_s=[0.05, 0.1, 0.2, 0.4, 0.8], plateau_s=0.2, settle_s=0.1)


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def _truth(p) -> tuple[float, float, float]:
    """Output-side Fc, B, Fs of a joint's reducer and load."""
    r = p.reducer
    viscous = r.ratio ** 2 * r.viscous_friction_nm_s_per_rad + p.load.damping_nm_s_per_rad
    return r.ratio * r.coulomb_friction_nm, viscous, r.ratio * r.static_friction_nm


def _assert_recovered(f: dict, fc: float, b: float, fs: float) -> None:
    assert abs(f["friction_coulomb_nm"] - fc) < FC_TOL_NM
    assert B_LO < f["friction_viscous_nm_s_per_rad"] - b < B_HI
    assert abs(f["friction_static_nm"] - fs) < FS_TOL_NM


def test_recovers_the_knee_friction(knee) -> None:
    fw = JointFirmware(knee, seed=1)
    out, _ = run_protocol(fw, "friction_calibrate", friction_calibrate_config(params=knee))
    f = out.figures
    fc, b, fs = _truth(knee)
    assert (fc, b, fs) == pytest.approx((11.5, 15.5, 15.0))
    _assert_recovered(f, fc, b, fs)
    assert f["friction_stribeck_velocity_rad_s"] == pytest.approx(0.05, rel=VS_REL)
    # the mesh loss's load-damping and gravity shares push B up, never down (+0.18 seen)
    assert f["friction_viscous_nm_s_per_rad"] - b > 0.036
    # the stated uncertainties are the fit's scatter (0.016 N·m, 0.013 N·m·s/rad seen): smaller than the model's
    # systematic mesh share, which no fit of this curve can see
    assert f["friction_coulomb_u_nm"] < 0.1 and f["friction_viscous_u_nm_s_per_rad"] < 0.1
    assert f["friction_residual_rms_nm"] < 0.1 and f["friction_plateaus"] == 8
    assert 20.0 < f["friction_winding_temp_c"] < 40.0
    assert [c.quantity for c in out.certificates] == ["friction_coulomb_nm", "friction_static_nm",
                                                      "friction_stribeck_velocity_rad_s",
                                                      "friction_viscous_nm_s_per_rad"]
    method = out.certificates[0].method
    assert "written to the joint through its profile's gain_write" in method
    assert f"{f['friction_winding_temp_c']:.1f} °C" in method


def test_a_population_of_20_joints_recovers_its_friction(knee) -> None:
    """20 knees of seeds/spread.toml (input friction 8 % sd, viscous 10 %, efficiency 2 %, Kt 2 %, ...) through the
    batch executor: every joint's Fc, B and Fs within the bounds of its own drawn values."""
    drawn = draw(knee, load_spread(SPREAD), 20, seed=5)
    cfg = friction_calibrate_config(params=knee)
    out = run_batch([p for p, _ in drawn], [inj for _, inj in drawn], [("friction_calibrate", cfg)], firmware=knee,
                    panels=False)
    assert out.faults == [[]] * 20
    spread_fc = []
    for (p, _), joint in zip(drawn, out, strict=True):
        scale = knee.torque_constant_nm_per_a / p.torque_constant_nm_per_a  # torque reported with the nominal Kt
        fc, b, fs = (scale * x for x in _truth(p))
        _assert_recovered(joint[0].figures, fc, b, fs)
        spread_fc.append(fc)
    assert np.std(spread_fc) > 0.4  # the drawn friction spreads wider than the bound: the bound is a real test


def test_a_joint_that_does_not_move_is_refused(knee) -> None:
    """A hundred times the friction (1150 N·m of Coulomb at the output against the 150 N·m torque limit)."""
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("friction_scale", 100.0)
    with pytest.raises(CalibrationError, match=r"plateau 1 \(\+0.05 rad/s\) did not move") as e:
        run_protocol(fw, "friction_calibrate", friction_calibrate_config(params=knee, **SHORT))
    assert e.value.reason == "stuck"


def test_too_few_plateaus_are_refused() -> None:
    v = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    with pytest.raises(CalibrationError, match="4 usable plateaus, at least 5") as e:
        fit_stribeck(v, np.array([14.0, 13.0, 15.0, 18.0, np.nan]))  # a plateau without torque is not usable
    assert e.value.reason == "too_few_plateaus"


def test_a_fit_that_does_not_converge_is_refused() -> None:
    """A straight line: no Stribeck drop, so vs and Fs - Fc are not determined."""
    v = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    with pytest.raises(CalibrationError, match="did not converge") as e:
        fit_stribeck(v, 10.0 + 15.0 * v)
    assert e.value.reason == "not_converged"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(speeds_rad_s=[0.1, 0.2, 0.4, 0.8]), "at least 5"),
    (dict(speeds_rad_s=[0.1, 0.2, 0.4, 0.8, 4.0]), "velocity limit"),
    (dict(home_rad=2.0), "outside the position limits"),
])
def test_bad_configurations_are_refused_before_anything_moves(knee, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        friction_calibrate_config(params=knee, **kwargs)
