"""The in-process executor: a protocol of ``experiments.protocols`` on one simulated joint's firmware
(``JointFirmware``) called directly: no bus, no host loop, no clock but the joint's.

Each 1 ms tick does what the bus executor's tick makes the joint do: on entering a segment the state and mode
changes as ``JointClient`` sends them (enable = mode then closed loop, a mode change, disable); the segment's
set-point in its mode's field (``JointFirmware.command``, the feedforwards 0, as ``JointClient.setpoint`` sends it); the
fixture's load and wrench (``Segment.wrench``) through the joint's F/T tool (as ``bus.SimFixture`` applies them),
the load let go at the first tick the joint's velocity exceeds ``Segment.release_rad_s``; then one millisecond of
the joint. The signals are the joint's own values at the start of each tick (what its telemetry would report,
without the bus's latency or the frames' quantisation: the position is the output encoder's reading, as a rig sees
it; the torque and the wrench through the joint's own Kt parameter and F/T compensation,
``virtual_joint.sensor_settings``), so the firmware driven here and the batch executor over the same joint give the
same rows to the last bit (tests/rig/test_population.py). Besides the protocols' signals it reports ``limits``: the
cascade's limiter bits (``actuator.control.cascade.LIMIT_NAMES``) at the end of each tick, which no telemetry
carries, and the model's true output angle and speed (``true_position_rad``, ``true_velocity_rad_s``), which no
encoder gives: the step's figures come with their true twins (``protocols.analyze_step``).

``step_test``, ``bode_test`` and ``identification_test`` are the step, bode and identify protocols on a fresh
simulated joint of a preset and gains: the CLI's ``step``/``bode`` without ``--node`` and the tuner's identification
and verification (``experiments.tune``) run on them.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from actuator.control import cascade as C
from actuator.control.config import ControllerConfig
from actuator.model import layout as L
from actuator.params import JointParams
from firmware_iface.defaults import STEP_AMPLITUDE, STEP_AT_S, STEP_DURATION_S
from firmware_iface.experiments.protocols import (
    PROTOCOLS,
    RATE_HZ,
    Outcome,
    Segment,
    Signals,
    bode_config,
    chirp_amplitude,
    identify_config,
    move_duration_s,
    released,
    step_config,
)
from firmware_iface.virtual_joint.firmware import JointFirmware

_SETPOINT = {"position": 0, "impedance": 0, "velocity": 1}  # the set-point's field (position, velocity, torque)


def _enter(fw: JointFirmware, mode: str | None, seg: Segment) -> None:
    if seg.mode is None:
        if mode is not None:
            fw.set_state("idle")
    elif mode is None:
        fw.set_mode(seg.mode)
        fw.set_state("closed_loop")
    elif seg.mode != mode:
        fw.set_mode(seg.mode)


def _load(fw: JointFirmware, load_nm: float, distance_m: float, wrench: tuple[float, ...] | None = None) -> None:
    """The fixture's torque about the axis (a force along y at the sensor) plus its wrench on the tool."""
    w = [float(v) for v in wrench] if wrench is not None else [0.0] * 6
    w[1] += load_nm / distance_m
    fw.model.inject("external_wrench", w)


