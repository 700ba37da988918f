"""``Rig.safe_stop``: disable sent to every joint, the heartbeat with the drive off awaited, and per node what came
(issue 13, item 5). Fake clients answer (or not) inside ``disable()`` itself, so nothing here waits on a clock."""

from __future__ import annotations

import time
from collections.abc import Callable

from actuator.errors import BusError, TimeoutError
from firmware_iface.rig.rig import Rig


class FakeJoint:
    """A joint client whose heartbeat answers the disable at once (``answers``) or never; the wait looks once."""

    def __init__(self, *, answers: bool = True, bus_down: bool = False) -> None:
        self.answers, self.bus_down = answers, bus_down
        self.state: str | None = "closed_loop"
        self.heartbeat_t: float | None = time.perf_counter()  # the last heartbeat before the stop said closed loop
        self.disables = 0

    def disable(self) -> None:
        if self.bus_down:
            raise BusError("bus lost: adapter unplugged")
        self.disables += 1
        if self.answers:  # the reader thread took the joint's reply before disable() returned
            self.state, self.heartbeat_t = "idle", time.perf_counter()

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        if not predicate():
            raise TimeoutError(f"no {what} within {timeout_s:g} s")


def _stop(**clients: FakeJoint) -> tuple[Rig, list[str]]:
    rig = Rig(None, None, {int(k.removeprefix("n")): c for k, c in clients.items()}, {})
    try:
        return rig, rig.safe_stop(confirm_s=0.5)
    finally:
        rig.close()


def test_an_answer_before_disable_returns_is_the_confirmation():
    # before: the send time was taken after disable() returned, so a reply that fast looked older than the
    # disable and the stop was reported unconfirmed although the joint had said idle
    rig, problems = _stop(n1=FakeJoint())
    assert problems == []
    report = rig.stop_report["1"]
    assert report["disable_sent"] and report["idle_confirmed"] and report["state"] == "idle"
    assert 0.0 <= report["confirm_s"] < 0.5


def test_every_joint_is_reported_whether_its_stop_came_or_not():
    silent, down = FakeJoint(answers=False), FakeJoint(bus_down=True)
    rig, problems = _stop(n1=FakeJoint(), n2=silent, n3=down)
    assert silent.disables == 1  # the silent joint was still sent its disable
    assert rig.stop_report["2"] == {"disable_sent": True, "idle_confirmed": False, "state": "closed_loop",
                                    "confirm_s": None}
    assert rig.stop_report["3"]["disable_sent"] is False and rig.stop_report["3"]["idle_confirmed"] is False
    assert rig.stop_report["1"]["idle_confirmed"]  # one joint's trouble does not stop the others' confirmation
    assert problems == ["node 3: bus lost: adapter unplugged",
                        "node 2: disable sent, no heartbeat with the drive off within 0.5 s (last state closed_loop)"]
