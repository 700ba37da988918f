"""The window's joint panels: the joint list with state and fault badges, the control panel (enable, mode,
set-point by slider and by number, trajectory moves) and the faults panel (active and latched faults, clear).

Panels read the session's clients (their last heartbeat and telemetry, no waiting) on the window's status timer,
and act through the ``Actions`` of their ``PanelContext`` (gui/context.py), which send or submit jobs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from gui.session import MODES, Session

if TYPE_CHECKING:
    from gui.context import PanelContext

STATE_COLORS = {"closed_loop": "#2e7d32", "idle": "#546e7a", "calibrate": "#f9a825", "fault": "#c62828",
                "estop": "#b71c1c", None: "#9e9e9e"}
SLIDER_STEPS = 1000  # the slider spans the mode's range in this many steps
MODE_RANGES = {"position": (-2.5, 2.5, "rad"), "impedance": (-2.5, 2.5, "rad"), "velocity": (-6.0, 6.0, "rad/s"),
               "torque": (-150.0, 150.0, "N·m")}


class JointList(QtWidgets.QTreeWidget):
    """Joints heard on the bus: node, state, mode and a fault badge; selecting one makes it the current joint."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("joints")
        self.setHeaderLabels(["node", "state", "mode", "faults"])
        self.setRootIsDecorated(False)
        self.setMinimumHeight(90)
        for column, width in enumerate((44, 84, 72)):
            self.setColumnWidth(column, width)

    def refresh(self, session: Session | None) -> None:
        nodes = {} if session is None else session.clients
        if self.topLevelItemCount() != len(nodes):
            self.clear()
            for n in nodes:
                QtWidgets.QTreeWidgetItem(self, [str(n), "", "", ""])
            if nodes:
                self.setCurrentItem(self.topLevelItem(0))
        for i, c in enumerate(nodes.values()):
            item = self.topLevelItem(i)
            state = c.state if c.alive else None
            item.setText(1, state or "silent")
            item.setForeground(1, QtGui.QBrush(QtGui.QColor(STATE_COLORS.get(state, "#9e9e9e"))))
            item.setText(2, c.mode or "")
            faults = c.faults
            item.setText(3, ", ".join(faults) if faults else "ok")
            item.setBackground(3, QtGui.QBrush(QtGui.QColor("#ffcdd2" if faults else "#c8e6c9")))

    def current_node(self) -> int | None:
        item = self.currentItem()
        return None if item is None else int(item.text(0))

    def select(self, node: int) -> None:
        """Make ``node`` the current joint (``itemSelectionChanged`` follows, as for a click)."""
        for i in range(self.topLevelItemCount()):
            if self.topLevelItem(i).text(0) == str(node):
                self.setCurrentItem(self.topLevelItem(i))
                return


