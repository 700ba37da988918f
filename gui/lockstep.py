"""Who advances the GUI's lock-step clock (``Connection(lockstep=True)``: ``sim_rig(lockstep=True)``), with no Qt in it.

A lock-step clock (``firmware_iface.client.clock.LockStepClock``) moves only when a host thread waits on it, and only
one thread may advance it at a time. In the GUI two kinds of thread want it to move:

* a job (a calibration, a test, a gain read) waits on its joint: it owns the clock for its whole run
  (``ClockDriver.owned``), so the joints advance exactly as the job's waits say, as fast as the machine computes
  them, and nothing else slips a chunk in between its frames (the run is the rig's lock-step run, deterministic);
* between jobs nobody waits, yet the joints must go on (heartbeats, the set-point streamer's keep-alive, the live
  plots): the driver's own thread advances the clock by the wall time that passed, at most ``MAX_STEP_S`` a turn, and
  only when no job owns it (``acquire(blocking=False)``). The joints then run at most at wall-clock pace, slower on a
  busy machine; no verdict depends on that pace (every stamp is the clock's).

The GUI thread never advances the clock and never takes its lock: it reads ``now()`` (a float) and the rings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from firmware_iface.client.clock import LockStepClock

TURN_S = 0.01      # the driver's wall-clock period between jobs: 100 advances a second
MAX_STEP_S = 0.05  # the most joint time one turn adds: a late turn does not make the joints jump (nor catch up)
STOP_JOIN_S = 1.0  # one turn computes at most MAX_STEP_S of joint time: far under this on any machine seen


class ClockDriver:
    """Advances ``clock`` between jobs at wall-clock pace; ``owned(fn, *args)`` runs a job that owns it."""

    def __init__(self, clock: LockStepClock) -> None:
        self.clock = clock
        self._owner = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gui-lockstep", daemon=True)
        self.errors: list[str] = []  # what an advance raised between jobs (a closed bus): the thread carries on

    def start(self) -> ClockDriver:
        self._thread.start()
        return self

    def owned(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the clock to itself: its waits advance the joints, the driver's thread stands by."""
        with self._owner:
            return fn(*args)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(TURN_S):
            now = time.perf_counter()
            step_s, last = min(now - last, MAX_STEP_S), now
            if not self._owner.acquire(blocking=False):
                continue  # a job owns the clock: its waits move it; the wall time meanwhile is not caught up
            try:
                self.clock.advance_to(self.clock.now() + step_s)
            except Exception as e:  # the driver must outlive a bad turn; the session reports a lost bus itself
                if len(self.errors) < 100:
                    self.errors.append(f"{type(e).__name__}: {e}")
            finally:
                self._owner.release()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_JOIN_S)
