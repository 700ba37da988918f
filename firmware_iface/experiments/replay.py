"""The replay executor: a step or Bode test re-analysed from a raw recording, the frames alone.

This module owns ``node_series`` (one node's decoded signals as arrays) and the two analyses, which take the
position commands of a node as the reference and its ``joint_state`` positions as the output (through the profile's
semantic names ``command.position_rad`` and ``telemetry.position_rad``), and report what the live tests report: the
step's figures are ``actuator.analysis.step.step_figures``, the Bode test's grid and periodic estimate are the bus
executor's (``experiments.grid.on_uniform_grid``, ``periodic_response``):

* ``analyze_step``: the step is the largest jump between consecutive commands. The window runs from ``pre_s``
  before it (at most back to the previous change of the command) to one command period after the last command of
  the constant level after it; the reference is that step sampled at the telemetry times. Rise time and overshoot
  come from the same telemetry samples the live test used, so they agree with it (its time axis is the same bus
  timestamps shifted by a constant); the step time may land one telemetry sample apart, because the recording stamps
  a command after its send and the live test before.
* ``analyze_bode`` (``bode_response``): reference and output are put on a uniform grid at the command rate (fitted
  to the send times; the reference held through ticks the host loop skipped, as the joint held it, the output
  interpolated), so skipped ticks do not shift the later samples; the chirp's period
  is the peak of the reference's autocorrelation (the live test repeats the sweep ``periods`` times). As in the live
  test the first period is dropped as the transient and each Welch segment is one period: the grid and the periodic
  estimate are the bus executor's own functions (``grid.on_uniform_grid``, ``periodic_response``); the live test
  knows its rate and period, the replay finds them. Without a clear period the whole record is used with the
  default segment length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import can
import numpy as np

from actuator.analysis.frequency import FrequencyResponse, bandwidth_hz, frequency_response
from actuator.analysis.step import StepMetrics, step_figures, step_metrics
from actuator.errors import ConfigError, ProtocolError
from firmware_iface.experiments.grid import on_uniform_grid, periodic_response
from firmware_iface.protocol.profile import Profile

MIN_PERIOD_S = 0.2  # shortest chirp period the autocorrelation looks for
PERIODIC = 0.9  # normalised autocorrelation a lag needs to count as the chirp's period


@dataclass(frozen=True)
class Series:
    """One message of one node: frame timestamps and each signal's raw-number values."""

    t_s: np.ndarray
    signals: dict[str, np.ndarray]


def node_series(frames: list[can.Message], profile: Profile, node_id: int) -> dict[str, Series]:
    """Message name -> its decoded frames of ``node_id`` (value tables as numbers); undecodable frames skipped."""
    rows: dict[str, list[tuple[float, dict]]] = {}
    for msg in frames:
        if msg.is_error_frame or profile.node_of(msg) != node_id:
            continue
        try:
            d = profile.decode(msg, choices=False)
        except ProtocolError:
            continue
        rows.setdefault(d.name, []).append((msg.timestamp, d.signals))
    return {name: Series(np.array([t for t, _ in r]), {s: np.array([v[s] for _, v in r], dtype=float)
                                                         for s in r[0][1]})
            for name, r in rows.items()}


