"""Tests of a joint over its bus (real or simulated): the step test and the closed-loop Bode test of
``actuator.analysis.experiments``, run through ``JointClient`` by a 1 kHz host loop instead of in-process.

The set-points go out as commands, the response comes back as joint-state telemetry; its time axis is the bus
timestamps moved onto the host clock (see ``dejittered``); the metrics are the same functions the in-process
tests use. Where the profile has a set-point echo (``telemetry.setpoint_*``, the native ``setpoint_state``), it is
switched on for the test and the reference is the set-point the joint reported tracking, stamped on the joint's own
clock like the response: a host or a simulated joint delayed by a loaded machine then shifts both alike, and the
figures do not depend on it. Without an echo the step time is the send time of the first stepped command, so the
figures include the bus latency and the joint's command pick-up (below a millisecond here), as on hardware.
The joint is enabled in the loop's mode, moved to the test's
start and held still, then tested, and left idle at the end.

The Bode test works on time, not on sample counts: the references at their send times and the telemetry at its
times are put on a uniform grid at the loop's rate (``on_uniform_grid``: the reference held as the joint holds it,
the telemetry interpolated), so a tick the host loop skipped (an overrun: the loop skips ticks it starts more than a
period late) is a held sample on the grid instead of shifting every later sample off the chirp's periods.
``firmware_iface.rig.replay`` analyses recordings with the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actuator.analysis.frequency import FrequencyResponse, bandwidth_hz, frequency_response
from actuator.analysis.step import StepMetrics, step_metrics
from actuator.errors import ConfigError, TimeoutError
from firmware_iface.client.joint import JointClient
from firmware_iface.client.loop import HostLoop

BUS_LOOPS = ("position", "velocity", "impedance")
RATE_HZ = 1000.0
ECHO_RATE = "rate_setpoint_hz"  # the joint's set-point echo (telemetry.setpoint_*), where the profile has one
# the echo's rate is written and restored with this reply timeout: a joint answers in a millisecond, a simulated one
# in a process slowed by a loaded machine has been seen past the client's default 0.5 s; a longer wait only costs time
# when the joint is really gone, and a test must not fail on the bookkeeping around its measurement
ECHO_REPLY_S = 2.0
MOVE_RAD_S = 0.5  # speed of the move to the start position before a test
HOLD_S = 0.3  # still at the start before the test: the move's transient has died out (knee settles in 0.16 s)


@dataclass(frozen=True)
class BusRun:
    """What one host-loop experiment sent and received: command times and references, and telemetry rows."""

    command_t_s: np.ndarray
    reference: np.ndarray
    t_s: np.ndarray
    position_rad: np.ndarray
    velocity_rad_s: np.ndarray
    torque_nm: np.ndarray
    iq_a: np.ndarray
    loop: dict[str, float]
    start_s: float = math.nan  # the first command's send time (time.perf_counter): the times above count from it
    # the set-point the joint reported tracking (``telemetry.setpoint_*``, on the joint's clock moved onto the host's
    # as the telemetry is): empty when the profile has no set-point echo
    echo_t_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    echo_reference: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def echoed(self) -> bool:
        return self.echo_t_s.size > 1


def _sender(client: JointClient, mode: str) -> Any:
    """``JointClient.setpoint`` for ``mode``; in impedance mode with the joint's own gains, read once."""
    gains = (client.read_gain("impedance_kp"), client.read_gain("impedance_kd")) if mode == "impedance" else None
    return lambda r: client.setpoint(mode, r, impedance_gains=gains)


def run_reference(client: JointClient, mode: str, reference: Any, duration_s: float,
                  rate_hz: float = RATE_HZ) -> BusRun:
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
    return BusRun(cmd_t[keep] - t_start, refs[keep], t_rows - t_start, col["position_rad"], col["velocity_rad_s"],
                  col["torque_nm"], iq, figures, t_start, echo_t - t_start, echo_ref)


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


def dejittered(rows: np.ndarray, ring: Any) -> np.ndarray:
    """Receive times without the host's delivery jitter: the bus timestamps moved onto the host clock by the
    smallest observed delay (the frame that came through fastest), so bursts in delivery do not bend the
    time axis. Falls back to the receive times when the bus gives no timestamps."""
    rx, bus_t = rows[:, 0], rows[:, ring.index["bus_t_s"]]
    if len(rows) < 2 or not np.all(np.isfinite(bus_t)) or np.ptp(bus_t) <= 0:
        return rx
    return bus_t + float(np.min(rx - bus_t))


