"""A bus run put on the analyses' uniform 1 kHz grid: ``BusRun`` (what the bus executor sent and received) and
``on_grid`` (that run as protocol Signals), with the grid helpers the replay shares (``on_uniform_grid``,
``periodic_response``, ``held_at``, ``dejittered``).

``on_grid`` has two clock alignments, chosen by what the run recorded:

* the joint's clock, where the run has the joint's set-point echo (``telemetry.setpoint_*``) stamped with its own
  clock (``telemetry.joint_time_ms``): the reference is the set-point the joint reported tracking and the response
  its state, both timed by the joint, so a host or a simulated joint delayed by a loaded machine (a paced joint
  falls behind the wall clock and catches up by a jump) shifts both alike and the figures do not depend on it. The
  segments are placed on that clock by when the joint's telemetry reached the host (``on_joint_clock``). The state
  (position, velocity, torque, current) is interpolated at the grid's times, as a sampled continuous response; the
  other telemetry (temperature, encoders, F/T: other messages, at other rates) is the value held on the host's
  schedule when the joint's state of that instant arrived (within a delivery delay of it), so its quantisation and
  noise are what the joint reported.
* the host's schedule otherwise: the grid is the host loop's ticks from its first, the reference, segment and load
  are what each tick sent, held through ticks the loop skipped as the joint held them, and the telemetry is the value
  the joint last reported at each tick (sample-and-hold on its dejittered time stamps), with the echoed set-point as
  the reference where the segment's mode has one. The figures then include the bus latency and the joint's command
  pick-up, as on hardware.

Which runs are recorded for the joint's clock is the executor's decision (``experiments.bus``): runs whose every
segment has a mode with an echo, no fixture load and no long-step drain. That takes in the rig's one-mode steps (step,
bode, ft_zero, move, hold) and friction (position, then velocity: each segment's reference is the echo of its own
mode). Idle segments echo no set-point (backdrive), a torque segment has none to echo (identify), the fixture acts on
the host's schedule (its loads are the host's, not the joint's: stiffness, thermal), and a step longer than the
client's rings keeps only its last span of raw rows (a soak): those stay on the host's schedule, as every rig step
was before. On a lock-step rig both clocks are one, and a run is as deterministic on either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actuator.analysis.frequency import FrequencyResponse, frequency_response
from firmware_iface.experiments.protocols import RATE_HZ, Segment, Signals

# the state signals a run keeps as raw rows (interpolated on the joint's clock); every signal is also in ``held``
STATE = ("position_rad", "velocity_rad_s", "torque_nm", "iq_a")
# the set-point the joint reports tracking, per mode (where the profile has the echo): the reference of the analyses
ECHO = {"position": "telemetry.setpoint_position_rad", "impedance": "telemetry.setpoint_position_rad",
        "velocity": "telemetry.setpoint_velocity_rad_s"}
# the joint's tick over which an echoed set-point was applied, ending at the echo's stamp: the executor asks for the
# echo at the grid's rate (``bus._echo_on``), one a tick of a joint whose loop runs at that rate (the simulated one)
ECHO_TICK_S = 1.0 / RATE_HZ


def _empty() -> np.ndarray:
    return np.empty(0)


@dataclass(frozen=True)
class BusRun:
    """What one bus run sent and received. Times count from the first set-point's send (``start_s`` on the client's
    clock); the telemetry rows' times are the joint's clock where the run has an echo, else the host's."""

    command_t_s: np.ndarray  # send time of each tick that ran
    reference: np.ndarray    # what it sent (NaN in an idle segment)
    t_s: np.ndarray          # the joint state's rows
    position_rad: np.ndarray
    velocity_rad_s: np.ndarray
    torque_nm: np.ndarray
    iq_a: np.ndarray
    loop: dict[str, float]   # the host loop's figures
    start_s: float = math.nan
    # the set-point the joint reported tracking for each segment's mode, on the joint's clock: empty when the run is
    # put on the host's schedule (no echo in the profile, or a run the joint's clock does not apply to)
    echo_t_s: np.ndarray = field(default_factory=_empty)
    echo_reference: np.ndarray = field(default_factory=_empty)
    # when each state row reached the host, by its bus stamp (``dejittered``: a reader stalled by a busy host
    # delivers a burst whose receive times say nothing of when the joint sent them): maps the host's schedule
    rx_t_s: np.ndarray = field(default_factory=_empty)
    tick: np.ndarray = field(default_factory=_empty)     # grid row of each send (default: its nearest tick)
    segment: np.ndarray = field(default_factory=_empty)  # segment of each send (default: 0)
    load_nm: np.ndarray = field(default_factory=_empty)  # fixture load at each send (default: 0)
    decim: int = 1                                       # ticks a grid row (a long soak keeps every decim-th)
    # every telemetry signal (and the echoes, under their ``ECHO`` names) held on the host's schedule, one value a
    # grid row from the first send, put there while the run went (a long step's rings wrap): see ``on_grid``
    held: Signals = field(default_factory=dict)

    @property
    def echoed(self) -> bool:
        """Whether the run is put on the joint's clock."""
        return self.echo_t_s.size > 1


