"""``jointkit calibrate ft`` through argv: in-process on the simulated knee (with a known bias injected), on joint
``--node`` over a virtual bus, its refusals; and ``jointkit run seeds/sequences/calibrate.toml --sim`` with the
certificate in results.json and report.html. Recovery bounds: tests/rig/test_ft_calibration.py's docstring."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from cliutil import run_cli, run_json

from actuator.params import SEEDS_DIR
from firmware_iface.cli import main
from firmware_iface.rig.runner import certificate_id

BIAS = [3.0, -2.0, 5.0, 0.2, -0.1, 0.05]
SHORT = ("--poses=-1,0,1", "--settle-s", "0.2", "--average-s", "0.3")  # 4.7 s of joint time


def test_calibrate_ft_recovers_an_injected_bias(capsys, tmp_path: Path) -> None:
    out = run_json(capsys, "calibrate", "ft", "--inject-ft-bias", ",".join(map(str, BIAS)), "--out", str(tmp_path))
    assert out["verdict"] == "pass" and out["failed"] == [] and out["injected_ft_bias"] == BIAS
    f = out["figures"]
    np.testing.assert_allclose(f["ft_bias_force_n"], BIAS[:3], atol=0.17)
    np.testing.assert_allclose(f["ft_bias_moment_nm"], BIAS[3:], atol=2e-3)
    assert f["tool_mass_kg"] == pytest.approx(1.0, rel=0.02)
    mass = next(c for c in out["certificates"] if c["quantity"] == "tool_mass_kg")
    assert mass["verdict"] == "pass" and mass["unit"] == "kg" and mass["uncertainty"] == f["tool_mass_u_kg"]
    assert "tool_mass_u_kg" in mass["limits"] and "least squares over 7 output poses" in mass["method"]
    written = json.loads((tmp_path / "calibration.json").read_text())
    assert written["figures"] == f and (tmp_path / "calibration.png").read_bytes().startswith(b"\x89PNG")


def test_calibrate_ft_table(capsys) -> None:
    code, out, _ = run_cli(capsys, "calibrate", "ft", *SHORT)
    assert code == 0 and "PASS" in out and "tool_mass_kg" in out and "ft.bias_*" in out


def test_calibrate_ft_refuses_poses_too_close(capsys) -> None:
    code, out, err = run_cli(capsys, "calibrate", "ft", "--poses=-0.1,0,0.1", "--settle-s", "0.1",
                             "--average-s", "0.1")
    assert code == 2 and out == "" and "error: F/T calibration: the poses" in err and "condition number" in err


@pytest.mark.parametrize(("argv", "message"), [
    (("--inject-ft-bias", "1,2,3"), "expected 6 value(s)"),
    (("--poses", "0,4"), "at least 3"),
    (("--poses=-3,0,1",), "outside the joint's position limits"),
])
def test_calibrate_ft_bad_options_exit_2(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", "ft", *argv)
    assert code == 2 and message in err


def test_calibrate_ft_on_a_node(capsys) -> None:
    """The same routine over the protocol on joint 1 (``--node 1 --sim``: a simulated knee on a virtual bus in
    lock-step with the command, 4.7 s of its time). Paced to the wall clock instead, a saturated machine stalled the
    joint's thread with the command's and failed it twice: on a lost heartbeat, then on the tool's mass."""
    out = run_json(capsys, "calibrate", "ft", "--node", "1", "--sim", *SHORT)
    assert out["node"] == 1 and out["verdict"] == "pass" and out["bus"].startswith("Virtual bus channel")
    # the knee's own sensor (no bias injected: its walk only) and tool; force telemetry quantised to 0.05 N
    np.testing.assert_allclose(out["figures"]["ft_bias_force_n"], [0.0, 0.0, 0.0], atol=0.17)
    assert out["figures"]["tool_mass_kg"] == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize(("argv", "message"), [
    (("--sim",), "--sim simulates joint --node N on a bus: it needs --node"),
    (("--sim", "--node", "1", "--interface", "virtual", "--channel", "x"),
     "--sim simulates the joint on its own bus: not with --interface virtual --channel x"),
])
def test_calibrate_sim_without_a_node_or_with_a_bus_is_refused(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", "ft", *argv)
    assert code == 2 and message in err


def test_calibrate_sequence_passes_with_its_certificate(tmp_path: Path) -> None:
    argv = ["run", str(SEEDS_DIR / "sequences" / "calibrate.toml"), "--sim", "--serial", "SIM-CAL",
            "--out", str(tmp_path / "out"), "--db", str(tmp_path / "r.db"), "--json"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    results = json.loads(buffer.getvalue())
    assert code == 0 and results["verdict"] == "pass" and results["failed_checks"] == []
    step = next(s for s in results["steps"] if s["type"] == "ft_calibrate")
    assert step["status"] == "pass" and step["figures"]["tool_mass_kg"] == pytest.approx(1.0, rel=0.02)
    certs = {c["quantity"]: c for c in step["certificates"]}
    assert set(certs) == {"ft_bias_force_n", "ft_bias_moment_nm", "tool_mass_kg", "tool_com_m"}
    assert all(c["verdict"] == "pass" for c in certs.values())
    # each certificate has its id (traceability): of the unit, the run's start, the step and the quantity
    assert all(c["id"] == certificate_id("SIM-CAL", results["started_utc"], step["index"], q) for q, c in certs.items())
    assert len({c["id"] for s in results["steps"] for c in s["certificates"]}) == sum(
        len(s["certificates"]) for s in results["steps"])
    assert certs["tool_mass_kg"]["limits"]["tool_mass_kg"] == {"min": 0.98, "max": 1.02}
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Calibration certificate" in report and "tool_mass_kg" in report
    assert "its ft.bias_* parameters, raw sensor frame" in report
    friction = next(s for s in results["steps"] if s["type"] == "friction_calibrate")
    fcerts = {c["quantity"]: c for c in friction["certificates"]}
    assert friction["status"] == "pass" and set(fcerts) == {"friction_coulomb_nm", "friction_static_nm",
                                                            "friction_stribeck_velocity_rad_s",
                                                            "friction_viscous_nm_s_per_rad"}
    assert all(c["verdict"] == "pass" for c in fcerts.values()) and "friction_viscous_nm_s_per_rad" in report
    # written to the joint through the profile's gain_write and read back (float32 on the wire)
    assert friction["figures"]["gains_written"]["impedance_friction_viscous"] == pytest.approx(
        friction["figures"]["friction_viscous_nm_s_per_rad"], rel=1e-6)
    # the encoders over the bus (rig.steps turns the encoders' message on for it): the knee's KE_2 within 1.5 %
    encoders = next(s for s in results["steps"] if s["type"] == "encoder_calibrate")
    ecerts = {c["quantity"]: c for c in encoders["certificates"]}
    assert encoders["status"] == "pass" and set(ecerts) == {"ke_amplitudes_rad", "ke_phases_rad", "output_zero_rad",
                                                            "motor_zero_rad"}
    assert 0.0 < encoders["figures"]["ke_dominant_rad"] / 1.45e-4 - 1.0 < 0.015
    # its output zero, the step run first after enabling and a wait (seeds/sequences/calibrate.toml): within the
    # issue's 1 LSB of the 20-bit encoder of the reading's zero (none injected: 0 less half an LSB, the quantiser's
    # floor, as tests/rig/test_encoder_calibration.py counts it); 3.6 LSB after the Kt and friction steps' warmth
    lsb = 2.0 * math.pi / 2**20
    assert abs(encoders["figures"]["output_zero_rad"] + lsb / 2) <= lsb
    assert ecerts["ke_amplitudes_rad"]["verdict"] == "pass" and "ke_dominant_rad" in report
    kt = next(s for s in results["steps"] if s["type"] == "kt_calibrate")  # over the bus, with the rig's fixture
    assert kt["status"] == "pass" and kt["figures"]["kt_nm_per_a"] == pytest.approx(0.117165, rel=0.005)
    assert {c["quantity"]: c["verdict"] for c in kt["certificates"]} == {"kt_nm_per_a": "pass",
                                                                         "kt_mesh_efficiency": "pass"}
    assert "kt_mesh_efficiency" in report
    temp = next(s for s in results["steps"] if s["type"] == "friction_temperature_calibrate")
    assert temp["status"] == "pass" and temp["figures"]["friction_temp_span_k"] > 3.0
    assert {c["quantity"] for c in temp["certificates"]} == {"friction_beta_per_k", "friction_coulomb_ref_nm",
                                                             "friction_static_ref_nm"}
    assert "friction_beta_per_k" in report
    assert temp["figures"]["gains_written"]["impedance_friction_temp_coeff"] == pytest.approx(
        temp["figures"]["friction_beta_per_k"], rel=1e-6)
    # the drive's own calibration, read back over the bus: R within 1 % of the knee's 0.1 ohm at 25 °C
    motor = next(s for s in results["steps"] if s["type"] == "motor_calibrate")
    assert motor["status"] == "pass" and motor["figures"]["motor_resistance_ref_ohm"] == pytest.approx(0.1, rel=0.01)
    assert {c["quantity"]: c["verdict"] for c in motor["certificates"]} == {
        "motor_resistance_ohm": "pass", "motor_inductance_h": "pass", "motor_pole_pairs": "pass",
        "motor_electrical_offset_rad": "pass"}
    cogging = next(s for s in results["steps"] if s["type"] == "cogging_calibrate")
    assert cogging["status"] == "pass" and cogging["figures"]["cogging_amplitude_nm"] == pytest.approx(0.0116, rel=0.05)
    assert "motor_electrical_offset_rad" in report and "cogging_harmonics_nm" in report


FRICTION_SHORT = ("--speeds", "0.02,0.05,0.1,0.3,1.0", "--average-s", "0.2", "--settle-s", "0.1")


def test_calibrate_friction_in_process(capsys, tmp_path: Path) -> None:
    """The knee's friction through argv (5 speeds, 12 s of joint time): Fc 11.5 N·m and B 15.5 N·m·s/rad within the
    bounds of tests/rig/test_friction_calibration.py."""
    out = run_json(capsys, "calibrate", "friction", *FRICTION_SHORT, "--out", str(tmp_path))
    assert out["verdict"] == "pass" and out["routine"] == "friction"
    f = out["figures"]
    assert abs(f["friction_coulomb_nm"] - 11.5) < 0.4 and -0.2 < f["friction_viscous_nm_s_per_rad"] - 15.5 < 0.5
    certs = {c["quantity"]: c for c in out["certificates"]}
    assert certs["friction_coulomb_nm"]["unit"] == "N·m" and certs["friction_coulomb_nm"]["verdict"] == "pass"
    assert "friction_coulomb_u_nm" in certs["friction_coulomb_nm"]["limits"]
    assert "written to the joint through its profile's gain_write" in certs["friction_viscous_nm_s_per_rad"]["method"]
    assert (tmp_path / "calibration.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("argv", "message"), [
    (("--speeds", "0.1,0.2,0.4"), "at least 5"),
    (("--poses=-1,0,1",), "--poses: not an option of the friction routine"),
])
def test_calibrate_friction_bad_options_exit_2(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", "friction", *argv)
    assert code == 2 and message in err


ENCODERS_SHORT = ("--range=-2,2",)  # at the default 0.12 rad/s: 3 x 32 s sweeps, 103 s of joint time


def test_calibrate_encoders_in_process_writes_the_table_to_a_gains_file(capsys, tmp_path: Path) -> None:
    """The knee's kinematic error and an injected output zero through argv, over +-2 rad: KE_2 1.45e-4 rad within
    the 1.5 % of tests/rig/test_encoder_calibration.py at 0.12 rad/s, the zero within 3 standard uncertainties; the
    table lands in the gains file's [kinematic_error_compensation], which loads back."""
    from actuator.control.config import load_gains

    gains = tmp_path / "knee_ke.toml"
    out = run_json(capsys, "calibrate", "encoders", *ENCODERS_SHORT, "--inject-output-offset", "0.003",
                   "--gains-out", str(gains), "--out", str(tmp_path))
    assert out["routine"] == "encoders" and out["injected_output_offset"] == 0.003
    f = out["figures"]
    assert 0.0 < f["ke_amplitudes_rad"][1] / 1.45e-4 - 1.0 < 0.015
    assert abs(f["output_zero_rad"] - 0.003) < 3 * f["output_zero_u_rad"]
    certs = {c["quantity"]: c for c in out["certificates"]}
    assert certs["ke_amplitudes_rad"]["unit"] == "rad" and "ke_dominant_u_rad" in certs["ke_amplitudes_rad"]["limits"]
    assert "[kinematic_error_compensation]" in certs["output_zero_rad"]["method"]
    comp = load_gains(gains).kinematic_error_compensation
    assert comp.position_feedback == "output" and list(comp.amplitudes_rad) == f["ke_amplitudes_rad"]
    assert comp.output_zero_rad == f["output_zero_rad"] and comp.motor_zero_rad == f["motor_zero_rad"]


KT_SHORT = ("--loads=-30,0,30", "--average-s", "0.2", "--settle-s", "0.1")  # 7.5 s of joint time


def test_calibrate_kt_in_process(capsys, tmp_path: Path) -> None:
    """The knee's Kt through argv: 0.11717 N·m per peak amp within tests/rig/test_kt_calibration.py's 0.5 %."""
    out = run_json(capsys, "calibrate", "kt", *KT_SHORT, "--out", str(tmp_path))
    assert out["verdict"] == "pass" and out["routine"] == "kt"
    assert out["figures"]["kt_nm_per_a"] == pytest.approx(0.117165, rel=0.005)
    certs = {c["quantity"]: c for c in out["certificates"]}
    assert certs["kt_nm_per_a"]["verdict"] == "pass" and "kt_relative_u" in certs["kt_nm_per_a"]["limits"]
    assert "motor.torque_constant_nm_per_a" in certs["kt_nm_per_a"]["method"]
    assert certs["kt_mesh_efficiency"]["verdict"] == "pass"
    assert (tmp_path / "calibration.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("argv", "message"), [
    (("--range=-1",), "two numbers LO,HI"),
    (("--range=-3,1",), "outside the position limits"),
    (("--speeds", "0.1,0.2,0.4,0.8,1.0"), "--speeds: not an option of the encoders routine"),
])
def test_calibrate_encoders_bad_options_exit_2(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", "encoders", *argv)
    assert code == 2 and message in err


@pytest.mark.parametrize(("argv", "message"), [
    (("--loads=-10,10",), "at least 3"),
    (("--loads=-140,0,140",), "lower the loads"),
    (("--speeds", "0.1,0.2,0.3,0.4,0.5"), "--speeds: not an option of the kt routine"),
])
def test_calibrate_kt_bad_options_exit_2(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", "kt", *argv)
    assert code == 2 and message in err


def test_kt_options_are_refused_by_the_other_routines(capsys) -> None:
    code, _, err = run_cli(capsys, "calibrate", "friction", "--loads=-10,0,10")
    assert code == 2 and "--loads: not an option of the friction routine" in err


def test_calibrate_friction_temperature_refuses_a_heat_too_short(capsys) -> None:
    """Two short maps around a 2 s heat (16 s of joint time): the housing warms by hundredths of a kelvin, under the
    3 K the fit needs, so the routine refuses (exit 2) instead of returning a beta of the maps' scatter."""
    code, out, err = run_cli(capsys, "calibrate", "friction-temperature", "--maps", "2", "--heat-s", "2",
                             "--speeds", "0.05,0.1,0.2,0.4,0.8", "--average-s", "0.2", "--settle-s", "0.1")
    assert code == 2 and out == "" and "error: friction over temperature" in err and "under 3 K" in err


@pytest.mark.parametrize(("argv", "message"), [
    (("--maps", "1"), "maps = 1"),
    (("--loads=-10,0,10",), "--loads: not an option of the friction-temperature routine"),
    (("--poses=-1,0,1",), "--poses: not an option of the friction-temperature routine"),
])
def test_calibrate_friction_temperature_bad_options_exit_2(capsys, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", "friction-temperature", *argv)
    assert code == 2 and message in err


def test_temperature_options_are_refused_by_the_other_routines(capsys) -> None:
    code, _, err = run_cli(capsys, "calibrate", "friction", "--heat-s", "10")
    assert code == 2 and "--heat-s: not an option of the friction routine" in err


def test_calibrate_motor_puts_a_wrong_drive_right(capsys) -> None:
    """A drive set with 7 pole pairs and an offset 1 rad off, its motor encoder's zero 3e-3 rad: the drive finds the
    knee's 10 and pp x 3e-3 within one output LSB (tests/firmware/test_drive_calibration.py's bounds)."""
    out = run_json(capsys, "calibrate", "motor", "--inject-pole-pairs", "7", "--inject-electrical-offset", "1.0",
                   "--inject-motor-offset", "0.003")
    assert out["verdict"] == "pass" and out["injected_pole_pairs"] == 7
    f = out["figures"]
    assert f["motor_pole_pairs"] == 10 and f["motor_resistance_ref_ohm"] == pytest.approx(0.1, rel=0.01)
    assert abs(f["motor_electrical_offset_rad"] - 0.03) / (10 * 100) < 2 * math.pi / 2**20
    assert {c["quantity"] for c in out["certificates"]} == {"motor_resistance_ohm", "motor_inductance_h",
                                                            "motor_pole_pairs", "motor_electrical_offset_rad"}


def test_calibrate_cogging_writes_the_compensation_to_a_gains_file(capsys, tmp_path: Path) -> None:
    """The knee's cogging (0.0116 N·m at the motor, 180 periods a revolution) within the 5 % of
    tests/rig/test_cogging_calibration.py; the harmonics land in the gains file's [cogging_compensation]."""
    from actuator.control.config import load_gains

    gains = tmp_path / "knee_cog.toml"
    out = run_json(capsys, "calibrate", "cogging", "--gains-out", str(gains))
    assert out["verdict"] == "pass" and out["figures"]["cogging_amplitude_nm"] == pytest.approx(0.0116, rel=0.05)
    comp = load_gains(gains).cogging_compensation
    assert comp.periods_per_rev == 180 and comp.on
    assert list(comp.harmonics_nm) == out["figures"]["cogging_compensation"]["harmonics_nm"]


@pytest.mark.parametrize(("routine", "argv", "message"), [
    ("motor", ("--speed", "1"), "--speed: not an option of the motor routine"),
    ("encoders", ("--save",), "--save: not an option of the encoders routine"),
    ("ft-crosstalk", ("--poses=-1,0,1",), "--poses: not an option of the ft-crosstalk routine"),
    ("cogging", ("--inject-pole-pairs", "7"), "--inject-pole-pairs: not an option of the cogging routine"),
    ("motor", ("--inject-pole-pairs", "0"), "motor.pole_pairs = 0"),
])
def test_options_of_other_routines_are_refused(capsys, routine, argv, message) -> None:
    code, _, err = run_cli(capsys, "calibrate", routine, *argv)
    assert code == 2 and message in err


def test_calibrate_friction_writes_its_feed_forward_to_the_joint(capsys) -> None:
    """--write: Fc and B into the (simulated) joint's impedance feed-forward through its gains, read back equal."""
    out = run_json(capsys, "calibrate", "friction", *FRICTION_SHORT, "--write")
    f = out["figures"]
    assert f["gains_written"] == {"impedance_friction_coulomb": f["friction_coulomb_nm"],
                                  "impedance_friction_viscous": f["friction_viscous_nm_s_per_rad"]}


XT_SHORT = ("--settle-s", "0.15", "--average-s", "0.25")  # 14 load cases, 10 s of joint time


def test_calibrate_ft_crosstalk_writes_the_compensation_to_the_joint(capsys) -> None:
    """ft-crosstalk in-process against the simulated joint's wrench fixture, --write: the 36 entries of K = S^-1 in
    the joint's ft.compensation_IJ, read back (float64 in-process: equal); the matrix within the recovery bounds of
    tests/rig/test_ft_calibration_crosstalk.py (here the largest entry error, Fz from Mx, against its 5 u)."""
    out = run_json(capsys, "calibrate", "ft-crosstalk", *XT_SHORT, "--write")
    f = out["figures"]
    assert out["verdict"] == "pass" and out["routine"] == "ft-crosstalk"
    assert [c["quantity"] for c in out["certificates"]] == ["ft_sensitivity", "ft_compensation"]
    written = f["gains_written"]
    assert list(written) == [f"ft.compensation_{i}{j}" for i in range(1, 7) for j in range(1, 7)]
    assert list(written.values()) == f["ft_compensation"]
    s = np.array(f["ft_sensitivity"]).reshape(6, 6)
    assert s[5, 2] == pytest.approx(0.004, abs=5 * f["ft_sensitivity_u"][5 * 6 + 2])  # Mz from Fz, the knee's
    assert f["ft_crosstalk_after_max_fs"] < 1e-3
