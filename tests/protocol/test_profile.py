"""Protocol profiles: round trips against plain cantools for every message, node addressing, bad frames, semantic
lookups, modes and the loading of broken files."""

from __future__ import annotations

import math
from pathlib import Path

import can
import cantools
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actuator.errors import ConfigError, ProtocolError
from firmware_iface.protocol import Profile, load_native, load_profile
from firmware_iface.protocol.profile import NATIVE_DBC, NATIVE_SIDECAR, allowed_range
from tests.protocol import odrive_axis

PROFILE = load_native()
PLAIN = cantools.database.load_file(NATIVE_DBC)  # the reference: cantools alone, no profile code in between
MESSAGES = PROFILE.messages
# the protocol as the issue asks for it: command ids, one definition each (node 0)
EXPECTED_IDS = {
    "estop": 0x00, "heartbeat": 0x01, "set_state": 0x02, "set_mode": 0x03, "clear_faults": 0x04,
    "position_command": 0x05, "velocity_command": 0x06, "torque_command": 0x07, "impedance_command": 0x08,
    "joint_state": 0x09, "motor_telemetry": 0x0A, "wrench_force": 0x0B, "wrench_torque": 0x0C, "diagnostics": 0x0D,
    "gain_write": 0x0E, "param_read": 0x0F, "param_write": 0x10, "param_reply": 0x11, "save_to_flash": 0x12,
    "encoder_state": 0x13,  # added for the end-of-line tests (twist, encoder consistency)
    "setpoint_state": 0x14,  # the tracked set-point on the joint's clock, for step and Bode tests over a bus
}


def valid_values(message: str) -> st.SearchStrategy[dict]:
    """Signal values the profile must accept: value-table names, or numbers inside the allowed range."""
    fields = {}
    for s in PROFILE.message(message).signals:
        if s.choices:
            fields[s.name] = st.sampled_from([str(v) for v in s.choices.values()])
        else:
            lo, hi = allowed_range(s)
            if s.is_float:  # keep float32 values away from its rounding at the ends
                lo, hi = lo * 0.999, hi * 0.999
            fields[s.name] = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.fixed_dictionaries(fields)


def frame(arb: int, data: bytes, **kw) -> can.Message:
    return can.Message(arbitration_id=arb, data=data, is_extended_id=False, **kw)


def test_native_profile_has_the_issue_messages_once_each_for_node_0():
    assert {m: PROFILE.message(m).frame_id for m in MESSAGES} == EXPECTED_IDS
    assert all(PROFILE.message(m).length == 8 for m in MESSAGES)
    assert PROFILE.sidecar.bitrate == 1_000_000 and not PROFILE.sidecar.fd
    assert (PROFILE.sidecar.node_shift, PROFILE.sidecar.node_min, PROFILE.sidecar.node_max) == (5, 1, 63)
    big = {m for m in MESSAGES if any(s.byte_order == "big_endian" for s in PROFILE.message(m).signals)}
    assert big == {"wrench_torque", "impedance_command"}
    assert all(s.is_signed for s in PROFILE.message("wrench_torque").signals if s.name != "counter")


@pytest.mark.parametrize("message", MESSAGES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_against_plain_cantools(message, data):
    values = data.draw(valid_values(message))
    node = data.draw(st.integers(1, 63))
    msg = PROFILE.encode(message, node, **values)
    cmd = EXPECTED_IDS[message]
    assert msg.arbitration_id == node << 5 | cmd and msg.dlc == 8 and not msg.is_extended_id
    plain = PLAIN.decode_message(cmd, msg.data, decode_choices=True)
    for s in PLAIN.get_message_by_frame_id(cmd).signals:
        want, got = values[s.name], plain[s.name]
        if s.choices:
            assert str(got) == want
        elif s.is_float:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-30)
        else:
            assert abs(got - want) <= abs(s.scale) / 2 * (1 + 1e-9) + 1e-12
    assert PLAIN.encode_message(cmd, plain) == msg.data  # and back
    node_id, name, decoded = PROFILE.decode(msg)
    assert (node_id, name) == (node, message)
    assert decoded == {k: (str(v) if isinstance(v, cantools.database.namedsignalvalue.NamedSignalValue) else v)
                       for k, v in plain.items()}


