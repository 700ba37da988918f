"""``jointkit results summary|list|add`` through argv: tables, JSON, batch import and the errors (exit 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from cliutil import run_cli, run_json


def make_results(value: float | None, *, verdict: str = "pass", serial: str = "SIM-0001", minute: int = 0,
                 sequence: str = "eol", lo: float | None = 7.0, hi: float | None = 12.0) -> dict[str, Any]:
    """A results.json of schema jointkit.results/1 with one friction check."""
    check_verdict = "pass" if verdict == "pass" else "fail"
    return {
        "schema": "jointkit.results/1",
        "sequence": {"name": sequence, "path": f"seeds/sequences/{sequence}.toml", "sha256": "cd" * 32},
        "serial": serial, "started_utc": f"2026-11-21T13:{minute:02d}:00Z", "finished_utc": None,
        "rig": {"sim": True, "interface": "virtual", "channel": "t", "preset": "knee", "injections": {}},
        "verdict": verdict,
        "failed_checks": [] if verdict == "pass" else ["friction.friction_torque_nm"],
        "error": None,
        "steps": [{"index": 0, "name": "friction", "type": "friction", "node": 1, "status": check_verdict,
                   "started_s": 0.0, "duration_s": 1.2, "figures": {"friction_torque_nm": value},
                   "checks": [{"name": "friction.friction_torque_nm", "figure": "friction_torque_nm",
                               "value": value, "min": lo, "max": hi, "unit": "N·m", "verdict": check_verdict}],
                   "error": None, "plot": None}],
        "outputs": {"results": "results.json"},
    }


# friction values 9, 10, 11 pass and 14 fails (limits 7..12), one run errors before measuring
RUNS = [make_results(9.0, serial="SIM-0001", minute=0),
        make_results(10.0, serial="SIM-0002", minute=1),
        make_results(11.0, serial="SIM-0003", minute=2),
        make_results(14.0, verdict="fail", serial="SIM-0004", minute=3),
        make_results(None, verdict="error", serial="SIM-0005", minute=4)]
# values 9, 10, 11, 14: mean 11, s = sqrt((4 + 1 + 0 + 9) / 3) = 2.160247
# Cpk = min(12 - 11, 11 - 7) / (3 s) = 1 / 6.480741 = 0.154303; Cp = 5 / (6 s) = 0.385758
# yield = 3 pass / (3 pass + 1 fail) = 75 % (the error run judged no joint)


def write_files(directory: Path, runs: list[dict]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, results in enumerate(runs):
        path = directory / f"run{i}" / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(results, ensure_ascii=False))
        paths.append(str(path))
    return paths


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # rich folds long check names at the 80 columns of a pipe


@pytest.fixture
def db(new_db, tmp_path, capsys) -> str | Path:
    path = new_db  # on each back-end: an SQLite file, or a PostgreSQL URL
    code, _, err = run_cli(capsys, "results", "add", str(path), *write_files(tmp_path / "runs", RUNS))
    assert code == 0, err
    return path


def test_add_reports_each_file_and_skips_repeats(new_db, tmp_path, capsys):
    db = new_db
    files = write_files(tmp_path / "runs", RUNS[:3])
    code, out, _ = run_cli(capsys, "results", "add", str(db), *files)
    assert code == 0
    assert f"{files[0]}: run 1" in out and "added 3 run(s)" in out
    # a line re-importing the same folder adds nothing twice
    again = run_json(capsys, "results", "add", str(db), *write_files(tmp_path / "more", RUNS[2:4]))
    assert (again["added"], again["already_present"]) == (1, 1)
    assert [(r["run_id"], r["added"]) for r in again["runs"]] == [(3, False), (4, True)]


def test_summary_table(db, capsys):
    code, out, err = run_cli(capsys, "results", "summary", str(db))
    assert code == 0, err
    assert "5 runs: 3 pass, 1 fail, 1 error, 0 incomplete; yield 75.0% (3/4)" in out
    row = next(line for line in out.splitlines() if "friction.friction_torque_nm" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    # check, unit, n, mean, std, LSL, USL, Cpk, fails
    assert cells == ["friction.friction_torque_nm", "N·m", "4", "11", "2.16", "7", "12", "0.15", "2"]
    assert "error or incomplete did not judge the joint" in out


def test_summary_json(db, capsys):
    s = run_json(capsys, "results", "summary", str(db))
    g = s["sequences"][0]
    assert g["yield"] == pytest.approx(0.75)
    c = g["checks"][0]
    sd = math.sqrt(14 / 3)
    assert (c["n"], c["fails"], c["missing"], c["lsl"], c["usl"]) == (4, 2, 1, 7.0, 12.0)
    assert c["mean"] == pytest.approx(11.0) and c["std"] == pytest.approx(sd)
    assert c["cpk"] == pytest.approx(1 / (3 * sd)) == pytest.approx(0.154303, rel=1e-5)
    assert c["cp"] == pytest.approx(5 / (6 * sd)) == pytest.approx(0.385758, rel=1e-5)


def test_summary_filters_and_degenerate_cpk(new_db, tmp_path, capsys):
    db = new_db
    runs = [*RUNS[:2], make_results(20.0, sequence="wrist", serial="W-1", minute=9, lo=None, hi=None),
            make_results(10.0, sequence="hip", serial="H-1", minute=10)]
    assert run_cli(capsys, "results", "add", str(db), *write_files(tmp_path / "runs", runs))[0] == 0
    s = run_json(capsys, "results", "summary", str(db), "--sequence", "wrist")
    assert [g["sequence"] for g in s["sequences"]] == ["wrist"]
    assert s["sequences"][0]["checks"][0]["cpk_reason"] == "no limits"
    code, out, _ = run_cli(capsys, "results", "summary", str(db))
    assert code == 0 and "— (no limits)" in out and "— (n < 2)" in out  # the wrist has no limits, the hip 1 run
    assert out.index("eol: 2 runs") < out.index("wrist: 1 run:") < out.index("hip: 1 run:")
    last = run_json(capsys, "results", "summary", str(db), "--sequence", "eol", "--last", "1")
    assert last["runs"] == 1 and last["sequences"][0]["checks"][0]["mean"] == 10.0


def test_list_table_and_json(db, capsys):
    code, out, _ = run_cli(capsys, "results", "list", str(db))
    assert code == 0
    row = next(line for line in out.splitlines() if "SIM-0004" in line)
    assert "2026-11-21 13:03:00" in row and "fail" in row and "friction.friction_torque_nm" in row
    listed = run_json(capsys, "results", "list", str(db), "--last", "2")
    assert [(r["id"], r["serial"], r["verdict"]) for r in listed["runs"]] == [(4, "SIM-0004", "fail"),
                                                                            (5, "SIM-0005", "error")]
    assert listed["runs"][0]["failed_checks"] == ["friction.friction_torque_nm"]
    assert len(run_json(capsys, "results", "list", str(db), "--last", "0")["runs"]) == 5


@pytest.mark.parametrize("command", ["summary", "list"])
def test_missing_database_is_an_error(tmp_path, capsys, command):
    missing = tmp_path / "nowhere.sqlite"
    code, out, err = run_cli(capsys, "results", command, str(missing))
    assert code == 2 and out == ""
    assert err.strip() == f"error: {missing}: no such results database"
    assert not missing.exists()


def test_a_file_that_is_not_a_results_database(tmp_path, capsys):
    junk = tmp_path / "results.json"
    junk.write_text(json.dumps(RUNS[0]))  # the classic slip: the results file given where the database goes
    code, _, err = run_cli(capsys, "results", "summary", str(junk))
    assert code == 2 and f"error: {junk}: not a jointkit results database" in err


def test_add_rejects_a_malformed_file_and_adds_nothing(new_db, db_exists, tmp_path, capsys):
    db = new_db
    bad = make_results(10.0)
    bad["steps"][0]["checks"][0]["value"] = "ten"
    files = write_files(tmp_path / "runs", [RUNS[0], bad])
    code, _, err = run_cli(capsys, "results", "add", str(db), *files)
    assert code == 2
    assert err.strip() == (f"error: {files[1]}: results field steps[0].checks[0].value = 'ten': "
                           "allowed a finite number or null")
    assert not db_exists(db)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, _, err = run_cli(capsys, "results", "add", str(db), str(broken))
    assert code == 2 and f"error: {broken}: not a results JSON file" in err
