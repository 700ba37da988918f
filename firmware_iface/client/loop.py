"""A fixed-rate host loop: a callback (Python, or a Python wrapper around a Numba kernel) at e.g. 1 kHz.

Scheduling is by absolute deadlines (``t0 + k * period``), so errors do not accumulate: the loop sleeps
until ``spin_s`` before a deadline and then busy-waits for it, holding the interpreter lock. Yielding in that
window instead (``time.sleep(0)``, a system call after which the thread must win the lock back from the bus
threads) gave a p99 period jitter of 66 to 375 us for one joint over runs here; busy-waiting gives 0 to 30 us in
most runs, and the bus threads lose at most ``spin_s`` a period. A tick that starts more than one period late is
counted as an overrun and the schedule skips ahead rather than bursting.

The objects alive when the loop starts are frozen out of the cyclic garbage collector (``gc.freeze``), whose full
collections otherwise stop every thread for milliseconds. With ``nice`` the loop's own thread asks the OS for that
scheduling priority while it runs (Linux: a thread is a task, so other threads keep theirs); a negative value
needs the privilege to raise priority, and when the OS refuses the loop runs as it is and ``nice_applied`` stays
None. Neither removes the machine's own tail: on these shared 2-core machines about one run in four or five still
has a p99 above 200 us, in every configuration tried.

Figures (``figures()``): the achieved ``rate_hz`` over the whole run and the period jitter, |actual period -
nominal period| between consecutive callback starts, as p50 and p99 in microseconds over the last
``jitter_window`` periods (a ring: a loop of any length holds the same memory), and the largest period seen.

On a lock-step clock (``clock``, a simulated rig's) every tick is on time: waiting for a deadline advances the
simulated joints to it, so the figures show no jitter and no overrun, whatever the machine's load.

The loop runs until its duration or ``stop()``: it has no tick limit (a 10-hour soak at 1 kHz is 36 million ticks).
The freeze is undone (``gc.unfreeze``) when the loop ends, however it ends.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from actuator.errors import ConfigError
from firmware_iface.client.clock import WALL, Clock

Callback = Callable[[int, float], Any]  # (tick index, seconds since the loop started)


def percentiles_us(samples_s: np.ndarray, qs: tuple[float, ...] = (50.0, 99.0)) -> list[float]:
    if samples_s.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(samples_s * 1e6, qs)]


class HostLoop:
    """Run ``callback(k, t_s)`` every ``1 / rate_hz`` seconds; ``run`` in this thread or ``start`` a thread."""

    def __init__(self, rate_hz: float, callback: Callback, *, spin_s: float = 2e-4, jitter_window: int = 1_000_000,
                 nice: int | None = None, clock: Clock = WALL) -> None:
        if not 0 < rate_hz <= 20_000:
            raise ConfigError(f"host loop rate_hz = {rate_hz!r} is not allowed: must be in (0, 20000]")
        self.period_s = 1.0 / rate_hz
        self.callback = callback
        self.clock = clock  # a lock-step clock makes every tick on time: the loop advances the joints to it
        self.spin_s = min(spin_s, self.period_s / 2)
        self.nice = nice
        self.nice_applied: int | None = None
        if not (isinstance(jitter_window, int) and jitter_window >= 2):
            raise ConfigError(f"jitter_window = {jitter_window!r}: an integer >= 2 (periods kept for the jitter)")
        self.starts = np.zeros(jitter_window)  # a ring of the latest callback starts
        self.first_start = self.last_start = 0.0
        self.max_period_s = 0.0
        self.ticks = 0
        self.overruns = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, duration_s: float) -> dict[str, float]:
        """Loop for ``duration_s`` in this thread (exceptions of the callback propagate); the figures."""
        self._loop(lambda k: k * self.period_s >= duration_s)
        return self.figures()

    def run_while(self, keep_going: Callable[[], bool], max_s: float) -> dict[str, float]:
        """Loop in this thread while ``keep_going()`` (asked before each tick), for ``max_s`` at most; the figures."""
        self._loop(lambda k: k * self.period_s >= max_s or not keep_going())
        return self.figures()

    def start(self) -> HostLoop:
        def target() -> None:
            try:
                self._loop(lambda k: self._stop.is_set())
            except BaseException as e:  # kept for the owner: a thread has nobody else to tell
                self.error = e
        self._stop.clear()
        self._thread = threading.Thread(target=target, name="host-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        return self.figures()

    def _loop(self, done: Callable[[int], bool]) -> None:
        tid = threading.get_native_id()
        previous = self._set_priority(tid)
        try:
            self._ticks(done)
        finally:
            if previous is not None:
                os.setpriority(os.PRIO_PROCESS, tid, previous)

    def _set_priority(self, tid: int) -> int | None:
        """Apply ``nice`` to this thread when asked and allowed; the previous value, or None when unchanged."""
        if self.nice is None or not hasattr(os, "setpriority"):
            return None
        previous = os.getpriority(os.PRIO_PROCESS, tid)
        try:
            os.setpriority(os.PRIO_PROCESS, tid, self.nice)
        except OSError:  # not privileged: run at the priority we have
            return None
        self.nice_applied = self.nice
        return previous

    def _ticks(self, done: Callable[[int], bool]) -> None:
        # objects alive now (modules, databases, compiled kernels) leave the cyclic collector's generations, so
        # a collection triggered by any thread during the loop scans only what the loop itself made
        gc.freeze()
        try:
            self._run_ticks(done)
        finally:
            gc.unfreeze()

    def _run_ticks(self, done: Callable[[int], bool]) -> None:
        period, spin = self.period_s, self.spin_s
        starts, size = self.starts, self.starts.size
        clock = self.clock
        t0 = clock.now()
        k = 0
        while not done(k):
            clock.wait_until(t0 + k * period, spin)
            now = clock.now()
            if self.ticks:
                self.max_period_s = max(self.max_period_s, now - self.last_start)
            else:
                self.first_start = now
            starts[self.ticks % size] = now
            self.last_start = now
            self.ticks += 1
            self.callback(k, now - t0)
            k += 1
            late = clock.now() - (t0 + k * period)
            if late > period:  # skip the ticks we cannot make instead of bursting through them
                skipped = int(late // period)
                self.overruns += skipped
                k += skipped

    def figures(self) -> dict[str, float]:
        n, size = self.ticks, self.starts.size
        if n < 2:
            return {"rate_hz": float("nan"), "jitter_p50_us": float("nan"), "jitter_p99_us": float("nan"),
                    "ticks": n, "overruns": self.overruns, "nice": self.nice_applied, "max_period_us": float("nan")}
        latest = self.starts[:n] if n <= size else np.roll(self.starts, -(n % size))  # oldest first
        p50, p99 = percentiles_us(np.abs(np.diff(latest) - self.period_s))
        return {"rate_hz": float((n - 1) / (self.last_start - self.first_start)), "jitter_p50_us": p50,
                "jitter_p99_us": p99, "ticks": n, "overruns": self.overruns, "nice": self.nice_applied,
                "max_period_us": self.max_period_s * 1e6}
