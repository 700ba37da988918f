"""Set-point streaming: the one place that keeps joints in closed loop fed with set-points between a host's own
commands, for the GUI (a person commanding a joint live) and the rig (joints held between steps).

A joint in closed loop needs a set-point within its watchdog timeout. ``Streamer`` sends each active joint's
set-point (``JointClient.setpoint``, the one mode chain) every ``1 / rate_hz`` seconds of the clients' clock: from a
thread of its own on the wall clock, or as a callback of a lock-step clock (``clock.every``), in the thread that
advances it. A stream holds a value, or follows a planned rest-to-rest move (``move_to``); ``hold`` streams each
joint in closed loop at where it is (its position in position and impedance modes, zero velocity or torque).
A joint that raises (a fault, a lost joint) stops streaming and the error is kept (``errors``).

``watchdog_margin_s`` is the least time left before a streamed joint's watchdog would trip, against each joint's
own ``watchdog_timeout_s`` (read from the joint where its profile has the parameter: ``read_watchdogs``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from actuator.control.trajectory import plan
from actuator.errors import ConfigError, JointkitError
from firmware_iface.client.clock import Clock
from firmware_iface.client.joint import JointClient
from firmware_iface.client.rings import Ring

DEFAULT_WATCHDOG_S = 0.1  # the native joint's default, for a joint whose profile cannot say
MOVE_V_MAX_RAD_S = 1.0
MOVE_A_MAX_RAD_S2 = 4.0
MOVE_J_MAX_RAD_S3 = 40.0
RING_ROWS = 65_536


@dataclass
class Stream:
    """One joint's set-point stream: the mode, the target, a planned move, and the set-points sent (a ring)."""

    mode: str = "position"
    setpoint: float = 0.0
    active: bool = False
    move: tuple[float, np.ndarray] | None = None  # (start time on the clock, planned positions at 1 ms)
    impedance_gains: tuple[float, float] | None = None
    ring: Ring = field(default_factory=lambda: Ring(("setpoint",), RING_ROWS))
    last_sent_s: float = math.nan

    def value_at(self, now_s: float) -> float:
        if self.move is not None:
            t0, pos = self.move
            k = int((now_s - t0) * 1000.0)
            if k >= pos.size - 1:
                self.setpoint, self.move = float(pos[-1]), None
            else:
                return float(pos[max(k, 0)])
        return self.setpoint


class Streamer:
    """Streams each active joint's set-point at ``rate_hz`` (see the module docstring); ``ring_rows``: set-points
    kept per joint (for plots)."""

    def __init__(self, clients: dict[int, JointClient], rate_hz: float, *, ring_rows: int = RING_ROWS,
                 name: str = "setpoint-streamer", clock: Clock | None = None) -> None:
        if not clients and clock is None:
            raise ConfigError("a set-point streamer needs a joint or a clock")
        self.clients, self.period_s = clients, 1.0 / rate_hz
        self.clock = clock or next(iter(clients.values())).clock
        self.streams = {n: Stream(ring=Ring(("setpoint",), ring_rows)) for n in clients}
        self.watchdog_s = dict.fromkeys(clients, DEFAULT_WATCHDOG_S)
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unhook = None
        if self.clock.lockstep:
            self._unhook = self.clock.every(self.period_s, self._send_all)
        else:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_t = self.clock.now()
        while not self._stop.is_set():
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - self.clock.now()))
            self._send_all()

    def _send_all(self) -> None:
        with self._lock:
            for n, s in self.streams.items():
                if s.active:
                    self._send(n, s)

    def _send(self, node: int, s: Stream) -> None:
        c = self.clients[node]
        now = self.clock.now()
        value = s.value_at(now)
        try:
            c.setpoint(s.mode, value, impedance_gains=s.impedance_gains)
        except JointkitError as e:
            s.active = False
            self.errors.append(f"node {node}: set-point stream stopped: {e}")
            return
        s.last_sent_s = now
        s.ring.append(now, [value])

    # --- what to stream --------------------------------------------------------------------------------------------
    def start_stream(self, node: int, mode: str, setpoint: float,
                     impedance_gains: tuple[float, float] | None = None) -> None:
        with self._lock:
            s = self.streams[node]
            s.mode, s.setpoint, s.move, s.active = mode, setpoint, None, True
            s.impedance_gains = impedance_gains

    def stop_stream(self, node: int) -> None:
        with self._lock:
            self.streams[node].active = False

    def set_setpoint(self, node: int, value: float) -> None:
        with self._lock:
            s = self.streams[node]
            s.setpoint, s.move = value, None

    def move_to(self, node: int, target_rad: float, start_rad: float, kind: str = "scurve") -> float:
        """Plan a rest-to-rest move of the position set-point; its duration in seconds."""
        traj = plan(kind, start_rad, target_rad, MOVE_V_MAX_RAD_S, MOVE_A_MAX_RAD_S2, j_max_rad_s3=MOVE_J_MAX_RAD_S3)
        with self._lock:
            s = self.streams[node]
            if s.mode not in ("position", "impedance"):
                raise ConfigError(f"a move needs position or impedance mode; node {node} is in {s.mode}")
            s.move = (self.clock.now(), traj.position_rad)
            s.setpoint = float(target_rad)
        return traj.duration_s

    def hold(self) -> None:
        """Stream every joint in closed loop at where it is now (the rig between steps); others are left alone."""
        with self._lock:
            for n, c in self.clients.items():
                if c.state != "closed_loop" or c.mode is None:
                    self.streams[n].active = False
                    continue
                here = float(c.latest().get("telemetry.position_rad", 0.0))
                value = here if c.mode in ("position", "admittance", "impedance") else 0.0
                gains = None
                if c.mode == "impedance":  # hold with the joint's own stiffness (its gains, read once here)
                    with contextlib.suppress(JointkitError):
                        gains = c.impedance_gains()
                    if gains is None:
                        continue
                self.start_stream(n, c.mode, value, gains)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No set-points from the streamer inside (a host loop commands the joints), then ``hold``."""
        with self._lock:
            for s in self.streams.values():
                s.active = False
        try:
            yield
        finally:
            self.hold()

    # --- status ------------------------------------------------------------------------------------------------
    def read_watchdogs(self, timeout_s: float = 0.5) -> None:
        """Each joint's ``watchdog_timeout_s`` (kept at the default where the profile has no such parameter or the
        joint does not answer)."""
        for n, c in self.clients.items():
            if "watchdog_timeout_s" in c.profile.sidecar.params:
                with contextlib.suppress(JointkitError):
                    self.watchdog_s[n] = c.read_param("watchdog_timeout_s", timeout_s)

    def watchdog_margin_s(self) -> float | None:
        """The least time left before a streamed joint's watchdog would trip (None: no joint streaming)."""
        now = self.clock.now()
        margins = [self.watchdog_s[n] - (now - s.last_sent_s) for n, s in self.streams.items()
                   if s.active and math.isfinite(s.last_sent_s)]
        return min(margins) if margins else None

    def stop(self) -> None:
        with self._lock:
            for s in self.streams.values():
                s.active = False
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        if self._unhook is not None:
            self._unhook()
