"""The in-process model's answer to the excitation a joint reported tracking over a bus (its set-point echo).

A simulated joint paced to wall time on a loaded machine, or a host that skips ticks, does not receive the nominal
chirp: set-points are held through stalls and arrive in bursts. On a loop with friction (the knee's bandwidth is
3.5 Hz at 0.002 rad and 4.65 Hz at 0.0034 rad) the figure then depends on the distortion, hence on the load. A
test that compares a bus figure with the model therefore drives the model with the reference the joint echoed, on
the joint's own clock (the bus executor's signals: ``experiments.grid.on_grid``), and analyses both with the
bode protocol's own analysis: the verdict no longer depends on how busy the machine was, only on the joint and the
bus measurement.
"""

from __future__ import annotations

import numpy as np

from actuator.analysis.tuning import default_controller
from actuator.control.config import ControllerConfig
from actuator.params import load_preset
from actuator.simulation import simulate
from firmware_iface.experiments.protocols import PROTOCOLS, RATE_HZ, Signals


def model_signals(signals: Signals, preset: str = "knee", gains: ControllerConfig | None = None) -> Signals:
    """The signals with the position of the preset's position loop (default gains unless given), in-process, driven
    by the set-points the joint reported (``signals["reference"]``, one a millisecond, held 1 ms as the joint holds
    them), started where the joint was."""
    params = load_preset(preset)
    cfg = (gains or default_controller(params)).with_mode("position")
    u = signals["reference"]
    start = float(u[0])
    per_ms = round(1.0 / (RATE_HZ * params.dt_s))  # model steps per set-point
    trace = simulate(params, duration_s=u.size * per_ms * params.dt_s, controller=cfg,
                     reference=np.repeat(u - start, per_ms), position_rad=start, record_every=per_ms)
    return {**signals, "position_rad": trace.position_rad[:u.size]}


def model_bandwidth_hz(signals: Signals, cfg: dict, preset: str = "knee",
                       gains: ControllerConfig | None = None) -> float:
    """The bode protocol's bandwidth of the model driven as the joint was (``cfg``: the protocol's configuration)."""
    bode = PROTOCOLS["bode"]
    return bode.analyze(model_signals(signals, preset, gains), bode.segments(cfg), cfg).figures["bandwidth_hz"]
