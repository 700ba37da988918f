"""The virtual joint's firmware without the bus: states, watchdog, limits, faults, gains and flash."""

from __future__ import annotations

import numpy as np
import pytest

from actuator.control.supervisor import FAULT_WATCHDOG
from actuator.errors import ConfigError, FaultError
from actuator.params import load_preset
from firmware_iface.virtual_joint.firmware import JointFirmware, ParamError

CHUNK_S = 0.001  # 40 model steps at 40 kHz


def _closed(fw: JointFirmware, mode: str = "position") -> None:
    fw.set_state("closed_loop")
    fw.set_mode(mode)


def test_idle_drives_no_current_and_closed_loop_follows():
    fw = JointFirmware("knee")
    fw.advance(0.05)
    tel = fw.telemetry()
    assert tel["state"] == "idle" and tel["iq_a"] == 0.0
    _closed(fw)
    for _ in range(400):
        assert fw.command("position", 0.1)
        fw.advance(CHUNK_S)
    # default knee gains settle a 0.1 rad step in 0.16 s (contract tests); 0.4 s later within 1e-4 rad
    assert fw.telemetry()["position_rad"] == pytest.approx(0.1, abs=1e-4)


@pytest.mark.parametrize("trial", range(50))
def test_watchdog_trips_within_timeout_plus_one_chunk(trial):
    rng = np.random.default_rng(trial)
    timeout_s = float(rng.uniform(0.02, 0.2))
    fw = JointFirmware("wrist", watchdog_timeout_s=timeout_s, seed=trial)
    _closed(fw, str(rng.choice(["position", "velocity", "torque"])))
    for _ in range(int(rng.integers(5, 50))):
        fw.command(fw.mode, 0.0)
        fw.advance(CHUNK_S)
    last = fw.last_command_t
    while fw.stop_until_t < 0 and fw.state == "closed_loop":
        fw.advance(CHUNK_S)
    # the damped stop begins within the timeout plus one chunk (the supervision period)
    assert fw.t_s - last <= timeout_s + 2 * CHUNK_S
    while fw.state != "fault":
        fw.advance(CHUNK_S)
    assert fw.faults & FAULT_WATCHDOG
    assert "watchdog" in fw.telemetry()["faults"]
    fw.advance(0.01)  # drive off after the fault: the current loop brings i_q to zero within a few ms
    assert abs(fw.telemetry()["iq_a"]) < 1e-3


def test_commands_are_clamped_and_rejected_out_of_mode():
    knee = load_preset("knee")
    fw = JointFirmware(knee)
    assert not fw.command("position", 0.1)  # idle: rejected
    _closed(fw)
    assert not fw.command("velocity", 1.0)  # wrong mode
    assert fw.command("position", 10.0)
    assert fw.ref[0] == knee.limits.position_max_rad
    assert fw.counters == {**fw.counters, "rejected": 2, "clamped": 1, "commands": 1}


def test_estop_latches_until_cleared():
    fw = JointFirmware("knee")
    _closed(fw)
    fw.estop()
    assert fw.state == "fault" and "estop" in fw.telemetry()["faults"]
    with pytest.raises(FaultError, match="estop"):
        fw.set_state("closed_loop")
    fw.clear_faults()
    assert fw.state == "idle" and fw.faults == 0
    fw.set_state("closed_loop")


def test_gains_live_and_flash_survives_restart(tmp_path):
    flash = tmp_path / "node1.toml"
    fw = JointFirmware("knee", flash_path=flash)
    fw.write_gain("position_kp", 42.0)
    assert fw.read_gain("position_kp") == 42.0
    fw.save_to_flash()
    again = JointFirmware("knee", flash_path=flash)
    assert again.read_gain("position_kp") == 42.0
    with pytest.raises(ConfigError, match="no_such_gain"):
        fw.write_gain("no_such_gain", 1.0)


def test_params_checked_and_kept_in_flash(tmp_path):
    flash = tmp_path / "node1.toml"
    fw = JointFirmware("knee", flash_path=flash)
    fw.write_param("watchdog_timeout_s", 0.25)
    fw.write_param("rate_joint_state_hz", 200.0)
    fw.write_param("torque_max_nm", 40.0)
    fw.write_param("gain.velocity_ki", 3.5)
    for name, status in (("profile_version", "read_only"), ("no_such", "unknown_param"),
                         ("torque_max_nm", "out_of_range"), ("watchdog_timeout_s", "out_of_range")):
        with pytest.raises(ParamError) as err:
            fw.write_param(name, 1e5)
        assert err.value.status == status
    assert fw.read_param("torque_max_nm") == 40.0  # the refused write changed nothing
    fw.save_to_flash()
    again = JointFirmware("knee", flash_path=flash)
    assert [again.read_param(n) for n in ("watchdog_timeout_s", "rate_joint_state_hz", "torque_max_nm",
                                          "gain.velocity_ki")] == [0.25, 200.0, 40.0, 3.5]
    _closed(again, "torque")
    again.command("torque", torque_nm=100.0)
    assert again.ref[2] == 40.0 and again.counters["clamped"] == 1  # the lowered limit clamps
