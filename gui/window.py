"""The main window: connection, joints, live plots, control, gains, tests, calibration, sequence, faults, recording,
status and the always-visible E-STOP (also on the Escape key, from anywhere in the application).

The window owns one ``Session`` at a time (opened and closed on a connector thread, never on the GUI thread), the
``PlotBoard`` that redraws from the clients' rings at a fixed rate, and a 5 Hz status timer that refreshes the
panels and the status bar and watches the connection: a lost one shows in the status bar and is reopened every
``RECONNECT_S`` until it answers. Errors of actions and jobs go to the status bar (and a dialog for files); the
window keeps running.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from actuator.errors import JointkitError
from firmware_iface.client import JointClient
from firmware_iface.rig.recording import FrameRecorder, SignalRecorder
from gui import layout
from gui.calibration import CalibrationPanel
from gui.context import PanelContext
from gui.gains import GainsPanel
from gui.jobs import Jobs
from gui.limb import LimbView
from gui.panels import ControlPanel, FaultsPanel, JointList
from gui.plots import PlotBoard
from gui.sequence import SequencePanel
from gui.session import Connection, Session
from gui.signals import PLOT_GROUPS, PLOTS, SignalChooser, signal_traces
from gui.testing import TestsPanel

STATUS_HZ = 5.0
RECONNECT_S = 2.0
ESTOP_KEY = "Escape"
DOCK_WIDTHS_PX = (270, 400)  # joints (left), tools (right): the plots keep 610 px of a 1280 px screen


def _scrolled(widget: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    """``widget`` in a scroll area: a panel taller than a 720 px screen scrolls rather than squashing its plots."""
    area = QtWidgets.QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    # as wide as the panel needs beside a vertical scroll bar: it scrolls down, never sideways
    extent = area.style().pixelMetric(QtWidgets.QStyle.PixelMetric.PM_ScrollBarExtent)
    area.setMinimumWidth(widget.minimumSizeHint().width() + extent)
    return area


class Actions:
    """What the control widgets do to the current joint; errors go to the status bar, never up."""

    def __init__(self, window: MainWindow) -> None:
        self.w = window

    def _do(self, what: str, fn: Any, *args: Any) -> Any:
        session, node = self.w.session, self.w.current_node()
        if session is None or node is None:
            self.w.status_message(f"{what}: not connected")
            return None
        try:
            return fn(session, node, *args)
        except JointkitError as e:
            self.w.show_error(what, e)
            return None

    def enable(self, mode: str) -> None:
        # impedance reads its gains from the joint first (a reply), so enabling goes through the job thread
        session = self.w.session
        node = self.w.current_node()
        if session is not None and node is not None:
            self.w.jobs.run(f"enable {mode}", session.enable, node, mode,
                            on_done=lambda _: self.w.status_message(f"node {node}: enabled in {mode}"))

    def disable(self) -> None:
        self._do("disable", lambda s, n: s.disable(n))

    def setpoint(self, value: float) -> None:
        self._do("set-point", lambda s, n: s.commander.set_setpoint(n, value))

    def move(self, target_rad: float) -> None:
        def go(s: Session, n: int) -> None:
            here = s.clients[n].latest().get("telemetry.position_rad", 0.0)
            d = s.commander.move_to(n, target_rad, here)
            self.w.status_message(f"node {n}: moving to {target_rad:g} rad in {d:.2f} s")
        self._do("move", go)

    def hand_over(self, node: int) -> None:
        """A test takes over the joint's set-points: stop streaming to it."""
        if self.w.session is not None:
            self.w.session.commander.stop_stream(node)

    def clear_faults(self) -> None:
        self._do("clear faults", lambda s, n: s.clear_faults(n))

    def estop(self) -> None:
        session = self.w.session
        if session is None:
            self.w.status_message("E-STOP: not connected")
            return
        problems = session.estop()
        self.w.status_message("E-STOP sent to every joint" + (f"; failed: {'; '.join(problems)}" if problems else ""))


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, conn: Connection, *, connect: bool = True, redraw_hz: float = 30.0,
                 db: str | Path | None = None) -> None:
        super().__init__()
        self.db = db  # the sequence panel's results database (None: results.db next to its output folder)
        self.setWindowTitle("jointkit")
        self.conn, self.preset = conn, conn.preset
        self.session: Session | None = None
        self.dialog: QtWidgets.QMessageBox | None = None
        self.recorders: list[Any] = []
        self.errors: list[str] = []
        self.errors_seen: list[str] = []
        self._connector = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-connect")
        self._connecting = False
        self._lost_since: float | None = None
        self.actions = Actions(self)
        self.jobs = Jobs(self._submit, self.show_error, self)
        self._build(redraw_hz)
        self._status_timer = QtCore.QTimer(self)
        self._status_timer.setInterval(round(1000 / STATUS_HZ))
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        if connect:
            self.connect_to(conn)

    # --- layout ---------------------------------------------------------------------------------------------
    def _build(self, redraw_hz: float) -> None:
        self._build_toolbar()
        self.board = PlotBoard(rate_hz=redraw_hz, window_s=10.0, clock=self._now)
        for name, (title, unit) in PLOTS.items():
            self.board.add_plot(name, title, unit, PLOT_GROUPS[name])
        self.joints = JointList()
        self.joints.itemSelectionChanged.connect(self._joint_selected)
        ctx = PanelContext(actions=self.actions, jobs=self.jobs, board=self.board, current_client=self.current_client,
                           preset=lambda: self.preset, status=self.status_message, show_error=self.show_error,
                           open_dialog=self._open_dialog, fixture=self._fixture)
        self.control = ControlPanel(ctx)
        self.faults = FaultsPanel(ctx)
        self.chooser = SignalChooser()
        self.chooser.changed.connect(self._traces_changed)
        self.chooser.currentItemChanged.connect(lambda item, _: self.select_joint(self.chooser.node_of(item)))
        self.limb = LimbView()
        self.limb.joint_selected.connect(self.select_joint)
        self.board.add_page("limb", self.limb)
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        for w in (self.joints, self.control, self.faults):
            lv.addWidget(w)
        self.tests = TestsPanel(ctx)
        self.gains = GainsPanel(ctx)
        self.tests.gains_applied.connect(lambda values: self.gains.show_values(values, 1))
        tabs = QtWidgets.QTabWidget(objectName="right_tabs")
        self.calibration = CalibrationPanel(ctx)
        self.sequence = SequencePanel(ctx, lambda: None if self.session is None else self.session.rig, self.db)
        for panel, text in ((self.tests, "Tests"), (self.gains, "Gains"), (self.calibration, "Calibration"),
                            (self.sequence, "Sequence")):
            tabs.addTab(_scrolled(panel), text)
        self.setCentralWidget(self.board)
        self.docks = {name: self._dock(name, title, widget, area) for name, title, widget, area in (
            ("joints", "Joints", _scrolled(left), QtCore.Qt.DockWidgetArea.LeftDockWidgetArea),
            ("signals", "Signals", self.chooser, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea),
            ("tools", "Tests, gains, calibration, sequence", tabs, QtCore.Qt.DockWidgetArea.RightDockWidgetArea))}
        self._build_statusbar()
        self.resize(*layout.PREFERRED_SIZE)
        self._layout_restored = layout.restore(self, self.board)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        layout.fit_to_screen(self)  # again with the frame the window system gave it
        if not self._layout_restored:  # the docks' first widths (Qt sizes docks only once the window is shown)
            self._layout_restored = True
            self.resizeDocks([self.docks["joints"], self.docks["tools"]], list(DOCK_WIDTHS_PX),
                             QtCore.Qt.Orientation.Horizontal)

    def _dock(self, name: str, title: str, widget: QtWidgets.QWidget,
              area: QtCore.Qt.DockWidgetArea) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self, objectName=f"dock_{name}")  # the name saveState keys it by
        # movable and floatable, not closable: the window has no menu to bring a closed dock back
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("main")
        bar.setObjectName("toolbar")
        bar.setMovable(False)
        for text, slot in (("Connect…", self._ask_connect), ("Disconnect", self.disconnect),
                           ("Rescan", lambda: self.connect_to(self.conn))):
            bar.addAction(text, slot)
        self.record_btn = QtWidgets.QPushButton("● Record", objectName="record", checkable=True)
        self.record_btn.toggled.connect(self._record_toggled)
        bar.addWidget(self.record_btn)
        spacer = QtWidgets.QWidget()
        spacer.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        self.estop_btn = QtWidgets.QPushButton("E-STOP", objectName="estop")
        self.estop_btn.setToolTip(f"emergency stop of every joint ({ESTOP_KEY})")
        self.estop_btn.setStyleSheet("QPushButton { background: #c62828; color: white; font-weight: bold; "
                                     "font-size: 16px; padding: 6px 24px; border-radius: 4px; }")
        self.estop_btn.clicked.connect(self.actions.estop)
        bar.addWidget(self.estop_btn)
        shortcut = QtGui.QShortcut(QtGui.QKeySequence(ESTOP_KEY), self)
        shortcut.setContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
        shortcut.activated.connect(self.actions.estop)
        self.estop_shortcut = shortcut

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.labels: dict[str, QtWidgets.QLabel] = {}
        for key in ("connection", "bus_load", "frames", "dropped", "rtt", "watchdog"):
            label = QtWidgets.QLabel("", objectName=f"status_{key}")
            sb.addPermanentWidget(label)
            self.labels[key] = label

    # --- messages -------------------------------------------------------------------------------------------
    def _open_dialog(self, box: QtWidgets.QMessageBox) -> None:
        self.dialog = box  # kept (and reachable by scripts and tests) until the next one
        box.open()

    def status_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10_000)

    def show_error(self, what: str, error: BaseException, *, dialog: bool = False) -> None:
        text = f"{what}: {error}"
        self.errors.append(text)
        self.status_message(text)
        if dialog or not isinstance(error, JointkitError):
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "jointkit", text,
                                        QtWidgets.QMessageBox.StandardButton.Ok, self)
            box.setObjectName("error_dialog")
            self.dialog = box
            box.open()  # not exec(): the window keeps redrawing and streaming behind it

    # --- connection -----------------------------------------------------------------------------------------
    def _submit(self, fn: Any, *args: Any) -> Any:
        if self.session is None:
            raise JointkitError("not connected")
        return self.session.submit(fn, *args)

    def connect_to(self, conn: Connection) -> None:
        if self._connecting:
            return
        self._connecting = True
        old, self.session = self.session, None
        self.conn = conn
        self.labels["connection"].setText(f"connecting to {conn.describe()}…")

        def reopen() -> Session:
            if old is not None:
                old.close()
            return Session(conn)
        self.jobs.run("connect", reopen, on_done=self._connected, on_error=self._connect_failed,
                      submit=self._connector.submit)

    def _connected(self, session: Session) -> None:
        self._connecting, self._lost_since = False, None
        self.session = session
        self.chooser.set_nodes(list(session.clients))
        self.limb.set_nodes(list(session.clients))
        self.joints.refresh(session)  # selects the first joint, which selects it in the others
        self._traces_changed()
        self.board.start()
        self.status_message(f"connected: {session.conn.describe()}")

    def _connect_failed(self, error: BaseException) -> None:
        self._connecting = False
        self._lost_since = self._lost_since or time.perf_counter()
        self.show_error("connect", error)

    def disconnect(self) -> None:
        old, self.session = self.session, None
        self.stop_recording()
        if old is not None:
            self._connector.submit(old.close)
        self.labels["connection"].setText("disconnected")

    def _ask_connect(self) -> None:
        from gui.connect import ConnectDialog

        dialog = ConnectDialog(self.conn, self)
        if dialog.exec():
            self.connect_to(dialog.connection())

    # --- joints and plots -----------------------------------------------------------------------------------
    def _now(self) -> float:
        # the rings' time base: the session's clock (the joints' in lock-step), perf_counter between sessions
        return self.session.now() if self.session is not None else time.perf_counter()

    def current_node(self) -> int | None:
        return self.joints.current_node() if self.session is not None else None

    def current_client(self) -> JointClient | None:
        node = self.current_node()
        if node is None:
            self.status_message("no joint selected (not connected?)")
            return None
        return self.session.clients[node]

    def _fixture(self, node: int) -> Any:
        return None if self.session is None else self.session.rig.fixtures.get(node)

    def select_joint(self, node: int | None) -> None:
        """Make ``node`` the current joint everywhere: the joint list (whose selection drives the rest), the limb
        view and the signal chooser."""
        if node is not None and node != self.joints.current_node():
            self.joints.select(node)

    def _joint_selected(self) -> None:
        node = self.current_node()
        if node is not None:
            self.limb.select(node)
            self.chooser.select_node(node)
            self.gains.read()

    def _traces_changed(self) -> None:
        for name in PLOTS:
            plot = self.board.plot(name)
            for key in plot.traces():
                plot.remove_trace(key)
        if self.session is None:
            return
        for plot_name, trace in signal_traces(self.session, self.chooser.chosen()):
            self.board.plot(plot_name).add_trace(trace)

    # --- recording ------------------------------------------------------------------------------------------
    def start_recording(self, base: Path) -> list[Path]:
        """Record every frame to BASE.blf and the decoded signals to BASE.mf4 (the rig's formats)."""
        if self.session is None:
            raise JointkitError("recording needs a connection")
        base = Path(base)
        base.parent.mkdir(parents=True, exist_ok=True)
        hub = self.session.rig.hub
        self.recorders = [FrameRecorder(base.with_suffix(".blf")), SignalRecorder(base.with_suffix(".mf4"),
                                                                                   hub.profile)]
        for r in self.recorders:
            hub.add_listener(r)
        self.status_message(f"recording to {base.with_suffix('.blf')} and {base.with_suffix('.mf4')}")
        return [base.with_suffix(".blf"), base.with_suffix(".mf4")]

    def stop_recording(self) -> None:
        for r in self.recorders:
            if self.session is not None:
                self.session.rig.hub.remove_listener(r)
            r.stop()
        if self.recorders:
            self.status_message("recording stopped")
        self.recorders = []

    def _record_toggled(self, on: bool) -> None:
        if not on:
            self.stop_recording()
            return
        base = Path("recordings") / time.strftime("jointkit-%Y%m%d-%H%M%S")
        try:
            self.start_recording(base)
        except (JointkitError, OSError) as e:
            self.show_error("record", e)
            with QtCore.QSignalBlocker(self.record_btn):
                self.record_btn.setChecked(False)

    # --- status ---------------------------------------------------------------------------------------------
    def refresh_status(self) -> None:
        s = self.session
        self.joints.refresh(s)
        self.faults.refresh(s)
        if self.limb.isVisible():  # nobody sees it otherwise
            self.limb.refresh(s)
        if s is None:
            if not self._connecting:
                self.labels["connection"].setText("disconnected")
            self._maybe_reconnect()
            return
        lost = s.lost()
        if lost:
            self._lost_since = self._lost_since or time.perf_counter()
            self.labels["connection"].setText(f"connection lost: {lost}; reconnecting")
            self.labels["connection"].setStyleSheet("color: #c62828; font-weight: bold")
            self._maybe_reconnect()
            return
        self._lost_since = None
        self.labels["connection"].setText(s.conn.describe())
        self.labels["connection"].setStyleSheet("")
        st = s.stats()
        self.labels["bus_load"].setText(f"bus {st['bus_load_pct']:.0f} %")
        self.labels["frames"].setText(f"{st['frames_per_s']:.0f} frames/s")
        self.labels["dropped"].setText(f"dropped {st['dropped']} · gaps {st['gaps']}")
        rtt = st["rtt_us"]
        self.labels["rtt"].setText("rtt –" if math.isnan(rtt) else f"rtt {rtt:.0f} µs")
        margin = st["watchdog_margin_s"]
        self.labels["watchdog"].setText("watchdog –" if margin is None else f"watchdog margin {margin * 1e3:.0f} ms")
        for err in st["stream_errors"][len(self.errors_seen):]:
            self.show_error("set-point stream", JointkitError(err))
        self.errors_seen = list(st["stream_errors"])

    def _maybe_reconnect(self) -> None:
        if self._lost_since is None or self._connecting:
            return
        if time.perf_counter() - self._lost_since >= RECONNECT_S:
            self._lost_since = time.perf_counter()
            self.connect_to(self.conn)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        layout.save(self, self.board)
        self._status_timer.stop()
        self.board.stop()
        self.stop_recording()
        self.sequence.close_threads()  # a sequence still running is stopped as Ctrl-C stops it
        if self.session is not None:
            self.session.close()
            self.session = None
        self._connector.shutdown(wait=False)
        super().closeEvent(event)
