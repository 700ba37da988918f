"""Benchmark of the GUI's live plots: 16 curves fed at 1 kHz, redrawn by ``gui.plots.PlotBoard`` at 60 Hz; with
``--joints N``, also the whole window on N simulated joints (``gui.bench_limb``: fps, event-loop lateness, set-point
streamer misses, in the joints' own process and in the GUI's).

The board holds ``PLOTS`` LivePlots of ``CURVES_PER_PLOT`` traces each (16 curves), shown at ``WIDTH`` x ``HEIGHT``
pixels (on the ``offscreen`` Qt platform when there is no display, so painting into the backing store really
happens). Each curve reads its own ``Ring`` (capacity ``RING_CAPACITY``) through ``gui.plots.ring_trace``. A feeder
thread plays the bus hub's part: it appends one row to each ring per millisecond (receive time on a 1 ms grid of
``time.perf_counter()``; a sine plus noise), catching up after a late wake-up, so every curve is fed at ``FEED_HZ``
while the GUI thread draws. The rings are pre-filled with ``max(WINDOWS_S)`` seconds of history first, so every
window is full from the first frame.

For each window length in ``WINDOWS_S`` (10 s, the main case, then 60 s) the board is set to it, the Qt event loop
runs ``WARMUP_S`` unmeasured and then ``DURATION_S`` (``--quick``: ``QUICK_WARMUP_S`` and ``QUICK_DURATION_S``)
measured, with the board's own ``QTimer`` at ``RATE_HZ`` driving ``PlotBoard.redraw``, as in the application:

* ``fps``: redraws completed (``PlotBoard.frames``) per second of wall time. A redraw fetches the window of every
  trace and hands it to its curve; Qt paints afterwards, in the same event loop, so a slow paint delays the next
  timer tick and lowers ``fps``: it counts frames the GUI thread could both compute and paint, at most ``RATE_HZ``.
* ``paints_per_s``: paint events of each plot's viewport per second (mean over the plots), counted by an event
  filter: the proof that frames were painted, not only computed. ``paint_ms_p50``, ``paint_ms_p99``: the duration
  of those paints, one plot each (the filter delivers the paint itself, as Qt would next, to time it).
* ``frame_ms_p50``, ``frame_ms_p99``: durations of the redraws (fetch, downsampling, ``setData``; painting not
  included). ``busy_ms_per_frame``: (redraw time + paint time of all plots) / frames, the GUI thread's cost of one
  frame, so 1000 / busy_ms_per_frame is the rate this machine could draw at without the timer's cap.
* ``cpu_pct``: process CPU time (``time.process_time``, every thread: GUI, feeder, Qt's) / wall time, in % of one
  core; ``gui_thread_cpu_pct`` and ``feeder_cpu_pct``: the same for those threads alone (``time.thread_time``).
* ``feed_rate_hz``: rows the feeder wrote per curve per second of wall time.
* ``points_per_curve_in_window``: samples per curve after the last redraw (mean over curves), what the window
  holds; ``points_drawn_per_curve``: the same after pyqtgraph's peak downsampling, what was painted.
* ``meets_target``: ``fps`` >= ``TARGET_FPS`` and every plot painted at least that often.

Each window's figures are under ``window_10s`` and ``window_60s``; flat copies of the 10 s case's figures are at
the top level (``fps``, ``cpu_pct``, ...), and of a few 60 s figures (``window_60s_fps``, ...), for the CLI table,
which does not show nested figures. Feeder and GUI share one interpreter lock, so the feeder's cost is part of what
the GUI thread sees, as the bus hub's would be. The figures are what was measured; a slow machine gives lower
figures, not an error.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from firmware_iface.client.rings import Ring

PLOTS = 4
CURVES_PER_PLOT = 4
FEED_HZ = 1000
RING_CAPACITY = 65_536  # > 60 s at 1 kHz: the longest window fits with room for the run
RATE_HZ = 60.0
TARGET_FPS = 30
WINDOWS_S = (10.0, 60.0)  # the first is the main case (flat figures at the top level)
WIDTH, HEIGHT = 1600, 1000
WARMUP_S = 1.0
DURATION_S = 5.0
QUICK_WARMUP_S = 0.5
QUICK_DURATION_S = 1.5
NOISE_RAD = 0.05
FLAT = ("fps", "frame_ms_p50", "frame_ms_p99", "paints_per_s", "paint_ms_p50", "paint_ms_p99", "busy_ms_per_frame",
        "cpu_pct", "gui_thread_cpu_pct", "feeder_cpu_pct", "feed_rate_hz", "points_per_curve_in_window",
        "points_drawn_per_curve", "meets_target")
LIMB_FLAT = ("fps", "lateness_ms_p50", "lateness_ms_p99", "streamer_misses", "streamer_gap_ms_max", "telemetry_hz",
             "joints_closed_loop_after", "cpu_pct", "server_cpu_pct", "loadavg_1min", "meets_target")
FLAT_LONG = ("fps", "frame_ms_p99", "busy_ms_per_frame", "cpu_pct", "meets_target")  # of the other windows

_app: Any = None  # the QApplication this module created: kept for the process (Qt wants one, never destroyed)


def _application() -> Any:
    """The running QApplication, or a new one (offscreen when there is no display)."""
    global _app
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # read when the application is created
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = _app = QtWidgets.QApplication(["jointkit-bench-gui"])
    if not isinstance(app, QtWidgets.QApplication):
        raise RuntimeError("a QCoreApplication without widgets is running: the GUI bench needs a QApplication")
    return app


@contextlib.contextmanager
def _quiet_offscreen_warning() -> Iterator[None]:
    """Drop the offscreen platform's "does not support propagateSizeHints()" warning (a window shown offscreen has
    nowhere to propagate them); every other Qt message goes where it went before."""
    from PySide6 import QtCore

    previous = None

    def handler(mode: Any, context: Any, message: str) -> None:
        if "propagateSizeHints" in message:
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            print(message, file=sys.stderr)

    previous = QtCore.qInstallMessageHandler(handler)
    try:
        yield
    finally:
        QtCore.qInstallMessageHandler(previous)


def _signal(t: np.ndarray, j: int, rng: np.random.Generator) -> np.ndarray:
    """Curve j's values at times t: a sine of its own frequency and phase plus noise."""
    return np.sin(2 * np.pi * (0.2 + 0.15 * j) * t + j) + NOISE_RAD * rng.standard_normal(t.shape)


