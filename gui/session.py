"""The GUI's connection to its joints, with no Qt in it: the bus (simulated joints or a python-can bus), a client
per joint, the set-point streamer, the jobs that talk to joints off the GUI thread, and the status figures.

Simulated joints run in a process of their own by default (``gui.served``: ``jointkit sim serve`` on a free loopback
port, reached over python-can-remote, stopped with the session), so they never share the GUI's interpreter lock.
``Connection.in_process`` keeps them in the GUI's process, paced to wall time (``sim_rig(lockstep=False)``), for what
needs the simulated node itself: the rig's fixture (a load on the joint's output, which the kt, friction and
stiffness calibrations apply) and tests that read the simulated firmware's own counters or flash.
``Connection.lockstep`` keeps them in the GUI's process too, in lock-step with the host (``sim_rig(lockstep=True)``),
for unattended runs and tests: a job owns the clock while it runs, so its joints advance exactly as its waits say,
whatever the machine's load, and between jobs ``gui.lockstep.ClockDriver`` advances them at most at wall-clock pace.
Every age the session judges (a lost joint, the watchdog margin) is then on the joints' clock.

The GUI thread never waits on the bus. Telemetry lands in the clients' rings on the hub's reader thread; set-points
go out from the set-point streamer's thread (``firmware_iface.client.streamer.Streamer``, the rig's too); requests
that wait for a reply (gain reads, tests, saves) run as ``jobs`` on one worker thread, and the window collects their
futures on a timer. A joint in closed loop needs a command within its watchdog timeout (read from each joint; 100 ms
by default), so the streamer streams every joint the GUI enabled at ``COMMAND_HZ``, following a planned trajectory
when the user asks for a move.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actuator.errors import ConfigError
from firmware_iface.client import JointClient
from firmware_iface.client.bus import close_bus, open_bus
from firmware_iface.client.joint import SHARED_BUS_RATES_HZ
from firmware_iface.client.scan import listen
from firmware_iface.client.streamer import Streamer
from firmware_iface.defaults import ENABLE_MODES as MODES
from firmware_iface.defaults import MISSED_HEARTBEATS
from firmware_iface.rig.rig import Rig, bus_rig, sim_rig
from gui.lockstep import ClockDriver
from gui.served import ServedJoints

if TYPE_CHECKING:
    from firmware_iface.protocol.profile import Profile

COMMAND_HZ = 200.0  # set-points a second a joint: 5 ms, a twentieth of the joint's 100 ms watchdog
RING_ROWS = 65_536  # a 60 s plot window of 1 kHz telemetry fits
LOST_AFTER_S = 0.5  # no heartbeat from any joint for this long: the connection is lost (5 heartbeat periods)
BITS_PER_FRAME = 125  # an 8-byte classic frame with typical stuffing, as the loop bench counts


@dataclass
class Connection:
    """What to connect to: built-in simulated joints, or a python-can bus."""

    sim: bool = True
    preset: str = "knee"
    nodes: tuple[int, ...] = (1,)
    interface: str | None = None
    channel: str | None = None
    bitrate: int | None = None
    # heartbeat periods without a heartbeat before a joint is declared lost (the client's default: 3). A simulated
    # joint paced in this process stalls with it when the machine is saturated; a caller measuring something else
    # on such a machine may allow more
    missed_heartbeats: int = MISSED_HEARTBEATS
    profile: Profile | None = None  # the joints' protocol (None: the native profile); simulated joints speak it too
    # simulated joints in the GUI's own process (with a fixture on each output) rather than in a child process
    in_process: bool = False
    # simulated joints in the GUI's own process in lock-step with the host (implies in_process): jobs' results do
    # not depend on the wall clock (unattended runs, tests)
    lockstep: bool = False

    def describe(self) -> str:
        if self.sim:
            where = "in this process" if self.in_process else "in their own process"
            where = "in this process, in lock-step" if self.lockstep else where
            return f"simulated {self.preset} joints {', '.join(map(str, self.nodes))} ({where})"
        return f"{self.interface or '(config)'} {self.channel or ''}".strip()


def _share_the_bus(rig: Rig) -> None:
    """Set the telemetry rates of several simulated joints on one bus through their protocol, as for real ones
    (only the rates a joint's profile has)."""
    for c in rig.clients.values():
        c.wait_alive(10.0)
        for name, rate_hz in SHARED_BUS_RATES_HZ.items():
            if name in c.profile.sidecar.params:
                c.write_param(name, rate_hz, timeout_s=2.0)


def _listen(bus: Any, conn: Connection) -> list[int]:
    try:
        nodes = listen(bus, conn.profile)
    except BaseException:
        close_bus(bus)
        raise
    if not nodes:
        close_bus(bus)
        raise ConfigError(f"no joint answered on {conn.describe()}: no heartbeat in 0.35 s")
    return nodes


def _bus_rig(bus: Any, nodes: list[int], conn: Connection, then: Callable[[], Any] | None = None) -> Rig:
    """The rig of clients on an open bus, which it closes with itself (or at once if the rig cannot be built);
    ``then`` runs after the bus closed (the served joints' stop: the other end goes last)."""
    try:
        rig = bus_rig(bus, nodes, conn.profile, capacity=RING_ROWS)
    except BaseException:
        close_bus(bus)
        raise
    if then is not None:
        rig.on_close(then)  # the rig closes in reverse order of registration
    rig.on_close(close_bus, bus)
    # first of all: no reader left in the bus while it shuts down (python-can-remote's shutdown reads the socket to
    # its close frame, and a second reader raced it for that frame: the bus was left half shut)
    rig.on_close(rig.hub.stop)
    return rig


class Session:
    """One connection: its rig (bus, hub, clients), commander and job worker. ``close`` releases everything."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rig = self._open(conn)
        for client in self.rig.clients.values():
            client.missed_heartbeats = conn.missed_heartbeats
        if self.rig.keepalive is not None:
            self.rig.keepalive.stop()  # the commander owns the set-points here
        self.commander = Streamer(self.rig.clients, COMMAND_HZ, name="gui-commander")
        self.jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-job")
        clock = self.rig.clock
        self.driver = ClockDriver(clock).start() if clock.lockstep else None
        # each joint's own watchdog timeout, for the margin shown: a request, so off the GUI thread
        self.submit(self.commander.read_watchdogs)
        self.t0 = time.perf_counter()
        self.t0_clock = clock.now()
        self._rate_mark = (self.t0, 0, 0)
        self.closed = False

    def _open(self, conn: Connection) -> Rig:
        self.served: ServedJoints | None = None
        if conn.sim and (conn.in_process or conn.lockstep):
            # paced to wall time unless asked: a person watches and commands it live (lock-step: runs nobody watches)
            rig = sim_rig(list(conn.nodes), conn.preset, capacity=RING_ROWS, lockstep=conn.lockstep,
                          profile=conn.profile)
        elif conn.sim:
            if not conn.nodes:
                raise ConfigError("simulated joints need node ids, e.g. 1,2")
            served = self.served = ServedJoints(conn.nodes, conn.preset, conn.profile).start()
            try:
                rig = _bus_rig(open_bus("remote", served.url), list(conn.nodes), conn, then=served.stop)
            except BaseException:
                served.stop()
                raise
            rig.info.update(sim=True, preset=conn.preset, served_url=served.url, server_pid=served.proc.pid)
        else:
            bus = open_bus(conn.interface, conn.channel, conn.bitrate)
            return _bus_rig(bus, list(conn.nodes) or sorted(_listen(bus, conn)), conn)
        if len(conn.nodes) > 1:
            try:
                _share_the_bus(rig)
            except BaseException:
                rig.close()
                raise
        return rig

    @property
    def clients(self) -> dict[int, JointClient]:
        return self.rig.clients

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` on the job thread (requests that wait for replies); the GUI polls the future. In
        lock-step the job owns the clock while it runs."""
        if self.driver is not None:
            return self.jobs.submit(self.driver.owned, fn, *args)
        return self.jobs.submit(fn, *args)

    def now(self) -> float:
        """The time on the joints' clock (the rings' receive times): ``perf_counter`` but in lock-step."""
        return self.rig.clock.now()

    # --- joint commands (sent at once: a frame, no reply awaited) -----------------------------------------------
    def enable(self, node: int, mode: str) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode = {mode!r} is not allowed: choose one of {', '.join(MODES)}")
        c = self.clients[node]
        here = c.latest().get("telemetry.position_rad", 0.0)
        setpoint = here if mode in ("position", "impedance") else 0.0
        gains = (0.0, 0.0)
        if mode == "impedance":
            gains = c.impedance_gains()
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
        """Why the connection counts as lost ('' when it is not): the served joints' process ended, no heartbeat from
        any joint, or a dead reader."""
        hub = self.rig.hub
        if self.served is not None and not self.served.running():
            return f"the simulated joints' process ended (exit code {self.served.proc.returncode})"
        if hub.lost is not None:
            return f"bus lost: {hub.lost}"
        if not hub.threaded and self.driver is None:  # in lock-step the clock's advances read the bus
            return f"bus reader stopped: {hub.last_error or 'closed'}"
        now = self.now()  # the heartbeats' stamps are on the hub's clock
        ages = [now - c.heartbeat_t for c in self.clients.values() if c.heartbeat_t is not None]
        if len(ages) < len(self.clients) and now - self.t0_clock < 2.0:
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
        if self.driver is not None:
            self.driver.stop()  # first: nothing advances the joints while the rest is taken down
        self.commander.stop()
        for n, c in self.clients.items():
            with contextlib.suppress(Exception):
                c.disable()
                self.commander.stop_stream(n)
        self.jobs.shutdown(wait=False, cancel_futures=True)
        self.rig.close()
