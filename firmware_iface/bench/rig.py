"""Benchmark of the simulated rig: the EOL sequence on the simulated joint in lock-step and paced to wall time.

Both runs are the whole rig path (``sim_rig`` + ``run_sequence``: bus, clients, recorders, report). Reported:

* ``wall_s_lockstep`` / ``wall_s_realtime``: each run's wall time, and ``speedup`` = realtime / lockstep, measured
  in this one run (the machines are shared: compare ratios, not seconds across runs);
* ``joint_time_s``: the joint time the lock-step run simulated (its clock at the end), and
  ``lockstep_joint_s_per_wall_s``;
* ``identical``: a second lock-step run with the same seed gave the same figures, bit for bit (``--quick`` skips it);
* ``max_rel_diff_vs_realtime``: the largest relative difference of a figure between the lock-step and the paced
  run, and which one (informational: the paced run's figures depend on the machine's load; the tests hold them to
  their own tolerances);
* ``verdicts``: the verdict of each run.
"""

from __future__ import annotations

import io
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from actuator.params import SEEDS_DIR
from firmware_iface.rig.rig import sim_rig
from firmware_iface.rig.runner import run_sequence
from firmware_iface.rig.sequence import load_sequence

SEQUENCE = SEEDS_DIR / "sequences" / "eol.toml"


def run_once(preset: str, lockstep: bool, out_dir: Path, seed: int = 0) -> tuple[dict, float, float]:
    """(results, wall s, joint s simulated: the lock-step clock's time, NaN when paced) of one EOL run."""
    seq = load_sequence(SEQUENCE)
    t0 = time.perf_counter()
    rig = sim_rig(seq.nodes, preset, seed=seed, lockstep=lockstep)
    try:
        results = run_sequence(seq, rig, out_dir, serial="BENCH", console=Console(file=io.StringIO()))
        joint_s = rig.clock.now() if lockstep else math.nan
    finally:
        rig.close()
    return results, time.perf_counter() - t0, joint_s


def figures_of(results: dict) -> dict[str, Any]:
    return {f"{s['name']}.{k}": v for s in results["steps"] for k, v in s["figures"].items()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _rel_diffs(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str]:
    worst, which = 0.0, ""
    for k, v in a.items():
        w = b.get(k)
        if isinstance(v, float) and isinstance(w, float) and math.isfinite(v) and math.isfinite(w) and v != 0:
            d = abs(w - v) / abs(v)
            if d > worst:
                worst, which = d, k
    return worst, which


def run(preset: str = "knee", quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_once(preset, True, root / "warm")  # compile or load the kernels outside the timing
        lock, wall_lock, joint_s = run_once(preset, True, root / "lockstep")
        again = None if quick else run_once(preset, True, root / "lockstep-again")[0]
        paced, wall_paced, _ = run_once(preset, False, root / "realtime")
    fl, fp = figures_of(lock), figures_of(paced)
    identical = None if again is None else (
        fl.keys() == figures_of(again).keys() and all(_same(v, figures_of(again)[k]) for k, v in fl.items()))
    worst, which = _rel_diffs(fl, fp)
    return {"sequence": str(SEQUENCE.name), "preset": preset, "wall_s_lockstep": wall_lock,
            "wall_s_realtime": wall_paced, "speedup": wall_paced / wall_lock, "joint_time_s": joint_s,
            "lockstep_joint_s_per_wall_s": joint_s / wall_lock, "identical": identical, "figures": len(fl),
            "max_rel_diff_vs_realtime": worst, "max_rel_diff_figure": which,
            "verdicts": {"lockstep": lock["verdict"], "realtime": paced["verdict"]},
            "target": {"speedup_min": 5.0}}