class _Feeder(threading.Thread):
    """Appends one row a millisecond to every ring (times on the grid t_base + k / FEED_HZ), as a bus thread would."""

    def __init__(self, rings: list[Ring], t_base: float, k0: int) -> None:
        super().__init__(name="jointkit-bench-gui-feeder", daemon=True)
        self.rings, self.t_base, self.k = rings, t_base, k0
        self.stop = threading.Event()
        self.cpu_s = 0.0  # this thread's CPU time, updated every pass
        rng = np.random.default_rng(1)
        self.noise = NOISE_RAD * rng.standard_normal((4096, len(rings)))  # drawn once: the feeder costs appends only

    def run(self) -> None:
        omegas = [2 * np.pi * (0.2 + 0.15 * j) for j in range(len(self.rings))]
        while not self.stop.is_set():
            due = int((time.perf_counter() - self.t_base) * FEED_HZ)
            while self.k <= due:  # catch up after a late wake-up: the rate stays FEED_HZ on average
                t = self.t_base + self.k / FEED_HZ
                noise = self.noise[self.k % len(self.noise)]
                for j, ring in enumerate(self.rings):
                    ring.append(t, [math.sin(omegas[j] * t + j) + noise[j]])
                self.k += 1
            self.cpu_s = time.thread_time()
            time.sleep(1.0 / FEED_HZ)


class _PaintMeter:
    """Counts and times the paint events of the plots' viewports (an event filter on each)."""

    def __init__(self, views: list[Any]) -> None:
        from PySide6 import QtCore

        meter = self

        class Filter(QtCore.QObject):
            def __init__(self, view: Any) -> None:
                super().__init__()
                self.view, self.inside = view, False

            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
                if event.type() != QtCore.QEvent.Type.Paint or self.inside:
                    return False
                self.inside = True
                start = time.perf_counter()
                try:
                    self.view.viewportEvent(event)  # what Qt delivers the viewport's paint to next
                finally:
                    self.inside = False
                meter.durations_s.append(time.perf_counter() - start)
                return True

        self.durations_s: list[float] = []
        self.filters = [Filter(v) for v in views]
        for f in self.filters:
            f.view.viewport().installEventFilter(f)

    def remove(self) -> None:
        for f in self.filters:
            f.view.viewport().removeEventFilter(f)


