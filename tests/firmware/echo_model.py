"""The in-process model's answer to the excitation a joint reported tracking over a bus (its set-point echo).

A simulated joint paced to wall time on a loaded machine, or a host that skips ticks, does not receive the nominal
chirp: set-points are held through stalls and arrive in bursts. On a loop with friction (the knee's bandwidth is
3.5 Hz at 0.002 rad and 4.65 Hz at 0.0034 rad) the figure then depends on the distortion, hence on the load. A
test that compares a bus figure with the model therefore drives the model with the reference the joint echoed,
on the joint's own clock (``on_joint_grid``), and analyses both the same way: the verdict no longer depends on how
busy the machine was, only on the joint and the bus measurement.
"""

from __future__ import annotations

import numpy as np

from actuator.analysis.frequency import FrequencyResponse, bandwidth_hz, frequency_response
from actuator.analysis.tuning import default_controller
from actuator.control.config import ControllerConfig
from actuator.params import load_preset
from actuator.simulation import simulate
from firmware_iface.client.experiments import RATE_HZ, BusRun, on_joint_grid


def echoed_input(run: BusRun) -> np.ndarray:
    """The position set-point the joint tracked, on a uniform 1 kHz grid of its own clock (absolute, rad)."""
    assert run.echoed, "the joint sent no set-point echo: nothing to drive the model with"
    u, _ = on_joint_grid(run.echo_t_s, run.echo_reference, run.t_s, run.position_rad)
    return u


def model_response(run: BusRun, period_s: float, preset: str = "knee",
                   gains: ControllerConfig | None = None) -> FrequencyResponse:
    """The preset's position loop (default gains unless given), in-process, driven by the echoed set-points held
    1 ms each as the joint holds them; analysed as ``chirp_response`` analyses the bus run (first period dropped,
    one Welch segment per period)."""
    params = load_preset(preset)
    cfg = (gains or default_controller(params)).with_mode("position")
    u = echoed_input(run)
    start = float(u[0])
    per_ms = round(1.0 / (RATE_HZ * params.dt_s))  # model steps per set-point
    trace = simulate(params, duration_s=u.size * per_ms * params.dt_s, controller=cfg,
                     reference=np.repeat(u - start, per_ms), position_rad=start, record_every=per_ms)
    ref, y = trace.reference - start, trace.position_rad - start
    period = round(period_s * RATE_HZ)
    usable = (ref.size - period) // period * period
    return frequency_response(ref[period:period + usable], y[period:period + usable], RATE_HZ, nperseg=period)


def model_bandwidth_hz(run: BusRun, period_s: float, preset: str = "knee",
                       gains: ControllerConfig | None = None) -> float:
    return bandwidth_hz(model_response(run, period_s, preset, gains))