def on_grid(run: BusRun, segments: list[Segment]) -> Signals:
    """The run of ``segments`` on a uniform 1 kHz grid as protocol Signals: the joint's clock where the run has it,
    else the host's schedule (see the module docstring)."""
    ends = np.cumsum([seg.duration_s for seg in segments])
    if run.echoed:
        signals = _joint_clock(run, ends)
        if signals["t_s"].size >= 2:
            return signals
    return _host_clock(run, segments, ends)


def _joint_clock(run: BusRun, ends: np.ndarray) -> Signals:
    """The joint's clock: a grid over the span both the echo and the state cover, from the first echo."""
    t, keep = np.unique(run.t_s, return_index=True)
    t_ref, ref = run.echo_t_s, run.echo_reference
    start, end = max(t_ref[0], t[0]), min(t_ref[-1], t[-1])
    # both ends included, and no more rows than the host's schedule had ticks: the protocol's length on this clock
    rows = min(math.floor((end - start) * RATE_HZ + 1e-6) + 1, _ticks(run))
    grid = start + np.arange(max(0, rows)) / RATE_HZ
    segment = np.searchsorted(on_joint_clock(run, ends), grid, side="right")
    signals: Signals = {name: np.interp(grid, t, getattr(run, name)[keep]) for name in STATE}
    signals.update(t_s=grid - t_ref[0],  # the echo's first sample is the first tick's set-point
                   segment=np.minimum(segment, ends.size - 1), reference=held_at(t_ref, ref, grid, RATE_HZ),
                   load_nm=np.zeros(grid.size))
    others = {name: v for name, v in run.held.items() if name not in STATE and name not in ECHO.values()}
    if others:  # as held on the host's schedule, at the host time the joint's state of each grid instant arrived
        order = np.argsort(run.t_s, kind="stable")
        host = np.interp(grid, run.t_s[order], run.rx_t_s[order]) if run.rx_t_s.size > 1 else grid
        last_row = len(next(iter(others.values()))) - 1
        row = np.clip(np.rint(host * RATE_HZ / run.decim), 0, last_row).astype(int)
        signals.update({name: v[row] for name, v in others.items()})
    return signals


def _tick(run: BusRun) -> np.ndarray:
    """The grid row of each send: recorded by the executor, else the tick nearest its send time."""
    return run.tick if run.tick.size else np.rint(run.command_t_s * RATE_HZ / run.decim).astype(int)


def _ticks(run: BusRun) -> int:
    return int(_tick(run)[-1]) + 1