def _spin(seconds: float) -> None:
    """Run the Qt event loop for ``seconds`` (timers fire, paints happen)."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def _percentile_ms(values_s: list[float], q: float) -> float:
    return float(np.percentile(values_s, q) * 1e3) if values_s else math.nan


def _build(app: Any, t_base: float, n_history: int) -> tuple[Any, list[Ring], list[Any]]:
    """The board of PLOTS x CURVES_PER_PLOT ring traces, shown, and its rings holding ``n_history`` rows."""
    from gui.plots import PlotBoard, ring_trace

    board = PlotBoard(rate_hz=RATE_HZ, window_s=WINDOWS_S[0])
    rng = np.random.default_rng(0)
    t_hist = t_base + np.arange(n_history) / FEED_HZ
    rings, curves = [], []
    for p in range(PLOTS):
        plot = board.add_plot(f"plot{p}", f"plot {p}", "rad")
        for c in range(CURVES_PER_PLOT):
            j = len(rings)
            ring = Ring(("value",), RING_CAPACITY)
            ring.extend(np.column_stack([t_hist, _signal(t_hist, j, rng)]))
            plot.add_trace(ring_trace(ring, "value", f"{p}:{c}", f"curve {j}", "rad"))
            rings.append(ring)
            curves.append(plot.curve(f"{p}:{c}"))
    board.resize(WIDTH, HEIGHT)
    board.show()
    app.processEvents()
    return board, rings, curves


def _measure(board: Any, feeder: _Feeder, meter: _PaintMeter, curves: list[Any], window_s: float,
             warmup_s: float, duration_s: float) -> dict[str, Any]:
    """The figures of one window length (see the module docstring)."""
    board.set_window_s(window_s)
    _spin(warmup_s)
    frames0, paints0, k0, feeder_cpu0 = board.frames, len(meter.durations_s), feeder.k, feeder.cpu_s
    cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    _spin(duration_s)
    wall = time.perf_counter() - wall0
    cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
    frames = board.frames - frames0
    redraws = list(board.frame_durations_s)[len(board.frame_durations_s) - frames:] if frames else []
    paints = meter.durations_s[paints0:]
    paints_per_s = len(paints) / len(meter.filters) / wall
    fps = frames / wall
    return {
        "window_s": window_s,
        "duration_s": wall,
        "frames": frames,
        "fps": fps,
        "frame_ms_p50": _percentile_ms(redraws, 50),
        "frame_ms_p99": _percentile_ms(redraws, 99),
        "paints_per_s": paints_per_s,
        "paint_ms_p50": _percentile_ms(paints, 50),
        "paint_ms_p99": _percentile_ms(paints, 99),
        "busy_ms_per_frame": (sum(redraws) + sum(paints)) / frames * 1e3 if frames else math.nan,
        "cpu_pct": cpu / wall * 100.0,
        "gui_thread_cpu_pct": thread / wall * 100.0,
        "feeder_cpu_pct": (feeder.cpu_s - feeder_cpu0) / wall * 100.0,
        "feed_rate_hz": (feeder.k - k0) / wall,
        "points_per_curve_in_window": float(np.mean([len(c.xData) for c in curves])),
        "points_drawn_per_curve": float(np.mean([len(c.getData()[0]) for c in curves])),
        "meets_target": bool(fps >= TARGET_FPS and paints_per_s >= TARGET_FPS),
    }


def _run_windows(app: Any, warmup_s: float, duration_s: float) -> dict[str, dict[str, Any]]:
    """Build, feed and measure every window length; the board, its timer and the feeder are gone on return."""
    n_history = round(max(WINDOWS_S) * FEED_HZ)
    t_base = time.perf_counter() - n_history / FEED_HZ  # the history ends now; the feeder goes on from there
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_offscreen_warning())
        board, rings, curves = _build(app, t_base, n_history)
        stack.callback(app.processEvents)  # the board's deferred deletion
        stack.callback(board.deleteLater)
        stack.callback(board.close)
        meter = _PaintMeter([board.plot(name).widget for name in board.plots()])
        stack.callback(meter.remove)
        feeder = _Feeder(rings, t_base, n_history)
        feeder.start()
        stack.callback(feeder.join)
        stack.callback(feeder.stop.set)
        board.start()
        stack.callback(board.stop)
        return {f"window_{w:g}s": _measure(board, feeder, meter, curves, w, warmup_s, duration_s) for w in WINDOWS_S}


def run(preset: str = "knee", quick: bool = False, joints: int | None = None) -> dict[str, Any]:
    """The plot board's figures; with ``joints``, also the whole window's on that many simulated joints of ``preset``
    (``gui.bench_limb``: under ``limb``, with flat ``limb_*`` copies of the served case)."""
    warmup, duration = (QUICK_WARMUP_S, QUICK_DURATION_S) if quick else (WARMUP_S, DURATION_S)
    app = _application()
    from gui.app import collect_in_gui_thread

    with collect_in_gui_thread():  # the feeder thread must not collect widgets
        windows = _run_windows(app, warmup, duration)
        limb = _run_limb(app, joints, preset, quick) if joints else None
    main, *others = windows
    out: dict[str, Any] = {"curves": PLOTS * CURVES_PER_PLOT, "plots": PLOTS, "feed_hz": FEED_HZ, "rate_hz": RATE_HZ,
                           "target_fps": TARGET_FPS, "size_px": f"{WIDTH}x{HEIGHT}", "qt_platform": app.platformName(),
                           **windows}
    out.update({key: windows[main][key] for key in FLAT})
    for name in others:
        out.update({f"{name}_{key}": windows[name][key] for key in FLAT_LONG})
    out.update({"warmup_s": warmup, "duration_s": duration, "cores": os.cpu_count()})
    if limb is not None:
        out["limb"] = limb
        out.update({f"limb_{key}": limb["served"][key] for key in LIMB_FLAT})
        if "in_process" in limb:
            out.update({f"limb_in_process_{key}": limb["in_process"][key] for key in LIMB_FLAT})
    return out


def _run_limb(app: Any, joints: int, preset: str, quick: bool) -> dict[str, Any]:
    """``gui.bench_limb`` with the window's remembered layout in a temporary directory: a benchmark must not change
    the user's."""
    import tempfile

    from PySide6 import QtCore

    from gui import bench_limb

    fmt, scope = QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope
    with tempfile.TemporaryDirectory(prefix="jointkit-bench-settings-") as where, _quiet_offscreen_warning():
        QtCore.QSettings.setPath(fmt, scope, where)
        return bench_limb.run(app, joints, preset, quick)
