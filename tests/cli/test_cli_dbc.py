"""``jointkit dbc check``: the native profile is clean (exit 0); broken copies exit 1 with a line naming the file,
message, signals and numbers; unreadable files exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cliutil import run_cli

from firmware_iface.protocol.profile import NATIVE_DBC, NATIVE_SIDECAR


def broken_copy(tmp_path: Path, old: str, new: str, *, sidecar: bool = False) -> Path:
    """A copy of the native DBC (and its sidecar, next to it) with ``old`` replaced by ``new`` in one of them."""
    src = NATIVE_SIDECAR if sidecar else NATIVE_DBC
    text = src.read_text()
    assert text.count(old) == 1, old
    dbc, side = tmp_path / "copy.dbc", tmp_path / "copy.toml"
    dbc.write_text(NATIVE_DBC.read_text())
    side.write_text(NATIVE_SIDECAR.read_text())
    (side if sidecar else dbc).write_text(text.replace(old, new))
    return dbc


def test_native_profile_is_clean(capsys):
    code, out, _ = run_cli(capsys, "dbc", "check", str(NATIVE_DBC))
    assert code == 0
    assert out.strip().endswith("with " + str(NATIVE_SIDECAR) + ": 21 messages, ok")


def test_native_profile_json(capsys):
    code, out, _ = run_cli(capsys, "dbc", "check", str(NATIVE_DBC), "--sidecar", str(NATIVE_SIDECAR), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["problems"] == [] and report["messages"] == 21
    assert report["profile"] == "jointkit_native"


def test_overlapping_signals_exit_1_naming_both(capsys, tmp_path):
    dbc = broken_copy(tmp_path, ' SG_ velocity : 32|16@1- (0.001,0) [-32.768|32.767] "rad/s" host',
                      ' SG_ velocity : 24|16@1- (0.001,0) [-32.768|32.767] "rad/s" host')
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc))
    assert code == 1
    assert f"{dbc}: joint_state.position+velocity: signals position (0|32@1-) and velocity (24|16@1-) overlap at " \
           "bits 24..31" in out
    assert "joint_state.torque" not in out  # velocity now ends at bit 39, clear of torque (48..63)
    assert out.strip().endswith("1 problem(s)")


def test_overlapping_big_endian_signals(capsys, tmp_path):
    dbc = broken_copy(tmp_path, " SG_ my : 23|16@0-", " SG_ my : 15|16@0-")
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc), "--json")
    problems = json.loads(out)["problems"]
    assert code == 1 and len(problems) == 1
    p = problems[0]
    assert (p["file"], p["message"], p["signal"]) == (str(dbc), "wrench_torque", "mx+my")
    assert p["text"] == "signals mx (7|16@0-) and my (15|16@0-) overlap at bits 8..15"


def test_signal_beyond_the_message(capsys, tmp_path):
    dbc = broken_copy(tmp_path, " SG_ torque : 48|16@1- (0.01,0) [-327.68|327.67]",
                      " SG_ torque : 56|16@1- (0.01,0) [-327.68|327.67]")
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc))
    assert code == 1
    assert "joint_state.torque: 56|16@1- needs bits 64..71, beyond the 8-byte message (bits 0..63)" in out


def test_command_id_beyond_5_bits_collides_after_addressing(capsys, tmp_path):
    dbc = broken_copy(tmp_path, "BO_ 18 save_to_flash: 8 host", "BO_ 33 save_to_flash: 8 host")
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc))
    assert code == 1
    assert "save_to_flash: frame id 0x21 does not fit in the 5 command bits (max 0x1f)" in out
    assert "save_to_flash: id 0x21 of save_to_flash at node 1 collides with heartbeat at node 1" in out  # 1 << 5 | 33


def test_range_the_signal_cannot_carry(capsys, tmp_path):
    key = '"telemetry.torque_x_nm" = { message = "wrench_torque", signal = "mx", unit = "Nm", '
    dbc = broken_copy(tmp_path, key + "range = [-21.0, 21.0] }", key + "range = [-40.0, 40.0] }", sidecar=True)
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc))
    assert code == 1
    assert "copy.toml: wrench_torque.mx: [semantic] telemetry.torque_x_nm range [-40, 40] is more than the signal " \
           "can carry: [-32.768, 32.767] (7|16@0-, scale 0.001" in out


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('"telemetry.position_rad" = { message = "joint_state", signal = "position"',
     '"telemetry.position_rad" = { message = "joint_state", signal = "pos"',
     "[semantic] telemetry.position_rad names signal 'pos', not in message joint_state (position, velocity, torque)"),
    ('"status.counter" = { message = "heartbeat"', '"status.counter" = { message = "heartbeet"',
     "heartbeet: [semantic] status.counter names message 'heartbeet', not in the DBC"),
    ('torque = ["torque_command"]', 'torque = ["torque_cmd"]',
     "[modes] torque names command 'torque_cmd', not a message of the DBC"),
    ("relay = []", "relay = []\nballet = []", "[modes] ballet is not a value of status.mode"),
    ('"telemetry.torque_nm" = { message = "joint_state", signal = "torque", unit = "Nm"',
     '"telemetry.torque_nm" = { message = "joint_state", signal = "torque", unit = "N·m"',
     "[semantic] telemetry.torque_nm has unit 'N·m', the DBC 'Nm'"),
    ("diagnostics = 1.0", "diagnostics = 1.0\ndiagnostix = 2.0", "[rates_hz] names message 'diagnostix', not in"),
    ("bitrate = 1000000", "bitrate = 500000", "[profile] bitrate = 500000, but"),
    ("tracking_error = 128", "tracking_error = 96", "[faults] tracking_error = 96 is not a single bit"),
    ("node_max = 63", "node_max = 64", "at node 64 the id 0x800 exceeds 0x7ff"),
])
def test_sidecar_problems(capsys, tmp_path, old, new, expected):
    dbc = broken_copy(tmp_path, old, new, sidecar=True)
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc))
    assert code == 1 and expected in out, out


def test_dbc_alone_is_checked_without_addressing(capsys, tmp_path):
    dbc = tmp_path / "alone.dbc"
    dbc.write_text(NATIVE_DBC.read_text())
    code, out, _ = run_cli(capsys, "dbc", "check", str(dbc))
    assert code == 0 and "(no sidecar: addressing, semantic names, rates and modes unchecked)" in out


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("missing.dbc", None, "missing.dbc: no such DBC file"),
    ("garbage.dbc", "BO_ 1 heartbeat 8 {{{", "garbage.dbc: cannot read the DBC"),
])
def test_unreadable_dbc_exits_2(capsys, tmp_path, name, text, expected):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    code, out, err = run_cli(capsys, "dbc", "check", str(path))
    assert code == 2 and out == "" and err.startswith("error: ") and expected in err


def test_unreadable_sidecar_exits_2(capsys, tmp_path):
    side = tmp_path / "bad.toml"
    side.write_text("[profile\n")
    code, _, err = run_cli(capsys, "dbc", "check", str(NATIVE_DBC), "--sidecar", str(side))
    assert code == 2 and "bad.toml: cannot read the sidecar" in err