def _pick(series: dict[str, Series], profile: Profile, semantic: str, role: str, source: str,
          node_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(t, values) of a semantic signal of the node, or ConfigError naming the file, the node and what is missing."""
    message, signal = profile.semantic(semantic)
    found = series.get(message)
    if found is None or len(found.t_s) < 2:
        have = ", ".join(f"{k} ({len(v.t_s)})" for k, v in sorted(series.items())) or "no frames at all"
        raise ConfigError(f"{source}: node {node_id} has {'no' if found is None else 'too few'} {message} frames "
                          f"({role}: {semantic}); the recording has for that node: {have}")
    return found.t_s, found.signals[signal]


def _step_window(tc: np.ndarray, rc: np.ndarray, pre_s: float, source: str, node_id: int
                 ) -> tuple[float, float, float, float, float]:
    """(window start, step time, window end, initial, final reference) of the largest command jump."""
    jumps = np.abs(np.diff(rc))
    k = int(np.argmax(jumps))
    if jumps[k] == 0.0:
        raise ConfigError(f"{source}: node {node_id}'s position commands never change: there is no step")
    y0, r = float(rc[k]), float(rc[k + 1])
    before = k  # back to the previous change of the command (the hold before the step)
    while before > 0 and rc[before - 1] == y0:
        before -= 1
    after = k + 1  # forward to the last command at the new level
    while after + 1 < len(rc) and rc[after + 1] == r:
        after += 1
    period = float(np.median(np.diff(tc))) if len(tc) > 1 else 0.0
    step_t = float(tc[k + 1])
    return max(float(tc[before]), step_t - pre_s), step_t, float(tc[after]) + period, y0, r


def _echoed(series: dict[str, Series], profile: Profile, tc: np.ndarray, rc: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The set-point the joint echoed while it was commanded (``telemetry.setpoint_position_rad``, stamped by the
    joint like the output), as the live bus step test takes it; the commands as sent where the recording has none."""
    semantic = "telemetry.setpoint_position_rad"
    info = profile.sidecar.semantic.get(semantic)
    found = series.get(info.message) if info is not None else None
    if found is None or len(found.t_s) < 2:
        return tc, rc
    t, r = found.t_s, found.signals[info.signal]
    keep = t <= tc[-1] + 0.002  # after the last command the joint holds its idle set-point, not the test's
    return (t[keep], r[keep]) if keep.sum() >= 2 else (tc, rc)


def analyze_step(frames: list[can.Message], profile: Profile, node_id: int, *, source: str,
                 pre_s: float = 0.05) -> StepMetrics:
    """Step metrics of node ``node_id``'s position step in a recording (see the module docstring)."""
    if not (math.isfinite(pre_s) and pre_s > 0):
        raise ConfigError(f"pre_s = {pre_s!r}: must be a positive number of seconds")
    series = node_series(frames, profile, node_id)
    tc, rc = _pick(series, profile, "command.position_rad", "the reference", source, node_id)
    tc, rc = _echoed(series, profile, tc, rc)
    ty, y = _pick(series, profile, "telemetry.position_rad", "the output", source, node_id)
    start, step_t, end, y0, r = _step_window(tc, rc, pre_s, source, node_id)
    t, keep = np.unique(ty, return_index=True)
    inside = (t >= start) & (t <= end)
    t, keep = t[inside], keep[inside]
    output = profile.semantic("telemetry.position_rad")[0]
    if not np.any(t >= step_t) or not np.any(t < step_t):
        raise ConfigError(f"{source}: node {node_id} has no {output} frames on both sides of its step at "
                          f"{step_t - float(tc[0]):.3f} s after its first command")
    ref = np.where(t >= step_t, r, y0)
    torque = _on_output(series, profile, "telemetry.torque_nm", output, keep, t)
    current = _on_output(series, profile, "telemetry.iq_a", output, keep, t)
    return step_metrics(t - start, y[keep], ref, torque=torque, current=current)


def _on_output(series: dict[str, Series], profile: Profile, semantic: str, output: str, keep: np.ndarray,
               t: np.ndarray) -> np.ndarray | None:
    """A semantic signal on the output's samples: the same rows when it travels in the output's message (``keep``),
    else interpolated at the output's times ``t``; None when the recording does not have it."""
    message, signal = profile.semantic(semantic)
    found = series.get(message)
    if found is None or len(found.t_s) < 2:
        return None
    if message == output:
        return found.signals[signal][keep]
    ts, order = np.unique(found.t_s, return_index=True)
    return np.interp(t, ts, found.signals[signal][order])


def command_rate(tc: np.ndarray) -> float:
    """The rate of a command stream, Hz: the slope of the send times over their tick numbers (skipped ticks
    counted). The median interval alone is off by up to 2.4e-4 (epoch timestamps come in ~0.24 us steps), enough
    to misnumber ticks after a few thousand; so the slope is refined over a window growing fourfold, each one short
    enough for the previous estimate to number its ticks right."""
    x = tc - tc[0]
    period = float(np.median(np.diff(tc)))
    m = 64
    while True:
        ticks = np.round(x[:m] / period)
        if ticks[-1] > 0:
            period = float(np.polyfit(ticks, x[:m], 1)[0])
        if m >= len(x):
            return 1.0 / period
        m *= 4


def chirp_period(u: np.ndarray, min_lag: int) -> int | None:
    """Samples in one period of a periodic excitation: the lag in [``min_lag``, half the record] where its
    autocorrelation (normalised, each lag over its own overlap) peaks, if that peak reaches ``PERIODIC``; else None."""
    x = u - np.mean(u)
    n = len(x)
    if n // 2 <= min_lag:
        return None
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if acf[0] <= 0:
        return None
    acf = acf / acf[0] * n / (n - np.arange(n))
    lag = min_lag + int(np.argmax(acf[min_lag: n // 2]))
    return lag if acf[lag] >= PERIODIC else None


def bode_response(frames: list[can.Message], profile: Profile, node_id: int, *, source: str
                  ) -> tuple[FrequencyResponse, dict[str, Any]]:
    """Closed-loop response (position command -> joint_state position) of node ``node_id`` from a recording of a
    chirp, and how it was estimated (rate, period, samples); see the module docstring."""
    series = node_series(frames, profile, node_id)
    tc, rc = _pick(series, profile, "command.position_rad", "the reference", source, node_id)
    ty, y = _pick(series, profile, "telemetry.position_rad", "the output", source, node_id)
    if np.ptp(rc) == 0.0:
        raise ConfigError(f"{source}: node {node_id}'s position commands never change: no excitation to analyse")
    # a uniform grid at the command rate: ticks the host loop skipped would otherwise shift every later sample
    fs = command_rate(tc)
    u, yg = on_uniform_grid(tc, rc, ty, y, fs, int((tc[-1] - tc[0]) * fs) + 1)
    seg = chirp_period(u, round(MIN_PERIOD_S * fs))
    if seg is not None and round(len(u) / seg) >= 2:
        periods = round(len(u) / seg)
        fr = periodic_response(tc, rc, ty, y, fs, seg, periods)
        return fr, {"fs_hz": fs, "period_s": seg / fs, "samples": (periods - 1) * seg}
    fr = frequency_response(u, yg, fs)
    return fr, {"fs_hz": fs, "period_s": None, "samples": len(u)}


def analyze_bode(frames: list[can.Message], profile: Profile, node_id: int, *, source: str) -> dict[str, Any]:
    """The -3 dB bandwidth of ``bode_response`` and the range of the estimate."""
    fr, info = bode_response(frames, profile, node_id, source=source)
    return {"bandwidth_hz": bandwidth_hz(fr), **info, "f_min_hz": float(fr.freq_hz[0]),
            "f_max_hz": float(fr.freq_hz[-1])}


def step_report(m: StepMetrics) -> dict[str, Any]:
    """A replayed step's figures, under the names every step test reports (``step_figures``), and where the step was
    found in the recording (its time from the window's start, levels and size)."""
    return {**step_figures(m, "position"), "step_time_s": m.step_time_s, "initial_value": m.initial_value,
            "final_reference": m.final_reference, "step_size": m.step_size}
