"""The signals the live plots can show, which plot each goes to, and the chooser the user picks them with.

A signal is a semantic telemetry name of the protocol profile (read from the client's rings), or ``setpoint``:
what the GUI's set-point streamer sent (its own ring), drawn with the position it commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from PySide6 import QtCore, QtWidgets

from gui.plots import Trace, ring_trace
from gui.session import Session

Fetch = Callable[[float], tuple[np.ndarray, np.ndarray]]
PLOTS = {"position": ("position and set-point", "rad"), "velocity": ("velocity", "rad/s"),
         "torque": ("torque", "N·m"), "currents": ("currents", "A"), "temperatures": ("temperatures", "°C"),
         "wrench": ("wrench", "N, N·m")}
# the board's tabs: what a person tuning a loop watches together; three plots of MIN_PLOT_HEIGHT_PX fit a 720 px screen
PLOT_GROUPS = {"position": "motion", "velocity": "motion", "torque": "motion", "currents": "drive",
               "temperatures": "drive", "wrench": "wrench"}
# signal -> (plot, label, unit, shown by default); joints after the first show only CORE by default, so six joints
# start with 18 curves rather than 54
CORE = ("telemetry.position_rad", "setpoint", "telemetry.torque_nm")
SIGNALS = {
    "telemetry.position_rad": ("position", "position", "rad", True),
    "setpoint": ("position", "set-point", "rad", True),
    "telemetry.velocity_rad_s": ("velocity", "velocity", "rad/s", True),
    "telemetry.torque_nm": ("torque", "torque", "N·m", True),
    "telemetry.iq_a": ("currents", "iq", "A", True),
    "telemetry.id_a": ("currents", "id", "A", False),
    "telemetry.winding_temp_c": ("temperatures", "winding", "°C", True),
    "telemetry.housing_temp_c": ("temperatures", "housing", "°C", False),
    "telemetry.force_x_n": ("wrench", "Fx", "N", True),
    "telemetry.force_y_n": ("wrench", "Fy", "N", True),
    "telemetry.force_z_n": ("wrench", "Fz", "N", True),
    "telemetry.torque_x_nm": ("wrench", "Mx", "N·m", False),
    "telemetry.torque_y_nm": ("wrench", "My", "N·m", False),
    "telemetry.torque_z_nm": ("wrench", "Mz", "N·m", False),
}


def _telemetry_fetch(session: Session, node: int, semantic: str) -> Fetch:
    client = session.clients[node]
    return lambda since_t: client.series(semantic, since_t)


def signal_traces(session: Session, chosen: list[tuple[int, str]]) -> Iterator[tuple[str, Trace]]:
    """(plot name, trace) for every chosen (node, signal) the session has."""
    for node, signal in chosen:
        if node not in session.clients:
            continue
        plot, label, unit, _ = SIGNALS[signal]
        key, text = f"{node}:{signal}", f"n{node} {label}"
        if signal == "setpoint":
            yield plot, ring_trace(session.commander.streams[node].ring, "setpoint", key, text, unit)
        else:
            yield plot, Trace(key, text, unit, _telemetry_fetch(session, node, signal))


class SignalChooser(QtWidgets.QTreeWidget):
    """Checkable signals per joint; ``changed`` when the user ticks or unticks one."""

    changed = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signals")
        self.setHeaderLabels(["signals"])
        self.itemChanged.connect(lambda *_: self.changed.emit())

    def set_nodes(self, nodes: list[int]) -> None:
        known = {self.topLevelItem(i).data(0, QtCore.Qt.ItemDataRole.UserRole) for i in
                 range(self.topLevelItemCount())}
        if known == set(nodes):
            return
        with QtCore.QSignalBlocker(self):
            self.clear()
            for i, node in enumerate(nodes):
                top = QtWidgets.QTreeWidgetItem(self, [f"node {node}"])
                top.setData(0, QtCore.Qt.ItemDataRole.UserRole, node)
                for signal, (plot, label, unit, default) in SIGNALS.items():
                    item = QtWidgets.QTreeWidgetItem(top, [f"{label} ({unit}) · {plot}"])
                    item.setData(0, QtCore.Qt.ItemDataRole.UserRole, signal)
                    on = default and (i == 0 or signal in CORE)
                    item.setCheckState(0, QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked)
            self.collapseAll()

    def chosen(self) -> list[tuple[int, str]]:
        out = []
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            node = top.data(0, QtCore.Qt.ItemDataRole.UserRole)
            for k in range(top.childCount()):
                item = top.child(k)
                if item.checkState(0) == QtCore.Qt.CheckState.Checked:
                    out.append((node, item.data(0, QtCore.Qt.ItemDataRole.UserRole)))
        return out

    def node_of(self, item: QtWidgets.QTreeWidgetItem | None) -> int | None:
        """The joint of a node's row or of one of its signals' rows."""
        while item is not None and item.parent() is not None:
            item = item.parent()
        return None if item is None else item.data(0, QtCore.Qt.ItemDataRole.UserRole)

    def select_node(self, node: int) -> None:
        """Show ``node``'s signals (its row current and expanded, the others collapsed)."""
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            mine = top.data(0, QtCore.Qt.ItemDataRole.UserRole) == node
            top.setExpanded(mine)
            if mine and self.node_of(self.currentItem()) != node:
                self.setCurrentItem(top)

    def set_checked(self, node: int, signal: str, on: bool) -> None:
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            if top.data(0, QtCore.Qt.ItemDataRole.UserRole) != node:
                continue
            for k in range(top.childCount()):
                if top.child(k).data(0, QtCore.Qt.ItemDataRole.UserRole) == signal:
                    state = QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked
                    top.child(k).setCheckState(0, state)
