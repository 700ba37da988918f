"""``gui.plots``: live curves fed from rings, the window, pause, cursor, overlays, and ``jointkit bench gui``.

The rings hold a ramp (value = SLOPE x time) sampled at 1 kHz, so what a curve shows can be checked sample by sample.
The board runs on a fake clock, so every "now" is exact and nothing depends on how fast the test runs; the one test
of the real timer only waits for frames to happen. Speed is measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from firmware_iface.cli import main
from firmware_iface.client.rings import Ring
from gui.plots import PALETTE, LivePlot, PlotBoard, Trace, ring_trace

DT = 1e-3  # 1 kHz
SLOPE = 2.0  # value units per second
T0 = 1000.0  # the first sample's receive time (perf_counter seconds)
KEY = "1:telemetry.position_rad"


class Clock:
    """A settable perf_counter for the board."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ramp_ring(n: int, capacity: int = 65_536) -> Ring:
    """n samples at T0 + k DT with value SLOPE x (t - T0)."""
    ring = Ring(("position_rad",), capacity)
    feed(ring, 0, n)
    return ring


def feed(ring: Ring, k0: int, k1: int) -> None:
    t = T0 + np.arange(k0, k1) * DT
    ring.extend(np.column_stack([t, SLOPE * (t - T0)]))


def t_of(ring: Ring) -> float:
    """The newest sample's time."""
    return float(ring.last()[0])


@pytest.fixture
def board(qtbot):
    clock = Clock(T0)
    b = PlotBoard(rate_hz=60.0, window_s=10.0, clock=clock)
    b.clock = clock  # the tests move it
    qtbot.addWidget(b)
    b.resize(900, 600)
    b.show()
    yield b
    b.stop()


def add_ramp(board: PlotBoard, n: int, plot: str = "pos") -> tuple[LivePlot, Ring]:
    p = board.add_plot(plot, "Position", "rad") if plot not in board.plots() else board.plot(plot)
    ring = ramp_ring(n)
    p.add_trace(ring_trace(ring, "position_rad", KEY, "node 1 position", "rad"))
    return p, ring


# --- the window -------------------------------------------------------------------------------------------------------
def test_refresh_shows_exactly_the_window_relative_to_now(qtbot) -> None:
    plot = LivePlot("Position", "rad")
    qtbot.addWidget(plot)
    ring = ramp_ring(20_001)  # 20 s of samples, the last at T0 + 20
    plot.add_trace(ring_trace(ring, "position_rad", KEY, "node 1 position", "rad"))
    now = T0 + 20.0 + 0.4 * DT
    plot.refresh(now, 10.0)
    c = plot.curve(KEY)
    x, y = c.xData, c.yData
    assert -10.0 <= x[0] < -10.0 + DT  # the first sample inside the window, the one before it outside
    assert -DT < x[-1] <= 0.0  # the newest sample within one sample of now
    assert len(x) == 10_000 and np.all(np.diff(x) > 0)
    np.testing.assert_allclose(y, SLOPE * (x + now - T0), atol=1e-9)  # x is t - now, y the sample at t
    assert plot.plot_item.viewRange()[0] == pytest.approx([-10.0, 0.0])


def test_board_redraw_uses_its_clock_and_the_window(board: PlotBoard) -> None:
    plot, ring = add_ramp(board, 30_001)
    board.clock.now = t_of(ring)
    frames = board.frames
    board.redraw()
    x = plot.curve(KEY).xData
    assert board.frames == frames + 1 and len(board.frame_ends) == len(board.frame_durations_s) >= 1
    assert -10.0 <= x[0] < -10.0 + DT and x[-1] == pytest.approx(0.0, abs=1e-9)
    board.set_window_s(2.5)  # redraws at once
    x = plot.curve(KEY).xData
    assert -2.5 <= x[0] < -2.5 + DT and len(x) == 2501
    assert plot.plot_item.viewRange()[0] == pytest.approx([-2.5, 0.0])


@pytest.mark.parametrize("bad", [0.5, 61.0, 0.0, -3.0, math.nan])
def test_window_outside_1_to_60_s_is_refused(board: PlotBoard, bad: float) -> None:
    with pytest.raises(ValueError, match=r"outside \[1, 60\] s") as e:
        board.set_window_s(bad)
    assert f"{bad:g}" in str(e.value)
    assert board.window_s == 10.0
    with pytest.raises(ValueError, match="outside"):
        PlotBoard(window_s=bad)


def test_window_limits_and_the_spin_box(board: PlotBoard) -> None:
    plot, _ = add_ramp(board, 100)
    board.window_s = 60.0
    assert board.window_s == 60.0 and board.window_spin.value() == 60
    board.set_window_s(1.0)
    assert board.window_spin.value() == 1
    spin = board.findChild(QtWidgets.QSpinBox, "window")
    assert (spin.minimum(), spin.maximum()) == (1, 60)
    spin.setValue(25)  # the user's choice goes to every plot
    assert board.window_s == 25.0
    assert plot.plot_item.viewRange()[0] == pytest.approx([-25.0, 0.0])


