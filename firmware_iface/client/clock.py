"""The host's clock: every wait, deadline and receive stamp on the host side goes through one.

A bus's clock belongs to its ``BusHub`` (``hub.clock``); ``JointClient``, ``HostLoop``, the rig's keep-alive, safe
stop and steps read the time and wait through it. Two kinds:

* ``WallClock`` (real buses, ``sim serve``, the GUI): ``time.perf_counter`` for stamps and deadlines, the wall
  clock (``time.time``) for frame timestamps; waiting sleeps, the hub's reader thread receives meanwhile.
* ``LockStepClock`` (a simulated rig: ``sim_rig(..., lockstep=True)``): time is the simulated joints' time. It moves
  only when the host waits: ``advance_to(t)`` hands the joints the frames the host sent, runs them one chunk (1 ms of
  joint time) at a time up to ``t`` and, after each chunk, reads their frames into the hub in this thread, stamped
  with the clock's time. Nothing waits on the wall clock and no thread races another, so a run is deterministic
  (same seed, same figures, bit for bit) and as fast as the machine computes the joints; a loaded machine makes it
  slower, never different. Callbacks registered with ``every`` (the rig's keep-alive between steps) run inside the
  advance at their period of joint time, in the same thread.

``wall()`` is the time a frame's timestamp carries (seconds since the epoch): on the lock-step clock the epoch of
its start plus its time, as the simulated joints stamp theirs, so a recording of a lock-step run is in time order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class Clock(Protocol):
    lockstep: bool

    def now(self) -> float:
        """Seconds on this clock (the origin is arbitrary: differences only)."""

    def wall(self) -> float:
        """Seconds since the epoch: what a frame sent now is stamped with."""

    def sleep(self, duration_s: float) -> None:
        """Let ``duration_s`` pass."""

    def wait_until(self, deadline: float, spin_s: float = 0.0) -> None:
        """Return at ``deadline`` (``now()``), not before; ``spin_s``: busy-wait that long before it (wall only)."""

    def idle(self, hub: Any, max_s: float) -> None:
        """Let a little time pass while waiting for frames: up to ``max_s`` on the wall clock, one step in lock-step;
        frames that arrive meanwhile are handled (by the hub's thread, or here when it has none)."""


class WallClock:
    """The machine's clock."""

    lockstep = False

    def now(self) -> float:
        return time.perf_counter()

    def wall(self) -> float:
        return time.time()

    def sleep(self, duration_s: float) -> None:
        if duration_s > 0:
            time.sleep(duration_s)

    def wait_until(self, deadline: float, spin_s: float = 0.0) -> None:
        remaining = deadline - time.perf_counter()
        if remaining > spin_s:
            time.sleep(remaining - spin_s)
        # busy-wait the last ``spin_s``: waking from a sleep costs the GIL round trip a deadline cannot afford
        while time.perf_counter() < deadline:
            pass

    def idle(self, hub: Any, max_s: float) -> None:
        if hub.threaded:
            time.sleep(max_s)
        else:
            hub.poll(max_s)


WALL = WallClock()


class LockStepClock:
    """The joints' time, advanced by the host (see the module docstring). ``runner``: the simulated joints'
    ``NodeRunner`` (not started: this clock runs it); ``hub``: the host's hub on the same channel (no reader thread:
    this clock reads for it)."""

    lockstep = True

    def __init__(self, runner: Any, hub: Any) -> None:
        self.runner, self.hub = runner, hub
        self.step_s = runner.chunk_s
        self._t = 0.0  # the clock: the joints' time at the end of their last chunk, or a deadline past it
        self._joint_t = 0.0  # the joints' time, a whole number of chunks
        self._chunks = 0
        self.epoch = time.time()  # wall() at time 0: the joints stamp their frames on the same axis
        for node in runner.nodes.values():
            node.time_origin = self.epoch - node.fw.t_s
        self._hooks: list[list[Any]] = []  # [period_s, next due, callback]
        self._advancing = False
        self._interrupted = False

    def interrupt(self) -> None:
        """Raise ``KeyboardInterrupt`` from the next chunk boundary of ``advance_to`` (once): what a signal handler
        calls instead of raising at an arbitrary point of the joints' step."""
        self._interrupted = True

    def now(self) -> float:
        return self._t

    def wall(self) -> float:
        return self.epoch + self._t

    def every(self, period_s: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` every ``period_s`` of this clock while it advances; returns the function that
        unregisters it."""
        hook = [period_s, self._t + period_s, callback]
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def advance_to(self, t: float) -> None:
        """Run the joints up to ``t`` (whole chunks: the clock then reads ``t`` or the end of the last chunk past it,
        whichever is later) and hand the host every frame they sent on the way."""
        if self._advancing:  # a waiting hook or handler would spin here for ever: time moves only in the outer call
            raise RuntimeError("a lock-step clock callback or frame handler waited on the clock: it must not")
        self._advancing = True
        try:
            while self._joint_t < t - 1e-9:
                if self._interrupted:
                    self._interrupted = False
                    raise KeyboardInterrupt
                self.runner.step()  # the host's frames to the joints, then one chunk of every joint
                self._chunks += 1
                self._joint_t = self._chunks * self.step_s
                self._t = max(self._t, self._joint_t)
                self.hub.poll(0.0)  # their frames, stamped now()
                self._run_hooks()
            self._t = max(self._t, t)
        finally:
            self._advancing = False

    def _run_hooks(self) -> None:
        for hook in list(self._hooks):
            period_s, due, callback = hook
            if self._t + 1e-9 >= due:
                hook[1] = due + period_s * max(1, int((self._t - due) // period_s) + 1)
                callback()

    def sleep(self, duration_s: float) -> None:
        self.advance_to(self._t + max(0.0, duration_s))

    def wait_until(self, deadline: float, spin_s: float = 0.0) -> None:
        self.advance_to(deadline)

    def idle(self, hub: Any, max_s: float) -> None:
        self.advance_to(self._joint_t + self.step_s)