def test_motorola_signed_layout_by_hand():
    msg = PROFILE.encode("wrench_torque", 3, mx=-1.0, my=0.5, mz=-0.001, sensor_temp=-12.3, counter=5)
    raw = bytes(msg.data)
    assert int.from_bytes(raw[0:2], "big", signed=True) == -1000
    assert int.from_bytes(raw[2:4], "big", signed=True) == 500
    assert int.from_bytes(raw[4:6], "big", signed=True) == -1
    temp = (raw[6] << 4) | (raw[7] >> 4)
    assert temp - (1 << 12) == -123 and raw[7] & 0x0F == 5


def test_impedance_is_mit_packed():
    msg = PROFILE.encode("impedance_command", 1, position=12.5, velocity=-10.0, kp=1000.0, kd=0.0, torque_ff=200.0)
    assert bytes(msg.data) == bytes([0xFF, 0xFF, 0x00, 0x0F, 0xFF, 0x00, 0x0F, 0xFF])


@pytest.mark.parametrize("node", [1, 63])
def test_node_addressing_edges(node):
    assert PROFILE.encode("estop", np.int64(node)).arbitration_id == node << 5
    msg = PROFILE.encode("estop", node)
    assert msg.arbitration_id == node << 5 and PROFILE.decode(msg) == (node, "estop", {})
    assert PROFILE.arbitration_id("save_to_flash", node) == node << 5 | 0x12


@pytest.mark.parametrize("node", [0, 64, -1, 1.0, True])
def test_nodes_outside_1_to_63_are_refused(node):
    with pytest.raises(ProtocolError, match=r"node id .* is outside 1\.\.63"):
        PROFILE.encode("estop", node)


def test_frame_of_node_0_is_refused():
    with pytest.raises(ProtocolError, match=r"frame 0x009 \(joint_state\): node id 0 is outside 1\.\.63"):
        PROFILE.decode(frame(0x009, bytes(8)))


@pytest.mark.parametrize(("msg", "pattern"), [
    (frame(0x13F, bytes(8)), r"unknown frame id 0x13f .*node 9, command 0x1f"),
    (frame(0x7FF, bytes(8)), r"unknown frame id 0x7ff"),
    (can.Message(arbitration_id=0x29, data=bytes(8), is_extended_id=True), r"unknown frame id 0x029 \(extended"),
    (frame(0x29, bytes(6)), r"frame 0x029 \(joint_state, node 1\): 6 data bytes, expected 8"),
    (frame(0x29, b""), r"0 data bytes, expected 8"),
    (frame(0x21, bytes([9, 0, 0, 0, 0, 0, 0, 0])), r"heartbeat: signal state = 9 is not in its value table"),
    (frame(0x21, bytes([0, 77, 0, 0, 0, 0, 0, 0])), r"heartbeat: signal mode = 77 is not in its value table"),
    (frame(0x31, bytes([0, 0, 0, 0, 0, 0, 0xC0, 0x7F])), r"param_reply: signal value = nan is not finite"),
    (frame(0x25, (20_000_000).to_bytes(4, "little") + bytes(4)),
     r"position_command: signal position = 20 is outside the allowed range \[-12\.5, 12\.5\]"),
    (can.Message(arbitration_id=0x29, is_remote_frame=True, dlc=8, is_extended_id=False), r"a remote frame"),
])
def test_bad_frames_raise_protocol_errors_naming_the_problem(msg, pattern):
    with pytest.raises(ProtocolError, match=pattern):
        PROFILE.decode(msg)


