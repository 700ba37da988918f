"""Benchmark of the simulated joint: compiled vs pure Python, one joint vs a batch on all cores.

Run as a module with ``--python-rate N`` it measures the model under NUMBA_DISABLE_JIT (set by the
parent before this interpreter starts, since Numba reads it at import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from actuator.model import layout as L
from actuator.model.joint import run_batch_parallel
from actuator.simulation import JointModel, batch_arguments

RECORD_EVERY = 40  # 1 kHz trace rows at the 40 kHz step, as the simulate users record


def _inputs(n: int) -> np.ndarray:
    u = np.zeros((n, L.N_INPUTS))
    u[:, L.U_IQ_CMD] = 5.0  # a q-axis current step that keeps every model part busy (motion, friction, heat)
    return u


def single_rate(preset: str, n_steps: int, repeats: int) -> float:
    """Model steps per second of one joint on one core, including noise draws and trace allocation."""
    model = JointModel(preset)
    u = _inputs(n_steps)
    model.run(u[:100], RECORD_EVERY)  # compile or load the cache outside the timing
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.run(u, RECORD_EVERY)
        best = max(best, n_steps / (time.perf_counter() - t0))
    return best


def python_rate(preset: str, n_steps: int) -> float:
    """The same model under NUMBA_DISABLE_JIT, in a fresh interpreter."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    cmd = [sys.executable, "-m", "firmware_iface.bench.sim", "--python-rate", str(n_steps), "--preset", preset]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout)["steps_per_s"])


def batch_rate(preset: str, n_joints: int, n_steps: int) -> float:
    models = [JointModel(preset, seed=j) for j in range(n_joints)]
    run_batch_parallel(*batch_arguments(models[:1], [_inputs(100)], RECORD_EVERY))  # compile outside the timing
    args = batch_arguments(models, [_inputs(n_steps)] * n_joints, RECORD_EVERY)
    t0 = time.perf_counter()
    run_batch_parallel(*args)
    return n_joints * n_steps / (time.perf_counter() - t0)


def run(preset: str = "knee", quick: bool = False) -> dict:
    steps = 40_000 if quick else 400_000
    model = JointModel(preset)
    single = single_rate(preset, steps, 3)
    py = python_rate(preset, 500 if quick else 4000)
    batch = batch_rate(preset, 64, 4_000 if quick else 40_000)
    return {
        "preset": preset,
        "step_s": model.dt_s,
        "steps_per_s": single,
        "python_steps_per_s": py,
        "jit_speedup": single / py,
        "realtime_factor": single * model.dt_s,
        "batch_joints": 64,
        "batch_steps_per_s": batch,
        "batch_speedup": batch / single,
        "cores": os.cpu_count(),
        "record_every": RECORD_EVERY,
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--python-rate", type=int, required=True)
    ap.add_argument("--preset", default="knee")
    a = ap.parse_args()
    m = JointModel(a.preset)
    u = _inputs(a.python_rate)
    t0 = time.perf_counter()
    m.run(u, RECORD_EVERY)
    print(json.dumps({"steps_per_s": a.python_rate / (time.perf_counter() - t0)}))
