"""The live executor: a protocol of ``experiments.protocols`` in one control mode (a step, a Bode chirp), streamed to
a joint over its bus (real or simulated) by a 1 kHz host loop, with the signals put on the joint's own clock. The
GUI's tests, the CLI's ``--node`` tests and ``experiments.tune`` run on it; the rig's multi-mode steps with a
fixture run on ``experiments.bus``. Both are judged by the protocol's own ``analyze``.

The set-points go out as commands, the response comes back as telemetry. Where the profile has a set-point echo
(``telemetry.setpoint_*``, the native ``setpoint_state``), it is switched on for the test and the reference is the
set-point the joint reported tracking, stamped on the joint's own clock like the response, and both are put on a
uniform 1 kHz grid of that clock (``signals_of``): a host or a simulated joint delayed by a loaded machine then
shifts both alike, and the figures do not depend on it. Without an echo the reference is what was sent, held through
ticks the host loop skipped as the joint held it, on a uniform grid of the host's send times (``on_uniform_grid``),
so the figures include the bus latency and the joint's command pick-up, as on hardware. The joint is enabled in the
protocol's mode, and left idle at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actuator.analysis.frequency import FrequencyResponse, frequency_response
from actuator.errors import ConfigError
from firmware_iface.client.joint import JointClient
from firmware_iface.client.loop import HostLoop
from firmware_iface.experiments.bus import ECHO_RATE, dejittered
from firmware_iface.experiments.protocols import BODE_LOOPS, PROTOCOLS, RATE_HZ, STEP_LOOPS, Outcome, Segment, Signals

# the echo's rate is written and restored with this reply timeout: a joint answers in a millisecond, a simulated one
# in a process slowed by a loaded machine has been seen past the client's default 0.5 s; a longer wait only costs time
# when the joint is really gone, and a test must not fail on the bookkeeping around its measurement
ECHO_REPLY_S = 2.0
MOVE_RAD_S = 0.5  # speed of the move to a test's start position


@dataclass(frozen=True)
class LiveRun:
    """What one host-loop experiment sent and received: command times and references, and telemetry rows."""

    command_t_s: np.ndarray
    reference: np.ndarray
    t_s: np.ndarray
    position_rad: np.ndarray
    velocity_rad_s: np.ndarray
    torque_nm: np.ndarray
    iq_a: np.ndarray
    loop: dict[str, float]
    start_s: float = math.nan  # the first command's send time on the client's clock: the times above count from it
    # the set-point the joint reported tracking (``telemetry.setpoint_*``, on the joint's clock moved onto the host's
    # as the telemetry is): empty when the profile has no set-point echo
    echo_t_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    echo_reference: np.ndarray = field(default_factory=lambda: np.empty(0))
    # when each telemetry row (``t_s``) arrived, on the host's clock: maps the host's schedule onto the joint's clock
    rx_t_s: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def echoed(self) -> bool:
        return self.echo_t_s.size > 1


def move_s(client: JointClient, home_rad: float) -> float:
    """How long a test's move to ``home_rad`` takes from where the joint is (at most ``MOVE_RAD_S``)."""
    here = client.latest().get("telemetry.position_rad", home_rad)
    return max(0.3, abs(home_rad - here) / MOVE_RAD_S)


def run_segments(client: JointClient, segments: list[Segment]) -> tuple[Signals, LiveRun]:
    """Stream the protocol's set-points to ``client``'s joint in its one mode; the signals on the 1 kHz grid of the
    joint's clock (see the module docstring), and the run as sent and received."""
    modes = {seg.mode for seg in segments}
    if len(modes) != 1 or None in modes or any(seg.reference is None or seg.load_nm != 0.0 for seg in segments):
        raise ConfigError("the live executor streams one control mode without a fixture: run this protocol on a rig")
    mode = segments[0].mode
    ends = np.cumsum([seg.duration_s for seg in segments])
    run = run_reference(client, mode, _reference_of(client, segments, ends), float(ends[-1]))
    return signals_of(run, ends), run


def _reference_of(client: JointClient, segments: list[Segment], ends: np.ndarray) -> Callable[[float], float]:
    """The segments' set-points as one function of the time from the first tick; each segment's reference gets the
    joint's position at its start, as the bus executor gives it."""
    state = {"segment": -1, "q0": 0.0}

    def reference(t: float) -> float:
        i = min(int(np.searchsorted(ends, t, side="right")), len(segments) - 1)
        if i != state["segment"]:
            state["segment"], state["q0"] = i, client.latest().get("telemetry.position_rad", 0.0)
        seg = segments[i]
        return float(seg.reference(t - (ends[i] - seg.duration_s), state["q0"]))
    return reference


