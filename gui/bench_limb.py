"""Benchmark of the whole GUI on a limb: ``jointkit bench gui --joints N`` (part of ``gui.bench``).

The main window (``gui.window.MainWindow``, 1280 x 720, its redraw timer at ``REDRAW_HZ``) is connected to N simulated
joints (native defaults: joint state at 1 kHz each), in their own process (``gui.served``, the GUI's default) and,
unless ``quick``, again in the GUI's process (``Connection.in_process``) for comparison. Every joint is enabled in
position mode, so the GUI's set-point streamer (``firmware_iface.client.streamer.Streamer``, 200 Hz a joint) feeds N
watchdogs. After ``WARMUP_S`` the figures are taken over ``DURATION_S`` of wall time:

* ``fps``: redraws of the board completed (``PlotBoard.frames``) a second.
* ``lateness_ms_p50``, ``lateness_ms_p99``, ``lateness_ms_max``: how late a ``PROBE_MS`` single-shot precise QTimer
  fires against its schedule (the time it was started plus its interval): what the event loop makes every input,
  paint and timer wait.
* ``streamer_misses``: set-point frames the streamer failed to send on time, over every joint: each gap between two
  consecutive set-points of a joint (the stream's own ring of send times) covers round(gap / period) periods, of which
  all but one are misses. ``streamer_gap_ms_max``: the longest gap; ``watchdog_ms``: the joints' watchdog timeout
  that a gap must stay under.
* ``telemetry_hz``: joint-state rows a joint received a second (mean over joints): the load the GUI really carried.
* ``joints_closed_loop_after``: joints still in closed loop at the end (a starved watchdog drops one to a fault).
* ``meets_target``: ``fps`` >= 30, no set-point gap over half the watchdog timeout, every joint still in closed
  loop (misses of single 5 ms periods are counted, not judged: a loaded machine's scheduler makes some).
* ``cpu_pct`` (the GUI process; of it ``gui_thread_cpu_pct``, ``hub_thread_cpu_pct`` (decoding every frame) and
  ``streamer_thread_cpu_pct``) and ``server_cpu_pct`` (the joints' process), in % of one core; ``loadavg_1min``
  before the run, so a reader knows how busy the machine was.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any

import numpy as np

WIDTH, HEIGHT = 1280, 720
# the window's redraw timer at the plot bench's 60 Hz (the application's default is 30 Hz): fps then says what the
# GUI could draw, not the cap of its timer, and the 30 fps target is reachable
REDRAW_HZ = 60.0
PROBE_MS = 10
WARMUP_S = 2.0
DURATION_S = 8.0
QUICK_WARMUP_S = 1.0
QUICK_DURATION_S = 3.0
CONNECT_TIMEOUT_S = 240.0  # a net: a cold Numba cache compiles for a minute on a busy machine
ENABLE_TIMEOUT_S = 20.0
TARGET_FPS = 30.0
# the GUI process's threads whose CPU is reported: the GUI thread (redraws, paints, panels), the bus hub's reader
# (every frame decoded into the rings) and the set-point streamer
THREADS = {"MainThread": "gui_thread", "bus-hub": "hub_thread", "gui-commander": "streamer_thread"}
STARVED_FRACTION = 0.5  # a set-point gap over half the watchdog timeout counts as starvation (one more such gap trips)


class _Lateness:
    """A single-shot precise timer re-armed on every shot; the lateness of each against its schedule."""

    def __init__(self, interval_ms: int) -> None:
        from PySide6 import QtCore

        self.interval_ms, self.late_s, self.running = interval_ms, [], True
        self.timer = QtCore.QTimer(singleShot=True, timerType=QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._shot)
        self._arm()

    def _arm(self) -> None:
        self.due = time.perf_counter() + self.interval_ms / 1000.0
        self.timer.start(self.interval_ms)

    def _shot(self) -> None:
        self.late_s.append(max(0.0, time.perf_counter() - self.due))
        if self.running:
            self._arm()

    def stop(self) -> None:
        self.running = False
        self.timer.stop()


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's Python threads by name (Linux /proc; empty elsewhere)."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid, name in names.items():
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _misses(times_s: np.ndarray, period_s: float) -> tuple[int, float]:
    """(missed set-points, longest gap in s) of one joint's send times."""
    if times_s.size < 2:
        return 0, math.nan
    gaps = np.diff(times_s)
    return int(np.sum(np.maximum(0, np.rint(gaps / period_s) - 1))), float(gaps.max())


