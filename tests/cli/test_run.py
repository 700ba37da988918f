"""``jointkit run``: the end-of-line sequence on a simulated joint over its bus, through argv and stdout.

Each full run takes about 35-40 s of wall time (the simulated joint is paced to wall time), so the nominal and the
defective joint are one run each, shared by the tests that read them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from asammdf import MDF

from actuator.params import SEEDS_DIR
from firmware_iface.cli import main
from firmware_iface.rig.recording import read_frames
from firmware_iface.rig.results_db import summary

EOL = SEEDS_DIR / "sequences" / "eol.toml"
pytestmark = pytest.mark.slow


def run_eol(tmp_path_factory, name: str, *extra: str) -> tuple[int, dict, str]:
    folder = tmp_path_factory.mktemp(name)
    argv = ["run", str(EOL), "--sim", "--serial", name, "--out", str(folder / "out"), "--db", str(folder / "r.db"),
            "--json", *extra]
    buffer = io.StringIO()  # capsys is function-scoped; these runs are shared by a module fixture
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    out = buffer.getvalue()
    return code, json.loads(out), str(folder)


@pytest.fixture(scope="module")
def nominal(tmp_path_factory):
    return run_eol(tmp_path_factory, "SIM-0001")


@pytest.fixture(scope="module")
def friction_defect(tmp_path_factory):
    return run_eol(tmp_path_factory, "SIM-0002", "--inject", "friction=1.3")


def test_nominal_joint_passes_and_writes_every_output(nominal):
    code, results, folder = nominal
    assert code == 0 and results["verdict"] == "pass" and results["failed_checks"] == []
    assert results["recording_errors"] == [] and results["error"] is None
    out = os.path.join(folder, "out")
    on_disk = json.loads(Path(out, "results.json").read_text())
    assert on_disk["verdict"] == "pass" and on_disk["serial"] == "SIM-0001"
    assert all(s["status"] == "pass" for s in on_disk["steps"])
    assert "PASS" in Path(out, "report.html").read_text().upper()
    frames = read_frames(Path(out, "frames.blf"))
    # about 2100 telemetry frames/s for ~35 s, plus 1 kHz commands: far more than 30 000
    assert len(frames) > 30_000
    # one bus, one channel, in time order (issue 13, item 14: sent frames carried the host clock and received ones
    # the joint's, 23,301 backward steps of up to 20 ms, on two channel numbers)
    stamps = np.array([m.timestamp for m in frames])
    assert np.all(np.diff(stamps) >= 0) and {m.channel for m in frames} == {1}
    assert any(not m.is_rx for m in frames) and any(m.is_rx for m in frames)
    with MDF(os.path.join(out, "signals.mf4")) as mdf:
        position = mdf.get("n1.joint_state.position")
        # the farthest the sequence takes the joint is the friction step's travel: 0.075 rad on its 0.3 s ramp to
        # 0.5 rad/s, the 0.6 rad plateau and 0.075 rad into the reversal, 0.75 rad (0.739 measured). The back-drive
        # fixture lets go at the first motion (about 20 N·m) and the idle link stops within 0.01 rad of where it
        # started moving, where the ramp on to 40 N·m used to swing it to about 2.6 rad
        assert position.samples.size > 20_000 and abs(position.samples).max() < 0.8
    assert summary(os.path.join(folder, "r.db"))["runs"] == 1


def test_nominal_figures_match_the_knee_physics(nominal):
    figures = {k: v for s in nominal[1]["steps"] for k, v in s["figures"].items()}
    # Coulomb 0.115 N·m x ratio 100 = 11.5 N·m, plus viscous 1.5e-3 x (0.5 x 100) x 100 = 7.5 N·m, plus load damping
    # (0.25 N·m) and the mesh losses under load (mesh efficiency 0.933): 19.25 to 21 N·m at the output
    assert 19.25 <= figures["friction_torque_nm"] <= 21.0
    # the flexspline's piecewise curve over +-40 N·m: between its first and last segment stiffness
    assert 3.1e4 <= figures["stiffness_nm_per_rad"] <= 5.7e4
    # the watchdog (0.1 s) plus at most the damped stop (0.2 s) and a 1 ms heartbeat
    assert 0.08 <= figures["watchdog_reaction_s"] <= 0.31
    # motor encoder and output encoder agree through the ratio to the motor encoder's 0.0087 rad once-per-turn error
    # divided by the ratio, plus at most the hysteresis loop's width (1 arcmin, 2.9e-4 rad) between the two
    # directions' twists under the friction torque: measured 1.21e-4 rad
    assert abs(figures["encoder_mismatch_rad"]) < 8.7e-5 + 2.9e-4


def test_friction_defect_fails_and_names_the_check(friction_defect, nominal):
    code, results, _ = friction_defect
    assert code == 1 and results["verdict"] == "fail"
    assert "friction.friction_torque_nm" in results["failed_checks"]
    f_bad = next(s for s in results["steps"] if s["name"] == "friction")["figures"]["friction_torque_nm"]
    f_ok = next(s for s in nominal[1]["steps"] if s["name"] == "friction")["figures"]["friction_torque_nm"]
    # friction_scale scales Coulomb, static and viscous friction; the load damping and mesh losses do not scale
    assert 1.15 * f_ok < f_bad < 1.31 * f_ok


def test_a_killed_run_leaves_readable_recordings_and_an_incomplete_result(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "firmware_iface.cli", "run", str(EOL), "--sim", "--out", str(out),
                             "--no-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:  # until a few steps are done: the recordings have been flushed
            try:
                done = [s for s in json.loads((out / "results.json").read_text())["steps"] if s["status"] == "pass"]
            except (OSError, ValueError):
                done = []
            if len(done) >= 4:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "incomplete" and results["finished_utc"] is None
    assert sum(s["status"] == "pass" for s in results["steps"]) >= 4
    frames = read_frames(out / "frames.blf")
    assert len(frames) > 1000
    with MDF(str(out / "signals.mf4")) as mdf:
        assert mdf.get("n1.joint_state.position").samples.size > 1000