def test_out_of_range_values_name_signal_value_and_range():
    with pytest.raises(ProtocolError, match=r"position_command: signal position = 13 rad is outside the allowed "
                                            r"range \[-12\.5, 12\.5\] rad"):
        PROFILE.encode("position_command", 1, position=13.0, velocity_ff=0.0, torque_ff=0.0)
    with pytest.raises(ProtocolError, match=r"impedance_command: signal kp = -1 Nm/rad .* \[0, 1000\]"):
        PROFILE.encode("impedance_command", 1, position=0, velocity=0, kp=-1, kd=0, torque_ff=0)
    with pytest.raises(ProtocolError, match=r"torque_command: signal torque = nan is not finite"):
        PROFILE.encode("torque_command", 1, torque=math.nan)
    with pytest.raises(ProtocolError, match=r"set_state: signal requested_state = 'fault' is not in its value table "
                                            r"\(0 idle, 1 closed_loop, 2 calibrate\)"):
        PROFILE.encode("set_state", 1, requested_state="fault")


def test_signal_names_are_checked():
    with pytest.raises(ProtocolError, match=r"torque_command: unknown signal\(s\) torq; the message has torque"):
        PROFILE.encode("torque_command", 1, torq=1.0)
    with pytest.raises(ProtocolError, match=r"position_command: missing signal\(s\) velocity_ff, torque_ff"):
        PROFILE.encode("position_command", 1, position=0.0)
    with pytest.raises(ProtocolError, match=r"no message named 'jump'"):
        PROFILE.encode("jump", 1)


def test_semantic_lookups_modes_and_faults():
    assert PROFILE.semantic("telemetry.position_rad") == ("joint_state", "position")
    assert PROFILE.semantic("telemetry.torque_x_nm") == ("wrench_torque", "mx")
    info = PROFILE.semantic_info("command.impedance_kp_nm_per_rad")
    assert (info.unit, info.range_) == ("Nm/rad", (0.0, 1000.0))
    with pytest.raises(ProtocolError, match=r"no semantic name 'telemetry\.nothing'"):
        PROFILE.semantic("telemetry.nothing")
    assert PROFILE.accepts("position", "position_command") and PROFILE.accepts("position", "estop")
    assert not PROFILE.accepts("position", "torque_command")
    assert PROFILE.accepts("impedance", "impedance_command") and not PROFILE.accepts("relay", "position_command")
    with pytest.raises(ProtocolError, match="no mode 'dance'"):
        PROFILE.accepts("dance", "estop")
    assert PROFILE.fault_names(65) == ["over_current", "watchdog"]
    assert set(PROFILE.telemetry) == {"joint_state", "wrench_force", "wrench_torque", "motor_telemetry", "heartbeat",
                                      "diagnostics", "encoder_state", "setpoint_state"}


def test_a_dbc_without_sidecar_has_no_node_addressing():
    plain = Profile.load(NATIVE_DBC)
    assert plain.encode("joint_state", 0, position=1.0, velocity=0.0, torque=0.0).arbitration_id == 0x09
    assert plain.decode(frame(0x09, bytes(8))).node_id == 0
    with pytest.raises(ProtocolError, match=r"node id 1 is outside 0\.\.0"):
        plain.encode("estop", 1)


def test_broken_sidecar_is_refused_on_load(tmp_path: Path):
    side = tmp_path / "side.toml"
    side.write_text(NATIVE_SIDECAR.read_text().replace('signal = "position", unit = "rad", range = [-2.5, 2.5] }',
                                                       'signal = "pos", unit = "rad", range = [-2.5, 2.5] }', 1))
    with pytest.raises(ConfigError, match=r"names signal 'pos', not in message joint_state"):
        load_profile(NATIVE_DBC, side)
    assert Profile.load(NATIVE_DBC, side).semantic("telemetry.position_rad") == ("joint_state", "pos")


@pytest.mark.parametrize(("name", "text", "pattern"), [
    ("missing.dbc", None, r"missing\.dbc: no such DBC file"),
    ("garbage.dbc", "BO_ this is not a dbc {", r"garbage\.dbc: cannot read the DBC"),
])
def test_unreadable_dbc(tmp_path: Path, name, text, pattern):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        Profile.load(path)


