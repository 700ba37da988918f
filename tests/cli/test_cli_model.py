"""``jointkit model check``: the shipped presets' catalogue checks through argv (they pass since issue 16; a copy of
the knee as it was before fails and names its quantities), JSON rows, the files of ``--out`` and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cliutil import run_cli

KNEE_TOML = Path(__file__).resolve().parents[2] / "seeds" / "joints" / "knee.toml"


def _knee_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = KNEE_TOML.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "knee_copy.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize("preset", ["knee", "wrist"])
def test_shipped_presets_pass_their_catalogue(capsys: pytest.CaptureFixture[str], preset: str) -> None:
    """Issue 16's acceptance: `jointkit model check knee --json` and `wrist` pass (exit 0), every row sourced."""
    code, out, _ = run_cli(capsys, "model", "check", preset, "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] is True and result["failed"] == []
    rows = {r["quantity"]: r for r in result["rows"]}
    assert all(r["verdict"] == "pass" for r in rows.values())
    # every catalogue row carries its source tag; the resonance rows are checked against the linear model
    resonance = [q for q in rows if q.startswith("resonance in motion at ")]
    assert len(resonance) == 3 and all("linear model" in rows[q]["source"] for q in resonance)
    assert all(r["source"].startswith("[") for q, r in rows.items() if q not in resonance)
    assert sum(q.startswith("twist at ") for q in rows) == 10
    assert sum(q.startswith("efficiency at ") for q in rows) == 7
    assert rows["motor torque constant Kt (per A rms)"]["simulated"] == pytest.approx(
        rows["motor torque constant Kt (per A rms)"]["catalogue"], rel=0.05)


def test_knee_json_rows_and_exit_1_naming_the_failing_quantities(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    """The knee as it was before issue 16 (Kt 0.080 N·m per A peak: 5.33 mWb) fails its Kt row, and holding Tc
    then needs 14.5 A: the winding settles at 128 °C, above the 100 °C derating start."""
    path = _knee_copy(tmp_path, "flux_linkage_wb = 7.811e-3", "flux_linkage_wb = 5.33e-3")
    code, out, _ = run_cli(capsys, "model", "check", str(path), "--json")
    assert code == 1
    result = json.loads(out)
    assert result["ok"] is False
    assert result["failed"] == ["motor torque constant Kt (per A rms)",
                                "steady winding temperature at Tc, 25 °C ambient"]
    rows = {r["quantity"]: r for r in result["rows"]}
    assert rows["motor torque constant Kt (per A rms)"]["simulated"] == pytest.approx(0.080 * 2 ** 0.5, rel=1e-2)


def test_table_names_the_failing_quantity(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "model", "check", "knee")
    assert code == 0 and "FAIL" not in out and "(1) [S] T1, T2: Harmonic Drive" in out
    path = _knee_copy(tmp_path, "slots = 18 ", "slots = 24 ")  # 24N20P cogs 120 times, the catalogue says 180
    code, out, err = run_cli(capsys, "model", "check", str(path))
    assert code == 1 and "FAIL" in out and "cogging periods per revolution" in err


def test_out_writes_json_and_plots(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "model", "check", "wrist", "--json", "--out", str(tmp_path))
    assert code == 0
    printed = json.loads(out)
    written = json.loads((tmp_path / "model_check.json").read_text(encoding="utf-8"))
    assert written["rows"] == printed["rows"] and len(written["efficiency_map"]["speeds_rpm"]) == 4
    for name in ("twist_curve.png", "efficiency_map.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_preset_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 1\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "model", "check", str(bad))
    assert code == 2 and err.startswith("error:") and str(bad) in err
    code, _, err = run_cli(capsys, "model", "check", "no_such_preset")
    assert code == 2 and "not found" in err


def test_the_quasi_direct_drive_preset_passes_its_motor_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    """qdd (AK80-9 class): Kt within 5 % of 0.095 N·m/A, the winding under 155 °C holding Tc at 25 °C ambient,
    cogging LCM(36, 42) = 252: exit 0."""
    code, out, _ = run_cli(capsys, "model", "check", "qdd", "--json")
    rows = {r["quantity"]: r for r in json.loads(out)["rows"]}
    assert code == 0 and all(r["verdict"] == "pass" for r in rows.values())
    assert rows["motor torque constant Kt (per A peak)"]["simulated"] == pytest.approx(0.095, rel=0.05)
    assert rows["steady winding temperature at Tc, 25 °C ambient"]["simulated"] < 155.0
