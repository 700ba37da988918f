"""The GUI tests run on Qt's offscreen platform (no display needed) with one 1280 x 720 screen; set before anything
imports Qt."""

from __future__ import annotations

import gc
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# one 1280 x 720 screen (a laptop's, the size the window must be usable at: issue 19) rather than the offscreen
# platform's default 800 x 800, so a window is fitted to a screen of that size as it would be on the laptop
SCREEN_PX = (1280, 720)
_screen = Path(tempfile.mkdtemp(prefix="jointkit-qt-")) / "screen.json"
_screen.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": SCREEN_PX[0],
                                            "height": SCREEN_PX[1], "logicalDpi": 96, "logicalBaseDpi": 96,
                                            "dpr": 1}]}))
if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_screen}"


@pytest.fixture(autouse=True)
def gui_settings_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The window's remembered layout (QSettings, INI in the user scope) in a directory of each test's own, never the
    user's configuration: a test starts with no saved layout, and one that reopens the window finds what it saved."""
    from PySide6 import QtCore

    fmt, scope = QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope
    QtCore.QSettings.setPath(fmt, scope, str(tmp_path_factory.mktemp("qsettings")))
    yield


@pytest.fixture(autouse=True)
def collect_in_the_gui_thread() -> Iterator[None]:
    """Python's collector only in this (the GUI) thread: run from a connect thread it deleted a widget of an earlier
    test there, whose QObject destructor waited for the GIL this thread held while waiting on the same Qt lock (a hang
    seen in test_window's first test). The app does the same with pyqtgraph's GarbageCollector (gui/app.run)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()
