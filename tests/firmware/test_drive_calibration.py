"""The drive's motor calibration (issue 17, item 1: ``virtual_joint.drive_calibration``, run from the host by
``experiments.motor_calibration``): phase resistance and inductance, pole pairs and the motor encoder's electrical
offset, recovered on the simulated knee and wrist, over a population of 20 knees drawn from seeds/spread.toml, with
a drive whose settings are wrong, over the bus, kept in flash; and the refusals.

The truth each result is held to, and its bound:
* R: the model's winding resistance R0 (1 + alpha (T - T0)) at the winding temperature the drive reports with it.
  The two-level method is exact for the model's RL circuit at rest; what is left is the winding warming by a few
  hundredths of a kelvin between the levels' means (0.06 % seen). Bound 1 %, the issue's 3 % with margin to spare;
* L: the d-axis inductance. The fit is of the drive's own exact discrete RL step: bound 1 % (0.001 % seen);
* pole pairs: exact (the estimate within 0.1 of it: the lag's and cogging's share of the slope);
* electrical offset: the truth is pole pairs x the motor encoder's zero (the injection ``encoder_offset``, which a
  joint of the spread draws with 3e-3 rad sd). The issue's bound: within one LSB of the output encoder, i.e. the
  offset's error divided by (pole pairs x ratio) under 2 pi / 2^20 = 6.0e-6 rad (the knee's 20-bit output encoder);
  seen: 2e-6 rad on the knee, 2.4e-6 on the wrist.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from actuator.errors import CalibrationError, ConfigError
from actuator.model import layout as L
from actuator.model.electrics import commutation_error, winding_resistance
from actuator.params import load_preset
from actuator.simulation import JointModel
from firmware_iface.experiments.motor_calibration import on_client, on_firmware
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.drive_calibration import DriveCalibration, fit_commutation
from firmware_iface.virtual_joint.firmware import JointFirmware, ParamError
from tests.actuator.conftest import variant
from tests.firmware.test_node_client import clocked

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
R_REL, L_REL = 0.01, 0.01


def _output_lsb(p) -> float:
    return 2 * math.pi / 2 ** p.encoders.output.bits


def _assert_recovered(fw: JointFirmware, f: dict, encoder_offset_rad: float) -> None:
    p = fw.params
    r_true = winding_resistance(fw.model.p, f["motor_resistance_temp_c"], 1.0)
    assert f["motor_resistance_ohm"] == pytest.approx(r_true, rel=R_REL)
    assert f["motor_resistance_ref_ohm"] == pytest.approx(p.motor.phase_resistance_ohm, rel=R_REL)
    assert f["motor_inductance_h"] == pytest.approx(p.motor.d_inductance_h, rel=L_REL)
    pp = p.motor.pole_pairs
    assert f["motor_pole_pairs"] == pp and abs(f["motor_pole_pairs_estimate"] - pp) < 0.1
    error = math.remainder(f["motor_electrical_offset_rad"] - pp * encoder_offset_rad, 2 * math.pi)
    assert abs(error) / (pp * p.reducer.ratio) < _output_lsb(p)
    # the drive now commutates on what it found: the rotor's frame within that error
    assert abs(commutation_error(fw.model.p, fw.model.x, encoder_offset_rad)) == pytest.approx(abs(error), abs=1e-9)


@pytest.mark.parametrize("preset", ["knee", "wrist"])
def test_the_drive_finds_r_l_pole_pairs_and_offset(preset: str) -> None:
    fw = JointFirmware(preset, seed=1)
    fw.model.inject("encoder_offset", 0.003)
    out = on_firmware(fw)
    _assert_recovered(fw, out.figures, 0.003)
    assert fw.state == "idle" and fw.read_param("motor.calibration_status") == 1.0
    assert [c.quantity for c in out.certificates] == ["motor_resistance_ohm", "motor_inductance_h",
                                                      "motor_pole_pairs", "motor_electrical_offset_rad"]


def _torque_per_amp(fw: JointFirmware) -> float:
    """Motor torque per amp the drive believes it drives, holding 5 A on its q axis (the drive's frame) for 20 ms in
    torque mode from rest; the mean over the last 10 ms."""
    fw.model.x[L.X_WM] = 0.0
    fw.set_state("closed_loop")
    fw.set_mode("torque")
    kt = fw.params.torque_constant_nm_per_a
    tau, iq = [], []
    for _ in range(20):
        fw.command("torque", torque_nm=5.0 * kt * fw.params.reducer.ratio)
        fw.advance(0.001)
        tau.append(fw.model.x[L.X_TAU_EM])
        iq.append(fw.model.x[L.X_IQ_DRIVE])
    fw.set_state("idle")
    return float(np.mean(tau[10:]) / np.mean(iq[10:]))


def test_a_drive_with_wrong_settings_is_put_right() -> None:
    """Pole pairs configured 7 (the motor has 10) and an offset 1 rad off: the torque per amp is then about Kt cos 1
    = 0.54 Kt (the knee's surface magnets, L_d = L_q: no reluctance torque; cogging and the 6th-harmonic ripple left
    out here, so that the torque is the current's alone; 0.51 Kt seen: while the rotor speeds up, its back-EMF
    shows on the drive's d axis, whose current then lags 0 and takes another -sin(1) i_d). After the calibration
    both settings are the motor's and the torque per amp is Kt within 0.1 % (1.3e-4 seen: the offset's error,
    cos(6e-3) = 1 - 2e-5, and the d current's lag, now along the rotor's d axis but for that error)."""
    knee = variant(load_preset("knee"), motor={"ripple_6th_fraction": 0.0, "cogging_harmonics_nm": (0.0,)})
    fw = JointFirmware(knee, seed=2)
    kt = fw.params.torque_constant_nm_per_a
    fw.write_param("motor.electrical_offset_rad", 1.0)
    assert 0.45 * kt < _torque_per_amp(fw) < kt * math.cos(1.0)  # delta = 1 rad
    fw.write_param("motor.pole_pairs", 7)
    out = on_firmware(fw)
    _assert_recovered(fw, out.figures, 0.0)
    assert fw.read_param("motor.pole_pairs") == 10.0
    assert _torque_per_amp(fw) == pytest.approx(kt, rel=1e-3)


def test_the_factory_offset_is_exact_and_leaves_the_joint_as_it_was() -> None:
    """An uncalibrated drive commutates with the factory's offset: exactly the rotor's frame (delta 0), whatever the
    encoder's zero; the parameter reads what the factory wrote (pole pairs x the zero)."""
    fw = JointFirmware("knee")
    fw.model.inject("encoder_offset", -0.002)
    assert commutation_error(fw.model.p, fw.model.x, -0.002) == 0.0
    assert fw.read_param("motor.electrical_offset_rad") == pytest.approx(10 * -0.002, abs=1e-15)
    assert fw.read_param("motor.calibration_status") == 0.0
    assert math.isnan(fw.read_param("motor.phase_resistance_ohm"))


def test_the_commutation_error_turns_the_current_by_delta() -> None:
    """Open loop, 5 A asked on the drive's q axis with delta = 0.6 rad: at every step the drive measures the rotor's
    currents turned by delta (its frame is the rotor's turned by -delta). It holds its own d current near 0 (under
    5 % of q after 1 ms, as the nominal drive's; the spinning rotor's back-EMF keeps it off 0), so the rotor carries
    about cos 0.6 of the current on its q axis and sin 0.6 on its d axis."""
    m = JointModel("knee")
    m.p[L.P_ELEC_OFFSET] = 0.6
    u = np.zeros((40, L.N_INPUTS))
    u[:, L.U_IQ_CMD] = 5.0
    rows, _ = m.run(u)
    i = L.TRACE_FIELDS.index
    c, s = math.cos(0.6), math.sin(0.6)
    # row k + 1 holds the drive's sample of the rotor currents at the start of step k, which row k holds
    np.testing.assert_allclose(rows[1:, i("iq_drive_a")], s * rows[:-1, i("id_a")] + c * rows[:-1, i("iq_a")],
                               atol=1e-12)
    np.testing.assert_allclose(rows[1:, i("id_drive_a")], c * rows[:-1, i("id_a")] - s * rows[:-1, i("iq_a")],
                               atol=1e-12)
    last = rows[-1]
    assert abs(last[i("id_drive_a")]) < 0.05 * last[i("iq_drive_a")]
    assert math.atan2(last[i("id_a")], last[i("iq_a")]) == pytest.approx(0.6, abs=0.05)


def test_a_population_of_20_knees() -> None:
    """20 knees of seeds/spread.toml: R (3 % sd) and the motor encoder's zero (3e-3 rad sd) differ joint to joint;
    each joint's own values are recovered within the bounds above."""
    knee = load_preset("knee")
    drawn = draw(knee, load_spread(SPREAD), 20, seed=7)
    offsets = []
    for j, (p, injections) in enumerate(drawn):
        fw = JointFirmware(p, seed=j)
        for name, value in injections.items():
            fw.model.inject(name, value)
        _assert_recovered(fw, on_firmware(fw).figures, injections["encoder_offset"])
        offsets.append(injections["encoder_offset"] * p.motor.pole_pairs)
    # the drawn offsets spread wider than the bound (in electrical radians, 1 LSB x pp x N = 6e-3; 4.9x seen): the
    # bound is a real test
    assert np.std(offsets) > 3 * _output_lsb(knee) * 10 * 100


def test_over_the_bus_and_kept_in_flash(tmp_path: Path) -> None:
    """The same routine over the native profile, the node on the host's lock-step clock: the figures of the
    in-process run on the same joint, and the settings back after a restart from the flash."""
    import can

    flash = tmp_path / "flash.toml"
    channel = f"jointkit-drive-cal-{id(flash)}"
    joint_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    host_bus = can.Bus(interface="virtual", channel=channel)

    class _Wire:
        joint, host = joint_bus, host_bus

    try:
        node, client, _ = clocked(_Wire, flash_path=flash)
        node.fw.model.inject("encoder_offset", 0.003)
        node.fw.write_param("motor.pole_pairs", 9)
        out = on_client(client, load_preset("knee"), save=True)
        _assert_recovered(node.fw, out.figures, 0.003)
    finally:
        from firmware_iface.client import BusHub

        BusHub.of(host_bus, start=False).close()
        joint_bus.shutdown()
        host_bus.shutdown()
    again = JointFirmware("knee", flash_path=flash)
    for name in ("motor.pole_pairs", "motor.electrical_offset_rad", "motor.phase_resistance_ohm",
                 "motor.phase_inductance_h", "motor.calibration_status"):
        assert again.read_param(name) == pytest.approx(node.fw.read_param(name), rel=1e-12)


def test_a_rotor_that_cannot_follow_is_refused_and_nothing_changes() -> None:
    """A hundred times the input friction (15 N·m at the motor against the 1.2 N·m the calibration current aligns
    with): the rotor wobbles within a pole pitch; the drive reports not_following and keeps its settings."""
    fw = JointFirmware("knee", seed=3)
    fw.model.inject("friction_scale", 100.0)
    before = fw.model.p.copy()
    with pytest.raises(CalibrationError, match="not_following") as e:
        on_firmware(fw)
    assert e.value.reason == "not_following"
    np.testing.assert_array_equal(fw.model.p[L.P_DRIVE_PP], before[L.P_DRIVE_PP])
    assert math.isnan(fw.model.p[L.P_ELEC_OFFSET])
    assert fw.model.x[L.X_ANGLE_ON] == 0.0


def test_an_estop_midway_aborts() -> None:
    fw = JointFirmware("knee")
    fw.write_param("motor.electrical_offset_rad", 0.5)
    fw.set_state("calibrating")
    fw.advance(1.0)
    fw.estop()
    fw.advance(0.01)
    assert fw.read_param("motor.calibration_status") == 5.0  # aborted
    assert fw.read_param("motor.electrical_offset_rad") == 0.5
    assert fw.model.x[L.X_ANGLE_ON] == 0.0 and fw.state == "fault"


def test_a_slope_between_whole_pole_pairs_is_refused() -> None:
    """The analysis alone, on sweeps whose commanded angle turns 8.5 times the encoder's."""
    cal = DriveCalibration.plan(10, 10.0, 2.5e-5)
    enc = np.linspace(0.0, 2 * math.pi, 200)
    for phase, sign in (("forward", 1.0), ("backward", -1.0)):
        cal.samples[phase] = [(10.0, 1.0, sign * e, sign * 8.5 * e, 25.0) for e in enc]
    status, *_ = fit_commutation(cal)
    assert status == "pole_pairs_not_integer"


@pytest.mark.parametrize(("name", "value", "status"), [("motor.pole_pairs", 7.5, "out_of_range"),
                                                       ("motor.pole_pairs", 0.0, "out_of_range"),
                                                       ("motor.electrical_offset_rad", 4.0, "out_of_range"),
                                                       ("motor.calibration_current_a", 30.0, "out_of_range"),
                                                       ("motor.phase_resistance_ohm", 0.1, "read_only")])
def test_bad_settings_are_refused(name: str, value: float, status: str) -> None:
    fw = JointFirmware("knee")
    with pytest.raises(ParamError, match=name.replace(".", r"\.")) as e:
        fw.write_param(name, value)
    assert e.value.status == status


def test_a_flash_with_a_bad_drive_section_is_refused(tmp_path: Path) -> None:
    fw = JointFirmware("knee", flash_path=tmp_path / "f.toml")
    fw.save_to_flash()
    text = (tmp_path / "f.toml").read_text()
    (tmp_path / "f.toml").write_text(text.replace("pole_pairs = 10.0", "pole_pairs = 10.5"))
    with pytest.raises(ConfigError, match=r"\[drive\] pole_pairs = 10.5 is out of range"):
        JointFirmware("knee", flash_path=tmp_path / "f.toml")