class ControlPanel(QtWidgets.QGroupBox):
    """Enable and disable, mode, set-point (slider and number, sent on change), and a planned move."""

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__("Control")
        self.ctx = ctx
        form = QtWidgets.QFormLayout(self)
        self.mode = QtWidgets.QComboBox(objectName="mode")
        self.mode.addItems(MODES)
        self.mode.currentTextChanged.connect(self._mode_changed)
        row = QtWidgets.QHBoxLayout()
        self.enable_btn = QtWidgets.QPushButton("Enable", objectName="enable")
        self.disable_btn = QtWidgets.QPushButton("Disable", objectName="disable")
        self.enable_btn.clicked.connect(lambda: ctx.actions.enable(self.mode.currentText()))
        self.disable_btn.clicked.connect(ctx.actions.disable)
        row.addWidget(self.enable_btn)
        row.addWidget(self.disable_btn)
        form.addRow("mode", self.mode)
        form.addRow(row)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, objectName="setpoint_slider")
        self.slider.setRange(-SLIDER_STEPS // 2, SLIDER_STEPS // 2)
        self.number = QtWidgets.QDoubleSpinBox(objectName="setpoint")
        self.number.setDecimals(3)
        self.number.setKeyboardTracking(False)  # send when the user finishes typing, not on every digit
        self.slider.valueChanged.connect(self._slider_moved)
        self.number.valueChanged.connect(self._number_changed)
        form.addRow("set-point", self.slider)
        form.addRow("", self.number)
        move_row = QtWidgets.QHBoxLayout()
        self.move_target = QtWidgets.QDoubleSpinBox(objectName="move_target", decimals=3, minimum=-2.5, maximum=2.5,
                                                    singleStep=0.1, suffix=" rad")
        self.move_btn = QtWidgets.QPushButton("Move", objectName="move")
        self.move_btn.setToolTip("an S-curve move of the position set-point (1 rad/s, 4 rad/s²)")
        self.move_btn.clicked.connect(lambda: ctx.actions.move(self.move_target.value()))
        move_row.addWidget(self.move_target)
        move_row.addWidget(self.move_btn)
        form.addRow("move to", move_row)
        self._mode_changed(self.mode.currentText())

    def _mode_changed(self, mode: str) -> None:
        lo, hi, unit = MODE_RANGES[mode]
        with QtCore.QSignalBlocker(self.number):
            self.number.setRange(lo, hi)
            self.number.setSuffix(f" {unit}")
            self.number.setSingleStep((hi - lo) / 100)
        self._show_setpoint(0.0)

    def _slider_moved(self, k: int) -> None:
        lo, hi, _ = MODE_RANGES[self.mode.currentText()]
        value = lo + (k + SLIDER_STEPS // 2) * (hi - lo) / SLIDER_STEPS
        with QtCore.QSignalBlocker(self.number):
            self.number.setValue(value)
        self.ctx.actions.setpoint(value)

    def _number_changed(self, value: float) -> None:
        self._show_setpoint(value)
        self.ctx.actions.setpoint(value)

    def _show_setpoint(self, value: float) -> None:
        lo, hi, _ = MODE_RANGES[self.mode.currentText()]
        with QtCore.QSignalBlocker(self.slider), QtCore.QSignalBlocker(self.number):
            self.slider.setValue(round((value - lo) / (hi - lo) * SLIDER_STEPS) - SLIDER_STEPS // 2)
            self.number.setValue(value)


class FaultsPanel(QtWidgets.QGroupBox):
    """Active faults (the joint's last heartbeat) and latched ones (every fault seen since the last clear, with
    the time it was first seen), by name; Clear clears the joint's faults and the latched list."""

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__("Faults")
        self.ctx = ctx
        layout = QtWidgets.QVBoxLayout(self)
        self.active = QtWidgets.QLabel("active: none", objectName="active_faults")
        self.active.setWordWrap(True)
        self.latched_list = QtWidgets.QListWidget(objectName="latched_faults")
        self.latched_list.setMaximumHeight(80)
        self.clear_btn = QtWidgets.QPushButton("Clear faults", objectName="clear_faults")
        self.clear_btn.clicked.connect(self._clear)
        layout.addWidget(self.active)
        layout.addWidget(QtWidgets.QLabel("latched since the last clear:"))
        layout.addWidget(self.latched_list)
        layout.addWidget(self.clear_btn)
        self.latched: dict[tuple[int, str], float] = {}

    def refresh(self, session: Session | None) -> None:
        if session is None:
            return
        now = time.time()
        active = []
        for n, c in session.clients.items():
            for name in c.faults:
                active.append(f"node {n}: {name}")
                if (n, name) not in self.latched:
                    self.latched[(n, name)] = now
                    stamp = time.strftime("%H:%M:%S", time.localtime(now))
                    self.latched_list.addItem(f"{stamp}  node {n}: {name}")
        self.active.setText("active: " + ("; ".join(active) if active else "none"))
        self.active.setStyleSheet("color: #c62828; font-weight: bold" if active else "")

    def _clear(self) -> None:
        self.ctx.actions.clear_faults()
        self.latched.clear()
        self.latched_list.clear()
