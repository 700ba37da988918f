"""The main window's layout between sessions, and its size on the screen it opens on.

The layout (window geometry, the docks' places and sizes, the plot group on show, each group's plot heights, the
plot window length) is kept in ``QSettings`` (``settings()``: an INI file in the user's configuration directory;
tests point ``QSettings.setPath`` at a temporary directory). A window opens at ``PREFERRED_SIZE`` or its remembered
size, never larger than the available geometry of its screen (a 1680 px window on a 1600 px screen had its E-STOP
off screen).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

if TYPE_CHECKING:
    from gui.plots import PlotBoard

PREFERRED_SIZE = (1680, 1000)
LAYOUT_VERSION = 1  # bumped when the docks change, so an old saved state is not applied to new docks


def settings() -> QtCore.QSettings:
    """The GUI's settings file (INI format, user scope, so ``QSettings.setPath`` moves it)."""
    return QtCore.QSettings(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, "jointkit", "gui")


def available(window: QtWidgets.QWidget) -> QtCore.QRect:
    """The available geometry of the window's screen (the primary screen before it is shown)."""
    screen = window.screen() or QtGui.QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(window: QtWidgets.QWidget) -> None:
    """Shrink the window, with its frame where the window system has given it one, to its screen's available
    geometry, and move it inside."""
    area = available(window)
    frame = window.frameGeometry().size() - window.size()  # (0, 0) before the window is shown
    width = min(window.width(), area.width() - frame.width())
    height = min(window.height(), area.height() - frame.height())
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    x = min(max(window.x(), area.left()), area.right() + 1 - width - frame.width())
    y = min(max(window.y(), area.top()), area.bottom() + 1 - height - frame.height())
    if (x, y) != (window.x(), window.y()):
        window.move(x, y)


def save(window: QtWidgets.QMainWindow, board: PlotBoard) -> None:
    s = settings()
    s.setValue("layout/version", LAYOUT_VERSION)
    s.setValue("window/geometry", window.saveGeometry())
    s.setValue("window/size", window.size())
    s.setValue("window/state", window.saveState(LAYOUT_VERSION))
    s.setValue("plots/group", board.current_group() or "")
    s.setValue("plots/window_s", board.window_s)
    for group in board.groups():
        s.setValue(f"plots/heights/{group}", board.group_splitter(group).saveState())
    s.sync()


def restore(window: QtWidgets.QMainWindow, board: PlotBoard) -> bool:
    """Apply the saved layout (whatever of it is there and valid); whether one was saved. The window is then fitted
    to its screen, saved or not."""
    s = settings()
    saved = s.value("layout/version") is not None and int(s.value("layout/version")) == LAYOUT_VERSION
    if saved:
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray):
            window.restoreGeometry(geometry)
        size = s.value("window/size")
        if isinstance(size, QtCore.QSize) and size.isValid():
            # the size itself: restoreGeometry shrinks a window that filled its screen by a title bar it guesses when
            # no window manager framed it (Xvfb, offscreen: 720 px came back as 694); fit_to_screen bounds it below
            window.resize(size)
        state = s.value("window/state")
        if isinstance(state, QtCore.QByteArray):
            window.restoreState(state, LAYOUT_VERSION)
        for group in board.groups():
            heights = s.value(f"plots/heights/{group}")
            if isinstance(heights, QtCore.QByteArray):
                board.group_splitter(group).restoreState(heights)
        group = s.value("plots/group")
        if group in board.tab_names():
            board.show_group(group)
        with contextlib.suppress(TypeError, ValueError):  # a hand-edited file: the default window stays
            board.set_window_s(float(s.value("plots/window_s", board.window_s)))
    fit_to_screen(window)
    return saved
