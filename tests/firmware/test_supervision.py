"""Heartbeat supervision counts the time the host listened, not the wall time (``BusHub.deaf_s``).

A host kept from the bus (a process stopped, a loaded machine that did not schedule its reader: CI lost a joint to a
327 ms stall) must not declare a joint lost whose heartbeats wait in the bus's queue; a joint that is silent while the
host listens must still be lost. Real parts: a knee joint paced to wall time in a ``NodeRunner`` thread on a python-can
``virtual`` channel, a threaded client; the host's stall is made by a listener that holds the reader away from the bus.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import can
import pytest

from actuator.errors import TimeoutError as JointTimeoutError
from firmware_iface.client import JointClient
from firmware_iface.client.hub import READ_TIMEOUT_S
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

HEARTBEAT_PERIOD_S = 0.1  # the native profile's 10 Hz heartbeat
MISSED = 3  # the client's default: lost after 3 periods
STALL_S = 5 * HEARTBEAT_PERIOD_S  # well past the 0.3 s the client allows
_channels = itertools.count()


class Stall(can.Listener):
    """Once armed, holds the hub's reader for ``STALL_S`` in the next frame it hands over: the reader is away from
    the bus, as a stopped process's would be, while the joint goes on sending into the queue."""

    def __init__(self) -> None:
        self.armed, self.done = threading.Event(), threading.Event()

    def on_message_received(self, msg: can.Message) -> None:
        if self.armed.is_set() and not self.done.is_set():
            time.sleep(STALL_S)
            self.done.set()


@pytest.fixture
def joint() -> Iterator[tuple[JointClient, VirtualJointNode]]:
    channel = f"jointkit-supervision-{next(_channels)}"
    joint_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    host_bus = can.Bus(interface="virtual", channel=channel)
    node = VirtualJointNode(joint_bus, 1, preset="knee")
    client = JointClient(host_bus, 1, missed_heartbeats=MISSED)
    try:
        with NodeRunner(joint_bus, [node], paced=True):
            client.wait_alive(30.0)
            yield client, node
    finally:
        client.hub.close()
        joint_bus.shutdown()
        host_bus.shutdown()


def test_a_host_kept_from_the_bus_does_not_lose_a_joint_that_kept_talking(joint) -> None:
    client, _ = joint
    assert client.heartbeat_period_s == HEARTBEAT_PERIOD_S
    stall = Stall()
    client.hub.add_listener(stall)
    deaf_before = client.hub.deaf_s()
    stall.armed.set()
    verdicts = []
    while not stall.done.is_set():  # the reader is held: the client is asked all along
        verdicts.append((client.alive, client.heartbeat_age_s()))
        time.sleep(0.01)
    assert verdicts and all(alive for alive, _ in verdicts), max(age for _, age in verdicts)
    client.check()  # on wall time the heartbeat was 0.5 s old here: "joint lost" before
    # the reader was away the whole stall less one receive timeout (the stall's sleep is at least STALL_S)
    assert client.hub.deaf_s() - deaf_before >= STALL_S - READ_TIMEOUT_S - 1e-6
    client.wait_for(lambda: client.heartbeat_age_s() < HEARTBEAT_PERIOD_S, 10.0, "a heartbeat after the stall")


def test_a_joint_silent_while_the_host_listens_is_lost(joint) -> None:
    client, node = joint
    node.inject("bus_silence", 10.0)
    client.wait_for(lambda: not client.alive, 10.0, "loss of the heartbeat")
    assert client.heartbeat_age_s() > MISSED * HEARTBEAT_PERIOD_S
    with pytest.raises(JointTimeoutError, match=r"no heartbeat for \d+ ms of listening \(limit 3 x 100 ms\)"):
        client.check()


def test_listening_is_lengthened_by_the_time_the_host_was_kept_from_the_bus(joint) -> None:
    """``BusHub.listen`` (what ``scan`` listens with): 0.3 s of listening with the reader held 0.5 s of it lasts at
    least the two less one receive timeout, and hears heartbeats (a scan on a stalled host found no joint before)."""
    client, _ = joint
    stall = Stall()
    client.hub.add_listener(stall)
    stall.armed.set()
    beats = client.hub.beats[1]
    t0 = time.perf_counter()
    client.hub.listen(0.3)
    assert time.perf_counter() - t0 >= 0.3 + STALL_S - READ_TIMEOUT_S - 1e-6
    assert stall.done.is_set() and client.hub.beats[1] > beats


def test_a_joint_behind_a_lost_bus_is_lost_while_the_hub_tries_to_reopen_it(joint) -> None:
    """A lost bus is silence heard, not a stalled host: while the reader retries the bus (``reconnect_with``), the
    time counts against the joint's heartbeat, and the joint is lost after its three periods."""
    client, _ = joint
    hub = client.hub

    def unplugged() -> can.BusABC:
        raise can.CanError("adapter unplugged")
    hub.reconnect_with(unplugged, interval_s=1.0)
    hub.bus.shutdown()  # the reader's next receive fails: the bus is lost
    deadline = time.monotonic() + 30.0  # a safety net: the verdicts below do not depend on it
    while hub.lost is None or client.alive:  # the client's own waits raise BusError on a lost bus: polled here
        assert time.monotonic() < deadline, (hub.lost, client.heartbeat_age_s())
        time.sleep(0.01)
    assert hub.threaded and client.heartbeat_age_s() > MISSED * HEARTBEAT_PERIOD_S  # still trying to reopen it
