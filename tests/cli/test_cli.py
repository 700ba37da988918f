"""The ``jointkit`` command driven through argv: exit codes, JSON figures, files written, error messages."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cliutil import run_cli, run_json

from firmware_iface.cli import main

ROOT = Path(__file__).resolve().parents[2]
KNEE_TOML = ROOT / "seeds" / "joints" / "knee.toml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# knee preset: Kt = 1.5 * pole_pairs * flux_linkage, N = reducer ratio
KT_NM_PER_A = 1.5 * 10 * 7.811e-3  # 0.1172 N·m per A peak
RATIO = 100.0
STATIC_FRICTION_OUT_NM = 0.15 * RATIO  # 15 N·m at the output
AMBIENT_C = 25.0
SUMMARY_KEYS = {"final_position_rad", "final_velocity_rad_s", "peak_current_a", "winding_temp_c", "faults"}




def test_sim_torque_below_static_friction_holds(capsys):
    torque = 5.0
    assert torque < STATIC_FRICTION_OUT_NM
    s = run_json(capsys, "sim", "--preset", "knee", "--torque-nm", str(torque), "--duration-s", "0.5")
    assert s.keys() >= SUMMARY_KEYS
    assert s["faults"] == []
    assert abs(s["final_position_rad"]) < 1e-3
    iq_cmd = torque / (KT_NM_PER_A * RATIO)
    assert iq_cmd == pytest.approx(0.4268, abs=1e-4)
    assert s["peak_current_a"] == pytest.approx(iq_cmd, rel=0.05)
    assert AMBIENT_C < s["winding_temp_c"] < AMBIENT_C + 0.1


def test_sim_torque_above_static_friction_moves(capsys):
    # 40 N·m against 11.5 N·m of Coulomb and 16 N·m·s/rad of gear and load damping: ~1.8 rad/s within 0.1 s
    s = run_json(capsys, "sim", "--preset", "knee", "--torque-nm", "40", "--duration-s", "0.5")
    assert s["final_position_rad"] > 0.5
    assert s["final_velocity_rad_s"] > 1.0
    assert s["faults"] == []


def test_sim_current_step(capsys):
    s = run_json(capsys, "sim", "--preset", "knee", "--current-a", "2", "--duration-s", "0.05")
    assert s["peak_current_a"] == pytest.approx(2.0, rel=0.05)
    assert s["faults"] == []


def test_sim_torque_and_current_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sim", "--torque-nm", "5", "--current-a", "2", "--duration-s", "0.1"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_sim_out_writes_csv_and_png(capsys, tmp_path):
    out = tmp_path / "sub" / "trace.csv"
    duration, step = 0.01, 25e-6
    s = run_json(capsys, "sim", "--preset", "knee", "--torque-nm", "5", "--duration-s", str(duration),
                 "--record-every", "1", "--out", str(out))
    assert s["model_step_s"] == step
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, data = rows[0], rows[1:]
    assert {"t_s", "position_rad", "velocity_rad_s", "iq_a", "winding_temp_c"} <= set(header)
    assert len(data) == round(duration / step) + 1 == 401
    t = [float(r[header.index("t_s")]) for r in data]
    assert t[0] == 0.0
    assert t[-1] == pytest.approx(duration, rel=1e-9)
    png = out.with_suffix(".png")
    assert s["trace_csv"] == str(out)
    assert s["plot_png"] == str(png)
    assert png.read_bytes().startswith(PNG_MAGIC)


@pytest.fixture
def bad_knee(tmp_path: Path) -> Path:
    text = KNEE_TOML.read_text(encoding="utf-8")
    old = "inertia_kg_m2 = 0.5 "
    assert text.count(old) == 1  # only the [load] entry
    bad = tmp_path / "bad_knee.toml"
    bad.write_text(text.replace(old, "inertia_kg_m2 = -0.5 "), encoding="utf-8")
    return bad


def test_bad_preset_file_is_a_clean_error(capsys, bad_knee):
    code, out, err = run_cli(capsys, "sim", "--preset", str(bad_knee), "--torque-nm", "5", "--duration-s", "0.1")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    for part in (str(bad_knee), "load.inertia_kg_m2", "-0.5", "(0, inf]"):
        assert part in err
    assert "Traceback" not in err


def test_debug_shows_traceback(capsys, bad_knee):
    code, out, err = run_cli(capsys, "--debug", "sim", "--preset", str(bad_knee), "--torque-nm", "5",
                             "--duration-s", "0.1")
    assert code == 2
    assert out == ""
    assert "Traceback" in err
    assert "error: " in err
    assert "load.inertia_kg_m2" in err


def test_unknown_preset_names_known_ones(capsys):
    code, out, err = run_cli(capsys, "sim", "--preset", "no_such_joint", "--torque-nm", "5", "--duration-s", "0.1")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert "no_such_joint" in err
    assert "knee" in err
    assert "wrist" in err


@pytest.mark.parametrize("duration", ["0", "-1"])
def test_nonpositive_duration_is_an_error(capsys, duration):
    code, out, err = run_cli(capsys, "sim", "--torque-nm", "5", "--duration-s", duration)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert "duration" in err


def test_demo_writes_csv_and_png(capsys, tmp_path):
    folder = tmp_path / "demo"
    code, out, err = run_cli(capsys, "demo", "--open-loop", "--out", str(folder), "--duration-s", "0.3")
    assert code == 0, err
    csv_path, png = folder / "torque_step.csv", folder / "torque_step.png"
    assert csv_path.is_file()
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert str(png) in out.replace("\n", "")


def test_demo_json(capsys, tmp_path):
    folder = tmp_path / "demo"
    s = run_json(capsys, "demo", "--open-loop", "--out", str(folder), "--duration-s", "0.3")
    assert s.keys() >= SUMMARY_KEYS
    assert s["torque_nm"] == 30.0
    assert s["duration_s"] == pytest.approx(0.3, rel=1e-6)
    assert s["plot_png"] == str(folder / "torque_step.png")
    assert Path(s["plot_png"]).read_bytes().startswith(PNG_MAGIC)
    assert s["final_position_rad"] > 0
    assert s["faults"] == []


@pytest.mark.slow
def test_bench_sim_quick_json(capsys):
    b = run_json(capsys, "bench", "sim", "--quick")
    for key in ("steps_per_s", "python_steps_per_s", "realtime_factor", "batch_steps_per_s", "step_s"):
        assert b[key] > 0, key
    assert b["step_s"] == 2.5e-05
    assert b["realtime_factor"] == pytest.approx(b["steps_per_s"] * b["step_s"], rel=1e-9)


ENTRY_ARGS = ["sim", "--preset", "wrist", "--current-a", "1", "--duration-s", "0.05", "--json"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", [
    pytest.param([sys.executable, "-m", "firmware_iface.cli"], id="python-m"),
    pytest.param([str(Path(sys.executable).with_name("jointkit"))], id="console-script"),
])
def test_entry_point_subprocess(entry):
    proc = subprocess.run([*entry, *ENTRY_ARGS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["preset"] == "wrist"
    assert s["peak_current_a"] == pytest.approx(1.0, rel=0.05)
    assert s["faults"] == []
