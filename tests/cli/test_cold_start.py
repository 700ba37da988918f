"""A fresh clone has no Numba cache: the first `jointkit run --sim` (and so the first `make demo`) compiles every
kernel of the simulated joint. The joint must not be announced before its kernels are ready, or the sequence's
`connect` step waits out its timeout on the compiler (13 s of compiling against a 10 s timeout on a quiet
machine, longer on a busy one).

The run is a real subprocess with ``NUMBA_CACHE_DIR`` pointing at an empty folder, so nothing is cached: what
a new clone sees. Its verdict is the exit status and the connect step's result, not a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SEQUENCE = """
[sequence]
name = "cold-start"
node = 1
preset = "knee"
ratio = 100.0

[[steps]]
type = "connect"
timeout_s = 5.0

[[steps]]
type = "enable"
mode = "position"

[[steps]]
type = "hold"
duration_s = 0.2

[[steps]]
type = "disable"
"""


def test_a_cold_numba_cache_does_not_fail_the_first_connect(tmp_path: Path) -> None:
    seq = tmp_path / "cold.toml"
    seq.write_text(SEQUENCE)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "empty-cache")}
    # 5 s connect timeout: well below a cold compile of the joint's kernels (13 s quiet), well above a heartbeat
    # period (0.1 s) once the joint runs
    proc = subprocess.run([sys.executable, "-m", "firmware_iface.cli", "run", str(seq), "--sim", "--no-db",
                           "--out", str(tmp_path / "out"), "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    steps = {s["type"]: s for s in results["steps"]}
    assert steps["connect"]["status"] == "pass", steps["connect"]
    assert results["verdict"] == "pass"
    assert any(Path(tmp_path / "empty-cache").rglob("*.nbi")), "the run did not use the empty cache folder"