def signals_of(run: LiveRun, ends: np.ndarray) -> Signals:
    """The run on a uniform 1 kHz grid (joint's clock with an echo, else the host's sends), as protocol Signals: the
    reference held as the joint holds it, the telemetry interpolated."""
    t, keep = np.unique(run.t_s, return_index=True)
    if run.echoed:  # both stamped by the joint: on a grid of its clock over the span both cover
        t_ref, ref = run.echo_t_s, run.echo_reference
        start, end = max(t_ref[0], t[0]), min(t_ref[-1], t[-1])
        grid = start + np.arange(int((end - start) * RATE_HZ)) / RATE_HZ
        t_grid = grid - t_ref[0]  # the echo's first sample is the first tick's set-point
        segment = np.searchsorted(_on_joint_clock(run, ends), grid, side="right")
    else:
        t_ref, ref = run.command_t_s, run.reference
        grid = t_ref[0] + np.arange(int(t_ref[-1] * RATE_HZ) + 1) / RATE_HZ
        t_grid = grid - t_ref[0]
        segment = np.searchsorted(ends, t_grid, side="right")
    outputs = {"position_rad": run.position_rad, "velocity_rad_s": run.velocity_rad_s, "torque_nm": run.torque_nm,
               "iq_a": run.iq_a}
    signals: Signals = {name: np.interp(grid, t, v[keep]) for name, v in outputs.items()}
    signals.update(reference=held_at(t_ref, ref, grid, RATE_HZ), t_s=t_grid, segment=np.minimum(segment, ends.size - 1),
                   load_nm=np.zeros(t_grid.size))
    return signals


def _on_joint_clock(run: LiveRun, host_t: np.ndarray) -> np.ndarray:
    """Times of the host's schedule (from the first command) on the joint's clock as ``run.t_s`` places it: the joint
    time of the telemetry that arrived then. A command sent at host time h takes effect when the joint reads it, at
    the joint time whose frames reach the host at about h; a simulated joint that fell behind a loaded machine's wall
    clock (and caught up by a jump) does so later on its own clock than the host's schedule says."""
    if run.rx_t_s.size < 2:
        return host_t + run.echo_t_s[0]
    order = np.argsort(run.rx_t_s, kind="stable")
    return np.interp(host_t, run.rx_t_s[order], run.t_s[order])


def _sender(client: JointClient, mode: str) -> Any:
    """``JointClient.setpoint`` for ``mode``; in impedance mode with the joint's own gains, read once."""
    gains = (client.read_gain("impedance_kp"), client.read_gain("impedance_kd")) if mode == "impedance" else None
    return lambda r: client.setpoint(mode, r, impedance_gains=gains)


def run_reference(client: JointClient, mode: str, reference: Any, duration_s: float,
                  rate_hz: float = RATE_HZ) -> LiveRun:
    """Enable ``mode``, send ``reference(t_s)`` at ``rate_hz`` for ``duration_s``, disable; what came back."""
    send = _sender(client, mode)
    client.wait_alive()
    echo_rate = _echo_on(client, rate_hz)
    client.enable(mode)
    n = round(duration_s * rate_hz) + 1
    cmd_t, refs = np.full(n, np.nan), np.full(n, np.nan)
    t_start = None

    def tick(k: int, t: float) -> None:
        nonlocal t_start
        if k >= n:
            return
        r = float(reference(t))
        cmd_t[k] = send(r)
        refs[k] = r
        if t_start is None:
            t_start = cmd_t[k]

    try:
        figures = HostLoop(rate_hz, tick, clock=client.clock).run(duration_s)
    finally:
        t_disable = client.clock.now()
        client.disable()
        if echo_rate is not None:
            client.write_param(ECHO_RATE, echo_rate, timeout_s=ECHO_REPLY_S)
    keep = np.isfinite(cmd_t)
    ring = client.rings[client.state_message]
    rows = ring.since(t_start)
    t_rows = dejittered(rows, ring)
    echo_t, echo_ref, t_rows = _echo(client, mode, (t_start, t_disable), rows, ring, t_rows)
    motor = client.rings[client.profile.semantic("telemetry.iq_a")[0]]
    m_rows = motor.since(t_start)
    iq_col = m_rows[:, motor.index[client.profile.semantic("telemetry.iq_a")[1]]]
    iq = np.interp(t_rows, dejittered(m_rows, motor), iq_col) if len(m_rows) else np.full(len(t_rows), np.nan)
    col = {s: rows[:, ring.index[client.profile.semantic(f"telemetry.{s}")[1]]]
           for s in ("position_rad", "velocity_rad_s", "torque_nm")}
    return LiveRun(cmd_t[keep] - t_start, refs[keep], t_rows - t_start, col["position_rad"], col["velocity_rad_s"],
                  col["torque_nm"], iq, figures, t_start, echo_t - t_start, echo_ref, rows[:, 0] - t_start)


