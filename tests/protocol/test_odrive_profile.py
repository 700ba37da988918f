"""The shipped ODrive CANSimple profile (issue 15): ODrive Robotics' own published DBC, unmodified, read through the
shipped sidecar, checked against the DBC read by plain cantools.

The DBC is byte for byte the published file (its SHA-256 below: odriverobotics/ODrive, tools/odrive-cansimple.dbc at
f9b5419c, "VERSION 0.5.6", 216 messages, Axis0..7 at fixed ids). Each test takes one thing the sidecar adds and
checks it on the wire with cantools alone: revolutions <-> radians, the toolkit's state and mode names <-> ODrive's
value names, Input_Mode sent as PASSTHROUGH, axis errors as named bits (2112 = MOTOR_FAILED | WATCHDOG_TIMER_EXPIRED,
a frame the native codec's value-table check dropped), and the per-axis ids (Axis3_Heartbeat at 3 << 5 | 1).
"""

from __future__ import annotations

import hashlib
import math
import struct

import can
import cantools
import pytest

from actuator.errors import ProtocolError
from firmware_iface.cli import main
from firmware_iface.protocol.load import SHIPPED, load_named

DBC, SIDECAR = SHIPPED["odrive"]
# sha256 of `git show f9b5419c:tools/odrive-cansimple.dbc` in odriverobotics/ODrive
DBC_SHA256 = "4db07a4cef0ee1a87cfbfc779cabd7db3176072c688a694e3b8842c2dd9bcb55"
PROFILE = load_named("odrive")
PLAIN = cantools.database.load_file(DBC, strict=False)
TWO_PI = 2.0 * math.pi


def test_the_dbc_is_the_published_file_and_checks_clean(capsys):
    text = DBC.read_bytes()
    assert text.startswith(b'VERSION "0.5.6"') and len(PLAIN.messages) == 216
    assert hashlib.sha256(text).hexdigest() == DBC_SHA256
    assert main(["dbc", "check", str(DBC)]) == 0
    assert "216" not in capsys.readouterr().out.splitlines()[-1]  # 27 messages a node, by their names
    assert len(PROFILE.messages) == 27


def test_the_0_6_dbc_is_odrive_s_file_and_checks_clean(capsys):
    dbc, _ = SHIPPED["odrive-0.6"]
    text = dbc.read_bytes()
    assert text.startswith(b'VERSION "0.6.10"')
    assert len(cantools.database.load_file(dbc, strict=False).messages) == 224  # 28 messages x 8 axes
    # sha256 of odrive_can/dbc/odrive-cansimple-0.6.10.dbc in the odrive_can 2.1.0 wheel (PyPI)
    assert hashlib.sha256(text).hexdigest() == "b7fef5e257c1ce6e3095a57d9f999ed5d2004c9bb2b05aae4914378b2fbd4b5c"
    assert main(["dbc", "check", str(dbc)]) == 0
    profile = load_named("odrive-0.6")
    assert profile.arbitration_id("Estop", 2) == 2 << 5 | 2 and profile.fault_names(16777216 | 4096) == [
        "CURRENT_LIMIT_VIOLATION", "WATCHDOG_TIMER_EXPIRED"]


def test_per_axis_ids_are_the_dbc_s_own():
    for node in range(8):
        for name in ("Heartbeat", "Set_Input_Pos", "Get_Encoder_Estimates"):
            assert PROFILE.arbitration_id(name, node) == PLAIN.get_message_by_name(f"Axis{node}_{name}").frame_id
    assert PROFILE.arbitration_id("Heartbeat", 3) == 3 << 5 | 1
    with pytest.raises(ProtocolError, match=r"outside 0\.\.7"):
        PROFILE.arbitration_id("Heartbeat", 8)