def run_segments(fw: JointFirmware, segments: list[Segment]) -> Signals:
    """Run the protocol on ``fw``; the signals on the 1 kHz grid of the protocols module (see the module docstring)."""
    ends = np.cumsum([s.duration_s for s in segments])
    n = math.ceil(ends[-1] * RATE_HZ) + 1
    # output encoder, velocity, iq, winding, motor encoder, F/T (6), the true output angle and speed, F/T saturated,
    # housing
    rows = np.empty((n, 15))
    limits = np.zeros(n, dtype=np.int64)
    out: Signals = {"t_s": np.arange(n) / RATE_HZ, "segment": np.empty(n, dtype=np.int64),
                    "reference": np.full(n, np.nan), "load_nm": np.zeros(n)}
    distance_m = fw.params.ft_sensor.distance_from_axis_m
    kt_n = fw.sensor.kt_nm_per_a * fw.params.reducer.ratio  # the drive's Kt parameter, as its telemetry reports
    mode = fw.mode if fw.state == "closed_loop" else None
    current, q0, release, applied, wrench = -1, 0.0, None, 0.0, None
    x, k = fw.model.x, fw.model.k
    for tick in range(n):
        ts = tick / RATE_HZ
        i = min(int(np.searchsorted(ends, ts, side="right")), len(segments) - 1)
        seg = segments[i]
        if i != current:
            q0 = float(x[L.X_ENC_O])
            _enter(fw, mode, seg)
            mode, current = seg.mode, i
        t_in = ts - (ends[i] - seg.duration_s)
        load = seg.load_nm(t_in) if callable(seg.load_nm) else float(seg.load_nm)
        if release is None and seg.release_rad_s is not None and abs(k[C.K_VEL]) > seg.release_rad_s:
            release = (ts, load)
        if release is not None:
            load = float(released(release[1], ts - release[0]))
        if load != applied or seg.wrench != wrench:
            _load(fw, load, distance_m, seg.wrench)
            applied, wrench = load, seg.wrench
        rows[tick] = (x[L.X_ENC_O], k[C.K_VEL], x[L.X_IQ], x[L.X_TW], x[L.X_ENC_M], *x[L.X_FT_MEAS:L.X_FT_MEAS + 6],
                      x[L.X_THL], x[L.X_WL], x[L.X_FT_SAT], x[L.X_TH])
        out["segment"][tick], out["load_nm"][tick] = i, load
        if seg.mode is not None and seg.reference is not None:
            r = float(seg.reference(t_in, q0))
            setpoint = [0.0, 0.0, 0.0]
            setpoint[_SETPOINT.get(seg.mode, 2)] = r
            fw.command(seg.mode, *setpoint)
            out["reference"][tick] = r
        fw.advance(1.0 / RATE_HZ)
        limits[tick] = int(fw.model.k[C.K_LIMITS])
    if applied or wrench is not None:
        _load(fw, 0.0, distance_m)
    # the wrench as the joint reports it: through its F/T compensation (identity and no bias until one is written)
    rows[:, 5:11] = (rows[:, 5:11] - fw.sensor.bias) @ fw.sensor.compensation.T
    out.update(position_rad=rows[:, 0].copy(), velocity_rad_s=rows[:, 1].copy(), torque_nm=rows[:, 2] * kt_n,
               iq_a=rows[:, 2].copy(), winding_temp_c=rows[:, 3].copy(), motor_encoder_rad=rows[:, 4].copy(),
               output_encoder_rad=rows[:, 0].copy(), force_n=rows[:, 5:8].copy(), moment_nm=rows[:, 8:11].copy(),
               true_position_rad=rows[:, 11].copy(), true_velocity_rad_s=rows[:, 12].copy(),
               ft_saturated=rows[:, 13].copy(), housing_temp_c=rows[:, 14].copy(), limits=limits)
    return out


def run_protocol(fw: JointFirmware, name: str, cfg: dict) -> tuple[Outcome, Signals]:
    """The protocol ``name`` with configuration ``cfg`` on ``fw``: its outcome and signals."""
    proto = PROTOCOLS[name]
    segments = proto.segments(cfg)
    signals = run_segments(fw, segments)
    return proto.analyze(signals, segments, cfg), signals


def step_test(params: JointParams, gains: ControllerConfig, loop: str = "position",
              amplitude: float = STEP_AMPLITUDE, duration_s: float = STEP_DURATION_S, at_s: float = STEP_AT_S,
              seed: int = 0, start_rad: float | None = None) -> tuple[Outcome, Signals, dict]:
    """The step protocol (``protocols.step_config``) on a new simulated joint with ``gains``, at rest at 0 and by
    default stepped from there (where the joint is, as ``bus.step_test`` steps a joint on a bus), else first moved
    to ``start_rad``: the outcome, the signals and the configuration."""
    start = 0.0 if start_rad is None else start_rad  # the new joint is at rest at 0
    cfg = step_config(loop, amplitude, duration_s, at_s, home_rad=start, move_s=move_duration_s(start))
    return (*run_protocol(JointFirmware(params, gains, seed=seed), "step", cfg), cfg)


def bode_test(params: JointParams, gains: ControllerConfig, loop: str = "position", f0_hz: float = 1.0,
              f1_hz: float = 20.0, amplitude: float | None = None, seed: int = 0) -> tuple[Outcome, Signals, dict]:
    """The bode protocol (``protocols.bode_config``) on a new simulated joint with ``gains``, about 0; the chirp's
    amplitude defaults to ``chirp_amplitude`` of the joint."""
    amp = amplitude if amplitude is not None else chirp_amplitude(params, f1_hz, loop)
    cfg = bode_config(loop, f0_hz, f1_hz, amp)
    return (*run_protocol(JointFirmware(params, gains, seed=seed), "bode", cfg), cfg)


def identification_test(params: JointParams, gains: ControllerConfig, duration_s: float = 20.0,
                        seed: int = 0) -> Outcome:
    """The identify protocol on a new simulated joint with ``gains`` less their gravity feedforward (the fit
    estimates m g l: the drive's torque must be all the joint gets), at rest at 0."""
    cfg = identify_config(params, duration_s, seed)
    fw = JointFirmware(params, replace(gains, gravity_feedforward_nm=0.0), seed=seed)
    return run_protocol(fw, "identify", cfg)[0]