def _echo_on(client: JointClient, rate_hz: float) -> float | None:
    """Switch the joint's set-point echo on at the loop's rate where the profile has one; the rate to restore."""
    sidecar = client.profile.sidecar
    if ECHO_RATE not in sidecar.params or "telemetry.setpoint_position_rad" not in sidecar.semantic:
        return None
    before = client.read_param(ECHO_RATE, timeout_s=ECHO_REPLY_S)
    client.write_param(ECHO_RATE, rate_hz, timeout_s=ECHO_REPLY_S)
    return before


def _echo(client: JointClient, mode: str, span: tuple[float, float], state_rows: np.ndarray, state_ring: Any,
          t_state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, values) of the set-point the joint reported for ``mode``, and the joint state's times, on the joint's
    own clock (``telemetry.joint_time_ms``) placed where the first echo arrived on the host's: the frames' stamps
    follow the host's clock (a simulated joint that falls behind a loaded machine re-aligns its stamps, a jump its
    own clock does not make), so both the reference and the response are timed by the joint. No echo: empty
    arrays and ``t_state`` as it was."""
    semantic = "telemetry.setpoint_velocity_rad_s" if mode == "velocity" else "telemetry.setpoint_position_rad"
    sc = client.profile.sidecar.semantic
    if semantic not in sc or "telemetry.joint_time_ms" not in sc or len(state_rows) < 2:
        return np.empty(0), np.empty(0), t_state
    message, signal = client.profile.semantic(semantic)
    clock = client.profile.semantic("telemetry.joint_time_ms")
    ring = client.rings.get(message)
    # the echoes received before the disable went out: after it the joint's set-point is its idle one, not the test's
    rows = ring.window(*span) if ring is not None else np.empty((0, 0))
    if len(rows) < 2 or clock[0] != message:
        return np.empty(0), np.empty(0), t_state
    order = np.argsort(rows[:, ring.index["bus_t_s"]], kind="stable")
    rows = rows[order]
    echo_bus = rows[:, ring.index["bus_t_s"]]
    joint_s = np.unwrap(rows[:, ring.index[clock[1]]], period=65536) / 1e3
    bus_t = state_rows[:, state_ring.index["bus_t_s"]]
    offset = float(np.min(state_rows[:, 0] - bus_t))
    origin = echo_bus[0] + offset - joint_s[0]  # the joint's clock placed at the first echo's host time
    # the state frame of a joint instant carries the same stamp as its echo: it takes that echo's joint time
    j = np.clip(np.searchsorted(echo_bus, bus_t), 0, echo_bus.size - 1)
    exact = echo_bus[j] == bus_t
    state_joint = np.where(exact, joint_s[j], np.interp(bus_t, echo_bus, joint_s))
    return joint_s + origin, rows[:, ring.index[signal]], state_joint + origin


def step_test(client: JointClient, loop: str = "position", amplitude: float = 0.1, duration_s: float = 1.0,
              at_s: float = 0.05, start_rad: float | None = None) -> tuple[Outcome, Signals, LiveRun, dict]:
    """The ``step`` protocol of ``amplitude`` (rad, or rad/s for velocity) ``at_s`` into ``duration_s``: position and
    impedance steps first move the joint to ``start_rad`` (default: where it is) and hold it still. The outcome
    (``step_figures``), the signals, the run and the protocol's configuration."""
    if loop not in STEP_LOOPS:
        raise ConfigError(f"loop = {loop!r} is not allowed on a bus: choose one of {', '.join(STEP_LOOPS)}")
    if not (math.isfinite(amplitude) and amplitude != 0.0):
        raise ConfigError(f"amplitude = {amplitude!r} is not allowed: a finite, non-zero step")
    client.wait_alive()
    cfg: dict[str, Any] = {"loop": loop, "pre_s": at_s, "duration_s": duration_s}
    if loop == "velocity":
        cfg["amplitude_rad_s"] = amplitude
    else:
        start = client.latest().get("telemetry.position_rad", 0.0) if start_rad is None else start_rad
        cfg.update(home_rad=start, amplitude_rad=amplitude, move_s=move_s(client, start))
    return _run(client, "step", cfg)


