"""``jointkit record`` and ``jointkit replay`` through argv, against virtual joints on python-can ``virtual`` channels
and real recording files.

The replay analyses are checked two ways: against the live test they re-analyse (the step protocol on the live
executor, with the recorder listening on its hub), and against a recording written from a known linear system (the
Bode test).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import can
import numpy as np
import pytest
from cliutil import run_cli, run_json

from firmware_iface.client import BusHub
from firmware_iface.experiments.bus import step_test
from firmware_iface.protocol.load import load_native
from firmware_iface.rig.recording import FrameRecorder, read_frames, read_signals
from firmware_iface.rig.rig import sim_rig
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

PROFILE = load_native()
TELEMETRY_PERIOD_S = 1.0 / PROFILE.telemetry["joint_state"]  # 1 ms


def unique_channel() -> str:
    return f"jointkit-rec-{uuid.uuid4().hex}"


@pytest.fixture
def joint_channel() -> Iterator[tuple[str, can.BusABC]]:
    """A channel with knee joint 1 paced to wall time on it (already sending), and a host end of it."""
    channel = unique_channel()
    joint = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    host = can.Bus(interface="virtual", channel=channel)
    node = VirtualJointNode(joint, 1)
    runner = NodeRunner(joint, [node], paced=True).start()
    try:
        deadline = time.monotonic() + 10.0
        while not node.counters["tx"]:  # the first chunk loads the compiled model
            assert time.monotonic() < deadline, f"virtual joint silent: {runner.last_error or runner.counters}"
            time.sleep(0.01)
        yield channel, host
    finally:
        runner.stop()
        BusHub.of(host, start=False).close()
        host.shutdown()
        joint.shutdown()


def bus_args(channel: str) -> tuple[str, ...]:
    return ("--interface", "virtual", "--channel", channel)


# --- record --------------------------------------------------------------------------------------------------------
def test_record_json_counts_and_files(capsys, tmp_path, joint_channel):
    channel, _ = joint_channel
    out, sig = tmp_path / "rec.blf", tmp_path / "rec.mf4"
    report = run_json(capsys, "record", *bus_args(channel), "--out", str(out), "--signals", str(sig),
                      "--duration-s", "1.0")
    messages = report["messages"]
    assert report["files"] == {"frames": str(out), "signals": str(sig)}
    # never stops early; how late its last sleep wakes up is the machine's business (1.16 s seen under load)
    assert report["duration_s"] >= 1.0
    # the native rates: joint_state 1000 Hz, wrench 2 x 500, motor 100, heartbeat 10; a paced joint on a loaded
    # machine may fall behind wall time and skip ahead, so the count is bounded by what it can send in the time
    # recorded (and a few frames of catch-up) and the ratios tightly
    assert 100 <= messages["n1.joint_state"] <= 1000 * report["duration_s"] + 50
    assert messages["n1.wrench_force"] == pytest.approx(messages["n1.joint_state"] / 2, abs=3)
    assert messages["n1.motor_telemetry"] == pytest.approx(messages["n1.joint_state"] / 10, abs=2)
    assert report["frames"] == sum(messages.values())
    frames = read_frames(out)
    in_file = Counter(f"n1.{PROFILE.decode(m).name}" for m in frames)
    assert in_file == messages
    signals = read_signals(sig)
    assert len(signals["n1.joint_state.position"][0]) == messages["n1.joint_state"]


def test_record_prints_a_table_for_people(capsys, tmp_path, joint_channel):
    channel, _ = joint_channel
    code, out, err = run_cli(capsys, "record", *bus_args(channel), "--out", str(tmp_path / "rec.log"),
                             "--duration-s", "0.3")
    assert code == 0, err
    assert "n1.joint_state" in out and f"wrote {tmp_path / 'rec.log'} (frames)" in out
    assert "recording Virtual bus channel" in err


@pytest.mark.parametrize(("option", "name", "message"), [
    ("--out", "rec.txt", r"rec\.txt: unknown recording format '\.txt'; allowed: \.blf .*\.log .*\.asc"),
    ("--signals", "rec.csv", r"rec\.csv: decoded signals are written to MF4"),
])
def test_record_bad_extension_exits_2_before_touching_the_bus(capsys, tmp_path, option, name, message):
    paths = {"--out": str(tmp_path / "rec.blf"), "--signals": str(tmp_path / "rec.mf4"), option: str(tmp_path / name)}
    code, _, err = run_cli(capsys, "record", *bus_args(unique_channel()), *(x for kv in paths.items() for x in kv),
                           "--duration-s", "0.1")
    assert code == 2
    assert err.startswith("error: ") and re.search(message, err), err
    assert not any(tmp_path.iterdir())  # nothing written


# --- replay onto a bus ---------------------------------------------------------------------------------------------
def write_recording(path: Path, frames: list[can.Message]) -> None:
    recorder = FrameRecorder(path)
    for msg in frames:
        recorder.on_message_received(msg)
    recorder.stop()


@pytest.mark.parametrize("rx_only", [False, True])
def test_replay_plays_the_frames_onto_a_bus_at_the_rate(capsys, tmp_path, rx_only):
    t0, span = time.time(), 0.6
    frames = [can.Message(timestamp=t0 + span * i / 29, arbitration_id=(1 << 5) | 9, is_extended_id=False,
                          data=bytes([i] * 8), is_rx=i % 2 == 0) for i in range(30)]
    write_recording(tmp_path / "rec.log", frames)
    channel = unique_channel()
    with can.Bus(interface="virtual", channel=channel) as listener:
        report = run_json(capsys, "replay", str(tmp_path / "rec.log"), *bus_args(channel), "--rate", "4",
                          *(["--rx-only"] if rx_only else []))
        got = []
        while (msg := listener.recv(0.2)) is not None:
            got.append(msg)
    expected = [m for m in frames if m.is_rx or not rx_only]
    assert report["frames"] == len(expected) and report["recorded_frames"] == 30
    assert [bytes(m.data) for m in got] == [bytes(m.data) for m in expected]
    assert {m.arbitration_id for m in got} == {0x29}
    # the virtual bus stamps frames as they are sent. python-can's MessageSync sends each frame at its own time from
    # the start, so no frame is early, and a host stalled on the way (0.3 s seen under a stop-the-process stress,
    # longer than the playback) sends the frames it owes at once: a gap or two long, the next ones near 0. At rate 1
    # or 2 every gap would be 4 or 2 times the 5.2 ms of rate 4; here at most a third exceed 1.5 times it
    sent = np.array([m.timestamp for m in got]) - got[0].timestamp
    due = (np.array([m.timestamp for m in expected]) - expected[0].timestamp) / 4
    assert np.all(sent >= due - 1e-3)
    nominal = np.median(np.diff(due))
    assert np.count_nonzero(np.diff(sent) > 1.5 * nominal) <= len(due) // 3


def test_replay_needs_a_bus_or_an_analysis(capsys, tmp_path):
    write_recording(tmp_path / "rec.blf", [can.Message(timestamp=time.time(), arbitration_id=0x29, data=b"")])
    code, _, err = run_cli(capsys, "replay", str(tmp_path / "rec.blf"))
    assert code == 2 and "give --interface/--channel" in err and "--analyze step|bode --node N" in err
    code, _, err = run_cli(capsys, "replay", str(tmp_path / "rec.blf"), "--analyze", "step")
    assert code == 2 and "needs --node N" in err
    code, _, err = run_cli(capsys, "replay", str(tmp_path / "none.blf"), "--analyze", "step", "--node", "1")
    assert code == 2 and "none.blf: no such recording" in err


# --- replay --analyze ----------------------------------------------------------------------------------------------
def test_replay_step_gives_the_live_step_tests_figures(capsys, tmp_path):
    # in lock-step the joint advances only as the host waits on its clock: a busy machine cannot starve its heartbeat
    with contextlib.closing(sim_rig([1], "knee")) as rig:
        client = rig.clients[1]
        client.wait_alive(timeout_s=5.0)
        client.write_gain("position_kp", 80.0)  # above the tuned 30.8: an underdamped step, a real overshoot
        recorder = FrameRecorder(tmp_path / "step.blf")
        client.hub.add_listener(recorder)
        outcome, _, _, cfg = step_test(client, "position", amplitude=0.1)
        live = outcome.figures
        client.hub.remove_listener(recorder)
        recorder.stop()

    replayed = run_json(capsys, "replay", str(tmp_path / "step.blf"), "--analyze", "step", "--node", "1")
    # Both analyses measure the same joint_state samples, on time axes that differ by a constant (the live test
    # shifts the bus timestamps onto the host clock): rise time and overshoot agree to rounding. What may differ is
    # the sample the step is placed at (the recording stamps a command after sending it, the live test before) and
    # the samples after the last command: one telemetry period. Overshoot is a maximum of the same samples
    # over the same step size; a sample more or less at either end is on the flat part (0.01 % points).
    assert set(live) <= set(replayed)  # the same names
    assert replayed["rise_time_s"] == pytest.approx(live["rise_time_s"], abs=TELEMETRY_PERIOD_S)
    assert replayed["overshoot_pct"] == pytest.approx(live["overshoot_pct"], abs=0.01)
    assert live["overshoot_pct"] > 1.0
    assert replayed["step_time_s"] == pytest.approx(cfg["pre_s"], abs=TELEMETRY_PERIOD_S)
    assert replayed["step_size"] == pytest.approx(0.1, abs=1e-6)
    assert replayed["node"] == 1 and replayed["analysis"] == "step"


def synthetic_chirp_recording(path: Path, fc_hz: float, f0_hz: float = 1.0, f1_hz: float = 20.0,
                              periods: int = 3, amplitude: float = 0.01) -> None:
    """Position commands at 1 kHz (the periodic chirp every Bode test sends, 1 % of ticks skipped,
    20 us send jitter) and joint_state positions of a first-order lag with its corner at ``fc_hz`` (exactly
    discretised: the joint holds the last command it received)."""
    rng = np.random.default_rng(7)
    fs, period_s = 1000.0, max(2.0 / f0_hz, 1.0)
    k_sweep = math.log(f1_hz / f0_hz) / period_s
    n = round(periods * period_s * fs)
    t = np.arange(n) / fs
    u = amplitude * np.sin(2 * math.pi * f0_hz * (np.exp(k_sweep * (t % period_s)) - 1.0) / k_sweep)
    sent = rng.random(n) > 0.01
    sent[0] = sent[-1] = True
    held = u.copy()
    for i in range(1, n):  # a skipped tick: the joint keeps the previous command
        if not sent[i]:
            held[i] = held[i - 1]
    a = math.exp(-2 * math.pi * fc_hz / fs)
    y = np.zeros(n)
    for i in range(1, n):
        y[i] = a * y[i - 1] + (1 - a) * held[i - 1]
    t0 = math.floor(time.time())
    frames = []
    for i in range(n):
        if sent[i]:
            cmd = PROFILE.encode("position_command", 1, position=float(u[i]), velocity_ff=0.0, torque_ff=0.0)
            cmd.timestamp, cmd.is_rx = t0 + t[i] + rng.uniform(0, 20e-6), False
            frames.append(cmd)
        state = PROFILE.encode("joint_state", 1, position=float(y[i]), velocity=0.0, torque=0.0)
        state.timestamp = t0 + t[i] + 3e-4
        frames.append(state)
    write_recording(path, frames)


def test_replay_bode_finds_the_corner_of_a_known_system(capsys, tmp_path):
    synthetic_chirp_recording(tmp_path / "chirp.blf", fc_hz=4.0)
    report = run_json(capsys, "replay", str(tmp_path / "chirp.blf"), "--analyze", "bode", "--node", "1")
    assert report["period_s"] == pytest.approx(2.0, abs=1e-3)
    assert report["fs_hz"] == pytest.approx(1000.0, rel=1e-4)
    assert report["samples"] == 4000  # two periods after the first
    assert report["bandwidth_hz"] == pytest.approx(4.0, rel=0.03)


def test_replay_analysis_of_a_recording_without_commands_names_what_is_missing(capsys, tmp_path, joint_channel):
    channel, _ = joint_channel
    out = tmp_path / "quiet.blf"
    run_json(capsys, "record", *bus_args(channel), "--out", str(out), "--duration-s", "0.3")
    for analysis in ("step", "bode"):
        code, _, err = run_cli(capsys, "replay", str(out), "--analyze", analysis, "--node", "1")
        assert code == 2
        assert f"{out}: node 1 has no position_command frames (the reference: command.position_rad)" in err
        assert "joint_state (" in err  # what the node does have
    code, _, err = run_cli(capsys, "replay", str(out), "--analyze", "step", "--node", "2")
    assert code == 2 and "node 2 has no position_command frames" in err and "no frames at all" in err
