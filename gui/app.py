"""Starting the GUI: the Qt application (offscreen when there is no display and a screenshot is asked for), the
main window, and the scripted screenshot: connect, enable, run a step test through the Tests panel's own button
handler, and render the window to a PNG once the result and its metrics are shown.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actuator.errors import JointkitError
from gui.session import Connection

CONNECT_TIMEOUT_S = 20.0
ENABLE_TIMEOUT_S = 5.0
STEP_TIMEOUT_S = 60.0
FILL_S = 1.0  # plots fill for this long before the step, so the window shows the joint holding, then stepping


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


def application(offscreen_ok: bool) -> Any:
    """The QApplication (made once). Without a display Qt would abort; offscreen is used when the caller only
    renders to files, else a clear error says how to run it."""
    if not has_display() and "QT_QPA_PLATFORM" not in os.environ:
        if not offscreen_ok:
            raise JointkitError("no display (DISPLAY is not set): run on a desktop, or set "
                                "QT_QPA_PLATFORM=offscreen, or use --screenshot FILE.png to render offscreen")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":  # its plugin warns of window hints it cannot honour
        os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["jointkit"])


def wait_until(app: Any, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Run the event loop until ``done()``; JointkitError naming ``what`` after ``timeout_s``."""
    end = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > end:
            raise JointkitError(f"gui: {what} did not happen within {timeout_s:g} s")
        app.processEvents()
        time.sleep(0.005)


def settle(app: Any, seconds: float) -> None:
    end = time.perf_counter() + seconds
    wait_until(app, lambda: time.perf_counter() >= end, seconds + 1.0, "wait")


def step_and_screenshot(app: Any, window: Any, path: Path, amplitude: float | None = None) -> dict[str, Any]:
    """Connect, enable the first joint in position mode, run a step test with the Tests panel, save a PNG."""
    wait_until(app, lambda: window.session is not None and all(c.alive for c in window.session.clients.values()),
               CONNECT_TIMEOUT_S, "connecting to the joints")
    node = window.current_node()
    client = window.session.clients[node]
    window.actions.enable("position")
    wait_until(app, lambda: client.state == "closed_loop", ENABLE_TIMEOUT_S, f"node {node} reaching closed loop")
    settle(app, FILL_S)
    if amplitude is not None:
        window.tests.amplitude.setValue(amplitude)
    window.tests.step()
    wait_until(app, lambda: window.tests.last_metrics is not None or window.errors, STEP_TIMEOUT_S, "the step test")
    if window.tests.last_metrics is None:
        raise JointkitError(f"gui: the step test failed: {window.errors[-1]}")
    settle(app, 0.3)
    window.board.redraw()
    return save_screenshot(window, path) | {"metrics": dict(window.tests.last_metrics), "node": node}


def save_screenshot(window: Any, path: Path) -> dict[str, Any]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = window.grab()
    if not image.save(str(path)):
        raise JointkitError(f"gui: cannot write the screenshot {path}")
    return {"screenshot": str(path), "width": image.width(), "height": image.height()}


def run(conn: Connection, *, screenshot: Path | None = None, after_step: bool = False,
        amplitude: float | None = None, db: str | None = None) -> dict[str, Any] | int:
    """The GUI until its window closes (exit code), or the scripted screenshot (its figures); ``db``: the sequence
    panel's results database (``--db``)."""
    app = application(offscreen_ok=screenshot is not None)
    from gui.window import MainWindow

    with collect_in_gui_thread():
        window = MainWindow(conn, db=db)
        window.show()
        return _run_window(app, window, screenshot, after_step, amplitude)


def _run_window(app: Any, window: Any, screenshot: Path | None, after_step: bool,
                amplitude: float | None) -> dict[str, Any] | int:
    try:
        if screenshot is None:
            return app.exec()
        if after_step:
            return step_and_screenshot(app, window, screenshot, amplitude)
        wait_until(app, lambda: window.session is not None, CONNECT_TIMEOUT_S, "connecting to the joints")
        settle(app, FILL_S)
        window.board.redraw()
        return save_screenshot(window, screenshot)
    finally:
        window.close()


@contextmanager
def collect_in_gui_thread() -> Iterator[None]:
    """Python's garbage collector only in the GUI thread, on pyqtgraph's timer. Run automatically it collects in
    whichever thread allocates: in a connect or feeder thread it could delete a widget there, whose QObject destructor
    then waits for the GIL that the GUI thread holds while it waits on the same Qt lock (a hang seen in the GUI
    tests)."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    was_enabled = gc.isenabled()  # a caller that turned it off (the GUI tests) keeps it off
    collector = GarbageCollector(interval=1.0)
    try:
        yield
    finally:
        collector.timer.stop()
        gc.collect()
        if was_enabled:
            gc.enable()
