"""The GUI's connection to its joints, with no Qt in it: the bus (simulated joints or a python-can bus), a client
per joint, the set-point streamer, the jobs that talk to joints off the GUI thread, and the status figures.

The GUI thread never waits on the bus. Telemetry lands in the clients' rings on the hub's reader thread; set-points
go out from the ``Commander`` thread; requests that wait for a reply (gain reads, tests, saves) run as ``jobs`` on
one worker thread, and the window collects their futures on a timer. A joint in closed loop needs a command within
its watchdog timeout (100 ms by default), so the commander streams every joint the GUI enabled at ``COMMAND_HZ``,
following a planned trajectory when the user asks for a move.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actuator.control.trajectory import plan
from actuator.errors import ConfigError, JointkitError
from firmware_iface.client import JointClient
from firmware_iface.client.bus import close_bus, open_bus
from firmware_iface.client.rings import Ring
from firmware_iface.client.scan import listen
from firmware_iface.rig.rig import Rig, bus_rig, sim_rig
from firmware_iface.virtual_joint.firmware import SHARED_BUS_RATES_HZ

COMMAND_HZ = 200.0  # set-points a second a joint: 5 ms, a twentieth of the joint's 100 ms watchdog
RING_ROWS = 65_536  # a 60 s plot window of 1 kHz telemetry fits
LOST_AFTER_S = 0.5  # no heartbeat from any joint for this long: the connection is lost (5 heartbeat periods)
MODES = ("position", "velocity", "torque", "impedance")
MOVE_V_MAX_RAD_S = 1.0
MOVE_A_MAX_RAD_S2 = 4.0
BITS_PER_FRAME = 125  # an 8-byte classic frame with typical stuffing, as the loop bench counts
WATCHDOG_TIMEOUT_S = 0.1  # the native joint's default watchdog_timeout_s


@dataclass
class Connection:
    """What to connect to: built-in simulated joints, or a python-can bus."""

    sim: bool = True
    preset: str = "knee"
    nodes: tuple[int, ...] = (1,)
    interface: str | None = None
    channel: str | None = None
    bitrate: int | None = None

    def describe(self) -> str:
        if self.sim:
            return f"simulated {self.preset} joints {', '.join(map(str, self.nodes))}"
        return f"{self.interface or '(config)'} {self.channel or ''}".strip()


@dataclass
class Stream:
    """One joint's set-point stream: the mode, the target, a planned move, and the set-points sent (a ring)."""

    mode: str = "position"
    setpoint: float = 0.0
    active: bool = False
    move: tuple[float, np.ndarray] | None = None  # (start time, planned positions at 1 ms)
    impedance_gains: tuple[float, float] = (0.0, 0.0)
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


class Commander:
    """Streams each active joint's set-point at ``rate_hz`` on its own thread; a joint that raises (a fault, a
    lost joint) stops streaming and the error is kept for the GUI."""

    def __init__(self, clients: dict[int, JointClient], rate_hz: float = COMMAND_HZ) -> None:
        self.clients, self.period_s = clients, 1.0 / rate_hz
        self.streams = {n: Stream() for n in clients}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gui-commander", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            next_t += self.period_s
            self._stop.wait(max(0.0, next_t - time.perf_counter()))
            with self._lock:
                for n, s in self.streams.items():
                    if s.active:
                        self._send(n, s)

    def _send(self, node: int, s: Stream) -> None:
        c, now = self.clients[node], time.perf_counter()
        value = s.value_at(now)
        try:
            if s.mode == "position":
                c.position(value)
            elif s.mode == "velocity":
                c.velocity(value)
            elif s.mode == "torque":
                c.torque(value)
            else:
                c.impedance(value, 0.0, *s.impedance_gains)
        except JointkitError as e:
            s.active = False
            self.errors.append(f"node {node}: set-point stream stopped: {e}")
            return
        s.last_sent_s = now
        s.ring.append(now, [value])

    def start_stream(self, node: int, mode: str, setpoint: float,
                     impedance_gains: tuple[float, float] = (0.0, 0.0)) -> None:
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
        traj = plan(kind, start_rad, target_rad, MOVE_V_MAX_RAD_S, MOVE_A_MAX_RAD_S2, j_max_rad_s3=40.0)
        with self._lock:
            s = self.streams[node]
            if s.mode not in ("position", "impedance"):
                raise ConfigError(f"a move needs position or impedance mode; node {node} is in {s.mode}")
            s.move = (time.perf_counter(), traj.position_rad)
            s.setpoint = float(target_rad)
        return traj.duration_s

    def watchdog_margin_s(self) -> float | None:
        """The least time left before an active joint's watchdog would trip (None: no joint streaming)."""
        now = time.perf_counter()
        ages = [now - s.last_sent_s for s in self.streams.values() if s.active and math.isfinite(s.last_sent_s)]
        return WATCHDOG_TIMEOUT_S - max(ages) if ages else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