def _host_clock(run: BusRun, segments: list[Segment], ends: np.ndarray) -> Signals:
    """The host's schedule: the sends held through skipped ticks (a tick keeps what the joint kept meanwhile, the
    previous tick's set-point, segment and load, so one late tick does not shift every later sample by a period)."""
    tick, rows = _tick(run), _ticks(run)
    sent = np.clip(np.searchsorted(tick, np.arange(rows), side="right") - 1, 0, None)
    grid = run.command_t_s[0] + np.arange(rows) * (run.decim / RATE_HZ)
    segment = run.segment[sent] if run.segment.size else np.minimum(
        np.searchsorted(ends, grid - grid[0], side="right"), ends.size - 1)
    signals: Signals = {"t_s": grid - grid[0], "segment": segment, "reference": run.reference[sent],
                        "load_nm": run.load_nm[sent] if run.load_nm.size else np.zeros(rows)}
    # a run recorded by the executor has every signal held as it went; a run built elsewhere, its state rows
    signals.update({name: held(run.t_s, getattr(run, name), grid) for name in STATE if name not in run.held})
    signals.update({name: v[:rows] for name, v in run.held.items() if name not in ECHO.values()})
    echoed = np.full(rows, np.nan)  # the reference the joint reported tracking, where one was sent
    for i, seg in enumerate(segments):
        if ECHO.get(seg.mode or "") in run.held:
            here = segment == i
            echoed[here] = run.held[ECHO[seg.mode or ""]][:rows][here]
    signals["reference"] = np.where(np.isfinite(signals["reference"]) & np.isfinite(echoed), echoed,
                                    signals["reference"])
    return signals


def on_joint_clock(run: BusRun, host_t: np.ndarray) -> np.ndarray:
    """Times of the host's schedule (from the first command) on the joint's clock as ``run.t_s`` places it: the joint
    time of the telemetry that arrived then. A command sent at host time h takes effect when the joint reads it, at
    the joint time whose frames reach the host at about h; a simulated joint that fell behind a loaded machine's wall
    clock (and caught up by a jump) does so later on its own clock than the host's schedule says. The arrival is the
    frames' bus stamp on the host's clock (``dejittered``), not their receive time: a host stalled across a segment's
    start received the frames of the stall in one burst afterwards, and by receive times a step's 50 ms hold before
    it was placed after the step (seen with two busy loops beside the GUI: "reference never steps")."""
    if run.rx_t_s.size < 2:
        return host_t + run.echo_t_s[0]
    order = np.argsort(run.rx_t_s, kind="stable")
    return np.interp(host_t, run.rx_t_s[order], run.t_s[order])


