"""Live plots of telemetry: scrolling pyqtgraph curves fed from the client's numpy rings.

This module owns the drawing of live signals and nothing else: ``Trace`` (what to draw: a key, a legend label, a
unit and a ``fetch`` callable), ``LivePlot`` (one pyqtgraph plot with its curves, static overlays, a y range mode
and a read-out cursor) and ``PlotBoard`` (LivePlots in groups, one tab a group, each group a scrolling stack of plots
no lower than ``MIN_PLOT_HEIGHT_PX``, with linked time axes, one redraw timer and a toolbar: window length, pause,
auto range, cursor). Only the plots of the group shown are redrawn. A plot's legend sits beside its data, never on
it, in as many columns as its height needs; its y axis is labelled with the unit alone (the title names the plot), so
a short plot's label fits its axis. It never talks to a bus: a bus thread fills rings
(``firmware_iface.client.rings.Ring``) and a trace's ``fetch`` copies the rows of the last window out of one, so
the GUI thread never waits on CAN I/O.

It follows the pyqtgraph examples' recipe for fast live plots: one persistent ``PlotDataItem`` per trace updated
with ``setData`` from a ``QTimer`` at a fixed rate (not on every frame received), peak downsampling chosen from the
view width, clipping to the view, thin cosmetic pens and no antialiasing.

The x axis is time relative to the redraw, in seconds: x = t - now, so the newest sample is at about 0 and the
window is [-window_s, 0]. Times are ``time.perf_counter()`` seconds, as the rings record them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from firmware_iface.client.rings import Ring

WINDOW_MIN_S = 1.0
WINDOW_MAX_S = 60.0
FRAME_HISTORY = 4096  # redraw times kept for the fps figures (68 s at 60 Hz): bounded, the GUI runs for hours
# Bright enough on pyqtgraph's black background; cycled per plot, so the n-th trace of every plot has one colour.
PALETTE = ("#1f9bff", "#ff7f0e", "#3ddc84", "#ff4d4d", "#c77dff", "#ffd23f", "#00d5d5", "#ff6ec7", "#b5e655",
           "#a0a0a0")

GRID_COLOR = "#303030"
# Peak downsampling keeps the min and max of each bin; one bin a pixel column draws what the full data would (a
# vertical stroke from min to max in each column) at a third of pyqtgraph's default 5 samples a pixel, which more
# than halved the paint time of 16 curves x 10 000 samples (14 -> 9 ms) for 2.5 ms more numpy in the redraw.
SAMPLES_PER_PIXEL = 1.0
MIN_PLOT_HEIGHT_PX = 150  # below this a plot's data area is too short to read (title, axis and ~100 px of data)
LEGEND_ROW_PX = 17  # one legend entry at LEGEND_TEXT_SIZE
LEGEND_TEXT_SIZE = "8pt"
LEGEND_PAD_PX = 6.0  # between a legend's sample and its label, and between columns
LEFT_AXIS_PX = 62  # tick labels such as -0.0015 and the unit beside them
DEFAULT_GROUP = "plots"
Fetch = Callable[[float], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Trace:
    """One live signal. ``fetch(since_t)`` returns (receive times, values) of the samples at or after ``since_t``,
    times in ``time.perf_counter()`` seconds, oldest first; it is called from the GUI thread and must not block."""

    key: str  # unique within a plot, e.g. "1:telemetry.position_rad"
    label: str  # legend text, e.g. "node 1 position"
    unit: str  # e.g. "rad"
    fetch: Fetch


def ring_trace(ring: Ring, column: str, key: str, label: str, unit: str) -> Trace:
    """A trace of one column of a ring: each fetch copies only the rows of the window, and only two columns."""
    if column not in ring.index:
        raise KeyError(f"ring has no column {column!r}; it has {', '.join(ring.fields)}")
    columns = ("t_s", column)

    def fetch(since_t: float) -> tuple[np.ndarray, np.ndarray]:
        rows = ring.window(since_t, columns=columns)
        return rows[:, 0], rows[:, 1]

    return Trace(key, label, unit, fetch)


def _nearest(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """The value of the sample nearest ``at`` in time (x sorted), NaN when there is none."""
    if x is None or len(x) == 0:
        return math.nan
    i = int(np.searchsorted(x, at))
    if i == len(x) or (i > 0 and at - x[i - 1] <= x[i] - at):
        i -= 1
    return float(y[i])


class LivePlot(QtWidgets.QWidget):
    """One pyqtgraph plot of live traces in one unit, with a legend, overlays and an optional cursor read-out."""

    legend_changed = QtCore.Signal()  # its entries or columns changed

    def __init__(self, title: str, unit: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.title, self.unit = title, unit
        self.widget = pg.PlotWidget(parent=self)
        self.widget.setAntialiasing(False)  # antialiased lines cost several times more to paint
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.widget)
        pi = self.plot_item = self.widget.getPlotItem()
        pi.setTitle(title, size="9pt")
        pi.setLabel("left", unit)  # the unit alone: the title names the plot, and a long rotated label overran it
        pi.setLabel("bottom", "time", units="s")
        for axis in ("left", "bottom"):  # values in the unit the trace states, as the cursor read-out shows them
            pi.getAxis(axis).enableAutoSIPrefix(False)
        pi.getAxis("left").setWidth(LEFT_AXIS_PX)  # one width on every plot: the data areas line up
        _opaque_grid(pi)
        # the legend in a column of the plot's own layout, right of the data: it never covers a curve
        self.legend = pg.LegendItem(offset=None, verSpacing=-6, labelTextSize=LEGEND_TEXT_SIZE)
        pi.layout.addItem(self.legend, 2, 3)
        pi.legend = self.legend  # PlotItem adds every named curve to it, and removes it with the curve
        # Applied by the PlotItem to every curve added later: draw the min and max of each bin of samples (so spikes
        # stay visible), about SAMPLES_PER_PIXEL bins a pixel, and only the samples inside the x range.
        pi.setDownsampling(auto=True, mode="peak")
        pi.setClipToView(True)
        pi.setMouseEnabled(x=False, y=True)  # time is set by the window length; y can be zoomed by hand
        pi.enableAutoRange(axis="x", enable=False)
        pi.enableAutoRange(axis="y", enable=True)
        self._traces: dict[str, Trace] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._overlays: dict[str, pg.PlotDataItem] = {}
        self._overlay_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (receive-clock times, values)
        self._colors: dict[tuple[str, str], str] = {}  # ("trace" | "overlay", key) -> the palette colour given
        self._now_s: float | None = None
        self._window_s: float | None = None
        self.set_x_window(10.0)
        self.cursor = pg.InfiniteLine(pos=-1.0, angle=90, movable=True, pen=pg.mkPen("#e0e0e0", width=1))
        self.readout = pg.TextItem(anchor=(0, 0), color="#e0e0e0", fill=pg.mkBrush(0, 0, 0, 170))
        for item in (self.cursor, self.readout):
            item.setVisible(False)
            item.setZValue(10)
            pi.addItem(item, ignoreBounds=True)  # the cursor must not drive the auto range
        self.cursor.sigPositionChanged.connect(self._update_readout)

    # --- traces and overlays ------------------------------------------------------------------------------------------
    def _next_color(self) -> str:
        """The first palette colour no curve of this plot has, so a trace removed and added back (a new selection
        of signals) gets its colour back; the palette cycles when every colour is taken."""
        taken = set(self._colors.values())
        free = [c for c in PALETTE if c not in taken]
        return free[0] if free else PALETTE[len(self._colors) % len(PALETTE)]

    def _color(self, kind: str, key: str, color: object) -> object:
        if color is None:
            color = self._colors[kind, key] = self._next_color()
        return color

    def add_trace(self, trace: Trace, color: object = None) -> None:
        if trace.key in self._traces:
            raise ValueError(f"plot {self.title!r} already has a trace {trace.key!r}")
        pen = pg.mkPen(self._color("trace", trace.key, color), width=1)  # width 1: Qt's fast path for lines
        self._curves[trace.key] = self._new_curve(trace.label, pen)
        self._traces[trace.key] = trace
        self._fit_legend()

    def _new_curve(self, label: str, pen: QtGui.QPen, x: np.ndarray | None = None,
                   y: np.ndarray | None = None) -> pg.PlotDataItem:
        curve = pg.PlotDataItem(name=label, pen=pen)
        curve.opts["autoDownsampleFactor"] = SAMPLES_PER_PIXEL  # no setter in pyqtgraph 0.13/0.14: an opts key
        if x is not None:
            curve.setData(x, y)
        self.plot_item.addItem(curve)  # takes the plot's peak downsampling and clip to view, joins the legend
        return curve

    def remove_trace(self, key: str) -> None:
        if key not in self._traces:
            raise KeyError(f"plot {self.title!r} has no trace {key!r}; it has {', '.join(self._traces) or 'none'}")
        self.plot_item.removeItem(self._curves.pop(key))  # also removes it from the legend
        del self._traces[key]
        self._colors.pop(("trace", key), None)
        self._fit_legend()
        self._update_readout()

    def traces(self) -> list[str]:
        return list(self._traces)

    def curve(self, key: str) -> pg.PlotDataItem:
        """The curve of a trace or an overlay (its ``xData``/``yData`` are the full data, before downsampling)."""
        return self._curves[key] if key in self._curves else self._overlays[key]

    def set_overlay(self, key: str, t_s: np.ndarray, y: np.ndarray, label: str, color: object = None) -> None:
        """A dashed curve of fixed samples (e.g. a test's set-points) at receive-clock times ``t_s`` (perf_counter
        seconds, as the traces), drawn in the live curves' time frame: it scrolls with them and leaves the window as
        they do."""
        t = np.asarray(t_s, dtype=float)
        y = np.asarray(y, dtype=float)
        if t.shape != y.shape or t.ndim != 1:
            raise ValueError(f"overlay {key!r}: times {t.shape} and values {y.shape} must be 1-D of one length")
        self.remove_overlay(key)
        now = self._now_s if self._now_s is not None else time.perf_counter()
        pen = pg.mkPen(self._color("overlay", key, color), width=1, style=QtCore.Qt.PenStyle.DashLine)
        self._overlays[key] = self._new_curve(label, pen, t - now, y)
        self._overlay_data[key] = (t, y)
        self._fit_legend()

    def remove_overlay(self, key: str) -> None:
        if key in self._overlays:
            self.plot_item.removeItem(self._overlays.pop(key))
            self._overlay_data.pop(key, None)
            self._colors.pop(("overlay", key), None)
            self._fit_legend()

    def clear_overlays(self) -> None:
        for key in list(self._overlays):
            self.remove_overlay(key)

    def overlays(self) -> list[str]:
        return list(self._overlays)

    def _fit_legend(self) -> None:
        """As many legend columns as the plot's height needs to show every entry; the board then gives every
        legend one width (``legend_changed``)."""
        rows = max(1, int((self.height() - 2 * LEGEND_ROW_PX) // LEGEND_ROW_PX))
        self.legend.setColumnCount(max(1, math.ceil(len(self.legend.items) / rows)))
        # as high as its entries, at the top of its cell: stretched to the data's height, its rows drifted apart
        self.legend.setMaximumHeight(max(1, self.legend.layout.rowCount()) * LEGEND_ROW_PX + 4)
        self.plot_item.layout.setAlignment(self.legend, QtCore.Qt.AlignmentFlag.AlignTop)
        self.legend_changed.emit()

    def legend_width_px(self) -> float:
        """The width the legend's entries need (its widest row of samples and labels)."""
        grid, widest = self.legend.layout, 0.0
        for row in range(grid.rowCount()):
            items = [grid.itemAt(row, col) for col in range(grid.columnCount())]
            # a label's own text item, or its preferred width; a sample's preferred width (its bounding box is empty)
            widest = max(widest, sum(max(getattr(it, "item", it).boundingRect().width(), it.preferredWidth())
                                     + LEGEND_PAD_PX for it in items if it is not None))
        return widest

    def set_legend_width(self, px: float) -> None:
        """A fixed legend width: the plots of a board share one, so their data areas are equally wide and the linked
        time axes line up (pyqtgraph links views of different widths by their screen position)."""
        if self.legend.minimumWidth() != px or self.legend.maximumWidth() != px:
            self.legend.setMinimumWidth(px)
            self.legend.setMaximumWidth(px)
            self.plot_item.layout.activate()  # now, not at the next event: the link maps through the geometry

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_legend()

    # --- drawing ------------------------------------------------------------------------------------------------------
    def set_x_window(self, window_s: float) -> None:
        """Show x in [-window_s, 0] (``refresh`` does this; a paused board does it alone)."""
        if window_s != self._window_s:  # only on a change: setXRange relayouts the axes
            self._window_s = window_s
            self.plot_item.setXRange(-window_s, 0.0, padding=0.0)

    def refresh(self, now_s: float, window_s: float) -> None:
        """Fetch every trace's samples since ``now_s - window_s`` and draw them at x = t - now_s."""
        self.set_x_window(window_s)
        since = now_s - window_s
        for key, trace in self._traces.items():
            t, y = trace.fetch(since)
            self._curves[key].setData(np.subtract(t, now_s), y)
        for key, (t, y) in self._overlay_data.items():
            self._overlays[key].setData(t - now_s, y)
        self._now_s = now_s
        self._update_readout()

    def set_auto_range(self, auto: bool) -> None:
        """Y follows the data (true) or stays where it is (false); x is always the window."""
        self.plot_item.enableAutoRange(axis="y", enable=bool(auto))

    def set_y_range(self, lo: float, hi: float) -> None:
        """A fixed y range (turns the auto range off)."""
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"y range [{lo}, {hi}] of plot {self.title!r} must be finite with lo < hi")
        self.plot_item.enableAutoRange(axis="y", enable=False)
        self.plot_item.setYRange(lo, hi, padding=0.0)

    # --- cursor -------------------------------------------------------------------------------------------------------
    def set_cursor(self, enabled: bool) -> None:
        """Show or hide the cursor; it reappears inside the window if it was left outside."""
        window = self._window_s or 10.0
        if enabled and not -window <= self.cursor.value() <= 0.0:
            self.cursor.setValue(-window / 2)
        self.cursor.setVisible(bool(enabled))
        self.readout.setVisible(bool(enabled))
        self._update_readout()

    def cursor_enabled(self) -> bool:
        return self.cursor.isVisible()

    def cursor_readout(self) -> dict[str, float]:
        """Every trace's value at the cursor (the sample nearest in time; NaN where a trace has none)."""
        at = float(self.cursor.value())
        return {key: _nearest(c.xData, c.yData, at) for key, c in self._curves.items()}

    def _update_readout(self) -> None:
        if not self.cursor.isVisible():  # a hidden read-out costs nothing a frame
            return
        at = float(self.cursor.value())
        lines = [f"t = {at:+.3f} s"]
        for key, value in self.cursor_readout().items():
            trace = self._traces[key]
            lines.append(f"{trace.label}: {value:.5g} {trace.unit}")
        self.readout.setText("\n".join(lines))
        self.readout.setPos(at, self.plot_item.viewRange()[1][1])  # top of the view, beside the line