def test_x_axes_are_linked(board: PlotBoard) -> None:
    a, _ = add_ramp(board, 100, "a")
    b, _ = add_ramp(board, 100, "b")
    board.set_window_s(7.0)
    a.plot_item.setXRange(-3.0, -1.0, padding=0.0)
    assert b.plot_item.viewRange()[0] == pytest.approx([-3.0, -1.0])


# --- pause ------------------------------------------------------------------------------------------------------------
def test_pause_freezes_the_curves_while_the_ring_fills_and_resume_catches_up(qtbot, board: PlotBoard) -> None:
    plot, ring = add_ramp(board, 5_001)
    board.clock.now = t_of(ring)
    board.redraw()
    x0, y0 = plot.curve(KEY).xData.copy(), plot.curve(KEY).yData.copy()
    pause = board.findChild(QtWidgets.QPushButton, "pause")
    qtbot.mouseClick(pause, QtCore.Qt.MouseButton.LeftButton)
    assert board.paused and pause.text() == "Resume"

    feed(ring, 5_001, 8_001)  # 3 s more samples arrive while paused
    board.clock.now = t_of(ring)
    frames = board.frames
    board.redraw()
    board.start()  # the timer keeps running while paused
    qtbot.wait(100)
    assert board.timer.isActive() and board.frames == frames
    np.testing.assert_array_equal(plot.curve(KEY).xData, x0)
    np.testing.assert_array_equal(plot.curve(KEY).yData, y0)

    board.set_window_s(20.0)  # paused: more of the frozen curves, nothing fetched
    assert plot.plot_item.viewRange()[0] == pytest.approx([-20.0, 0.0])
    np.testing.assert_array_equal(plot.curve(KEY).xData, x0)

    board.stop()
    qtbot.mouseClick(pause, QtCore.Qt.MouseButton.LeftButton)  # resume: redrawn to now at once
    assert not board.paused and pause.text() == "Pause" and board.frames == frames + 1
    x, y = plot.curve(KEY).xData, plot.curve(KEY).yData
    assert len(x) == 8_001 and x[-1] == pytest.approx(0.0, abs=1e-9)  # all 8 s: the window is 10 s
    assert y[-1] == pytest.approx(SLOPE * 8.0)


# --- cursor -----------------------------------------------------------------------------------------------------------
def test_cursor_reads_every_trace_at_its_time(qtbot, board: PlotBoard) -> None:
    plot, ring = add_ramp(board, 20_001)
    other = Ring(("v",), 1000)  # a second trace at 100 Hz with values -t
    t = np.arange(T0 + 10.0, T0 + 20.0, 0.01)
    other.extend(np.column_stack([t, -t]))
    plot.add_trace(ring_trace(other, "v", "2:v", "node 2 v", "V"))
    board.clock.now = t_of(ring)
    board.redraw()
    box = board.findChild(QtWidgets.QCheckBox, "cursor")
    qtbot.mouseClick(box, QtCore.Qt.MouseButton.LeftButton)
    assert plot.cursor_enabled() and plot.cursor.isVisible() and plot.readout.isVisible()
    assert -10.0 <= plot.cursor.value() <= 0.0  # it appears inside the window
    plot.cursor.setValue(-3.2)
    read = plot.cursor_readout()
    at = board.clock.now - 3.2
    assert read[KEY] == pytest.approx(SLOPE * (at - T0), abs=SLOPE * DT)  # within one sample's change
    assert read["2:v"] == pytest.approx(-at, abs=0.01)  # the other trace's own sample spacing
    text = plot.readout.textItem.toPlainText()
    assert "t = -3.200 s" in text and f"node 1 position: {read[KEY]:.5g} rad" in text
    board.clock.now += 1.0  # the data scroll under the cursor: the read-out follows
    board.redraw()
    assert plot.cursor_readout()[KEY] == pytest.approx(SLOPE * (at + 1.0 - T0), abs=SLOPE * DT)
    board.set_cursor(False)
    assert not box.isChecked() and not plot.cursor.isVisible() and not plot.readout.isVisible()


def test_cursor_readout_of_an_empty_trace_is_nan(qtbot) -> None:
    plot = LivePlot("Torque", "N m")
    qtbot.addWidget(plot)
    plot.add_trace(Trace("k", "nothing yet", "N m", lambda since: (np.empty(0), np.empty(0))))
    plot.refresh(T0, 10.0)
    plot.set_cursor(True)
    assert math.isnan(plot.cursor_readout()["k"])


