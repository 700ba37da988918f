"""`jointkit run`: no result lost, no database replaced, every error exit 2, metadata in every output
(issue 13, items 1, 4, 5, 6, 15). Runs are short sequences on the simulated knee; killed runs are real subprocesses,
signalled once results.json shows a step done (polled, not slept on)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asammdf import MDF

from firmware_iface.cli import main
from firmware_iface.rig.results_db import summary

pytestmark = pytest.mark.slow

HEAD = '[sequence]\nname = "short"\nnode = 1\npreset = "knee"\nratio = 100.0\n'
ENABLED = HEAD + """
[[steps]]
type = "connect"
timeout_s = 30.0

[[steps]]
type = "enable"
mode = "position"
"""
SHORT = ENABLED + '\n[[steps]]\ntype = "hold"\nduration_s = 0.3\n\n[[steps]]\ntype = "disable"\n'
LONG = ENABLED + '\n[[steps]]\ntype = "hold"\nduration_s = 60.0\n'
BATCH = HEAD + """
[[steps]]
type = "step"
amplitude_rad = 0.05
duration_s = 0.5
"""


def sequence(tmp_path: Path, text: str, name: str = "seq.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. a results database is appended to, never replaced --------------------------------------------------------
def test_population_appends_to_an_existing_database(capsys, tmp_path):
    seq, db = sequence(tmp_path, BATCH), tmp_path / "line.db"
    for k in range(2):
        code, out, err = run(capsys, "run", str(seq), "--sim", "--population", "3", "--db", str(db),
                             "--out", str(tmp_path / f"pop{k}"), "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["joints"] == 3 and report["serial_prefix"].startswith("POP-")
    assert summary(db)["runs"] == 6  # the second batch did not replace the first one's production runs


@pytest.mark.parametrize("content", [b"production notes, not a database\n", b""], ids=["text", "empty"])
def test_a_file_that_is_not_a_results_database_is_refused_unchanged(capsys, tmp_path, content):
    seq, db = sequence(tmp_path, BATCH), tmp_path / "notes.txt"
    db.write_bytes(content + b"x" * 200)
    before = db.read_bytes()
    code, _, err = run(capsys, "run", str(seq), "--sim", "--population", "2", "--db", str(db),
                       "--out", str(tmp_path / "pop"))
    assert code == 2 and f"error: {db}: not a jointkit results database" in err
    assert db.read_bytes() == before
    assert not (tmp_path / "pop" / "population.json").exists()  # refused before the batch ran


def test_an_sqlite_file_of_another_application_is_refused(capsys, tmp_path):
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    code, _, err = run(capsys, "run", str(sequence(tmp_path, SHORT)), "--sim", "--db", str(db), "--out",
                       str(tmp_path / "out"))
    assert code == 2 and "not a jointkit results database" in err
    assert not (tmp_path / "out").exists()  # refused before anything moved


# --- 6. every error is exit 2; sequence content checked before anything moves -------------------------------------
@pytest.mark.parametrize(("step", "named"), [
    ('type = "gains"\nvalues = { position_kp = "abc" }', "values.position_kp: 'abc' is not allowed: a finite number"),
    ('type = "gains"\nvalues = { no_such_gain = 1.0 }', "values.no_such_gain: not a gain"),
    ('type = "stiffness"\nloads_nm = ["a", "b"]', "loads_nm: ['a', 'b']: allowed a list of finite numbers"),
    ('type = "stiffness"\nloads_nm = [10.0]', "allowed 2 or more loads"),
    ('type = "ft_zero"\nexpected_force_n = [0.0, 1.0]', "has 2 numbers: allowed exactly 3"),
    ('type = "measure"\nsignals = ["mean:telemetry.no_such_signal"]', "telemetry.no_such_signal is not a telemetry"),
], ids=["gain-text", "gain-name", "loads-text", "loads-one", "vector-length", "telemetry-name"])
def test_bad_sequence_content_is_refused_before_anything_moves(capsys, tmp_path, step, named):
    seq = sequence(tmp_path, HEAD + '\n[[steps]]\ntype = "connect"\n\n[[steps]]\n' + step + "\n")
    code, _, err = run(capsys, "run", str(seq), "--sim", "--out", str(tmp_path / "out"), "--no-db")
    assert code == 2 and f"error: {seq}: step 2" in err and named in err
    assert not (tmp_path / "out").exists()


def test_an_internal_error_in_a_step_is_exit_2_and_the_run_is_recorded(capsys, tmp_path, monkeypatch):
    import firmware_iface.rig.runner as runner

    def broken(*_: object) -> None:
        raise ZeroDivisionError("a bug in a step")
    monkeypatch.setattr(runner, "run_step", broken)
    code, out, _err = run(capsys, "run", str(sequence(tmp_path, SHORT)), "--sim", "--out", str(tmp_path / "out"),
                         "--db", str(tmp_path / "r.db"), "--json")
    assert code == 2  # was 1, which tells a rig "unit failed"
    results = json.loads(out)
    assert results["verdict"] == "error"
    assert results["steps"][0]["error"] == "internal error: ZeroDivisionError: a bug in a step"
    assert summary(tmp_path / "r.db")["verdicts"]["error"] == 1


def test_an_internal_error_anywhere_in_the_cli_is_exit_2(capsys, monkeypatch):
    import firmware_iface.cli.sim as sim

    monkeypatch.setattr(sim, "simulate", lambda *a, **k: 1 / 0)
    code, _, err = run(capsys, "sim", "--torque-nm", "1", "--duration-s", "0.01")
    assert code == 2 and err.startswith("error: internal error: ZeroDivisionError")


# --- 15. metadata in results.json and the MF4 -----------------------------------------------------------------------
def test_results_and_signals_carry_the_run_metadata(capsys, tmp_path):
    seq = sequence(tmp_path, SHORT)
    code, _out, err = run(capsys, "run", str(seq), "--sim", "--serial", "SN-42", "--out", str(tmp_path / "out"),
                         "--no-db", "--json")
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    meta = results["metadata"]
    assert meta["jointkit_version"] == "0.1.0" and meta["serial"] == "SN-42"
    assert meta["profile"]["name"] == "jointkit_native" and len(meta["profile"]["sha256"]) == 64
    assert meta["sequence_sha256"] == results["sequence"]["sha256"] and len(meta["sequence_sha256"]) == 64
    assert results["safe_stop"]["1"]["disable_sent"] and results["safe_stop"]["1"]["idle_confirmed"]
    with MDF(tmp_path / "out" / "signals.mf4") as mdf:
        comment = mdf.header.comment
    for text in ("serial = SN-42", "verdict = pass", "jointkit_version = 0.1.0", "profile = jointkit_native",
                 f"profile_sha256 = {meta['profile']['sha256']}", f"sequence_sha256 = {meta['sequence_sha256']}"):
        assert text in comment, text


# --- 4, 5. killed and stopped runs -----------------------------------------------------------------------------------
def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "firmware_iface.cli", "run", str(sequence(tmp_path, LONG)), "--sim",
                             "--serial", "SN-K", "--out", str(out), "--db", str(tmp_path / "r.db"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = out / "results.json"
    end = time.monotonic() + 300  # a cold Numba cache compiles first; this only keeps a broken build from hanging
    while time.monotonic() < end:
        if results.exists():
            with open(results) as f:
                try:
                    steps = json.load(f)["steps"]
                except json.JSONDecodeError:
                    steps = []
            if steps and steps[1]["status"] == "pass":  # enabled: the hold is running
                return proc, results
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run did not reach its hold step")


def test_sigterm_stops_safely_confirms_idle_and_records_an_incomplete_run(tmp_path):
    proc, results_path = _start(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    results = json.loads(results_path.read_text())
    assert results["verdict"] == "incomplete"
    # the signal may come between the enable's record and the hold's start: the hold is then still pending
    assert [s["status"] for s in results["steps"]][:2] == ["pass", "pass"]
    assert results["steps"][2]["status"] in ("running", "pending")
    stop = results["safe_stop"]["1"]
    assert stop["disable_sent"] and stop["idle_confirmed"] and stop["state"] == "idle"
    assert 0 <= stop["confirm_s"] < 1.0
    s = summary(tmp_path / "r.db")  # rejected before: "pending" was not a step status the database took
    assert s["runs"] == 1 and s["verdicts"]["incomplete"] == 1 and s["sequences"][0]["yield"] is None


def test_repeated_sigterms_do_not_cut_the_safe_stop_short(tmp_path):
    proc, results_path = _start(tmp_path)
    end = time.monotonic() + 60  # only a safety net: the stop takes about a second
    while proc.poll() is None and time.monotonic() < end:  # a supervisor repeating itself until the process is gone
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    # before: a later SIGTERM broke into the safe stop or the recordings' closing: exit 130, the run not stored
    assert proc.returncode == 2, err
    results = json.loads(results_path.read_text())
    assert results["verdict"] == "incomplete" and results["safe_stop"]["1"]["idle_confirmed"]
    assert summary(tmp_path / "r.db")["verdicts"]["incomplete"] == 1


def test_a_killed_runs_results_can_be_added_as_incomplete(capsys, tmp_path):
    proc, results_path = _start(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    results = json.loads(results_path.read_text())
    assert results["verdict"] == "incomplete" and results["steps"][2]["status"] in ("pending", "running")
    code, _, err = run(capsys, "results", "add", str(tmp_path / "r.db"), str(results_path))
    assert code == 0, err
    s = summary(tmp_path / "r.db")
    assert s["verdicts"] == {"pass": 0, "fail": 0, "error": 0, "incomplete": 1}
    assert s["sequences"][0]["yield"] is None  # an incomplete run is neither a pass nor a fail
