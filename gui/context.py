"""What a panel may use of the main window, handed to it when it is built: the panels depend on this small object,
not on the window (no import of ``gui.window``, no reaching into another panel; a panel that has news for another
emits a Qt signal the window connects).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6 import QtWidgets

    from firmware_iface.client import JointClient
    from gui.jobs import Jobs
    from gui.plots import PlotBoard


@dataclass(frozen=True)
class PanelContext:
    actions: Any                                      # the window's Actions on the current joint (enable, estop, ...)
    jobs: Jobs                                        # work off the GUI thread, results back on it
    board: PlotBoard                                  # the live plots (a test overlays its set-points)
    current_client: Callable[[], JointClient | None]  # the selected joint's client, None when not connected
    preset: Callable[[], str]                         # the preset of the joints the window was opened on
    status: Callable[[str], None]                     # a message in the status bar
    show_error: Callable[..., None]                   # an error in the status bar (and a dialog for files)
    open_dialog: Callable[[QtWidgets.QMessageBox], None]  # a non-modal question, kept by the window until answered
    fixture: Callable[[int], Any]                     # the rig's fixture on a node's output (None: the rig has none)
