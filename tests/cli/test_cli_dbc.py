"""``jointkit dbc check``: the native profile is clean (exit 0); broken copies exit 1 with a line naming the file,
message, signals and numbers; unreadable files exit 2.

``jointkit dbc export``: the per-node DBC it writes lets cantools' own command line (``python -m cantools decode``)
decode every frame of a recording of two virtual joints and their host; nodes outside the range and faulty
profiles exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import can
import cantools
import pytest
from cliutil import run_cli, run_json

from firmware_iface.protocol.load import load_native
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


# --- dbc export ---------------------------------------------------------------------------------------------------
PROFILE = load_native()
TARGETS_RAD = {1: -0.2, 2: 0.3}  # position set-points of the two joints, so their joint_state carries a position
# a line of `cantools decode --single-line` for a candump -L line (python-can's .log): the line, " :: ", the message
DECODED = re.compile(r"^\((?P<t>[\d.]+)\) \S+ (?P<id>[0-9A-F]{3})#(?P<data>[0-9A-F]*) [RT] :: "
                     r"(?P<name>\w+)\((?P<signals>.*)\)$")


def record_two_joints(log: Path, duration_s: float = 0.5) -> list[can.Message]:
    """Virtual joints 1 and 2 (free-running) commanded to positions by a host for ``duration_s`` of joint time, every
    frame on the channel written by python-can's candump .log writer; the frames recorded."""
    from firmware_iface.virtual_joint.serve import JointServer

    server = JointServer(list(TARGETS_RAD), port=None, paced=False)
    tap = can.Bus(interface="virtual", channel=server.channel)
    host = can.Bus(interface="virtual", channel=server.channel)
    logger = can.Logger(str(log))
    frames = []
    try:
        for node in TARGETS_RAD:
            host.send(PROFILE.encode("set_mode", node, requested_mode="position"))
            host.send(PROFILE.encode("set_state", node, requested_state="closed_loop"))
        for _ in range(round(duration_s / 0.01)):  # a set-point every 10 ms keeps the watchdog (0.1 s) fed
            for node, q in TARGETS_RAD.items():
                host.send(PROFILE.encode("position_command", node, position=q, velocity_ff=0.0, torque_ff=0.0))
            server.runner.run_for(0.01)
        while (msg := tap.recv(0)) is not None:
            logger.on_message_received(msg)
            frames.append(msg)
    finally:
        logger.stop()
        tap.shutdown()
        host.shutdown()
        server.stop()
    return frames


