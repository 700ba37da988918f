"""A rig sequence run on the GUI session's joint, with no Qt in it: the runner of ``jointkit run``
(``firmware_iface.rig.runner.run_sequence``) on a rig made of the session's own bus, hub and the selected joint's
client, the sequence's node mapped to that joint (``sequence.with_node``, as ``jointkit run --node``), and the
results appended to the database that ``jointkit run --db`` writes (``results_db``, SQLite or PostgreSQL).

The run's rig holds only the selected joint: its keep-alive streams that joint between steps and its safe stop
disables that joint, never the session's others. It is closed after the run (its keep-alive only: the bus, hub and
client stay the session's).

Stop does what Ctrl-C does to ``jointkit run``: a ``KeyboardInterrupt`` in the run, which the runner turns into an
``incomplete`` run with its joint disabled. It is raised from the next wait of the run's thread on the hub's clock
(``StopClock``, on the hub for the run's duration), where no lock is held (as ``LockStepClock.interrupt`` does), and
only while steps run: the rig's safe stop disarms it first, so a late Stop never cuts short the disable, the closing
of the recordings or the writing of results.json.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from firmware_iface.client.clock import Clock
from firmware_iface.rig import results_db
from firmware_iface.rig.rig import SAFE_STOP_CONFIRM_S, Rig
from firmware_iface.rig.runner import run_sequence
from firmware_iface.rig.sequence import Sequence, with_node

LAST_RUNS = 10  # runs listed in the panel's results view (newest last, as ``jointkit results list``)


class StopClock:
    """The hub's clock (``inner``) with a Stop: after ``stop()`` the next wait of the armed thread raises
    ``KeyboardInterrupt``, once; every other thread and every reading of the time go to ``inner`` unchanged."""

    def __init__(self) -> None:
        self.inner: Clock | None = None
        self.requested = False
        self._thread: int | None = None  # the run's thread while its steps run; None: disarmed

    def arm(self, inner: Clock) -> None:
        """Raise in the calling thread from now on (when a Stop is or was requested)."""
        self.inner, self._thread = inner, threading.get_ident()

    def disarm(self) -> None:
        self._thread = None

    def stop(self) -> None:
        self.requested = True

    def _check(self) -> None:
        if self.requested and self._thread is not None and self._thread == threading.get_ident():
            self._thread = None
            raise KeyboardInterrupt

    def __getattr__(self, name: str) -> Any:  # lockstep, every, ... as the inner clock has them
        return getattr(self.inner, name)

    def now(self) -> float:
        return self.inner.now()

    def wall(self) -> float:
        return self.inner.wall()

    def sleep(self, duration_s: float) -> None:
        self._check()
        self.inner.sleep(duration_s)

    def wait_until(self, deadline: float, spin_s: float = 0.0) -> None:
        self._check()
        self.inner.wait_until(deadline, spin_s)

    def idle(self, hub: Any, max_s: float) -> None:
        self._check()
        self.inner.idle(hub, max_s)


class JointRig(Rig):
    """One joint of a session as a rig: the session's bus, hub and client; its safe stop disarms the Stop first."""

    stop_clock: StopClock | None = None

    def safe_stop(self, confirm_s: float = SAFE_STOP_CONFIRM_S) -> list[str]:
        if self.stop_clock is not None:
            self.stop_clock.disarm()
        return super().safe_stop(confirm_s)


@dataclass(frozen=True)
class RunRequest:
    """What the panel runs: the loaded sequence, the joint, where the outputs go and the database (None: none)."""

    sequence: Sequence
    node: int
    out_dir: Path
    serial: str | None
    db: str | Path | None


def run_on_session(session_rig: Rig, request: RunRequest, stop: StopClock) -> dict:
    """The sequence on ``request.node`` of the session's rig (on the session's job thread: it waits on the bus for
    as long as the sequence lasts); the runner's results. A database that cannot be used is refused before anything
    moves (``ConfigError`` naming it, password as ***), as ``jointkit run --db`` refuses it."""
    if request.db is not None:
        results_db.ensure(request.db)
    hub, client = session_rig.hub, session_rig.client(request.node)
    inner = hub.clock
    stop.arm(inner)
    hub.clock = stop  # the client's waits go through the hub's clock
    try:
        info = {**session_rig.info, "nodes": [request.node], "gui": True}
        fixtures = {n: f for n, f in session_rig.fixtures.items() if n == request.node}
        rig = JointRig(session_rig.bus, hub, {request.node: client}, info, fixtures, {}, contextlib.ExitStack())
        rig.stop_clock = stop
        try:
            return run_sequence(with_node(request.sequence, request.node), rig, request.out_dir,
                                serial=request.serial, console=Console(quiet=True))
        finally:
            rig.close()
    finally:
        stop.disarm()
        hub.clock = inner


def read_results(out_dir: Path) -> dict | None:
    """DIR/results.json as the runner last wrote it (whole: it renames a complete file over the old one); None when
    there is none yet or it cannot be read."""
    try:
        data = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("steps"), list) else None


def store(db: str | Path, results: dict | None) -> dict[str, Any]:
    """Append ``results`` (when given; else create the database if it is new, as ``jointkit run`` does before a run)
    to the database, then what the results view shows: its ``summary`` and its ``LAST_RUNS`` latest runs
    (``list_runs``), read with the store's own functions."""
    if results is not None:
        results_db.append(db, results)
    else:
        results_db.ensure(db)
    return {"db": results_db.display(db), "summary": results_db.summary(db),
            "runs": results_db.list_runs(db, last=LAST_RUNS)}
