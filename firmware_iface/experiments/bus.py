"""The bus executor: the protocols of ``firmware_iface.experiments.protocols`` on one joint over its bus.

A 1 kHz host loop (``HostLoop``) walks through the segments: on entering a segment it changes the joint's state or
mode (frames, no waiting: the joint handles them in order before the set-point that follows), every tick it sends
the segment's set-point and sets the fixture's load, and afterwards the telemetry the client received is put on
the loop's grid by sample-and-hold (the value the joint last reported at each tick, on the joint's time stamps
moved onto the host clock). Commands stop when the protocol ends; the joint is left as the last segment left it.
In a segment with ``release_rad_s`` the loop reads the joint's latest reported velocity every tick, and from the
first tick it exceeds that the fixture lets go (``protocols.released``) for the rest of the step.

The fixture is the rig's load on the joint's output (a load motor or a brake with a load cell on a real rig).
``SimFixture`` loads a simulated joint through its F/T sensor's tool (a force along y at the sensor's distance
from the axis, which the sensor measures as it would a real load).
"""

from __future__ import annotations

import math
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np

from actuator.errors import ConfigError
from firmware_iface.client.joint import JointClient
from firmware_iface.client.loop import HostLoop
from firmware_iface.experiments.protocols import RATE_HZ, Segment, Signals, released
from firmware_iface.virtual_joint.node import VirtualJointNode

# grid signal -> semantic telemetry name(s)
_SCALARS = {"position_rad": "telemetry.position_rad", "velocity_rad_s": "telemetry.velocity_rad_s",
            "torque_nm": "telemetry.torque_nm", "iq_a": "telemetry.iq_a", "winding_temp_c": "telemetry.winding_temp_c",
            "motor_encoder_rad": "telemetry.motor_encoder_rad", "output_encoder_rad": "telemetry.output_encoder_rad"}
# the set-point the joint reports tracking, per mode (where the profile has the echo): the reference of the analyses
_ECHO = {"position": "telemetry.setpoint_position_rad", "impedance": "telemetry.setpoint_position_rad",
         "velocity": "telemetry.setpoint_velocity_rad_s"}
_VECTORS = {"force_n": ("telemetry.force_x_n", "telemetry.force_y_n", "telemetry.force_z_n"),
            "moment_nm": ("telemetry.torque_x_nm", "telemetry.torque_y_nm", "telemetry.torque_z_nm")}


ECHO_RATE = "rate_setpoint_hz"  # the joint's set-point echo (telemetry.setpoint_*), where the profile has one
MAX_GRID_ROWS = 600_000  # ten minutes at 1 kHz: longer steps keep every decim-th tick
DRAIN_LONGER_THAN_S = 20.0  # steps longer than this put their telemetry on the grid as they go
DRAIN_S = 5.0  # how often, at most (and within 40 % of the smallest ring's span)
DRAIN_LAG_ROWS = 200  # rows left for the next drain: their frames may still be on their way


class Fixture(TypingProtocol):
    def apply(self, load_nm: float) -> None: ...


class SimFixture:
    """Loads a simulated joint's output with ``load_nm`` about its axis, through the F/T sensor's tool."""

    def __init__(self, node: VirtualJointNode) -> None:
        self.node = node
        self.distance_m = node.fw.params.ft_sensor.distance_from_axis_m
        self.load_nm = 0.0

    def apply(self, load_nm: float) -> None:
        if load_nm != self.load_nm:
            self.node.inject("external_wrench", [0.0, load_nm / self.distance_m, 0.0, 0.0, 0.0, 0.0])
            self.load_nm = load_nm


class _Walker:
    """The host loop's callback: segment changes, set-points and fixture loads, with what was sent, and the joint's
    telemetry put on the grid as the step goes (``drain``), before the client's rings wrap.

    A step of ``n`` ticks keeps every ``decim``-th tick (1 up to ``MAX_GRID_ROWS`` ticks: every step but a long soak),
    so its memory is bounded however long it runs: a 10-hour soak keeps a tick every 60 ms."""

    def __init__(self, client: JointClient, segments: list[Segment], fixture: Fixture | None) -> None:
        self.client, self.segments, self.fixture = client, segments, fixture
        ends = np.cumsum([s.duration_s for s in segments])
        self.ends = ends
        n = math.ceil(ends[-1] * RATE_HZ) + 1
        self.n = n
        self.decim = max(1, math.ceil(n / MAX_GRID_ROWS))
        rows = math.ceil(n / self.decim)
        self.t_cmd = np.full(rows, np.nan)
        self.segment = np.zeros(rows, dtype=np.int64)
        self.reference = np.full(rows, np.nan)
        self.load = np.zeros(rows)
        semantic = client.profile.sidecar.semantic
        self.echoes = sorted({e for e in _ECHO.values() if e in semantic})
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
        return self.client.setpoint(self.mode, value)

    def __call__(self, k: int, t: float) -> None:
        if k >= self.n:
            return
        ts = k / RATE_HZ
        i = min(int(np.searchsorted(self.ends, ts, side="right")), len(self.segments) - 1)
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


