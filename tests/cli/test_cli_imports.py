"""Building the ``jointkit`` parser imports no heavy dependency (``jointkit --help`` stays fast): every subcommand
imports numpy, Numba, SciPy, cantools, python-can, asammdf, Qt, matplotlib and the actuator package when it runs,
not when it registers. A behaviour check, not a timing (``jointkit bench`` is where speed is measured).

The constants the CLI shows in its help come from cheap modules the modules behind it use too
(firmware_iface.defaults, actuator.analysis.loops); checked to be the ones those modules use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "numba", "scipy", "asammdf", "PySide6", "pyqtgraph", "matplotlib", "cantools", "can", "rich")
# of the actuator package only these (its names load on first use; these modules are the standard library's only)
CHEAP_ACTUATOR = ("actuator", "actuator.paths", "actuator.errors", "actuator.analysis", "actuator.analysis.loops")
HEAVY_TEST = (f"m.split('.')[0] in {HEAVY!r} or (m.split('.')[0] == 'actuator' and m not in {CHEAP_ACTUATOR!r})")


def test_building_the_parser_imports_no_heavy_dependency():
    code = ("import sys; from firmware_iface.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in sys.modules if {HEAVY_TEST}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    assert ast.literal_eval(proc.stdout.strip()) == []


def test_help_imports_no_heavy_dependency():
    code = ("import sys\nfrom firmware_iface.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print('@', sorted(m for m in sys.modules if {HEAVY_TEST}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    assert "COMMAND" in proc.stdout
    assert ast.literal_eval(proc.stdout.rsplit("@", 1)[1].strip()) == []


def test_repeated_constants_match_their_sources():
    from actuator.analysis.loops import LOOPS
    from actuator.params import SEEDS_DIR
    from firmware_iface.cli import demo, record, scan, sim, step
    from firmware_iface.client.scan import LISTEN_S
    from firmware_iface.defaults import DEFAULT_FRAME_SUFFIX, FRAME_FORMATS
    from firmware_iface.virtual_joint.serve import DEFAULT_PORT, LOOPBACK

    assert (sim.DEFAULT_PORT, sim.LOOPBACK) == (DEFAULT_PORT, LOOPBACK)
    assert scan.LISTEN_S == LISTEN_S
    assert (record.FRAME_FORMATS, record.DEFAULT_FRAME_SUFFIX) == (FRAME_FORMATS, DEFAULT_FRAME_SUFFIX)
    assert step.LOOPS == LOOPS
    assert demo.SEEDS_DIR == SEEDS_DIR
    assert demo.DEMO_SEQUENCE.is_file()


def test_simulate_is_reachable_on_the_sim_module():
    from actuator.simulation import simulate
    from firmware_iface.cli import sim

    assert sim.simulate is simulate


def test_checking_a_profile_loads_no_kernel():
    # ``jointkit dbc check`` needs cantools and the profile, not the simulation: the actuator package's names load
    # on first use, so its error types come without Numba or SciPy
    code = ("import sys; from firmware_iface.protocol.load import load_native; load_native(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'scipy', 'actuator'}), "
            "'actuator.simulation' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    assert proc.stdout.split() == ["['actuator']", "False"]


def test_shipped_profile_names_agree_with_the_loader():
    from firmware_iface.defaults import SHIPPED_PROFILES
    from firmware_iface.protocol.load import SHIPPED

    assert tuple(SHIPPED) == SHIPPED_PROFILES
    assert all(dbc.is_file() and toml.is_file() for dbc, toml in SHIPPED.values())