def _connect(app: Any, nodes: tuple[int, ...], preset: str, in_process: bool) -> Any:
    from gui.app import wait_until
    from gui.session import Connection
    from gui.window import MainWindow

    # missed_heartbeats: a joint paced in the GUI's process stalls with it on a loaded machine; the figures here say
    # how much, a lost joint would only end the run early
    window = MainWindow(Connection(sim=True, preset=preset, nodes=nodes, in_process=in_process,
                                   missed_heartbeats=30), redraw_hz=REDRAW_HZ)
    window.resize(WIDTH, HEIGHT)
    window.show()
    try:
        wait_until(app, lambda: window.session is not None and all(c.alive for c in window.session.clients.values()),
                   CONNECT_TIMEOUT_S, "connecting to the joints")
        session = window.session
        for n in nodes:
            session.enable(n, "position")
        wait_until(app, lambda: all(c.state == "closed_loop" for c in session.clients.values()), ENABLE_TIMEOUT_S,
                   "every joint in closed loop")
    except BaseException:
        window.close()
        raise
    return window


def _spin(app: Any, seconds: float) -> None:
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def measure(app: Any, joints: int, preset: str, in_process: bool, warmup_s: float, duration_s: float) -> dict:
    nodes = tuple(range(1, joints + 1))
    load = os.getloadavg()[0]
    t_connect = time.perf_counter()
    window = _connect(app, nodes, preset, in_process)
    connect_s = time.perf_counter() - t_connect
    try:
        session = window.session
        server_pid = None if session.served is None else session.served.proc.pid
        _spin(app, warmup_s)
        probe = _Lateness(PROBE_MS)
        rows0 = [c.rings["joint_state"].count for c in session.clients.values()]
        frames0, cpu0, wall0 = window.board.frames, time.process_time(), time.perf_counter()
        server0 = _process_cpu_s(server_pid) if server_pid else math.nan
        threads0 = _thread_cpu_s()
        _spin(app, duration_s)
        wall1 = time.perf_counter()
        threads = {name: (cpu - threads0.get(name, 0.0)) / (wall1 - wall0) * 100.0
                   for name, cpu in _thread_cpu_s().items() if name in THREADS}
        wall, cpu = wall1 - wall0, time.process_time() - cpu0
        server = _process_cpu_s(server_pid) - server0 if server_pid else math.nan
        frames = window.board.frames - frames0
        probe.stop()
        period = session.commander.period_s
        misses, gaps = 0, []
        for s in session.commander.streams.values():
            t = s.ring.window(wall0, columns=("t_s",))[:, 0]
            m, g = _misses(t[t <= wall1], period)
            misses += m
            gaps.append(g)
        rows = [c.rings["joint_state"].count - r0 for c, r0 in zip(session.clients.values(), rows0, strict=True)]
        late_ms = np.asarray(probe.late_s) * 1e3
        fps = frames / wall
        return {
            "joints": joints, "process": "in the GUI's" if in_process else "own (jointkit sim serve)",
            "connect_s": connect_s, "duration_s": wall, "frames": frames, "fps": fps,
            "lateness_ms_p50": float(np.percentile(late_ms, 50)) if late_ms.size else math.nan,
            "lateness_ms_p99": float(np.percentile(late_ms, 99)) if late_ms.size else math.nan,
            "lateness_ms_max": float(late_ms.max()) if late_ms.size else math.nan,
            "probe_shots": int(late_ms.size), "streamer_hz": 1.0 / period, "streamer_misses": misses,
            "streamer_gap_ms_max": float(np.nanmax(gaps)) * 1e3 if gaps else math.nan,
            "watchdog_ms": min(session.commander.watchdog_s.values()) * 1e3,
            "telemetry_hz": float(np.mean(rows)) / wall,
            "joints_closed_loop_after": sum(c.state == "closed_loop" for c in session.clients.values()),
            "cpu_pct": cpu / wall * 100.0, "server_cpu_pct": server / wall * 100.0,
            **{f"{THREADS[name]}_cpu_pct": pct for name, pct in threads.items()},
            "loadavg_1min": load, "meets_target": bool(fps >= TARGET_FPS and max(gaps, default=math.inf)
                                                        < STARVED_FRACTION * min(session.commander.watchdog_s.values())
                                                        and all(c.state == "closed_loop"
                                                                for c in session.clients.values())),
        }
    finally:
        for n in nodes:
            with contextlib.suppress(Exception):
                window.session.disable(n)
        window.close()


def run(app: Any, joints: int, preset: str = "knee", quick: bool = False) -> dict[str, Any]:
    """The limb's figures: served joints, and (unless ``quick``) the same in the GUI's process."""
    warmup, duration = (QUICK_WARMUP_S, QUICK_DURATION_S) if quick else (WARMUP_S, DURATION_S)
    out = {"served": measure(app, joints, preset, False, warmup, duration)}
    if not quick:
        out["in_process"] = measure(app, joints, preset, True, warmup, duration)
    return out