class PlotBoard(QtWidgets.QWidget):
    """LivePlots in groups (a tab each; the tab bar shows from two groups on), each group a stack of plots that
    scrolls rather than squash a plot below ``MIN_PLOT_HEIGHT_PX``; linked time axes, redrawn together by one timer,
    under a small toolbar.

    ``clock`` is the time base of the traces' receive times (``time.perf_counter``); a test may pass its own."""

    def __init__(self, rate_hz: float = 60.0, window_s: float = 10.0, parent: QtWidgets.QWidget | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(parent)
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"plot rate {rate_hz} Hz must be a positive number")
        self._window_s = _checked_window(window_s)
        self._clock = clock  # the time base of the rings; a test may pass its own
        self._paused = False
        self._plots: dict[str, LivePlot] = {}
        self.frames = 0  # redraws completed (paused ticks are not redraws)
        self.frame_ends: deque[float] = deque(maxlen=FRAME_HISTORY)  # perf_counter at the end of each redraw
        self.frame_durations_s: deque[float] = deque(maxlen=FRAME_HISTORY)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._toolbar())
        self.tabs = QtWidgets.QTabWidget(self, objectName="plot_groups")
        self.tabs.setTabBarAutoHide(True)
        self.tabs.setDocumentMode(True)
        self.tabs.currentChanged.connect(self._group_shown)
        layout.addWidget(self.tabs, 1)
        self._groups: dict[str, QtWidgets.QSplitter] = {}
        self._last_now: float | None = None
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(max(1, round(1000.0 / rate_hz)))
        self.timer.timeout.connect(self.redraw)

    def _toolbar(self) -> QtWidgets.QHBoxLayout:
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QtWidgets.QLabel("Window"))
        self.window_spin = QtWidgets.QSpinBox(self)
        self.window_spin.setObjectName("window")
        self.window_spin.setRange(int(WINDOW_MIN_S), int(WINDOW_MAX_S))
        self.window_spin.setSuffix(" s")
        self.window_spin.setValue(round(self._window_s))
        self.window_spin.valueChanged.connect(lambda v: self.set_window_s(float(v)))
        self.pause_button = QtWidgets.QPushButton("Pause", self)
        self.pause_button.setObjectName("pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        self.auto_range_box = QtWidgets.QCheckBox("Auto range", self)
        self.auto_range_box.setObjectName("auto_range")
        self.auto_range_box.setChecked(True)
        self.auto_range_box.toggled.connect(self.set_auto_range)
        self.cursor_box = QtWidgets.QCheckBox("Cursor", self)
        self.cursor_box.setObjectName("cursor")
        self.cursor_box.toggled.connect(self.set_cursor)
        for w in (self.window_spin, self.pause_button, self.auto_range_box, self.cursor_box):
            bar.addWidget(w)
        bar.addStretch(1)
        return bar

    # --- plots --------------------------------------------------------------------------------------------------------
    def _group(self, group: str) -> QtWidgets.QSplitter:
        """The stack of a group's plots (made on first use: a tab holding a scroll area holding a splitter)."""
        if group not in self._groups:
            split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, objectName=f"group_{group}")
            split.setChildrenCollapsible(False)  # a plot keeps its minimum height; the area scrolls instead
            area = QtWidgets.QScrollArea(objectName=f"scroll_{group}")
            area.setWidgetResizable(True)  # plots fill the height when it is enough, scroll when it is not
            area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area.setWidget(split)
            self._groups[group] = split
            self.tabs.addTab(area, group)
        return self._groups[group]

    def groups(self) -> list[str]:
        return list(self._groups)

    def group_splitter(self, group: str) -> QtWidgets.QSplitter:
        if group not in self._groups:
            raise KeyError(f"the board has no plot group {group!r}; it has {', '.join(self._groups) or 'none'}")
        return self._groups[group]

    def current_group(self) -> str | None:
        i = self.tabs.currentIndex()
        return None if i < 0 else self.tabs.tabText(i)

    def add_page(self, name: str, widget: QtWidgets.QWidget) -> None:
        """A tab of the caller's own beside the plot groups (the limb view); it draws itself."""
        if name in self.tab_names():
            raise ValueError(f"the board already has a tab {name!r}")
        self.tabs.addTab(widget, name)

    def tab_names(self) -> list[str]:
        return [self.tabs.tabText(i) for i in range(self.tabs.count())]

    def show_group(self, group: str) -> None:
        """Bring a plot group (or a page) to the front."""
        names = self.tab_names()
        if group not in names:
            raise KeyError(f"the board has no tab {group!r}; it has {', '.join(names) or 'none'}")
        self.tabs.setCurrentIndex(names.index(group))

    def add_plot(self, name: str, title: str, unit: str, group: str = DEFAULT_GROUP) -> LivePlot:
        if name in self._plots:
            raise ValueError(f"the board already has a plot {name!r}")
        split = self._group(group)
        plot = LivePlot(title, unit, split)
        plot.setMinimumHeight(MIN_PLOT_HEIGHT_PX)
        if self._plots:
            plot.plot_item.setXLink(next(iter(self._plots.values())).plot_item)
        plot.refresh(self._clock(), self._window_s)  # empty until traces are added: sets the x range
        plot.set_auto_range(self.auto_range_box.isChecked())
        plot.set_cursor(self.cursor_box.isChecked())
        plot.plot_item.vb.sigRangeChangedManually.connect(self._zoomed_by_hand)
        plot.legend_changed.connect(self._align_legends)
        split.addWidget(plot)
        self._plots[name] = plot
        return plot

    def _align_legends(self) -> None:
        """Every legend as wide as the widest needs (see ``LivePlot.set_legend_width``)."""
        width = max((p.legend_width_px() for p in self._plots.values()), default=0.0)
        for p in self._plots.values():
            p.set_legend_width(width)

    def plot(self, name: str) -> LivePlot:
        if name not in self._plots:
            raise KeyError(f"the board has no plot {name!r}; it has {', '.join(self._plots) or 'none'}")
        return self._plots[name]

    def plots(self) -> list[str]:
        return list(self._plots)

    # --- toolbar state ------------------------------------------------------------------------------------------------
    @property
    def window_s(self) -> float:
        return self._window_s

    @window_s.setter
    def window_s(self, s: float) -> None:
        self.set_window_s(s)

    def set_window_s(self, s: float) -> None:
        """The time shown, in [1, 60] s (the rings hold 60 s at 1 kHz); redraws at once, or, paused, shows more or
        less of the frozen curves."""
        self._window_s = _checked_window(s)
        if self.window_spin.value() != round(self._window_s):
            self.window_spin.blockSignals(True)  # the spin box shows whole seconds: do not round the window
            self.window_spin.setValue(round(self._window_s))
            self.window_spin.blockSignals(False)
        for p in self._plots.values():
            p.set_x_window(self._window_s)
        self.redraw()

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        """Paused: the timer runs on and the rings keep filling, but the curves stay as they are (to be read).
        Resuming redraws to now at once."""
        self._paused = bool(paused)
        if self.pause_button.isChecked() != self._paused:
            self.pause_button.setChecked(self._paused)  # re-enters here once, with nothing left to do
        self.pause_button.setText("Resume" if self._paused else "Pause")
        self.redraw()

    def set_auto_range(self, auto: bool) -> None:
        if self.auto_range_box.isChecked() != bool(auto):
            self.auto_range_box.setChecked(bool(auto))
        for p in self._plots.values():
            p.set_auto_range(auto)

    def _zoomed_by_hand(self, *_: object) -> None:
        """A mouse zoom turned that plot's auto range off: the box says so; checking it turns all back on."""
        self.auto_range_box.blockSignals(True)
        self.auto_range_box.setChecked(False)
        self.auto_range_box.blockSignals(False)

    def set_cursor(self, enabled: bool) -> None:
        if self.cursor_box.isChecked() != bool(enabled):
            self.cursor_box.setChecked(bool(enabled))
        for p in self._plots.values():
            p.set_cursor(enabled)

    # --- redraw -------------------------------------------------------------------------------------------------------
    def shown(self) -> list[LivePlot]:
        """The plots of the group on show (the others are not drawn: nobody sees them)."""
        return [p for p in self._plots.values() if p.isVisibleTo(self)]

    def _group_shown(self, _index: int) -> None:
        """A group brought to the front draws at once: live at now, paused at the time the others froze at."""
        if self._paused and self._last_now is not None:
            for p in self.shown():
                p.refresh(self._last_now, self._window_s)
        else:
            self.redraw()

    def redraw(self) -> None:
        """One refresh of every plot on show at the clock's now (nothing while paused). Painting follows in the event
        loop, which Qt coalesces into one paint per plot."""
        if self._paused:
            return
        start = time.perf_counter()
        now = self._last_now = self._clock()
        for p in self.shown():
            p.refresh(now, self._window_s)
        end = time.perf_counter()
        self.frames += 1
        self.frame_ends.append(end)
        self.frame_durations_s.append(end - start)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()


# The axes draw the grid, and pyqtgraph stacks them at z 0.5, above the view box and its curves: opaque grid lines
# would paint over a flat signal that sits on one (a joint at rest at 0 rad, a winding at 25.0 °C). Below it they go.
AXIS_Z = -1.0


def _opaque_grid(pi: pg.PlotItem) -> None:
    """A grid of opaque dark lines at the major and minor ticks. pyqtgraph's own grid draws its lines translucent,
    which Qt's raster engine blends about ten times slower than opaque lines: 14 ms a paint for one 1600x250 plot,
    more than the curves, against 0.4 ms opaque."""
    pi.showGrid(x=True, y=True)
    for name in ("left", "bottom"):
        axis = pi.getAxis(name)
        axis.setStyle(maxTickLevel=1, tickAlpha=255)
        axis.setTickPen(pg.mkPen(GRID_COLOR, width=1))
        axis.setZValue(AXIS_Z)


def _checked_window(s: float) -> float:
    s = float(s)
    if not WINDOW_MIN_S <= s <= WINDOW_MAX_S:  # NaN fails too
        raise ValueError(f"plot window {s:g} s is outside [{WINDOW_MIN_S:g}, {WINDOW_MAX_S:g}] s")
    return s
