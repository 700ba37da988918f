"""A run whose recorder fails (firmware_iface.rig.runner): the hub drops the recorder so the bus goes on, and the
run's results say which file was lost and why; the verdict is ``error`` (exit 2), never a silent pass."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from firmware_iface.rig import recording
from firmware_iface.rig.rig import sim_rig
from firmware_iface.rig.runner import EXIT_CODES, run_sequence
from firmware_iface.rig.sequence import load_sequence

# about 3.3 s of joint time, at least as long on the wall clock beside the lock-step joint's arithmetic: the frame
# recorder's timer flushes every 0.5 s of wall time, so during the steps, and a failed flush is noticed after one
# (with a 1.2 s hold, a run stalled by a loaded machine saw the timer's first flush only at its close)
SEQUENCE = """
[sequence]
name = "short"
preset = "knee"

[[steps]]
type = "connect"

[[steps]]
type = "enable"

[[steps]]
type = "hold"
duration_s = 3.0

[[steps]]
type = "disable"
"""


def run_short(tmp_path: Path) -> dict:
    path = tmp_path / "short.toml"
    path.write_text(SEQUENCE)
    seq = load_sequence(path)
    rig = sim_rig(seq.nodes, seq.preset)
    try:
        return run_sequence(seq, rig, tmp_path / "out", serial="REC-1")
    finally:
        rig.close()


def test_healthy_recorders_leave_no_recording_error(tmp_path: Path) -> None:
    results = run_short(tmp_path)
    assert results["verdict"] == "pass" and results["recording_errors"] == [] and results["error"] is None
    assert len(recording.read_frames(tmp_path / "out" / "frames.blf")) > 1000


def test_a_recorder_whose_write_fails_makes_the_run_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(writer: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # the frame recorder's periodic flush writes the BLF's container to the file: the disk is full
    monkeypatch.setattr(recording, "_flush_blf", disk_full)
    results = run_short(tmp_path)
    assert [s["status"] for s in results["steps"]] == ["pass"] * 4  # the joint's steps themselves went through
    assert results["verdict"] == "error" and EXIT_CODES[results["verdict"]] == 2
    (lost,) = results["recording_errors"]
    assert lost["file"] == "frames.blf" and lost["step"] in ("enable", "hold", "disable")
    assert "FrameRecorder" in lost["error"] and "No space left on device" in lost["error"]
    assert "recording frames.blf lost" in results["error"] and "No space left on device" in results["error"]
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["verdict"] == "error" and on_disk["recording_errors"] == results["recording_errors"]
    assert "recording frames.blf lost" in (tmp_path / "out" / "report.html").read_text()
