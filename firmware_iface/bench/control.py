"""Benchmark of the joint controller: the PID kernel alone, and the joint model under the cascade.

* ``pid_ns_per_step``: ``pid_run`` (the compiled loop that calls the inlined ``pid_step`` once per
  sample) over 1e6 preallocated samples, after a warm-up call so that compilation (or loading the
  cache) is not timed; best of several repeats, each from a fresh PID state. The PID has P, I, D with
  its derivative filter, back-calculation anti-windup, output limits and a rate limit, and the inputs
  (a square-wave reference, a lagging, noisy measurement) saturate the output part of the time
  (``pid_saturated_fraction``), so that every branch of the kernel runs.
* ``closed_loop_realtime_factor``: simulated seconds per wall second of one joint on one core under the
  cascade (position mode, the preset's default gains) following a position step, 400k model steps
  (10 s of joint time at 40 kHz) recorded every 40 steps; best of 3, each from a fresh joint at rest.
* ``open_loop_steps_per_s``: the same model without a controller, a 5 A q-axis current step, timed
  interleaved with the closed loop; ``controller_overhead_pct`` is the closed loop's extra time per
  model step over the open loop's, in %.

``--quick`` shortens every run (a smoke test; the figures are noisier).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from actuator.analysis.tuning import default_controller
from actuator.control.config import ControllerConfig, LoopGains
from actuator.control.pid import PidGains, new_state, pid_run
from actuator.control.reference import Step, reference_rows
from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.simulation import JointModel

RECORD_EVERY = 40  # 1 kHz trace rows at the 40 kHz step, as in ``bench sim``
PID_DT_S = 1e-4  # a 10 kHz loop, the cascade's default velocity-loop rate
STEP_RAD = 0.5  # position step of the closed-loop run
STEP_AT_S = 0.01

# used while seeds/gains/knee.toml does not exist (default_controller raises)
KNEE_FALLBACK = ControllerConfig(position=LoopGains(kp=31.4), velocity=LoopGains(kp=218.0, ki=8560.0),
                                 gravity_feedforward_nm=9.81)


def controller_for(preset: str) -> tuple[ControllerConfig, str]:
    """The preset's default gains and where they came from (the gains file, or the built-in knee gains)."""
    try:
        return default_controller(preset), f"seeds/gains/{preset}.toml"
    except ConfigError:
        if preset != "knee":
            raise
        return KNEE_FALLBACK, "built-in knee fallback (no seeds/gains/knee.toml)"


def pid_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference, measurement and feedforward: a +-1 square wave, a first-order lag of it plus noise."""
    k = np.arange(n)
    r = np.where((k // 2000) % 2 == 0, 1.0, -1.0)
    lag = 1.0 - np.exp(-(k % 2000) / 400.0)  # the measurement approaches each new level
    y = np.roll(r, 2000) + (r - np.roll(r, 2000)) * lag
    y += 0.002 * np.random.default_rng(seed).standard_normal(n)
    return r, y, np.full(n, 0.05)


def pid_ns_per_step(n: int, repeats: int) -> tuple[float, float]:
    """Best time per sample of ``pid_run`` over ``n`` samples, in ns, and the fraction of saturated outputs."""
    g = PidGains(kp=2.0, ki=40.0, kd=0.01, derivative_filter_n=10.0, output_min=-1.5, output_max=1.5,
                 rate_limit_per_s=2000.0, anti_windup="back_calculation").compile(PID_DT_S)
    r, y, u_ff = pid_inputs(n)
    out = np.empty(n)
    pid_run(g, new_state(), r[:1000], y[:1000], u_ff[:1000], out[:1000])  # compile or load the cache
    best = np.inf
    for _ in range(repeats):
        s = new_state()
        t0 = time.perf_counter()
        pid_run(g, s, r, y, u_ff, out)
        best = min(best, time.perf_counter() - t0)
    saturated = float(np.mean(np.abs(out) >= 1.5))
    return best / n * 1e9, saturated


def _open_inputs(n: int) -> np.ndarray:
    u = np.zeros((n, L.N_INPUTS))
    u[:, L.U_IQ_CMD] = 5.0  # as ``bench sim``: keeps motion, friction and heat busy
    return u


def _timed_run(preset: str, cfg: ControllerConfig | None, u: np.ndarray, ref: np.ndarray | None) -> float:
    """Wall seconds of one ``JointModel.run`` from a fresh joint at rest (set-up outside the timing)."""
    model = JointModel(preset)
    if cfg is not None:
        model.attach(cfg)
    t0 = time.perf_counter()
    model.run(u, RECORD_EVERY, ref)
    return time.perf_counter() - t0


def loop_rates(preset: str, cfg: ControllerConfig, n_steps: int, repeats: int) -> tuple[float, float]:
    """Best model steps per second (closed loop, open loop), the two timed interleaved."""
    dt = JointModel(preset).dt_s
    zeros = np.zeros((n_steps, L.N_INPUTS))
    ref = reference_rows(Step(STEP_RAD, STEP_AT_S), n_steps, dt, "position")
    u_open = _open_inputs(n_steps)
    _timed_run(preset, cfg, zeros[:100], ref[:100])  # compile or load the caches outside the timing
    _timed_run(preset, None, u_open[:100], None)
    closed = open_ = np.inf
    for _ in range(repeats):
        closed = min(closed, _timed_run(preset, cfg, zeros, ref))
        open_ = min(open_, _timed_run(preset, None, u_open, None))
    return n_steps / closed, n_steps / open_


def run(preset: str = "knee", quick: bool = False) -> dict[str, Any]:
    cfg, gains = controller_for(preset)
    dt = JointModel(preset).dt_s
    pid_ns, saturated = pid_ns_per_step(100_000 if quick else 1_000_000, 3 if quick else 7)
    n_steps = 40_000 if quick else 400_000
    closed, open_ = loop_rates(preset, cfg, n_steps, 3)
    return {
        "preset": preset,
        "step_s": dt,
        "gains": gains,
        "pid_ns_per_step": pid_ns,
        "pid_saturated_fraction": saturated,
        "closed_loop_steps_per_s": closed,
        "closed_loop_realtime_factor": closed * dt,
        "open_loop_steps_per_s": open_,
        "controller_overhead_pct": (open_ / closed - 1.0) * 100.0,
        "model_steps": n_steps,
        "cores": os.cpu_count(),
        "record_every": RECORD_EVERY,
    }
