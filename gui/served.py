"""Simulated joints in a process of their own, started and stopped by the GUI: ``jointkit sim serve`` as a child
process on a free loopback port, reached with python-can-remote (``interface='remote'``), as any other process
reaches it.

Why a process: six joints at 1 kHz telemetry paced in the GUI's interpreter shared its lock with the redraws and the
set-point streamer (20-28 fps, event-loop lateness p99 48-130 ms, and once the streamer starved until every joint
faulted: issue 19). In their own process they compete for a core, not for the GUI's lock.

``ServedJoints.start`` waits for the child's readiness line on stdout (printed once the server listens), however long
a cold Numba cache takes to compile (``READY_TIMEOUT_S`` is only a net for a hung child); a child that exits first
is reported with its stderr. ``stop`` ends it (SIGTERM, a clean stop, then SIGKILL). A GUI that dies without
stopping it does not leave it behind: the child is given ``--parent-pid`` and stops when it is re-parented.
No Qt here.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from actuator.errors import BusError
from firmware_iface.defaults import LOOPBACK

if TYPE_CHECKING:
    from firmware_iface.protocol.profile import Profile

READY_TIMEOUT_S = 180.0  # a net only: readiness or the child's exit ends the wait (a cold cache compiles ~15-60 s)
READY_LINE = "serving virtual joints"  # what `jointkit sim serve` prints once it listens
STOP_TIMEOUT_S = 5.0  # SIGTERM stops the server within a 0.2 s poll and a joint runner's join; then SIGKILL
STDERR_TAIL_CHARS = 4000


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` now (the OS's choice); another process may take it before the child binds, and
    the child then exits with its bind error, which ``start`` reports."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_command(nodes: Sequence[int], preset: str, port: int, profile: Profile | None = None,
                  watchdog_s: float | None = None) -> list[str]:
    """The child's command line: this interpreter running the ``jointkit`` module, so the GUI's environment (venv,
    PYTHONPATH) is the joints' too."""
    cmd = [sys.executable, "-m", "firmware_iface.cli", "sim", "serve", "--nodes", ",".join(map(str, nodes)),
           "--preset", preset, "--port", str(port), "--host", LOOPBACK, "--parent-pid", str(os.getpid())]
    if watchdog_s is not None:
        cmd += ["--watchdog-s", repr(float(watchdog_s))]
    if profile is not None and profile.dbc_path is not None:
        cmd += ["--profile", str(profile.dbc_path)]
        if profile.sidecar.path is not None:
            cmd += ["--sidecar", str(profile.sidecar.path)]
    return cmd


class ServedJoints:
    """One ``jointkit sim serve`` child: ``start`` (returns once it serves), ``url``, ``stop``."""

    def __init__(self, nodes: Sequence[int], preset: str = "knee", profile: Profile | None = None,
                 watchdog_s: float | None = None, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        self.nodes, self.preset, self.profile = tuple(nodes), preset, profile
        self.port = free_port()
        self.command = serve_command(self.nodes, preset, self.port, profile, watchdog_s)
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen | None = None
        self._stderr: IO[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.ready_s: float | None = None  # how long the child took to serve (wall seconds)

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/"

    def start(self) -> ServedJoints:
        # stderr to a file, not a pipe: a child that warns for hours must never block on a full pipe
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", prefix="jointkit-serve-")  # noqa: SIM115 - closed by stop
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, bufsize=1)
        threading.Thread(target=self._read_stdout, name="jointkit-serve-stdout", daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - t0
        return self

    def _read_stdout(self) -> None:
        """Every line of the child's stdout (read to its end, so the child never blocks on it); None at EOF."""
        assert self.proc is not None and self.proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed by ``stop`` while reading
            for line in self.proc.stdout:
                self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self) -> None:
        end = time.perf_counter() + self.ready_timeout_s
        while True:
            left = end - time.perf_counter()
            if left <= 0:
                raise BusError(f"simulated joints {self._what()}: no readiness line within {self.ready_timeout_s:g} s"
                               f"{self._stderr_tail()}")
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the child is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(STOP_TIMEOUT_S)
                raise BusError(f"simulated joints {self._what()}: the server exited with code {self.proc.returncode} "
                               f"before serving{self._stderr_tail()}")
            if READY_LINE in line:
                return

    def _what(self) -> str:
        return f"{','.join(map(str, self.nodes))} ({self.preset}) on port {self.port}"

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            text = self._stderr.read().strip()
            if text:
                return f"; its stderr: {text[-STDERR_TAIL_CHARS:]}"
        return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """End the child (SIGTERM: a clean stop; SIGKILL after ``STOP_TIMEOUT_S``); its exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None
        return proc.returncode
