"""Work that waits on the bus, run off the GUI thread: a job is a function submitted to the session's worker, and
its result or error comes back to the GUI thread on a timer (the GUI thread only asks ``future.done()``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from PySide6 import QtCore

POLL_MS = 20


@dataclass
class _Job:
    what: str
    future: Future
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None


class Jobs(QtCore.QObject):
    """Submit with ``run(what, fn, *args, on_done=..., on_error=...)``; callbacks run in the GUI thread.
    A job's error goes to ``on_error``, else to ``report(what, error)`` (the window's status bar and dialog)."""

    changed = QtCore.Signal()

    def __init__(self, submit: Callable[..., Future], report: Callable[[str, BaseException], None],
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._submit, self._report = submit, report
        self._jobs: list[_Job] = []
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._timer.start()

    def set_submit(self, submit: Callable[..., Future]) -> None:
        self._submit = submit

    def run(self, what: str, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None,
            submit: Callable[..., Future] | None = None) -> None:
        """Run ``fn(*args)`` through ``submit`` (default: the session's job thread)."""
        self._jobs.append(_Job(what, (submit or self._submit)(fn, *args), on_done, on_error))
        self.changed.emit()

    @property
    def busy(self) -> list[str]:
        return [j.what for j in self._jobs]

    def poll(self) -> None:
        done = [j for j in self._jobs if j.future.done()]
        if not done:
            return
        self._jobs = [j for j in self._jobs if not j.future.done()]
        for j in done:
            if j.future.cancelled():
                continue
            error = j.future.exception()
            if error is None:
                if j.on_done is not None:
                    j.on_done(j.future.result())
            elif j.on_error is not None:
                j.on_error(error)
            else:
                self._report(j.what, error)
        self.changed.emit()