# --- overlays, traces, ranges -----------------------------------------------------------------------------------------
def test_overlays_appear_in_the_live_frame_and_clear(board: PlotBoard) -> None:
    plot, ring = add_ramp(board, 10_001)
    board.clock.now = t_of(ring)
    board.redraw()
    t = board.clock.now - 2.0 + np.arange(1001) * DT  # a response over the last 2 s
    plot.set_overlay("step", t, np.tanh(t - t[0]), "step response")
    c = plot.curve("step")
    assert c in plot.plot_item.listDataItems() and plot.overlays() == ["step"]
    np.testing.assert_allclose(c.xData[[0, -1]], [-2.0, -1.0])
    legend = [label.text for _, label in plot.plot_item.legend.items]
    assert "step response" in legend and "node 1 position" in legend
    board.clock.now += 5.0  # it scrolls with the live curves: the same samples are 5 s older
    board.redraw()
    np.testing.assert_allclose(plot.curve("step").xData[[0, -1]], [-7.0, -6.0])
    with pytest.raises(ValueError, match="1-D of one length"):
        plot.set_overlay("bad", t, t[:-1], "bad")
    plot.clear_overlays()
    assert plot.overlays() == [] and c not in plot.plot_item.listDataItems()
    assert [label.text for _, label in plot.plot_item.legend.items] == ["node 1 position"]
    assert plot.traces() == [KEY]


def test_traces_add_remove_and_colours_per_plot(board: PlotBoard) -> None:
    a, ring = add_ramp(board, 10, "a")
    b, _ = add_ramp(board, 10, "b")
    a.add_trace(ring_trace(ring, "position_rad", "x", "x", "rad"))
    assert a.traces() == [KEY, "x"]
    assert a.curve(KEY).opts["pen"].color().name() == PALETTE[0] == b.curve(KEY).opts["pen"].color().name()
    assert a.curve("x").opts["pen"].color().name() == PALETTE[1]
    with pytest.raises(ValueError, match="already has"):
        a.add_trace(ring_trace(ring, "position_rad", "x", "x", "rad"))
    a.remove_trace(KEY)
    assert a.traces() == ["x"] and [label.text for _, label in a.plot_item.legend.items] == ["x"]
    a.add_trace(ring_trace(ring, "position_rad", KEY, "again", "rad"))  # gets the free colour back
    assert a.curve(KEY).opts["pen"].color().name() == PALETTE[0]
    with pytest.raises(KeyError, match="no trace 'nope'"):
        a.remove_trace("nope")
    with pytest.raises(KeyError, match="no column 'nope'"):
        ring_trace(ring, "nope", "k", "k", "rad")
    with pytest.raises(KeyError, match="no plot 'c'"):
        board.plot("c")
    with pytest.raises(ValueError, match="already has a plot"):
        board.add_plot("a", "A", "rad")


def test_y_range_fixed_or_automatic(board: PlotBoard) -> None:
    plot, ring = add_ramp(board, 3_001)  # values 0 .. 6
    board.clock.now = t_of(ring)
    plot.set_y_range(-1.0, 1.0)
    board.redraw()
    assert plot.plot_item.viewRange()[1] == pytest.approx([-1.0, 1.0])
    assert not plot.plot_item.vb.autoRangeEnabled()[1]
    with pytest.raises(ValueError, match="lo < hi"):
        plot.set_y_range(1.0, 1.0)
    auto = board.findChild(QtWidgets.QCheckBox, "auto_range")
    assert auto.isChecked()
    plot.plot_item.vb.sigRangeChangedManually.emit([False, True])  # what a mouse zoom on y emits
    assert not auto.isChecked()
    auto.setChecked(True)  # the board's check box turns every plot's y auto range back on
    assert plot.plot_item.vb.autoRangeEnabled()[1]
    board.redraw()
    plot.plot_item.vb.updateAutoRange()
    lo, hi = plot.plot_item.viewRange()[1]
    assert lo <= 0.0 + 1e-9 and hi >= SLOPE * 3.0 - 1e-9  # the data fit


def test_the_timer_drives_redraws(qtbot, board: PlotBoard) -> None:
    add_ramp(board, 100)
    board.start()
    qtbot.waitUntil(lambda: board.frames >= 3, timeout=5000)
    board.stop()
    ends = list(board.frame_ends)
    assert len(ends) >= 3 and all(b > a for a, b in itertools.pairwise(ends))


# --- the benchmark ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_gui_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "gui", "--quick", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    b = json.loads(out)
    assert b["curves"] == 16 and b["target_fps"] == 30 and b["duration_s"] == 1.5
    for name, window in (("window_10s", 10.0), ("window_60s", 60.0)):
        f = b[name]
        assert f["window_s"] == window
        assert f["fps"] > 0 and f["paints_per_s"] > 0 and f["frames"] > 0
        assert 0 < f["frame_ms_p50"] <= f["frame_ms_p99"]
        assert 0 < f["paint_ms_p50"] <= f["paint_ms_p99"]
        assert 0.8 * 1000 <= f["feed_rate_hz"] <= 1.2 * 1000
        assert f["cpu_pct"] > 0 and isinstance(f["meets_target"], bool)
        # the window is full: 1 kHz x its length, to within the few samples fed during a redraw
        assert f["points_per_curve_in_window"] == pytest.approx(window * 1000, rel=0.01)
        assert 0 < f["points_drawn_per_curve"] <= f["points_per_curve_in_window"]
    for key in ("fps", "frame_ms_p50", "frame_ms_p99", "cpu_pct", "feed_rate_hz", "points_per_curve_in_window",
                "meets_target"):
        assert b[key] == b["window_10s"][key], key
    assert b["window_60s_fps"] == b["window_60s"]["fps"]
