"""A wheel (``pip install .``, not editable) works on its own: the protocol profiles and seeds travel as its data
files (``<prefix>/share/jointkit``, found by ``actuator.paths``), and the installed ``jointkit demo`` passes from a
folder outside the checkout (issue 14, item 7). The dependencies come from the project's own venv through a .pth
file, so nothing is downloaded; the checkout itself is not importable from where the command runs."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(*argv: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # without PYTHONPATH: a checkout named there would be imported instead of the wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_an_installed_wheel_runs_the_demo_from_anywhere(tmp_path):
    wheels = tmp_path / "wheels"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                str(ROOT), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    wheel = next(wheels.glob("jointkit-*.whl"))
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    purelib = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                       cwd=tmp_path).stdout.strip())
    # the dependencies: this venv's site-packages, after the new venv's own (where the wheel goes)
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (purelib / "deps.pth").write_text("\n".join(deps) + "\n")
    installed = run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr

    where = run(str(python), "-c", "import actuator.paths as p, firmware_iface; print(firmware_iface.__file__); "
                "print(p.data_dir('seeds')); print(p.data_dir('dbc'))", cwd=tmp_path)
    module, seeds, dbc = where.stdout.split()
    assert Path(module).is_relative_to(venv) and Path(seeds).is_relative_to(venv) and Path(dbc).is_relative_to(venv)
    assert (Path(seeds) / "sequences" / "demo.toml").is_file() and (Path(dbc) / "jointkit_native.dbc").is_file()

    checked = run(str(venv / "bin" / "jointkit"), "dbc", "check", str(Path(dbc) / "jointkit_native.dbc"), "--json",
                  cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    demo = run(str(venv / "bin" / "jointkit"), "demo", "--out", str(tmp_path / "demo"), "--json", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-2000:]
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["verdict"] == "pass" and results["metadata"]["jointkit_version"] != "unknown"
