"""The torque constant's calibration (issue 17, item 1, ``experiments.kt_calibration``, protocol ``kt_calibrate``):
Kt recovered on the simulated knee against its fixture, over a population of 20 joints drawn from seeds/spread.toml
(the batch executor), and the refusals (``CalibrationError``) of a run that cannot give one.

The known value: Kt = 1.5 p lambda = 1.5 x 10 x 7.811e-3 = 0.11717 N·m per peak amp (seeds/joints/knee.toml). A
joint of the population has its own lambda (the spread's flux linkage, 2 % sd) while its firmware, like a production
one, converts with the nominal Kt: the routine measures iq, not the firmware's torque, so each joint is compared with
its own true 1.5 p lambda, with no scaling (unlike the friction map, whose torque is Kt_nominal N iq).

Bounds: the issue's 3 %. What the model leaves in the mean of the two directions (the module docstring) is the mesh
loss of the load damping, 0.072 x 0.5 N·m·s/rad x 0.5 rad/s = 0.018 N·m, a step where the load crosses gravity's
mean: 3e-4 of the slope over +-40 N·m; the nominal knee shows +0.13 % (Kt 0.11732), the stated uncertainty 0.017 %:
the tests hold the population to 0.5 %, six times under the issue's bound and four times the nominal bias. The mesh
efficiency from the directions' half-difference: the knee's 0.933 within 0.01 (0.9356 seen: the bias of the same
load-damping term, and the friction's slight dependence on the travel's gravity share).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actuator.errors import CalibrationError, ConfigError
from actuator.params import load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.calibrations import ROUTINES, write_to_joint
from firmware_iface.experiments.inprocess import run_protocol, run_segments
from firmware_iface.experiments.kt_calibration import fit_kt, kt_calibrate_config, kt_calibrate_segments
from firmware_iface.experiments.segments import tagged
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.firmware import JointFirmware
from firmware_iface.virtual_joint.sensor_settings import KT_PARAM

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
KT_REL = 0.005
SHORT = dict(loads_nm=[-30.0, 0.0, 30.0], plateau_s=0.2, settle_s=0.1)


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def test_recovers_the_knee_kt(knee) -> None:
    out, _ = run_protocol(JointFirmware(knee, seed=1), "kt_calibrate", kt_calibrate_config(knee))
    f = out.figures
    assert knee.torque_constant_nm_per_a == pytest.approx(0.117165)
    assert f["kt_nm_per_a"] == pytest.approx(knee.torque_constant_nm_per_a, rel=KT_REL)
    assert f["kt_ratio_to_nominal"] == pytest.approx(1.0, rel=KT_REL)
    # the fit's own scatter (0.017 % seen) is far under the 3 %: the default limit holds it to 1/3 of 1 %
    assert f["kt_relative_u"] < 0.01 / 3 and f["kt_residual_rms_a"] < 0.01
    assert f["kt_mesh_efficiency"] == pytest.approx(knee.reducer.efficiency, abs=0.01)
    assert f["kt_load_span_nm"] == pytest.approx(80.0) and f["kt_levels"] == 5
    assert [c.quantity for c in out.certificates] == ["kt_nm_per_a", "kt_mesh_efficiency"]
    assert "Written to the drive with --write (its motor.torque_constant_nm_per_a" in out.certificates[0].method


def test_a_population_of_20_joints_recovers_its_own_kt(knee) -> None:
    """20 knees of seeds/spread.toml (flux linkage 2 % sd, friction 8 %, efficiency 2 %, ...) through the batch
    executor, with the nominal firmware: each joint's Kt within KT_REL of its own 1.5 p lambda."""
    drawn = draw(knee, load_spread(SPREAD), 20, seed=5)
    out = run_batch([p for p, _ in drawn], [inj for _, inj in drawn], [("kt_calibrate", kt_calibrate_config(knee))],
                    firmware=knee, panels=False)
    assert out.faults == [[]] * 20
    true = np.array([p.torque_constant_nm_per_a for p, _ in drawn])
    measured = np.array([joint[0].figures["kt_nm_per_a"] for joint in out])
    err = measured / true - 1.0
    assert np.max(np.abs(err)) < KT_REL, err
    # the drawn Kt spreads wider than the bound: a routine that returned the nominal would fail
    assert np.max(np.abs(true / knee.torque_constant_nm_per_a - 1.0)) > 2 * KT_REL