def run_segments(client: JointClient, segments: list[Segment], fixture: Fixture | None = None) -> Signals:
    """Run the protocol on ``client``'s joint; the signals on the grid (1 kHz, or every ``decim``-th tick of a long
    soak: see ``_Walker``; see the protocols module)."""
    if any(s.load_nm != 0.0 for s in segments) and fixture is None:
        raise ConfigError("this step loads the joint's output: the rig has no fixture (a simulated rig has one)")
    walker = _Walker(client, segments, fixture)
    echo_rate = _echo_on(client) if walker.echoes else None
    try:
        HostLoop(RATE_HZ, walker, clock=client.clock).run(walker.ends[-1])
    finally:
        if fixture is not None:
            fixture.apply(0.0)
        if echo_rate is not None:
            client.write_param(ECHO_RATE, echo_rate)
    last, segment, reference, load = _uniform(walker)
    walker.drain(last)
    grid = walker.grid(last)
    signals: Signals = {"t_s": grid - grid[0], "segment": segment, "reference": reference, "load_nm": load}
    for name, values in walker.held.items():
        if name not in walker.echoes:
            signals[name] = values[:last]
    if echo_rate is not None:  # the reference the joint reported tracking, on its own clock, where one was sent
        echoed = np.full(last, np.nan)
        for i, seg in enumerate(segments):
            here = segment == i
            if seg.mode is not None and _ECHO.get(seg.mode) in walker.echoes:
                echoed[here] = walker.held[_ECHO[seg.mode]][:last][here]
        signals["reference"] = np.where(np.isfinite(reference) & np.isfinite(echoed), echoed, reference)
    return signals


def _echo_on(client: JointClient) -> float | None:
    """Switch the joint's set-point echo on at the grid's rate; the rate to restore (None: no such parameter)."""
    if ECHO_RATE not in client.profile.sidecar.params:
        return None
    before = client.read_param(ECHO_RATE)
    client.write_param(ECHO_RATE, RATE_HZ)
    return before


def _uniform(w: _Walker) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The walk on the loop's schedule, a uniform grid as the analyses assume: a tick the host loop skipped (an
    overrun) keeps what the joint kept meanwhile, the previous tick's set-point, segment and load, so one late
    tick does not shift every later sample by a period. The grid rows, then segment, reference and load."""
    ran = np.isfinite(w.t_cmd)
    last = int(np.flatnonzero(ran)[-1]) + 1
    filled = np.maximum.accumulate(np.where(ran[:last], np.arange(last), 0))
    return last, w.segment[filled], w.reference[filled], w.load[filled]


def _held(client: JointClient, semantic: str, grid: np.ndarray) -> np.ndarray:
    """The value of ``semantic`` the joint last reported at each grid time (NaN before its first report)."""
    message, signal = client.profile.semantic(semantic)
    ring = client.rings.get(message)
    if ring is None:
        return np.full(grid.size, np.nan)
    rows = ring.since(grid[0] - 0.05)
    if len(rows) == 0:
        return np.full(grid.size, np.nan)
    t = dejittered(rows, ring)
    order = np.argsort(t, kind="stable")
    t, values = t[order], rows[order, ring.index[signal]]
    idx = np.searchsorted(t, grid, side="right") - 1
    out = values[np.clip(idx, 0, None)]
    out[idx < 0] = np.nan
    return out


def dejittered(rows: np.ndarray, ring: Any) -> np.ndarray:
    """Receive times without the host's delivery jitter: the bus timestamps moved onto the host clock by the
    smallest observed delay (the frame that came through fastest), so bursts in delivery do not bend the
    time axis. Falls back to the receive times when the bus gives no timestamps."""
    rx, bus_t = rows[:, 0], rows[:, ring.index["bus_t_s"]]
    if len(rows) < 2 or not np.all(np.isfinite(bus_t)) or np.ptp(bus_t) <= 0:
        return rx
    return bus_t + float(np.min(rx - bus_t))