@pytest.mark.parametrize(("text", "pattern"), [
    ("[profile\nname = 1", r"side\.toml: cannot read the sidecar"),
    ("[profile]\nversion = '1'\n", r"side\.toml \[profile\]: missing field 'name'"),
    ("[profile]\nname = 'x'\n[addressing]\nnode_shift = '5'\n", r"\[addressing\]: node_shift = '5' has the wrong"),
    ("[profile]\nname = 'x'\n[semantic]\n'a.b' = { message = 'joint_state', signal = 'position', range = [2, 1] }\n",
     r"\[semantic\] 'a\.b': range = \[2, 1\] must be \[low, high\]"),
])
def test_bad_sidecars_name_file_and_field(tmp_path: Path, text, pattern):
    side = tmp_path / "side.toml"
    side.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_profile(NATIVE_DBC, side)


def test_the_gains_are_the_profiles_own():
    from dataclasses import replace

    from actuator.control.config import GAINS

    native = load_native()
    assert set(native.gain_names) == set(GAINS)  # the native firmware writes every controller gain by name
    # a joint of another vendor with parameters but no gains: it has none (tests/gui/test_gains_profile.py: the GUI
    # then reads and writes none)
    sidecar = replace(native.sidecar, params={k: v for k, v in native.sidecar.params.items()
                                              if not k.startswith("gain.")})
    assert Profile(native.db, sidecar, native.dbc_path).gain_names == ()


# --- bit fields (issue 15, item 1) ----------------------------------------------------------------------------------
# An ODrive-like axis (tests/protocol/odrive_axis.py): Axis_Error is a set of bits; a value table on it lists single
# bits, and a faulted axis sends their combination.
def axis_profile(tmp_path: Path, bitfield: bool, dbc: str = odrive_axis.DBC) -> Profile:
    path = odrive_axis.write(tmp_path, bitfield, dbc)
    return Profile.load(path, path.with_suffix(".toml"))


def test_a_bitfield_decodes_any_combination_and_names_every_set_bit(tmp_path: Path):
    profile = axis_profile(tmp_path, bitfield=True)
    d = profile.decode(odrive_axis.heartbeat(64 | 2048))  # the 2112 that was dropped as a ProtocolError
    assert (d.node_id, d.signals["Axis_Error"], d.signals["Axis_State"]) == (3, 2112, "CLOSED_LOOP_CONTROL")
    assert profile.fault_names(2112) == ["MOTOR_FAILED", "WATCHDOG_TIMER_EXPIRED"]
    assert profile.fault_names(0) == []
    assert profile.fault_names(64 | 4 | 1 << 31) == ["MOTOR_FAILED", "bit 2", "bit 31"]  # no bit goes unreported
    # the state is no bit field: a value outside its table is still refused
    with pytest.raises(ProtocolError, match="Axis_State = 5 is not in its value table"):
        profile.decode(odrive_axis.heartbeat(0, state=5))


def test_without_bitfield_a_combination_is_refused_as_before(tmp_path: Path):
    profile = axis_profile(tmp_path, bitfield=False)
    with pytest.raises(ProtocolError, match="Axis_Error = 2112 is not in its value table"):
        profile.decode(odrive_axis.heartbeat(2112))


def test_dbc_check_accepts_single_bits_only_in_a_bitfield(tmp_path: Path):
    from firmware_iface.protocol.check import check_profile

    assert [p.text for p in check_profile(axis_profile(tmp_path, bitfield=True))] == []
    problems = check_profile(axis_profile(tmp_path, True, odrive_axis.DBC.replace('2048 "WATCHDOG', '3072 "WATCHDOG')))
    assert [p.text for p in problems] == [
        "[semantic] status.faults (bitfield): value 3072 (WATCHDOG_TIMER_EXPIRED) is not a single bit"]
