"""A lost bus is reported, never a dead reader thread (issue 13, item 8).

Real parts: ``jointkit sim serve`` in another process, reached through python-can-remote on 127.0.0.1. Killing the
server closes the websocket under the client's reader (python-can-remote's ``WebsocketClosed``, which killed the
reader thread before); the next call must raise ``BusError`` naming the cause, and a client that asked for
reconnection must hear the joint again once a server is back on the same port. The waits are bounded polls of a
state; the verdicts are the exception and the frames, not a time.

In one process: a handler that raises on every frame must not stop the reader (the other joint's frames go on).
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import can
import pytest

from actuator.errors import BusError
from firmware_iface.client import JointClient, open_bus
from firmware_iface.client.bus import close_bus
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

pytestmark = pytest.mark.slow
_channels = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "firmware_iface.cli", "sim", "serve", "--nodes", "1",
                             "--preset", "knee", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once the server listens
    assert "serving virtual joints 1" in line, proc.stderr.read()
    return proc


def _until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll a state; the timeout only keeps a broken build from hanging the suite."""
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "state not reached"
        time.sleep(0.02)


@pytest.fixture
def server() -> Iterator[tuple[int, list[subprocess.Popen]]]:
    port = _free_port()
    procs = [_serve(port)]
    yield port, procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)


# the bus replaced on reconnection is shut down for good: python-can's finaliser must not find it half closed and
# raise in the reader thread (it did: "Exception ignored in BusABC.__del__", a warning in every run of this test)
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_server_gone_gives_bus_error_and_reconnect_resumes(server):
    port, procs = server
    url = f"ws://127.0.0.1:{port}/"
    bus = open_bus("remote", url)
    client = JointClient(bus, 1)
    hub = client.hub
    hub.reconnect_with(lambda: open_bus("remote", url), interval_s=0.2)
    try:
        client.wait_alive(10.0)
        procs[0].kill()
        procs[0].wait(timeout=10)
        _until(lambda: hub.lost is not None)
        assert hub._thread is not None and hub._thread.is_alive()  # the reader survived to reconnect
        with pytest.raises(BusError, match="lost"):
            client.read_param("watchdog_timeout_s")
        with pytest.raises(BusError, match="lost"):
            client.disable()
        procs.append(_serve(port))
        _until(lambda: hub.lost is None)
        assert hub.reconnects == 1
        heard = client.heartbeat_t
        _until(lambda: client.heartbeat_t is not None and client.heartbeat_t != heard)
        assert client.read_param("watchdog_timeout_s") == pytest.approx(0.1, rel=1e-6)
    finally:
        hub.close()
        close_bus(hub.bus)


def test_without_reconnect_the_lost_bus_stays_an_error(server):
    port, procs = server
    bus = open_bus("remote", f"ws://127.0.0.1:{port}/")
    client = JointClient(bus, 1)
    try:
        client.wait_alive(10.0)
        procs[0].kill()
        procs[0].wait(timeout=10)
        _until(lambda: client.hub.lost is not None)
        with pytest.raises(BusError, match=r"lost: WebsocketClosed|lost: .*closed"):
            client.wait_alive(0.5) if client.heartbeat_t is None else client.wait_state("closed_loop", 5.0)
    finally:
        client.hub.close()
        close_bus(bus)


def test_a_handler_that_raises_does_not_stop_the_reader():
    channel = f"jointkit-handler-{next(_channels)}"
    joint_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    host_bus = can.Bus(interface="virtual", channel=channel)
    nodes = [VirtualJointNode(joint_bus, n, preset="knee") for n in (1, 2)]
    good = JointClient(host_bus, 1)
    hub = good.hub

    def broken(*_: object) -> None:
        raise RuntimeError("a client's bug")
    hub.register(2, broken)
    try:
        with NodeRunner(joint_bus, nodes, paced=False):
            _until(lambda: hub.counters["handler_errors"] >= 100)
            before = good.rings["joint_state"].count
            _until(lambda: good.rings["joint_state"].count >= before + 100)
        assert hub.threaded
        assert "a client's bug" in hub.last_error
    finally:
        hub.close()
        joint_bus.shutdown()
        host_bus.shutdown()
