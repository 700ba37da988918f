"""The limb view: every joint of the connection side by side, one bar a joint in each of three plots (position
tracking error, torque, winding temperature), refreshed on the window's status timer from each client's newest
telemetry and the set-point streamer's newest set-point. The selected joint's bars are highlighted; clicking a joint's
bars selects it (``joint_selected``), and the window makes that the current joint everywhere.

Tracking error = the streamed position set-point - the joint's position, while the GUI streams the joint in
position or impedance mode; otherwise it is not defined (a test streams its own set-points) and no bar is drawn.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

if TYPE_CHECKING:
    from gui.session import Session

# (key, title, unit, scale from the telemetry's unit)
QUANTITIES = (("tracking_error", "position tracking error", "mrad", 1e3),
              ("torque", "torque", "N·m", 1.0),
              ("temperature", "winding temperature", "°C", 1.0))
BAR_WIDTH = 0.6
BRUSH, SELECTED_BRUSH = "#1f9bff", "#ffd23f"


def joint_values(session: Session, node: int) -> dict[str, float]:
    """The limb view's values of one joint, from its newest telemetry (NaN where it has none)."""
    latest = session.clients[node].latest()
    position = latest.get("telemetry.position_rad", math.nan)
    stream = session.commander.streams[node]
    error = math.nan
    if stream.active and stream.mode in ("position", "impedance") and stream.ring.count:
        error = float(stream.ring.last()[1]) - position
    return {"tracking_error": error, "torque": latest.get("telemetry.torque_nm", math.nan),
            "temperature": latest.get("telemetry.winding_temp_c", math.nan)}


class LimbView(pg.GraphicsLayoutWidget):
    """Three bar plots of the joints side by side; ``set_nodes``, ``refresh(session)``, ``select(node)``."""

    joint_selected = QtCore.Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("limb")
        self.nodes: list[int] = []
        self.selected: int | None = None
        self.values: dict[int, dict[str, float]] = {}
        self.plots: dict[str, pg.PlotItem] = {}
        self.bars: dict[str, pg.BarGraphItem] = {}
        for row, (key, title, unit, _) in enumerate(QUANTITIES):
            plot = self.addPlot(row=row, col=0, title=title)
            plot.setLabel("left", unit)
            plot.getAxis("left").setWidth(62)
            plot.getAxis("left").enableAutoSIPrefix(False)  # the unit as stated (mrad, not "mrad x0.001")
            plot.showGrid(y=True, alpha=0.3)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            self.plots[key] = plot
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_nodes(self, nodes: list[int]) -> None:
        if nodes == self.nodes:
            return
        self.nodes = list(nodes)
        ticks = [[(i, f"n{n}") for i, n in enumerate(self.nodes)]]
        for plot in self.plots.values():
            plot.getAxis("bottom").setTicks(ticks)
            plot.setXRange(-0.5, len(self.nodes) - 0.5, padding=0.0)
        self.values = {}
        self._draw()

    def refresh(self, session: Session | None) -> None:
        if session is None:
            return
        self.set_nodes(list(session.clients))
        self.values = {n: joint_values(session, n) for n in self.nodes}
        self._draw()

    def select(self, node: int | None) -> None:
        if node != self.selected:
            self.selected = node
            self._draw()

    def _draw(self) -> None:
        x = np.arange(len(self.nodes), dtype=float)
        brushes = [SELECTED_BRUSH if n == self.selected else BRUSH for n in self.nodes]
        for key, _, _, scale in QUANTITIES:
            heights = np.array([self.values.get(n, {}).get(key, math.nan) * scale for n in self.nodes])
            shown = np.isfinite(heights)
            old = self.bars.pop(key, None)
            if old is not None:
                self.plots[key].removeItem(old)
            bars = pg.BarGraphItem(x=x[shown], height=heights[shown], width=BAR_WIDTH,
                                   brushes=[b for b, s in zip(brushes, shown, strict=True) if s])
            self.plots[key].addItem(bars)
            self.bars[key] = bars

    def node_at(self, scene_pos: QtCore.QPointF) -> int | None:
        """The joint whose column is under a point of the scene (any of the three plots), None outside them."""
        for plot in self.plots.values():
            if plot.vb.sceneBoundingRect().contains(scene_pos):
                i = round(plot.vb.mapSceneToView(scene_pos).x())
                return self.nodes[i] if 0 <= i < len(self.nodes) else None
        return None

    def _clicked(self, event: object) -> None:
        node = self.node_at(event.scenePos())
        if node is not None:
            self.select(node)
            self.joint_selected.emit(node)
