"""The GUI tests run on Qt's offscreen platform (no display needed); set before anything imports Qt."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