def test_a_joint_that_does_not_move_is_refused(knee) -> None:
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("friction_scale", 100.0)
    with pytest.raises(CalibrationError, match=r"Kt calibration: plateau 1 \(\+0.5 rad/s\) did not move") as e:
        run_protocol(fw, "kt_calibrate", kt_calibrate_config(knee, **SHORT))
    assert e.value.reason == "stuck"


def test_a_saturated_current_is_refused(knee) -> None:
    """Six times the friction (Coulomb and viscous): 6 x (11.5 + 7.5) N·m at 0.5 rad/s + 30 N·m of load against the
    motion reach 0.9 of the 150 N·m torque limit (12.8 A) at -30 N·m, while the joint still moves (breakaway
    6 x 15 + 30 N·m is under the limit)."""
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("friction_scale", 6.0)
    with pytest.raises(CalibrationError, match=r"saturated at load -30 N·m") as e:
        run_protocol(fw, "kt_calibrate", kt_calibrate_config(knee, **SHORT))
    assert e.value.reason == "saturated"


@pytest.mark.parametrize("loads", [[0.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 1.0], [10.0, 10.0, 20.0]])
def test_loads_that_cannot_give_a_slope_are_refused(loads) -> None:
    """A fixture that applied nothing, loads under the 10 N·m span, two distinct loads."""
    x = np.array(loads)
    with pytest.raises(CalibrationError, match="cannot determine the slope") as e:
        fit_kt(x, 2.0 - x / 11.7, 1.0 - x / 11.7, 100.0, 10.0)
    assert e.value.reason == "ill_conditioned"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(loads_nm=[-10.0, 10.0]), "at least 3"),
    (dict(loads_nm=[-130.0, 0.0, 130.0]), "lower the loads"),
    (dict(speed_rad_s=2.0), "at most 1.6"),
    (dict(home_rad=2.4), "outside the position limits"),
])
def test_bad_configurations_are_refused_before_anything_moves(knee, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        kt_calibrate_config(knee, **kwargs)


def _torque_against_load(signals: dict, cfg: dict) -> np.ndarray:
    """Per load, the mean of the reported drive torque (``torque_nm``: the drive's Kt x N x iq) over the +v and -v
    plateaus: G - L, friction and the mesh loss's direction dependence cancelled (the module's docstring)."""
    segs = kt_calibrate_segments(cfg)
    return np.array([(signals["torque_nm"][tagged(signals, segs, f"fwd{i}")].mean()
                      + signals["torque_nm"][tagged(signals, segs, f"bwd{i}")].mean()) / 2.0
                     for i in range(len(cfg["loads_nm"]))])


def test_the_written_kt_makes_the_reported_torque_match_the_fixture_load(knee, tmp_path) -> None:
    """A drive set 5 % off (its Kt parameter 1.05 x the motor's): the routine measures the motor's Kt from the
    current, not from the torque the drive reports; written (``--write --save``), the drive reports torque with it.
    Between the fixture loads +-30 N·m, the reported torque's mean over the two directions (G - L) then changes by
    the 60 N·m the fixture changed, within 0.5 % (KT_REL: the Kt's own bias, +0.13 % on the knee, and the mean's
    load-damping residue, 3e-4 of the slope); before, by 5 % more. A reboot from flash keeps the written Kt."""
    fw = JointFirmware(knee, seed=1, flash_path=tmp_path / "flash.toml")
    fw.write_param(KT_PARAM, 1.05 * knee.torque_constant_nm_per_a)
    cfg = kt_calibrate_config(knee, **SHORT)
    out, before = run_protocol(fw, "kt_calibrate", cfg)
    assert out.figures["kt_nm_per_a"] == pytest.approx(knee.torque_constant_nm_per_a, rel=KT_REL)
    fw.set_state("idle")  # the flash is written idle
    written = write_to_joint(fw, ROUTINES["kt"], out.figures, (), save=True)
    assert written == {KT_PARAM: out.figures["kt_nm_per_a"]}
    span = lambda t: float(t[0] - t[-1])  # noqa: E731  the torque at -30 N·m less that at +30 N·m
    assert span(_torque_against_load(before, cfg)) == pytest.approx(60.0 * 1.05, rel=KT_REL)
    after = run_segments(fw, kt_calibrate_segments(cfg))
    assert span(_torque_against_load(after, cfg)) == pytest.approx(60.0, rel=KT_REL)
    assert JointFirmware(knee, flash_path=fw.flash_path).read_param(KT_PARAM) == written[KT_PARAM]
