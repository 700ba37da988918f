"""The bus executor: the protocols of ``firmware_iface.experiments.protocols`` on one joint over its bus (real or
simulated), for every caller that has a bus: the rig's steps, the CLI's ``--node`` tests, the GUI's tests and
``experiments.tune``. This module owns the walk (``run_segments``) and the one-mode tests built on it
(``step_test``, ``bode_test``); ``experiments.grid`` puts what the walk recorded on the analyses' grid.

A 1 kHz host loop (``HostLoop``) walks through the segments: on entering a segment it changes the joint's state or
mode (frames, no waiting: the joint handles them in order before the set-point that follows), every tick it sends
the segment's set-point (``JointClient.setpoint``; in impedance mode with the joint's own impedance gains, read once
before the loop) and sets the fixture's load. Before the loop it waits for the joint's heartbeat, switches the
set-point echo on (``telemetry.setpoint_*``, where the profile has one) and enables an idle joint in the first
segment's mode, waiting for the heartbeat to confirm (a joint that refuses raises here rather than streaming into a
fault); afterwards it restores the echo's rate. In a segment with ``release_rad_s`` the loop reads the joint's
latest reported velocity every tick, and from the first tick it exceeds that the fixture lets go
(``protocols.released``) for the rest of the step.

The end state is the caller's (``idle_after``): the rig leaves the joint as the last segment left it (its keep-alive
holds a joint in closed loop between steps, and its sequences disable explicitly); a test started on its own from the
GUI or the CLI (``step_test``, ``bode_test``) leaves it idle, as an engineer expects after a test.

While it walks, the telemetry the client received is put on the host's schedule by sample-and-hold (``drain``: a
step longer than ``DRAIN_LONGER_THAN_S`` as it goes, before the client's rings wrap; a soak longer than
``MAX_GRID_ROWS`` ticks keeps every ``decim``-th). Afterwards the run is recorded (``BusRun``) for the joint's clock
where that applies: every segment in a mode with a set-point echo, no fixture load, no drain (see
``experiments.grid`` for both alignments and why the rig's idle, torque, fixture and long steps keep the host's); such
a run's last set-point is held until the joint's own clock has run the whole protocol (``_hold_to_the_end``).

The fixture is the rig's load on the joint's output (a load motor or a brake with a load cell on a real rig).
``SimFixture`` loads a simulated joint through its F/T sensor's tool (a force along y at the sensor's distance
from the axis, which the sensor measures as it would a real load). A wrench fixture (``WrenchFixture``: masses and
forces at known lever arms, what a sensor's calibration rig applies) also loads the tool with a segment's known
``Segment.wrench`` in the sensor frame, set on entering each segment; ``SimFixture`` is one. A step with wrenches on a
rig without one is refused before anything is sent (``CalibrationError`` ``no_fixture``).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import math
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np

from actuator.errors import CalibrationError, ConfigError, JointkitError
from firmware_iface.client.joint import JointClient
from firmware_iface.client.loop import HostLoop
from firmware_iface.defaults import STEP_AMPLITUDE, STEP_AT_S, STEP_DURATION_S
from firmware_iface.experiments.grid import ECHO, BusRun, dejittered, held, joint_times, on_grid, on_joint_clock
from firmware_iface.experiments.protocols import (
    BODE_PERIODS,
    PROTOCOLS,
    RATE_HZ,
    Outcome,
    Segment,
    Signals,
    bode_config,
    move_duration_s,
    released,
    step_config,
)
from firmware_iface.protocol.capabilities import MODE_COMMANDS
from firmware_iface.virtual_joint.node import VirtualJointNode

# grid signal -> semantic telemetry name(s)
_SCALARS = {"position_rad": "telemetry.position_rad", "velocity_rad_s": "telemetry.velocity_rad_s",
            "torque_nm": "telemetry.torque_nm", "iq_a": "telemetry.iq_a", "winding_temp_c": "telemetry.winding_temp_c",
            "housing_temp_c": "telemetry.housing_temp_c",
            "motor_encoder_rad": "telemetry.motor_encoder_rad", "output_encoder_rad": "telemetry.output_encoder_rad",
            "ft_saturated": "telemetry.ft_saturated"}
_VECTORS = {"force_n": ("telemetry.force_x_n", "telemetry.force_y_n", "telemetry.force_z_n"),
            "moment_nm": ("telemetry.torque_x_nm", "telemetry.torque_y_nm", "telemetry.torque_z_nm")}
JOINT_TIME = "telemetry.joint_time_ms"  # the joint's own clock, in the echo's message

ECHO_RATE = "rate_setpoint_hz"  # the joint's set-point echo (telemetry.setpoint_*), where the profile has one
# the echo's rate is written and restored with this reply timeout: a joint answers in a millisecond, a simulated one
# in a process slowed by a loaded machine has been seen past the client's default 0.5 s; a longer wait only costs time
# when the joint is really gone, and a test must not fail on the bookkeeping around its measurement
ECHO_REPLY_S = 2.0
MAX_GRID_ROWS = 600_000  # ten minutes at 1 kHz: longer steps keep every decim-th tick
DRAIN_LONGER_THAN_S = 20.0  # steps longer than this put their telemetry on the grid as they go
DRAIN_S = 5.0  # how often, at most (and within 40 % of the smallest ring's span)
DRAIN_LAG_ROWS = 200  # rows left for the next drain: their frames may still be on their way
DISABLE_CONFIRM_S = 0.5  # longest wait after a test for the status that says the drive is off


class Fixture(TypingProtocol):
    def apply(self, load_nm: float) -> None: ...


class WrenchFixture(Fixture, TypingProtocol):
    """A fixture that also applies known wrenches on the tool in the sensor frame (``Segment.wrench``)."""

    def apply_wrench(self, wrench: tuple[float, ...] | None) -> None: ...


class SimFixture:
    """Loads a simulated joint's output with ``load_nm`` about its axis, through the F/T sensor's tool, and with a
    known wrench on the tool (``apply_wrench``, in the sensor frame) on top: one external wrench, the sum."""

    def __init__(self, node: VirtualJointNode) -> None:
        self.node = node
        self.distance_m = node.fw.params.ft_sensor.distance_from_axis_m
        self.load_nm = 0.0
        self.wrench = (0.0,) * 6

    def apply(self, load_nm: float) -> None:
        if load_nm != self.load_nm:
            self.load_nm = load_nm
            self._inject()

    def apply_wrench(self, wrench: tuple[float, ...] | None) -> None:
        wrench = tuple(float(v) for v in wrench) if wrench is not None else (0.0,) * 6
        if wrench != self.wrench:
            self.wrench = wrench
            self._inject()

    def _inject(self) -> None:
        w = list(self.wrench)
        w[1] += self.load_nm / self.distance_m
        self.node.inject("external_wrench", w)


class _Walker:
    """The host loop's callback: segment changes, set-points and fixture loads, with what was sent, and the joint's
    telemetry put on the grid as the step goes (``drain``), before the client's rings wrap.

    A step of ``n`` ticks keeps every ``decim``-th tick (1 up to ``MAX_GRID_ROWS`` ticks: every step but a long soak),
    so its memory is bounded however long it runs: a 10-hour soak keeps a tick every 60 ms."""

    def __init__(self, client: JointClient, segments: list[Segment], fixture: Fixture | None,
                 impedance_gains: tuple[float, float] | None = None) -> None:
        self.client, self.segments, self.fixture = client, segments, fixture
        self.wrenches = any(s.wrench is not None for s in segments)  # a wrench fixture's step
        self.impedance_gains = impedance_gains
        ends = np.cumsum([s.duration_s for s in segments])
        self.ends = ends
        self._ends = ends.tolist()  # searched per tick: bisect on floats, without numpy's per-call cost
        n = math.ceil(ends[-1] * RATE_HZ) + 1
        self.n = n
        self.decim = max(1, math.ceil(n / MAX_GRID_ROWS))
        rows = math.ceil(n / self.decim)
        self.t_cmd = np.full(rows, np.nan)
        self.segment = np.zeros(rows, dtype=np.int64)
        self.reference = np.full(rows, np.nan)
        self.load = np.zeros(rows)
        semantic = client.profile.sidecar.semantic
        self.echoes = sorted({e for e in ECHO.values() if e in semantic})
        self.held = {name: np.full(rows, np.nan) for name in [*_SCALARS, *self.echoes]} | {
            name: np.full((rows, 3), np.nan) for name in _VECTORS}
        self.drained = 0  # grid rows whose telemetry is in ``held``
        capacity_s = min(r.capacity for r in client.rings.values()) / RATE_HZ  # at most one frame a tick
        # a short step is put on the grid once at its end, as it always was; a long one every few seconds
        self.drain_every = math.inf if n / RATE_HZ < DRAIN_LONGER_THAN_S else max(1, int(
            min(DRAIN_S, 0.4 * capacity_s) * RATE_HZ))
        self.current = -1
        self.q0 = 0.0
        self.mode: str | None = client.mode if client.state == "closed_loop" else None
        self.release: tuple[float, float] | None = None  # (step time, load) when the fixture let go
        self._velocity = client.profile.semantic("telemetry.velocity_rad_s")  # (message, signal)

    @property
    def joint_clock(self) -> bool:
        """Whether the run can be put on the joint's clock (see ``experiments.grid``): every segment's set-point is
        echoed with the joint's time, nothing loads the joint, and the rings hold the whole run."""
        semantic = self.client.profile.sidecar.semantic
        return (JOINT_TIME in semantic and self.drain_every == math.inf and self.decim == 1
                and all(ECHO.get(seg.mode or "") in self.echoes and seg.reference is not None
                        and seg.load_nm == 0.0 and seg.wrench is None and seg.release_rad_s is None
                        for seg in self.segments))

    def _enter(self, i: int) -> None:
        seg, c = self.segments[i], self.client
        self.q0 = c.latest().get("telemetry.position_rad", 0.0)
        if seg.mode is None:
            if self.mode is not None:
                c.disable()
        elif self.mode is None:
            c.enable(seg.mode, wait=False)
        elif seg.mode != self.mode:
            c.set_mode(seg.mode)
        self.mode = seg.mode
        self.current = i

    def _speed(self) -> float:
        """The joint's latest reported velocity (0 before the first report)."""
        message, signal = self._velocity
        ring = self.client.rings.get(message)
        row = ring.last() if ring is not None else None
        return 0.0 if row is None else float(row[ring.index[signal]])

    def _send(self, value: float) -> float:
        return self.client.setpoint(self.mode, value, impedance_gains=self.impedance_gains)

    def __call__(self, k: int, t: float) -> None:
        if k >= self.n:
            return
        ts = k / RATE_HZ
        i = min(bisect.bisect_right(self._ends, ts), len(self.segments) - 1)
        if i != self.current:
            self._enter(i)
        seg = self.segments[i]
        t_in = ts - (self.ends[i] - seg.duration_s)
        load = seg.load_nm(t_in) if callable(seg.load_nm) else float(seg.load_nm)
        if self.release is None and seg.release_rad_s is not None and abs(self._speed()) > seg.release_rad_s:
            self.release = (ts, load)
        if self.release is not None:
            load = float(released(self.release[1], ts - self.release[0]))
        if self.fixture is not None:
            if self.wrenches:
                self.fixture.apply_wrench(seg.wrench)
            self.fixture.apply(load)
        sent, reference = self.client.clock.now(), math.nan
        if seg.mode is not None and seg.reference is not None:
            reference = float(seg.reference(t_in, self.q0))
            sent = self._send(reference)
        if k % self.decim == 0:
            row = k // self.decim
            self.t_cmd[row], self.segment[row], self.reference[row], self.load[row] = sent, i, reference, load
        if k and k % self.drain_every == 0:
            self.drain(k // self.decim - DRAIN_LAG_ROWS)

    def grid(self, rows: int) -> np.ndarray:
        """Host times of the first ``rows`` grid rows: the loop's schedule from its first tick."""
        return self.t_cmd[0] + np.arange(rows) * (self.decim / RATE_HZ)

    def drain(self, upto: int) -> None:
        """Put the telemetry of grid rows [drained, upto) on the grid (rows whose frames have all arrived)."""
        upto = min(upto, self.t_cmd.size)
        if upto <= self.drained or not np.isfinite(self.t_cmd[0]):
            return
        times = self.grid(upto)[self.drained:]
        for name, semantic in [*_SCALARS.items(), *((e, e) for e in self.echoes)]:
            self.held[name][self.drained:upto] = _held(self.client, semantic, times)
        for name, semantics in _VECTORS.items():
            self.held[name][self.drained:upto] = np.column_stack([_held(self.client, s, times) for s in semantics])
        self.drained = upto


def run_segments(client: JointClient, segments: list[Segment], fixture: Fixture | None = None, *,
                 idle_after: bool = False) -> tuple[Signals, BusRun]:
    """Run the protocol on ``client``'s joint (see the module docstring); the signals on the grid (``grid.on_grid``:
    1 kHz, or every ``decim``-th tick of a long soak) and the run as recorded. ``idle_after``: disable the joint at
    the end (however the run ends), else leave it as the last segment left it."""
    if any(s.load_nm != 0.0 for s in segments) and fixture is None:
        raise ConfigError("this step loads the joint's output: the rig has no fixture (a simulated rig has one)")
    if any(s.wrench is not None for s in segments) and not hasattr(fixture, "apply_wrench"):
        raise CalibrationError("this step loads the F/T sensor's tool with known wrenches: the rig has no wrench "
                               f"fixture ({type(fixture).__name__ if fixture is not None else 'no fixture'}; a "
                               "simulated rig's SimFixture is one); nothing was sent", "no_fixture")
    _ready(client, segments, "this experiment")
    return _walk(client, segments, fixture, idle_after)


def run_protocol_segments(client: JointClient, proto: Any, segments: list[Segment], fixture: Fixture | None = None,
                          *, idle_after: bool = False) -> Signals:
    """``run_segments`` of a protocol's segments, with the encoders' message turned on for the run where the protocol
    reads the encoders (``needs_encoders``: it is off unless a run asks for it); the signals on the grid."""
    if proto.needs_encoders:
        client.write_param("rate_encoders_hz", 1000.0)
    try:
        signals, _ = run_segments(client, segments, fixture, idle_after=idle_after)
    finally:
        if proto.needs_encoders:
            client.write_param("rate_encoders_hz", 0.0)
    return signals


def _ready(client: JointClient, segments: list[Segment], command: str) -> None:
    """Before anything is sent: the capabilities the walk needs of the profile, then the joint's heartbeat."""
    client.need(*needs(segments), command=command)
    client.wait_alive()


def _walk(client: JointClient, segments: list[Segment], fixture: Fixture | None,
          idle_after: bool) -> tuple[Signals, BusRun]:
    """The walk itself, on a joint made ready (``_ready``)."""
    gains = client.impedance_gains() if any(s.mode == "impedance" for s in segments) else None
    walker = _Walker(client, segments, fixture, gains)
    echo_rate = _echo_on(client) if walker.echoes else None
    try:
        first = segments[0].mode
        if first is not None and walker.mode is None:  # idle: enabled here, where a refusal can wait and raise
            client.enable(first)
            walker.mode = first
        figures = HostLoop(RATE_HZ, walker, clock=client.clock).run(walker.ends[-1])
        if walker.joint_clock:
            _hold_to_the_end(walker)
    finally:
        t_end = client.clock.now()
        if fixture is not None:
            if walker.wrenches:
                fixture.apply_wrench(None)
            fixture.apply(0.0)
        if idle_after:
            client.disable()
            # the next test must not take the joint for enabled from a status sent before the disable
            with contextlib.suppress(JointkitError):
                client.wait_for(lambda: client.state != "closed_loop", DISABLE_CONFIRM_S, "the drive off")
        if echo_rate is not None:
            client.write_param(ECHO_RATE, echo_rate, timeout_s=ECHO_REPLY_S)
    run = _record(walker, figures, t_end)
    return on_grid(run, segments), run


def needs(segments: list[Segment]) -> list[str]:
    """The capabilities (``protocol.capabilities``) a walk of ``segments`` needs of a joint's profile: checked before
    anything is sent."""
    modes = {s.mode for s in segments if s.mode is not None}
    caps = ["heartbeat", "state_machine", "position_telemetry", *sorted({MODE_COMMANDS[m] for m in modes})]
    # choosing the mode (``modes``) is asked by ``JointClient.enable``: a joint of one mode (MIT) needs no choice
    return caps


def _hold_to_the_end(w: _Walker) -> None:
    """Keep sending the last tick's set-point until the joint's own clock has run the whole protocol (the echo of
    the joint instant that ran the last tick), for at most the protocol's duration more.

    The set-points follow the host's schedule, the protocol's time on the joint is its own clock: a paced joint that
    stalled with a loaded machine resynchronised to the wall clock without running the time it lost (seen: 1.36 s
    of joint time for a 1.95 s step in the GUI's process), and a joint-clock grid ends at the last echo, so the
    joint held the step that much shorter, and the steady-state error (the record's last tenth) moved with the
    machine's load. The last segment goes on as the joint would hold it (its last set-point: a step's, a bode's
    last value) until the joint has run the protocol's length, after which the grid stops (``grid.on_grid``: no
    more rows than the protocol has ticks). On a lock-step rig that is the tick or two of frames still on their
    way when the loop ends; the joint holds that set-point anyway, so nothing it does changes."""
    c = w.client
    message, clock_signal = c.profile.semantic(JOINT_TIME)
    ring = c.rings.get(message)
    first = ring.since(w.t_cmd[0])[:1] if ring is not None else ()
    if len(first) == 0:
        return
    column = ring.index[clock_signal]
    last = int(np.flatnonzero(np.isfinite(w.t_cmd))[-1])
    start_ms, ticks, reference = first[0, column], last * w.decim, float(w.reference[last])

    def behind() -> bool:  # the joint's clock in ms modulo 65536: a joint-clock run is shorter than 65 s
        return (ring.last()[column] - start_ms) % 65536 < ticks

    if behind():
        HostLoop(RATE_HZ, lambda k, t: w._send(reference), clock=c.clock).run_while(behind, float(w.ends[-1]))


def _echo_on(client: JointClient) -> float | None:
    """Switch the joint's set-point echo on at the grid's rate; the rate to restore (None: no such parameter)."""
    if ECHO_RATE not in client.profile.sidecar.params:
        return None
    before = client.read_param(ECHO_RATE, timeout_s=ECHO_REPLY_S)
    client.write_param(ECHO_RATE, RATE_HZ, timeout_s=ECHO_REPLY_S)
    return before


def _record(w: _Walker, figures: dict[str, float], t_end: float) -> BusRun:
    """The run as the walker sent it, its telemetry on the host's schedule (drained to the last tick that ran), and
    the joint state's rows since the first send: on the joint's clock where that applies (``_timed_by_joint``)."""
    ran = np.isfinite(w.t_cmd)
    last = int(np.flatnonzero(ran)[-1]) + 1
    w.drain(last)
    c, t0 = w.client, float(w.t_cmd[0])
    ring = c.rings[c.state_message]
    rows = ring.since(t0)
    t_rows = dejittered(rows, ring)
    iq = _resampled(c, "telemetry.iq_a", t0, t_rows)
    # what the profile does not report (an ODrive 0.5.6 sends no torque) is NaN: figures of it are NaN, not made up
    col = {s: rows[:, ring.index[c.profile.semantic(f"telemetry.{s}")[1]]]
           if c.profile.sidecar.semantic.get(f"telemetry.{s}", None) is not None
           and c.profile.semantic(f"telemetry.{s}")[0] == c.state_message else np.full(len(rows), np.nan)
           for s in ("position_rad", "velocity_rad_s", "torque_nm")}
    run = BusRun(w.t_cmd[ran] - t0, w.reference[ran], t_rows - t0, col["position_rad"], col["velocity_rad_s"],
                 col["torque_nm"], iq, figures, t0, rx_t_s=t_rows - t0, tick=np.flatnonzero(ran),
                 segment=w.segment[ran], load_nm=w.load[ran], decim=w.decim,
                 held={name: v[:last] for name, v in w.held.items()})
    return _timed_by_joint(w, run, rows, ring, (t0, t_end)) if w.joint_clock and len(rows) >= 2 else run


def _resampled(c: JointClient, semantic: str, t0: float, t_rows: np.ndarray) -> np.ndarray:
    """``semantic`` from its own message, interpolated to the joint state's times (NaN where the profile has none)."""
    sem = c.profile.sidecar.semantic.get(semantic)
    m_ring = c.rings.get(sem.message) if sem is not None else None
    m_rows = m_ring.since(t0) if m_ring is not None else ()
    if not len(m_rows):
        return np.full(len(t_rows), np.nan)
    return np.interp(t_rows, dejittered(m_rows, m_ring), m_rows[:, m_ring.index[sem.signal]])


def _timed_by_joint(w: _Walker, run: BusRun, rows: np.ndarray, ring: Any, span: tuple[float, float]) -> BusRun:
    """``run`` with its state rows and the set-points the joint echoed on the joint's clock (``grid.joint_times``);
    each echo sample is the set-point of the segment's mode it falls in. As it was without enough echoes."""
    c = w.client
    message, clock_signal = c.profile.semantic(JOINT_TIME)
    e_ring = c.rings.get(message)
    # the echoes received while the run's commands stood, up to and including ``span[1]`` (a lock-step rig delivers
    # the last tick's echo at that very time): after an idle_after's disable the set-point is the idle one
    e_rows = e_ring.window(span[0], np.nextafter(span[1], math.inf)) if e_ring is not None else np.empty((0, 0))
    if len(e_rows) < 2 or any(c.profile.semantic(name)[0] != message for name in w.echoes):
        return run
    e_rows, echo_t, state_t = joint_times(rows, ring, e_rows, e_ring, clock_signal)
    t0 = run.start_s
    run = dataclasses.replace(run, t_s=state_t - t0, echo_t_s=echo_t - t0)
    columns = np.array([e_ring.index[c.profile.semantic(ECHO[seg.mode or ""])[1]] for seg in w.segments])
    segment = np.searchsorted(on_joint_clock(run, w.ends), run.echo_t_s, side="right")
    column = columns[np.minimum(segment, columns.size - 1)]
    return dataclasses.replace(run, echo_reference=e_rows[np.arange(len(e_rows)), column])


def _held(client: JointClient, semantic: str, grid: np.ndarray) -> np.ndarray:
    """The value of ``semantic`` the joint last reported at each grid time (NaN before its first report, and where
    the profile has no such report)."""
    if semantic not in client.profile.sidecar.semantic:
        return np.full(grid.size, np.nan)
    message, signal = client.profile.semantic(semantic)
    ring = client.rings.get(message)
    if ring is None:
        return np.full(grid.size, np.nan)
    rows = ring.since(grid[0] - 0.05)
    if len(rows) == 0:
        return np.full(grid.size, np.nan)
    return held(dejittered(rows, ring), rows[:, ring.index[signal]], grid)


# --- the one-mode tests of the GUI, the CLI's --node and experiments.tune -------------------------------------------
def move_s(client: JointClient, home_rad: float) -> float:
    """How long a test's move to ``home_rad`` takes from where the joint is (``protocols.move_duration_s``)."""
    return move_duration_s(home_rad - client.latest().get("telemetry.position_rad", home_rad))


def step_test(client: JointClient, loop: str = "position", amplitude: float = STEP_AMPLITUDE,
              duration_s: float = STEP_DURATION_S, at_s: float = STEP_AT_S,
              start_rad: float | None = None) -> tuple[Outcome, Signals, BusRun, dict]:
    """The ``step`` protocol of ``amplitude`` (rad, or rad/s for velocity) ``at_s`` into ``duration_s``: position and
    impedance steps first move the joint to ``start_rad`` and hold it still. The outcome (``step_figures``), the
    signals, the run and the protocol's configuration; the joint is left idle.

    By default (the GUI's and ``jointkit step --node``'s) the step starts where the joint is, as the in-process
    executor's joint starts at rest where it is: a joint enabled at rest and held there starts the step in the same
    state whatever it did before (knee: rise 66.31-66.44 ms after earlier steps against 66.33 ms never moved), where
    a move first leaves its PI loop creeping against friction after the 0.3 s settle, and the rise then depends on
    the joint's history (64.8-67.9 ms by the settle's length after one earlier step)."""
    cfg = step_config(loop, amplitude, duration_s, at_s)  # checked before anything is sent
    _ready(client, PROTOCOLS["step"].segments(cfg), f"{loop} step")  # the home is where the joint then is
    if loop != "velocity":
        start = client.latest().get("telemetry.position_rad", 0.0) if start_rad is None else start_rad
        cfg.update(home_rad=start, move_s=move_s(client, start))
    return _run(client, "step", cfg)


def bode_test(client: JointClient, loop: str = "position", f0_hz: float = 1.0, f1_hz: float = 20.0,
              amplitude: float = 0.002, periods: int = BODE_PERIODS) -> tuple[Outcome, Signals, BusRun, dict]:
    """The ``bode`` protocol about where the joint is: ``periods`` sweeps of the periodic chirp, the first dropped;
    the joint is left idle. The host does not know the joint's inertia, so the amplitude is the caller's: keep
    J (2 pi f1)^2 A well under the torque limit (0.002 rad to 20 Hz needs about 45 N·m on the knee, a third of its
    limit)."""
    cfg = bode_config(loop, f0_hz, f1_hz, amplitude, periods)  # checked before anything is sent
    _ready(client, PROTOCOLS["bode"].segments(cfg), f"{loop} bode")
    if loop == "position":
        cfg["home_rad"] = client.latest().get("telemetry.position_rad", 0.0)
    return _run(client, "bode", cfg)


def _run(client: JointClient, name: str, cfg: dict) -> tuple[Outcome, Signals, BusRun, dict]:
    proto = PROTOCOLS[name]
    segments = proto.segments(cfg)
    signals, run = _walk(client, segments, None, idle_after=True)  # made ready by the caller
    return proto.analyze(signals, segments, cfg), signals, run, cfg