def _move_then(start: float, target: float, then: Any) -> tuple[Any, float]:
    """A reference that moves from ``start`` to ``target`` on a cosine ramp, holds ``HOLD_S``, then follows
    ``then(t)`` (t from the end of the hold); and the time that phase begins."""
    move_s = max(0.3, abs(target - start) / MOVE_RAD_S)
    t0 = move_s + HOLD_S

    def reference(t: float) -> float:
        if t < move_s:
            return start + (target - start) * 0.5 * (1.0 - math.cos(math.pi * t / move_s))
        return target if t < t0 else then(t - t0)
    return reference, t0


def bus_step_test(client: JointClient, loop: str = "position", amplitude: float = 0.1, duration_s: float = 1.0,
                  at_s: float = 0.05, start_rad: float = 0.0) -> tuple[StepMetrics, BusRun]:
    """A step of ``amplitude`` (rad, or rad/s for velocity) ``at_s`` into ``duration_s``. Position and impedance
    steps first move the joint to ``start_rad`` (where the in-process test starts) and hold it still."""
    if loop not in BUS_LOOPS:
        raise ConfigError(f"loop = {loop!r} is not allowed on a bus: choose one of {', '.join(BUS_LOOPS)}")
    if not (math.isfinite(amplitude) and amplitude != 0.0):
        raise ConfigError(f"amplitude = {amplitude!r} is not allowed: a finite, non-zero step")
    client.wait_alive()
    if loop == "velocity":
        reference, t0, start = (lambda t: amplitude if t >= at_s else 0.0), 0.0, 0.0
    else:
        here = client.latest().get("telemetry.position_rad", start_rad)
        start = start_rad
        reference, t0 = _move_then(here, start, lambda t: start + (amplitude if t >= at_s else 0.0))
    run = run_reference(client, loop, reference, t0 + duration_s)
    final = start + amplitude
    if run.echoed:  # the step as the joint took it, on its own clock: after the last echo away from the final value
        away = np.flatnonzero(np.abs(run.echo_reference - final) > abs(amplitude) / 2)
        if away.size == 0 or away[-1] + 1 >= run.echo_t_s.size:
            raise TimeoutError(f"node {client.node_id}: the joint never reported the step to {final:g} as its "
                               "set-point")
        step_t = run.echo_t_s[away[-1] + 1]
        t0 = step_t - at_s  # the test's start on the joint's clock, which a lagging joint puts behind the host's
    else:
        stepped = (run.command_t_s >= t0) & (run.reference == final)
        step_t = run.command_t_s[np.argmax(stepped)]
    t, keep = np.unique(run.t_s, return_index=True)
    window = t >= t0
    t, keep = t[window], keep[window]
    ref = np.where(t >= step_t, start + amplitude, start)
    y = (run.velocity_rad_s if loop == "velocity" else run.position_rad)[keep]
    metrics = step_metrics(t - t0, y, ref, torque=run.torque_nm[keep], current=run.iq_a[keep])
    return metrics, run


def bus_bode_test(client: JointClient, loop: str = "position", f0_hz: float = 1.0, f1_hz: float = 20.0,
                  amplitude: float = 0.002, periods: int = 4) -> tuple[FrequencyResponse, float, BusRun]:
    """Closed-loop response (commanded reference -> measured output) by a periodic chirp sent at 1 kHz:
    ``periods`` sweeps, the first discarded as transient; (response, -3 dB bandwidth, run).

    The host does not know the joint's inertia, so the amplitude is the caller's: keep J (2 pi f1)^2 A well
    under the torque limit (0.002 rad to 20 Hz needs about 45 N·m on the knee, a third of its limit).
    """
    if loop not in ("position", "velocity"):
        raise ConfigError(f"loop = {loop!r} is not allowed for a Bode test: choose position or velocity")
    if not 0 < f0_hz < f1_hz <= RATE_HZ / 4:
        raise ConfigError(f"f0_hz = {f0_hz!r}, f1_hz = {f1_hz!r}: need 0 < f0_hz < f1_hz <= {RATE_HZ / 4:g}")
    period_s = max(2.0 / f0_hz, 1.0)
    k = math.log(f1_hz / f0_hz) / period_s
    start = 0.0 if loop == "velocity" else client.latest().get("telemetry.position_rad", 0.0)

    def chirp(t: float) -> float:  # exponential sweep restarted every period: periodic, so Welch segments agree
        tau = t % period_s
        return start + amplitude * math.sin(2 * math.pi * f0_hz * (math.exp(k * tau) - 1.0) / k)

    run = run_reference(client, loop, chirp, periods * period_s)
    fr = chirp_response(run, period_s, periods, loop=loop, start=start)
    return fr, bandwidth_hz(fr), run