def test_positions_go_out_in_revolutions_and_come_back_in_radians():
    msg = PROFILE.encode("Set_Input_Pos", 2, Input_Pos=0.5 * math.pi, Vel_FF=TWO_PI, Torque_FF=1.5)
    plain = PLAIN.decode_message(msg.arbitration_id, msg.data)
    assert plain["Input_Pos"] == pytest.approx(0.25, rel=1e-7)  # float32 on the wire
    assert plain["Vel_FF"] == pytest.approx(1.0, abs=0.001)  # 16 bits of 0.001 rev/s
    assert plain["Torque_FF"] == pytest.approx(1.5, abs=0.001)  # N·m both sides
    est = PLAIN.get_message_by_name("Axis2_Get_Encoder_Estimates")
    frame = can.Message(arbitration_id=est.frame_id, data=est.encode({"Pos_Estimate": -0.125, "Vel_Estimate": 2.0}),
                        is_extended_id=False)
    d = PROFILE.decode(frame)
    assert (d.node_id, d.name) == (2, "Get_Encoder_Estimates")
    assert d.signals["Pos_Estimate"] == pytest.approx(-0.25 * math.pi, rel=1e-7)
    assert d.signals["Vel_Estimate"] == pytest.approx(4.0 * math.pi, rel=1e-7)


def test_a_feed_forward_beyond_what_its_16_bits_carry_is_refused():
    # the wire carries any float32 revolution: the sidecar's range is what the client clamps to
    msg = PROFILE.encode("Set_Input_Pos", 1, Input_Pos=2.5, Vel_FF=0.0, Torque_FF=0.0)
    assert PLAIN.decode_message(msg.arbitration_id, msg.data)["Input_Pos"] == pytest.approx(2.5 / TWO_PI, rel=1e-7)
    with pytest.raises(ProtocolError, match="Torque_FF"):
        PROFILE.encode("Set_Input_Pos", 1, Input_Pos=0.0, Vel_FF=0.0, Torque_FF=40.0)  # 16 bits: +-32.767 N·m


def test_states_and_modes_are_the_toolkit_s_names_on_odrive_s_values():
    msg = PROFILE.encode("Set_Axis_State", 1, Axis_Requested_State="closed_loop")
    assert PLAIN.decode_message(msg.arbitration_id, msg.data, decode_choices=False)["Axis_Requested_State"] == 8
    mode = PROFILE.encode("Set_Controller_Mode", 1, Control_Mode="position")  # Input_Mode: the sidecar's constant
    plain = PLAIN.decode_message(mode.arbitration_id, mode.data, decode_choices=False)
    assert (plain["Control_Mode"], plain["Input_Mode"]) == (3, 1)  # POSITION_CONTROL, PASSTHROUGH
    beat = PLAIN.get_message_by_name("Axis1_Heartbeat")
    for raw, ours in ((1, "idle"), (8, "closed_loop"), (3, "calibrate"), (4, "MOTOR_CALIBRATION")):
        data = beat.encode({"Axis_Error": 0, "Axis_State": raw, "Motor_Error_Flag": 0, "Encoder_Error_Flag": 0,
                            "Controller_Error_Flag": 0, "Trajectory_Done_Flag": 0})
        d = PROFILE.decode(can.Message(arbitration_id=beat.frame_id, data=data, is_extended_id=False))
        assert d.signals["Axis_State"] == ours  # a value the toolkit has no name for keeps ODrive's


def test_axis_errors_are_a_bit_field_with_every_set_bit_named():
    data = struct.pack("<IB2xB", 2112 | 1 << 25, 1, 0)  # MOTOR_FAILED | WATCHDOG_TIMER_EXPIRED, and an unnamed bit
    d = PROFILE.decode(can.Message(arbitration_id=1 << 5 | 1, data=data, is_extended_id=False))
    assert d.signals["Axis_Error"] == 2112 | 1 << 25
    assert PROFILE.fault_names(d.signals["Axis_Error"]) == ["MOTOR_FAILED", "WATCHDOG_TIMER_EXPIRED", "bit 25"]


def test_the_capabilities_are_what_the_sidecar_says():
    from firmware_iface.protocol.capabilities import provided

    caps = provided(PROFILE)
    assert all(caps[c] for c in ("heartbeat", "state_machine", "modes", "faults", "clear_faults",
                                 "position_telemetry", "current_telemetry", "position_command", "velocity_command",
                                 "torque_command"))
    assert not any(caps[c] for c in ("estop", "mode_report", "gains", "parameters", "flash", "torque_telemetry",
                                     "impedance", "wrench"))
