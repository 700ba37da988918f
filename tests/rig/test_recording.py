"""Recorders of ``firmware_iface.rig.recording`` on real files and real python-can virtual buses: frame round trips
in each format, flushing while recording, files cut short, MF4 values against the decoded frames, and a recording
process SIGKILLed mid-way."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import can
import numpy as np
import pytest
from asammdf import MDF

from actuator.errors import ConfigError
from firmware_iface.client import BusHub, JointClient
from firmware_iface.protocol.profile import Decoded, load_native
from firmware_iface.rig.recording import FrameRecorder, SignalRecorder, read_frames, read_signals, signal_parts
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

PROFILE = load_native()
REPO = Path(__file__).resolve().parents[2]
FORMATS = (".blf", ".log", ".asc")
# timestamp resolution of each format as python-can writes and reads it (epoch floats themselves come in 0.24 us
# steps): BLF counts ns from a start kept to the ms; candump prints %f (us); ASC prints us from the first frame,
# whose absolute time it keeps only to the ms (in the trigger block's date)
ABSOLUTE_S = {".blf": 1e-6, ".log": 1e-6, ".asc": 1e-3}
RELATIVE_S = {".blf": 1e-6, ".log": 1.5e-6, ".asc": 1.5e-6}


def synthetic_frames(t0: float, n: int = 300) -> list[can.Message]:
    """Standard and extended ids, 0 to 8 data bytes, both directions, timestamps with ns fractions."""
    frames = []
    for i in range(n):
        extended = i % 5 == 4
        arb = 0x1ABCDE0 + i if extended else (i * 37) % 0x800
        frames.append(can.Message(timestamp=t0 + i * 7.31e-4 + (i % 7) * 1e-9, arbitration_id=arb,
                                  is_extended_id=extended, data=bytes((i + k) % 256 for k in range(i % 9)),
                                  is_rx=i % 3 != 0))
    return frames


def assert_same_frames(got: list[can.Message], sent: list[can.Message], suffix: str) -> None:
    assert len(got) == len(sent)
    for g, s in zip(got, sent, strict=True):
        assert (g.arbitration_id, g.is_extended_id, bytes(g.data), g.dlc, g.is_rx) == \
               (s.arbitration_id, s.is_extended_id, bytes(s.data), s.dlc, s.is_rx)
    t_got, t_sent = np.array([m.timestamp for m in got]), np.array([m.timestamp for m in sent])
    assert np.max(np.abs(t_got - t_sent)) <= ABSOLUTE_S[suffix]
    assert np.max(np.abs((t_got - t_got[0]) - (t_sent - t_sent[0]))) <= RELATIVE_S[suffix]


# --- raw frames ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", FORMATS)
def test_frames_round_trip(tmp_path, suffix):
    # 42 ms into a second: python-can's own ASC writer would write the start as ".42" s (read back as 420 ms)
    sent = synthetic_frames(math.floor(time.time()) + 0.0421234567)
    recorder = FrameRecorder(tmp_path / f"rec{suffix}")
    for msg in sent:
        recorder.on_message_received(msg)
    recorder.stop()
    recorder.stop()  # idempotent
    assert recorder.frames == len(sent)
    assert_same_frames(read_frames(tmp_path / f"rec{suffix}"), sent, suffix)


@pytest.mark.parametrize("suffix", FORMATS)
def test_channels_any_name(tmp_path, suffix):
    # a virtual channel named with a uuid ending in digits: python-can's BLF writer raised struct.error on it
    sent = synthetic_frames(time.time(), 30)
    for i, msg in enumerate(sent):
        msg.channel = ("jointkit-test-4f0c2b6584ba32f4e858e5afac575003241", "my bus 2", "can1", None, 3)[i % 5]
    recorder = FrameRecorder(tmp_path / f"rec{suffix}")
    for msg in sent:
        recorder.on_message_received(msg)
    recorder.stop()
    assert_same_frames(read_frames(tmp_path / f"rec{suffix}"), sent, suffix)
    assert sent[0].channel == "jointkit-test-4f0c2b6584ba32f4e858e5afac575003241"  # the caller's frame untouched


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_recording_without_frames_reads_as_empty_before_and_after_stop(tmp_path, suffix):
    recorder = FrameRecorder(tmp_path / f"rec{suffix}")
    assert read_frames(tmp_path / f"rec{suffix}") == []  # what a kill before the first frame leaves
    recorder.stop()
    assert read_frames(tmp_path / f"rec{suffix}") == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_frames_out_of_order_are_written_in_time_order_on_one_channel(tmp_path, suffix):
    """A sent frame (host clock, sender's thread) may reach the recorder after a received one it precedes: within
    REORDER_S the file puts it back in order; later than that it is written at the newest time already written."""
    t0 = time.time()
    first = can.Message(timestamp=t0, arbitration_id=0x29, data=b"\x01", channel="jointkit-rig-123-abc")
    older = can.Message(timestamp=t0 - 0.004, arbitration_id=0x25, data=b"\x02", is_rx=False)
    later = can.Message(timestamp=t0 + 0.010, arbitration_id=0x29, data=b"\x03", channel=7)
    recorder = FrameRecorder(tmp_path / f"rec{suffix}")
    for msg in (first, older, later):
        recorder.on_message_received(msg)
    recorder.flush()  # an explicit flush writes all it holds, sorted
    far = can.Message(timestamp=t0 + 1.0, arbitration_id=0x29, data=b"\x04")
    recorder.on_message_received(far)
    recorder.flush()
    late = can.Message(timestamp=t0 + 0.005, arbitration_id=0x25, data=b"\x05", is_rx=False)  # after its time's flush
    recorder.on_message_received(late)
    recorder.stop()
    got = read_frames(tmp_path / f"rec{suffix}")
    assert [bytes(m.data) for m in got] == [b"\x02", b"\x01", b"\x03", b"\x04", b"\x05"]
    t = np.array([m.timestamp for m in got])
    assert np.all(np.diff(t) >= 0)
    assert t[1] - t[0] == pytest.approx(0.004, abs=RELATIVE_S[suffix])
    assert t[4] == pytest.approx(t[3], abs=RELATIVE_S[suffix])  # written at the newest time already written
    assert not got[0].is_rx
    assert len({m.channel for m in got}) == 1  # one bus, one channel (BLF 1, candump "can1", ASC 1 -> 0-based)


@pytest.mark.parametrize("suffix", FORMATS)
def test_the_timer_flushes_a_readable_file_while_recording(tmp_path, suffix):
    path = tmp_path / f"rec{suffix}"
    sent = synthetic_frames(time.time(), 120)
    recorder = FrameRecorder(path, flush_interval_s=0.1)
    try:
        for msg in sent[:80]:
            recorder.on_message_received(msg)
        time.sleep(0.35)  # three timer periods, no explicit flush
        assert_same_frames(read_frames(path), sent[:80], suffix)
        for msg in sent[80:]:
            recorder.on_message_received(msg)
        recorder.flush()
        assert_same_frames(read_frames(path), sent, suffix)
    finally:
        recorder.stop()


def test_a_cut_last_line_is_left_out(tmp_path):
    path = tmp_path / "rec.log"
    sent = synthetic_frames(time.time(), 20)
    recorder = FrameRecorder(path)
    for msg in sent:
        recorder.on_message_received(msg)
    recorder.stop()
    whole = path.read_bytes()
    # cut inside the hex data of a full 8-byte frame: python-can's reader would return it with 2 bytes
    line = f"({sent[8].timestamp + 1:f}) vcan0 123#0102".encode()
    path.write_bytes(whole + line)
    assert_same_frames(read_frames(path), sent, ".log")


def test_a_blf_cut_inside_an_object_header_reads_up_to_the_cut_but_damage_inside_raises(tmp_path):
    path = tmp_path / "rec.blf"
    sent = synthetic_frames(time.time(), 50)
    recorder = FrameRecorder(path)
    for msg in sent:
        recorder.on_message_received(msg)
    recorder.stop()
    whole = path.read_bytes()
    path.write_bytes(whole + b"LOBJ\x20\x00")  # a container header cut short, as a kill during its write leaves
    assert_same_frames(read_frames(path), sent, ".blf")
    path.write_bytes(whole[:144] + b"XXXX" + whole[148:])  # the first container's signature destroyed
    with pytest.raises(ConfigError, match=r"rec\.blf: BLF damaged at byte"):
        read_frames(path)


@pytest.mark.parametrize("name", ["rec.txt", "rec", "rec.csv"])
def test_an_unknown_extension_names_the_file_and_the_allowed_ones(tmp_path, name):
    with pytest.raises(ConfigError, match=r"rec.*unknown recording format.*\.blf.*\.log.*\.asc"):
        FrameRecorder(tmp_path / name)
    with pytest.raises(ConfigError, match=r"allowed: \.blf"):
        read_frames(tmp_path / name)
    assert not (tmp_path / name).exists()


def test_signal_recorder_and_readers_refuse_bad_paths(tmp_path):
    with pytest.raises(ConfigError, match=r"rec.csv: .*must end with .mf4"):
        SignalRecorder(tmp_path / "rec.csv", PROFILE)
    with pytest.raises(ConfigError, match="no directory"):
        SignalRecorder(tmp_path / "missing" / "rec.mf4", PROFILE)
    with pytest.raises(ConfigError, match="no such recording"):
        read_frames(tmp_path / "none.blf")
    with pytest.raises(ConfigError, match="no such MF4"):
        read_signals(tmp_path / "none.mf4")
    with pytest.raises(ConfigError, match="flush_interval_s = 0"):
        FrameRecorder(tmp_path / "rec.blf", flush_interval_s=0)


# --- decoded signals -----------------------------------------------------------------------------------------------
class Capture(can.Listener):
    """What the hub handed its listeners, in order."""

    def __init__(self) -> None:
        self.decoded: list[tuple[Decoded, float]] = []

    def on_message_received(self, msg: can.Message) -> None:
        pass

    def on_decoded(self, decoded: Decoded, timestamp: float) -> None:
        self.decoded.append((decoded, timestamp))


@pytest.fixture
def joint_bus() -> Iterator[can.BusABC]:
    """The host's end of a channel with knee joint 1 paced to wall time on it."""
    channel = f"jointkit-rec-{uuid.uuid4().hex}"
    joint = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    host = can.Bus(interface="virtual", channel=channel)
    runner = NodeRunner(joint, [VirtualJointNode(joint, 1)], paced=True).start()
    try:
        yield host
    finally:
        runner.stop()
        BusHub.of(host, start=False).close()
        host.shutdown()
        joint.shutdown()


def test_mf4_holds_the_decoded_values(tmp_path, joint_bus):
    client = JointClient(joint_bus, 1, PROFILE)
    client.wait_alive(timeout_s=10.0)
    capture, recorder = Capture(), SignalRecorder(tmp_path / "sig.mf4", PROFILE, flush_interval_s=0.2)
    client.hub.add_listener(recorder)
    client.hub.add_listener(capture)
    client.enable("position")  # heartbeat state and mode change: value-table signals with more than one value
    for k in range(300):
        client.position(0.05 * np.sin(k / 50))
        time.sleep(0.001)
    client.disable()
    time.sleep(0.15)
    client.hub.remove_listener(recorder)
    client.hub.remove_listener(capture)
    recorder.stop()
    assert recorder.rows == len(capture.decoded)

    signals = read_signals(tmp_path / "sig.mf4")
    t0 = capture.decoded[0][1]
    expected: dict[str, tuple[list[float], list[float]]] = {}
    for d, t in capture.decoded:
        for name, value in d.signals.items():
            if isinstance(value, str):  # value tables are stored as their raw numbers
                value = next(k for k, v in PROFILE.signal(d.name, name).choices.items() if str(v) == value)
            ts, vs = expected.setdefault(f"n{d.node_id}.{d.name}.{name}", ([], []))
            ts.append(t - t0)
            vs.append(float(value))
    assert set(signals) == set(expected)
    for name, (ts, vs) in expected.items():
        np.testing.assert_array_equal(signals[name][1], vs, err_msg=name)
        np.testing.assert_allclose(signals[name][0], ts, rtol=0, atol=1e-9, err_msg=name)
    assert len(expected["n1.position_command.position"][1]) >= 290  # the commands sent are recorded too
    assert set(expected["n1.heartbeat.state"][1]) >= {0.0, 1.0}  # idle and closed_loop

    with MDF(tmp_path / "sig.mf4") as mdf:
        assert mdf.get("n1.joint_state.position").unit == "rad"
        assert mdf.get("n1.joint_state.torque").unit == "Nm"
        state = mdf.get("n1.heartbeat.state")  # with its conversion: the names
        assert set(state.samples.tolist()) >= {b"idle", b"closed_loop"}
        assert "value table: 0 idle, 1 closed_loop" in state.comment
        assert {g.channel_group.acq_name for g in mdf.groups} >= {"n1.joint_state", "n1.heartbeat",
                                                                  "n1.position_command"}


# --- killed mid-way ------------------------------------------------------------------------------------------------
CHILD = """
import sys, can
from firmware_iface.cli import main
from firmware_iface.client.hub import BusHub
from firmware_iface.rig.recording import FrameRecorder
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode
channel, out = sys.argv[1], sys.argv[2]
joint = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
NodeRunner(joint, [VirtualJointNode(joint, 1)], paced=True).start()
tap = can.Bus(interface="virtual", channel=channel)  # a second reader: the two text formats record from it
hub = BusHub.of(tap)
for suffix in (".log", ".asc"):
    hub.add_listener(FrameRecorder(out + suffix))
main(["record", "--interface", "virtual", "--channel", channel, "--out", out + ".blf", "--signals", out + ".mf4"])
"""
FLUSH_S = {".blf": 0.5, ".log": 0.5, ".asc": 0.5, ".mf4": 1.0}  # the recorders' defaults
SLACK_S = 0.3  # the flush timer's thread waiting for the interpreter lock, and the joint's frames stamped ahead


def wrench_counters_are_consecutive(counters: np.ndarray) -> bool:
    return bool(np.all(np.diff(counters) % 256 == 1))


@pytest.mark.slow
def test_a_recording_killed_mid_way_is_readable_up_to_its_last_flush(tmp_path):
    out = str(tmp_path / "killed")
    child = subprocess.Popen([sys.executable, "-c", CHILD, f"jointkit-kill-{uuid.uuid4().hex}", out], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert any("recording" in line for line in child.stderr), "the child never started recording"
        deadline = time.monotonic() + 20.0
        while not (os.path.exists(out + ".log") and os.path.getsize(out + ".log") > 0):  # the joint is sending
            assert time.monotonic() < deadline and child.poll() is None, "no traffic recorded"
            time.sleep(0.05)
        time.sleep(2.2)
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    for suffix in FORMATS:
        frames = read_frames(out + suffix)
        assert frames[-1].timestamp >= killed_at - FLUSH_S[suffix] - SLACK_S, suffix
        wrench = [m for m in frames if PROFILE.decode(m).name == "wrench_force"]
        counters = np.array([PROFILE.decode(m).signals["counter"] for m in wrench])
        assert len(counters) > 500 and wrench_counters_are_consecutive(counters), suffix  # no frame lost before

    signals = read_signals(out + ".mf4")
    with MDF(out + ".mf4") as mdf:
        start = mdf.header.start_time.timestamp()
    t, _ = signals["n1.joint_state.position"]
    assert start + t[-1] >= killed_at - FLUSH_S[".mf4"] - SLACK_S
    assert wrench_counters_are_consecutive(signals["n1.wrench_force.counter"][1])
    assert np.all(np.diff(t) > 0)


def test_signals_are_written_in_parts_that_read_back_as_one(tmp_path):
    """Issue 13, item 10: a part is rewritten while it grows, then left alone; the recorder holds one part."""
    path = tmp_path / "signals.mf4"
    recorder = SignalRecorder(path, PROFILE, flush_interval_s=1e6, part_s=1.0,
                              metadata={"serial": "SN-7", "jointkit_version": "0.test"})
    t0 = 1_700_000_000.0
    for k in range(3500):  # 3.5 s at 1 kHz
        recorder.on_decoded(Decoded(1, "joint_state", {"position": k * 1e-3, "velocity": 0.0, "torque": 0.0}),
                            t0 + k * 1e-3)
        if k % 100 == 99:
            recorder.flush()
    assert sum(g.n for g in recorder._groups.values()) <= 1100  # one part's rows, not the whole recording
    recorder.set_metadata(verdict="pass")
    recorder.stop()
    files = signal_parts(path)
    assert [f.name for f in files] == ["signals.mf4", "signals.part0001.mf4", "signals.part0002.mf4",
                                       "signals.part0003.mf4"]
    t, q = read_signals(path)["n1.joint_state.position"]
    assert q.size == 3500 and np.all(np.diff(t) > 0)
    assert t[-1] == pytest.approx(3.499, abs=1e-6) and q[-1] == pytest.approx(3.499, abs=1e-6)
    with MDF(files[-1]) as mdf:
        comment = mdf.header.comment
    assert "serial = SN-7" in comment and "verdict = pass" in comment and "jointkit_version = 0.test" in comment