def cantools_decode(dbc: Path, log: Path) -> list[str]:
    """The lines ``python -m cantools decode --single-line DBC < LOG`` prints (cantools' own command line)."""
    with log.open() as stdin:
        proc = subprocess.run([sys.executable, "-m", "cantools", "decode", "--single-line", str(dbc)], stdin=stdin,
                              capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout.splitlines()


@pytest.mark.slow
def test_cantools_decode_reads_every_frame_of_a_two_joint_recording(capsys, tmp_path):
    """The acceptance test: a real two-node bus recorded to a candump .log, decoded by cantools' command line with
    the exported DBC: every frame of nodes 1 and 2, as the message the profile decodes it to, with the same values."""
    log = tmp_path / "two_joints.log"
    frames = record_two_joints(log)
    expected = [PROFILE.decode(f) for f in frames]
    recorded = Counter(d.node_id for d in expected)
    assert set(recorded) == {1, 2} and min(recorded.values()) > 1000  # ~1 kHz joint_state + 500 Hz wrench each
    code, out, err = run_cli(capsys, "dbc", "export", str(NATIVE_DBC), "--nodes", "1,2",
                             "--out", str(tmp_path / "nodes.dbc"))
    assert code == 0, err
    assert out == f"wrote {tmp_path / 'nodes.dbc'}: 42 messages (21 of profile jointkit_native for node(s) 1, 2)\n"

    lines = cantools_decode(tmp_path / "nodes.dbc", log)
    assert len(lines) == len(frames)
    matches = [DECODED.match(line) for line in lines]
    undecoded = [line for line, m in zip(lines, matches, strict=True) if m is None]
    assert undecoded == [], undecoded[:3]
    decoded = Counter(int(m["name"].rsplit("_n", 1)[1]) for m in matches)
    assert decoded == recorded, (decoded, recorded)  # frames decoded == frames recorded, node by node
    for m, d, f in zip(matches, expected, frames, strict=True):
        assert m["name"] == f"{d.name}_n{d.node_id}" and int(m["id"], 16) == f.arbitration_id
    # a decoded position: the last joint_state of node 2, as cantools prints it and as the profile decodes it
    last = max(i for i, d in enumerate(expected) if (d.node_id, d.name) == (2, "joint_state"))
    position = float(re.search(r"position: (\S+) rad", matches[last]["signals"])[1])
    assert position == expected[last].signals["position"]
    assert position == pytest.approx(TARGETS_RAD[2], abs=0.01)
    # the reason for the export: the profile's own DBC (node 0) decodes none of these frames
    plain = cantools_decode(NATIVE_DBC, log)
    assert sum(" :: Unknown frame id " in line for line in plain) == len(frames)


def test_export_default_name_in_the_current_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "dbc", "export", str(NATIVE_DBC), "--nodes", "1-3")
    assert code == 0, err
    assert out == "wrote jointkit_native_nodes_1_2_3.dbc: 63 messages (21 of profile jointkit_native for node(s) " \
                  "1, 2, 3)\n"
    db = cantools.database.load_file(tmp_path / "jointkit_native_nodes_1_2_3.dbc", strict=True)
    assert len(db.messages) == 63 and db.get_message_by_name("joint_state_n3").frame_id == 3 << 5 | 9


def test_export_json(capsys, tmp_path):
    out = tmp_path / "n7.dbc"
    report = run_json(capsys, "dbc", "export", str(NATIVE_DBC), "--nodes", "7", "--out", str(out))
    assert report == {"dbc": str(NATIVE_DBC), "sidecar": str(NATIVE_SIDECAR), "profile": "jointkit_native",
                      "out": str(out), "nodes": [7], "messages": 21, "messages_per_node": 21, "bitrate": 1_000_000}
    assert out.is_file()


def test_export_to_standard_output(capsys):
    code, out, err = run_cli(capsys, "dbc", "export", str(NATIVE_DBC), "--nodes", "4", "--out", "-")
    assert code == 0, err
    assert out.startswith('VERSION "jointkit_native 1.0"\n') and "BO_ 137 joint_state_n4: 8 Joint4" in out
    assert "wrote standard output: 21 messages" in err
    code, _, err = run_cli(capsys, "dbc", "export", str(NATIVE_DBC), "--nodes", "4", "--out", "-", "--json")
    assert code == 2 and "--json and --out - both write to standard output" in err


@pytest.mark.parametrize(("nodes", "expected"), [
    ("1,64", "error: --nodes '1,64': node id 64 is outside 1..63"),
    ("0", "error: --nodes '0': node id 0 is outside 1..63"),
    ("1,1", "node ids must be given once each"),
    ("one", "expected node ids like 1,2,3 or 1-3"),
])
def test_export_refuses_nodes_outside_the_range(capsys, tmp_path, monkeypatch, nodes, expected):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "dbc", "export", str(NATIVE_DBC), "--nodes", nodes)
    assert code == 2 and out == "" and expected in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_export_refuses_a_profile_that_fails_its_check(capsys, tmp_path):
    dbc = broken_copy(tmp_path, "node_shift = 5", "node_shift = 4", sidecar=True)
    code, out, err = run_cli(capsys, "dbc", "export", str(dbc), "--nodes", "1", "--out", str(tmp_path / "x.dbc"))
    assert code == 2 and out == "" and err.startswith(f"error: {dbc}: the profile has ")
    assert "jointkit dbc check" in err and not (tmp_path / "x.dbc").exists()