def on_uniform_grid(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray, fs_hz: float,
                    n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference (sent at ``t_ref``) and the output (reported at ``t_out``, in any order, repeats allowed) on ``n``
    samples of a uniform grid at ``fs_hz`` from the first send.

    The reference is held, as the joint holds a set-point: grid sample j is the last command sent before the middle
    of tick j (a command stands for the tick nearest its send; a late tick is sent after its deadline, never
    before), so through ticks the loop skipped it keeps the previous command, what the joint kept meanwhile (as
    ``firmware_iface.rig.bus_exec`` puts a protocol's set-points on its grid). Interpolating across a skip instead
    gives a reference the joint never had: with two 30 ms stalls in a 4-sweep chirp (tests/rig/test_bus_bode.py)
    that moved a first-order corner by 6 % at 4 Hz and 14 % at 8 Hz, where the held reference moves it by under
    0.1 %. The output, a sampled continuous response, is interpolated linearly. Past their last sample both keep
    their last value.
    """
    grid = t_ref[0] + np.arange(n) / fs_hz
    held = np.searchsorted(t_ref, grid + 0.5 / fs_hz, side="right") - 1
    t, keep = np.unique(t_out, return_index=True)
    return ref[np.clip(held, 0, None)], np.interp(grid, t, out[keep])


def periodic_response(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray, fs_hz: float,
                      period: int, periods: int) -> FrequencyResponse:
    """Response to a periodic excitation of ``period`` grid samples sent ``periods`` times: both signals on the
    uniform grid (``on_uniform_grid``), the first period dropped as the transient, one Welch segment per period (a
    last period cut short by skipped final ticks is completed with the last values rather than dropped)."""
    u, y = on_uniform_grid(t_ref, ref, t_out, out, fs_hz, periods * period)
    return frequency_response(u[period:], y[period:], fs_hz, nperseg=period)


def chirp_response(run: BusRun, period_s: float, periods: int, *, loop: str = "position",
                   start: float = 0.0) -> FrequencyResponse:
    """The analysis of ``bus_bode_test``: reference -> position (or velocity) of a chirp of ``period_s`` sent
    ``periods`` times about ``start``. The grid is at the loop's nominal rate: its ticks are scheduled on the same
    clock the send times are read from (``time.perf_counter``), at absolute deadlines."""
    y = run.velocity_rad_s if loop == "velocity" else run.position_rad
    offset = 0.0 if loop == "velocity" else start
    period = round(period_s * RATE_HZ)
    if run.echoed:
        return _joint_time_response(run.echo_t_s, run.echo_reference - offset, run.t_s, y - offset, period)
    return periodic_response(run.command_t_s, run.reference - offset, run.t_s, y - offset, RATE_HZ, period, periods)


def on_joint_grid(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray,
                  out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference the joint reported tracking (its echo, held as the joint holds it) and the output, both stamped by
    the joint, on a uniform grid of the joint's own time at the loop's rate over the span both cover. This is the
    excitation the joint's loop actually received: a joint or host delayed by a loaded machine distorts it (held
    set-points, bursts), and a check of the measured response takes this, not the nominal signal, as the input."""
    t, keep = np.unique(t_out, return_index=True)
    start, end = max(t_ref[0], t[0]), min(t_ref[-1], t[-1])
    grid = start + np.arange(int((end - start) * RATE_HZ)) / RATE_HZ
    held = np.clip(np.searchsorted(t_ref, grid + 0.5 / RATE_HZ, side="right") - 1, 0, None)
    return ref[held], np.interp(grid, t, out[keep])


def _joint_time_response(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray,
                         period: int) -> FrequencyResponse:
    """Reference (the joint's echo) -> output, both stamped by the joint at the same instants: on a uniform grid of
    the joint's own time over what it ran (``on_joint_grid``), the first period dropped as the transient. A joint that
    ran slower than the host's clock (a simulated joint on a loaded machine) saw the chirp stretched, and both signals
    show it: the ratio of their spectra is still the loop's response, where the host's send times would misplace the
    reference."""
    u, y = on_joint_grid(t_ref, ref, t_out, out)
    usable = (u.size - period) // period * period
    if usable < period:
        raise ConfigError(f"the joint reported {u.size / RATE_HZ:.2f} s of the test: too little for one period of "
                          f"{period / RATE_HZ:g} s after the first")
    return frequency_response(u[period:period + usable], y[period:period + usable], RATE_HZ, nperseg=period)