def joint_times(state_rows: np.ndarray, state_ring: Any, echo_rows: np.ndarray, echo_ring: Any,
                clock_signal: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The echo rows sorted by their bus stamps, their times and the state rows' times on the joint's own clock
    (``telemetry.joint_time_ms``) placed where the first echo arrived on the host's: the frames' stamps follow the
    host's clock (a simulated joint that falls behind a loaded machine re-aligns its stamps, a jump its own clock
    does not make), so both the reference and the response are timed by the joint.

    An echo's time is when its set-point took effect, ``ECHO_TICK_S`` before its stamp: the joint reports, with its
    state at the end of a tick, the set-point it applied over that tick. The state at a time and the set-point
    applied from it then pair as the in-process and batch executors pair them (the state at the start of a tick
    and that tick's set-point); timed by the stamp, a bus step's settling came out one tick (1.000 ms) shorter than
    the same step's in-process (tests/gui/test_step_parity.py)."""
    echo_rows = echo_rows[np.argsort(echo_rows[:, echo_ring.index["bus_t_s"]], kind="stable")]
    echo_bus = echo_rows[:, echo_ring.index["bus_t_s"]]
    joint_s = np.unwrap(echo_rows[:, echo_ring.index[clock_signal]], period=65536) / 1e3
    bus_t = state_rows[:, state_ring.index["bus_t_s"]]
    offset = float(np.min(state_rows[:, 0] - bus_t))
    origin = echo_bus[0] + offset - joint_s[0]  # the joint's clock placed at the first echo's host time
    # the state frame of a joint instant carries the same stamp as its echo: it takes that echo's joint time
    j = np.clip(np.searchsorted(echo_bus, bus_t), 0, echo_bus.size - 1)
    state_joint = np.where(echo_bus[j] == bus_t, joint_s[j], np.interp(bus_t, echo_bus, joint_s))
    return echo_rows, joint_s + origin - ECHO_TICK_S, state_joint + origin


def held(t: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The value last reported (at ``t``, in any order) at each time of ``grid``; NaN before the first."""
    if t.size == 0:
        return np.full(grid.shape, np.nan)
    order = np.argsort(t, kind="stable")
    idx = np.searchsorted(t[order], grid, side="right") - 1
    out = values[order][np.clip(idx, 0, None)]
    out[idx < 0] = np.nan
    return out


def held_at(t_ref: np.ndarray, ref: np.ndarray, grid: np.ndarray, fs_hz: float) -> np.ndarray:
    """The set-point ``ref`` (sent or reported at ``t_ref``) as the joint holds it at each time of ``grid`` (ticks at
    ``fs_hz``): the last one before the middle of the tick; before the first, the first."""
    return ref[np.clip(np.searchsorted(t_ref, grid + 0.5 / fs_hz, side="right") - 1, 0, None)]


def dejittered(rows: np.ndarray, ring: Any) -> np.ndarray:
    """Receive times without the host's delivery jitter: the bus timestamps moved onto the host clock by the
    smallest observed delay (the frame that came through fastest), so bursts in delivery do not bend the
    time axis. Falls back to the receive times when the bus gives no timestamps."""
    rx, bus_t = rows[:, 0], rows[:, ring.index["bus_t_s"]]
    if len(rows) < 2 or not np.all(np.isfinite(bus_t)) or np.ptp(bus_t) <= 0:
        return rx
    return bus_t + float(np.min(rx - bus_t))


def on_uniform_grid(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray, fs_hz: float,
                    n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference (sent at ``t_ref``) and the output (reported at ``t_out``, in any order, repeats allowed) on ``n``
    samples of a uniform grid at ``fs_hz`` from the first send.

    The reference is held, as the joint holds a set-point: grid sample j is the last command sent before the middle
    of tick j (a command stands for the tick nearest its send; a late tick is sent after its deadline, never
    before), so through ticks the loop skipped it keeps the previous command, what the joint kept meanwhile (as
    ``on_grid`` puts a bus run's set-points on its grid). Interpolating across a skip instead gives a reference the
    joint never had: with two 30 ms stalls in a 4-sweep chirp (tests/rig/test_bus_bode.py) that moved a first-order
    corner by 6 % at 4 Hz and 14 % at 8 Hz, where the held reference moves it by under 0.1 %. The output, a sampled
    continuous response, is interpolated linearly. Past their last sample both keep their last value.
    """
    grid = t_ref[0] + np.arange(n) / fs_hz
    t, keep = np.unique(t_out, return_index=True)
    return held_at(t_ref, ref, grid, fs_hz), np.interp(grid, t, out[keep])


def periodic_response(t_ref: np.ndarray, ref: np.ndarray, t_out: np.ndarray, out: np.ndarray, fs_hz: float,
                      period: int, periods: int) -> FrequencyResponse:
    """Response to a periodic excitation of ``period`` grid samples sent ``periods`` times: both signals on the
    uniform grid (``on_uniform_grid``), the first period dropped as the transient, one Welch segment per period (a
    last period cut short by skipped final ticks is completed with the last values rather than dropped)."""
    u, y = on_uniform_grid(t_ref, ref, t_out, out, fs_hz, periods * period)
    return frequency_response(u[period:], y[period:], fs_hz, nperseg=period)