class Session:
    """One connection: its rig (bus, hub, clients), commander and job worker. ``close`` releases everything."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rig = self._open(conn)
        if self.rig.keepalive is not None:
            self.rig.keepalive.stop()  # the commander owns the set-points here
        self.commander = Commander(self.rig.clients)
        self.jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-job")
        self.t0 = time.perf_counter()
        self._rate_mark = (self.t0, 0, 0)
        self.closed = False

    @staticmethod
    def _open(conn: Connection) -> Rig:
        if conn.sim:
            # paced to wall time: a person watches and commands it live (lock-step is for runs nobody watches)
            rig = sim_rig(list(conn.nodes), conn.preset, capacity=RING_ROWS, lockstep=False)
            if len(conn.nodes) > 1:  # what one real bus can carry for several joints
                for node in rig.nodes.values():
                    node.fw.rates_hz.update(SHARED_BUS_RATES_HZ)
            return rig
        bus = open_bus(conn.interface, conn.channel, conn.bitrate)
        try:
            nodes = list(conn.nodes) or sorted(listen(bus))
            if not nodes:
                raise ConfigError(f"no joint answered on {conn.describe()}: no heartbeat in 0.35 s")
            rig = bus_rig(bus, nodes, capacity=RING_ROWS)
        except BaseException:
            close_bus(bus)
            raise
        rig._stack.callback(close_bus, bus)
        return rig

    @property
    def clients(self) -> dict[int, JointClient]:
        return self.rig.clients

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` on the job thread (requests that wait for replies); the GUI polls the future."""
        return self.jobs.submit(fn, *args)

    # --- joint commands (sent at once: a frame, no reply awaited) -----------------------------------------------
    def enable(self, node: int, mode: str) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode = {mode!r} is not allowed: choose one of {', '.join(MODES)}")
        c = self.clients[node]
        here = c.latest().get("telemetry.position_rad", 0.0)
        setpoint = here if mode in ("position", "impedance") else 0.0
        gains = (0.0, 0.0)
        if mode == "impedance":
            gains = (c.read_gain("impedance_kp"), c.read_gain("impedance_kd"))
        c.enable(mode, wait=False)
        self.commander.start_stream(node, mode, setpoint, gains)

    def disable(self, node: int) -> None:
        self.commander.stop_stream(node)
        self.clients[node].disable()

    def estop(self) -> list[str]:
        """E-stop every joint (each tried, whatever the others do); the problems met."""
        problems = []
        for n, c in self.clients.items():
            self.commander.stop_stream(n)
            try:
                c.estop()
            except Exception as e:  # an e-stop must reach every joint it can
                problems.append(f"node {n}: {e}")
        return problems

    def clear_faults(self, node: int) -> None:
        self.commander.stop_stream(node)
        self.clients[node].clear_faults()

    # --- status -----------------------------------------------------------------------------------------------
    def lost(self) -> str:
        """Why the connection counts as lost ('' when it is not): no heartbeat from any joint, or a dead reader."""
        hub = self.rig.hub
        if hub.lost is not None:
            return f"bus lost: {hub.lost}"
        if not hub.threaded:
            return f"bus reader stopped: {hub.last_error or 'closed'}"
        now = time.perf_counter()
        ages = [now - c.heartbeat_t for c in self.clients.values() if c.heartbeat_t is not None]
        if len(ages) < len(self.clients) and now - self.t0 < 2.0:
            return ""  # still starting: the first heartbeats are on their way
        if not ages or min(ages) > LOST_AFTER_S:
            return f"no heartbeat from nodes {', '.join(map(str, self.clients))} for more than {LOST_AFTER_S:g} s"
        return ""

    def stats(self) -> dict[str, Any]:
        """Bus figures for the status bar, rates over the time since the previous call."""
        hub, now = self.rig.hub, time.perf_counter()
        t_prev, rx_prev, tx_prev = self._rate_mark
        dt = max(now - t_prev, 1e-6)
        rx, tx = hub.counters["rx"], hub.counters["tx"]
        self._rate_mark = (now, rx, tx)
        frames_per_s = (rx - rx_prev) / dt
        bitrate = self.conn.bitrate or 1_000_000
        rtts = [c.rtt.view(max(0, c.rtt.count - 200))[:, 1] for c in self.clients.values() if c.rtt.count]
        rtt = float(np.median(np.concatenate(rtts))) * 1e6 if rtts else math.nan
        return {"frames_per_s": frames_per_s,
                "bus_load_pct": (frames_per_s + (tx - tx_prev) / dt) * BITS_PER_FRAME / bitrate * 100.0,
                "dropped": int(hub.counters["rx_errors"] + hub.counters["bus_errors"]),
                "gaps": int(sum(sum(c.gaps.values()) for c in self.clients.values())),
                "rtt_us": rtt, "watchdog_margin_s": self.commander.watchdog_margin_s(),
                "stream_errors": list(self.commander.errors)}

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.commander.stop()
        for n, c in self.clients.items():
            with contextlib.suppress(Exception):
                c.disable()
                self.commander.stop_stream(n)
        self.jobs.shutdown(wait=False, cancel_futures=True)
        self.rig.close()