def bode_test(client: JointClient, loop: str = "position", f0_hz: float = 1.0, f1_hz: float = 20.0,
              amplitude: float = 0.002, periods: int = 4) -> tuple[Outcome, Signals, LiveRun, dict]:
    """The ``bode`` protocol about where the joint is: ``periods`` sweeps of the periodic chirp, the first dropped.
    The host does not know the joint's inertia, so the amplitude is the caller's: keep J (2 pi f1)^2 A well under the
    torque limit (0.002 rad to 20 Hz needs about 45 N·m on the knee, a third of its limit)."""
    if loop not in BODE_LOOPS:
        raise ConfigError(f"loop = {loop!r} is not allowed for a Bode test: choose {' or '.join(BODE_LOOPS)}")
    if not 0 < f0_hz < f1_hz <= RATE_HZ / 4:
        raise ConfigError(f"f0_hz = {f0_hz!r}, f1_hz = {f1_hz!r}: need 0 < f0_hz < f1_hz <= {RATE_HZ / 4:g}")
    client.wait_alive()
    cfg: dict[str, Any] = {"loop": loop, "f0_hz": f0_hz, "f1_hz": f1_hz, "amplitude_rad": amplitude,
                           "periods": periods}
    if loop == "position":
        cfg.update(home_rad=client.latest().get("telemetry.position_rad", 0.0), move_s=0.3)
    return _run(client, "bode", cfg)


def _run(client: JointClient, name: str, cfg: dict) -> tuple[Outcome, Signals, LiveRun, dict]:
    proto = PROTOCOLS[name]
    segments = proto.segments(cfg)
    signals, run = run_segments(client, segments)
    return proto.analyze(signals, segments, cfg), signals, run, cfg


def on_uniform_grid(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray, fs_hz: float,
                    n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference (sent at ``t_ref``) and the output (reported at ``t_out``, in any order, repeats allowed) on ``n``
    samples of a uniform grid at ``fs_hz`` from the first send.

    The reference is held, as the joint holds a set-point: grid sample j is the last command sent before the middle
    of tick j (a command stands for the tick nearest its send; a late tick is sent after its deadline, never
    before), so through ticks the loop skipped it keeps the previous command, what the joint kept meanwhile (as
    ``experiments.bus._uniform`` puts a protocol's set-points on its grid). Interpolating across a skip instead
    gives a reference the joint never had: with two 30 ms stalls in a 4-sweep chirp (tests/rig/test_bus_bode.py)
    that moved a first-order corner by 6 % at 4 Hz and 14 % at 8 Hz, where the held reference moves it by under
    0.1 %. The output, a sampled continuous response, is interpolated linearly. Past their last sample both keep
    their last value.
    """
    grid = t_ref[0] + np.arange(n) / fs_hz
    t, keep = np.unique(t_out, return_index=True)
    return held_at(t_ref, ref, grid, fs_hz), np.interp(grid, t, out[keep])


def held_at(t_ref: np.ndarray, ref: np.ndarray, grid: np.ndarray, fs_hz: float) -> np.ndarray:
    """The set-point ``ref`` (sent or reported at ``t_ref``) as the joint holds it at each time of ``grid`` (ticks at
    ``fs_hz``): the last one before the middle of the tick; before the first, the first."""
    return ref[np.clip(np.searchsorted(t_ref, grid + 0.5 / fs_hz, side="right") - 1, 0, None)]


def periodic_response(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray, fs_hz: float,
                      period: int, periods: int) -> FrequencyResponse:
    """Response to a periodic excitation of ``period`` grid samples sent ``periods`` times: both signals on the
    uniform grid (``on_uniform_grid``), the first period dropped as the transient, one Welch segment per period (a
    last period cut short by skipped final ticks is completed with the last values rather than dropped)."""
    u, y = on_uniform_grid(t_ref, ref, t_out, out, fs_hz, periods * period)
    return frequency_response(u[period:], y[period:], fs_hz, nperseg=period)
