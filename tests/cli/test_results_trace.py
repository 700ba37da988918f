"""Traceability through argv (issue 18 item 5): ``jointkit results show SERIAL [--db]`` on both back-ends, and a
simulated ``jointkit run --db postgresql://...`` whose trace (rig id, jointkit version, profile, preset and gains
sha256) is stored and shown as results.json has it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cliutil import run_cli, run_json
from test_results_cli import make_results, write_files

from firmware_iface.rig.runner import gains_digest

ROOT = Path(__file__).resolve().parents[2]
PROFILE_SHA, PRESET_SHA, GAINS_SHA = "a1" * 32, "b2" * 32, "c3" * 32


def traced(serial: str, minute: int, *, value: float = 10.0, verdict: str = "pass", certificates: bool = False
           ) -> dict[str, Any]:
    r = make_results(value, serial=serial, minute=minute, verdict=verdict)
    r["metadata"] = {"jointkit_version": "0.1.0", "rig_id": f"RIG-{minute}", "serial": serial,
                     "profile": {"name": "jointkit_native", "sha256": PROFILE_SHA},
                     "preset": {"name": "knee", "sha256": PRESET_SHA}, "gains_sha256": GAINS_SHA}
    r["steps"][0]["certificates"] = [
        {"id": "CAL-1F2E3D4C5B6A7980", "quantity": "friction_coulomb_nm", "verdict": "pass"}] if certificates else []
    return r


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich folds the table at the 80 columns of a pipe


@pytest.fixture
def db(new_db, tmp_path, capsys) -> str:
    runs = [traced("KNEE-1", 0, certificates=True), traced("KNEE-2", 1),
            traced("KNEE-1", 2, value=14.0, verdict="fail")]  # KNEE-1 tested twice: calibrated and passed, then failed
    code, _, err = run_cli(capsys, "results", "add", str(new_db), *write_files(tmp_path / "runs", runs))
    assert code == 0, err
    return str(new_db)


def test_show_prints_a_units_history(db, capsys):
    code, out, err = run_cli(capsys, "results", "show", "KNEE-1", "--db", db)
    assert code == 0, err
    rows = [line for line in out.splitlines() if "2026-11-21" in line]
    assert len(rows) == 2  # KNEE-2's run is not this unit's
    cells = [[c.strip() for c in row.strip()[1:-1].split("│")] for row in rows]  # the table's inner cells
    # id, started, sequence, verdict, rig, jointkit, profile, preset, gains (12 hex digits each), failed checks
    assert cells[0] == ["1", "2026-11-21 13:00:00", "eol", "pass", "RIG-0", "0.1.0", "a1" * 6, "b2" * 6, "c3" * 6, ""]
    assert cells[1][:5] == ["3", "2026-11-21 13:02:00", "eol", "fail", "RIG-2"]
    assert cells[1][-1] == "friction.friction_torque_nm"
    cert = next(line for line in out.splitlines() if "CAL-1F2E3D4C5B6A7980" in line)
    assert [c.strip() for c in cert.strip()[1:-1].split("│")] == ["1", "0", "CAL-1F2E3D4C5B6A7980",
                                                               "friction_coulomb_nm", "pass"]


def test_show_json_has_the_whole_hashes(db, capsys):
    shown = run_json(capsys, "results", "show", "KNEE-1", "--db", db)
    assert shown["serial"] == "KNEE-1" and [r["id"] for r in shown["runs"]] == [1, 3]
    first = shown["runs"][0]
    assert (first["profile_sha256"], first["preset_sha256"], first["gains_sha256"]) == (PROFILE_SHA, PRESET_SHA,
                                                                                        GAINS_SHA)
    assert first["certificates"] == [{"step": 0, "id": "CAL-1F2E3D4C5B6A7980", "quantity": "friction_coulomb_nm",
                                      "verdict": "pass"}]
    assert shown["runs"][1]["verdict"] == "fail" and shown["runs"][1]["certificates"] == []


def test_show_an_unknown_serial_is_an_error(db, capsys):
    code, out, err = run_cli(capsys, "results", "show", "KNEE-9", "--db", db)
    assert code == 2 and out == ""
    assert err.strip() == f"error: {db}: no run of serial 'KNEE-9'"


def test_run_refuses_an_unreachable_server_before_anything_moves(tmp_path, capsys):
    out = tmp_path / "out"
    url = "postgresql://rig:hunter2@127.0.0.1:1/line"  # nothing listens on port 1: refused at once
    code, _, err = run_cli(capsys, "run", str(ROOT / "seeds" / "sequences" / "eol.toml"), "--sim", "--out", str(out),
                           "--db", url)
    assert code == 2
    assert err.startswith("error: postgresql://rig:***@127.0.0.1:1/line: cannot connect to the PostgreSQL server")
    assert "hunter2" not in err
    assert not out.exists()  # refused before the joints were started or the output folder made


GAINS_SEQUENCE = f"""[sequence]
name = "trace"
node = 1
preset = "knee"
ratio = 100.0

[[steps]]
type = "connect"
timeout_s = 30.0

[[steps]]
type = "gains"
file = "{ROOT / 'seeds' / 'gains' / 'knee.toml'}"
"""


@pytest.mark.slow
def test_a_run_into_postgresql_is_traced(pg_url, tmp_path, capsys):
    seq = tmp_path / "trace.toml"
    seq.write_text(GAINS_SEQUENCE)
    code, out, err = run_cli(capsys, "run", str(seq), "--sim", "--serial", "SN-T1", "--out", str(tmp_path / "out"),
                             "--db", pg_url, "--rig-id", "EOL-3", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert results["outputs"]["database"] == pg_url
    meta = json.loads((tmp_path / "out" / "results.json").read_text())["metadata"]
    # the preset is the knee's file, byte for byte; the gains the knee's table as the joint read it back
    assert meta["preset"]["sha256"] == hashlib.sha256((ROOT / "seeds" / "joints" / "knee.toml").read_bytes()
                                                      ).hexdigest()
    written = results["steps"][1]["figures"]["gains"]
    assert set(written) == {"position_kp", "position_ki", "position_kd", "velocity_kp", "velocity_ki", "velocity_kd"}
    canonical = json.dumps([[1, "gains", written]], sort_keys=True, separators=(",", ":"))
    assert meta["gains_sha256"] == hashlib.sha256(canonical.encode()).hexdigest() == gains_digest(results["steps"])
    [run] = run_json(capsys, "results", "show", "SN-T1", "--db", pg_url)["runs"]
    assert (run["rig_id"], run["jointkit_version"], run["verdict"]) == ("EOL-3", meta["jointkit_version"], "pass")
    assert (run["profile_sha256"], run["preset_sha256"], run["gains_sha256"]) == (
        meta["profile"]["sha256"], meta["preset"]["sha256"], meta["gains_sha256"])
