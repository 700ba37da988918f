"""No command is written to a node that is not confirmed as a joint of the client's profile (issue 15, item 4).

The foreign node here is an ODrive axis speaking CANSimple (firmware 0.5.x, ``tools/odrive-cansimple.dbc`` of
odriverobotics/ODrive): its heartbeat, command 0x01 at ``node << 5 | cmd`` as the native profile's, carries
Axis_Error (uint32, bytes 0-3) and Axis_State (byte 4; 1 = IDLE), and in 0.5.6 the flags of byte 7 (bit 63:
Trajectory_Done). Read by the native profile, an idle axis without errors is a valid heartbeat "idle, torque mode",
with a counter (byte 7) that never advances. A native client that took it for a joint would send frames the axis
obeys (param_read = Set_Limits, 0x0f: current limit 0).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator

import can
import pytest

from actuator.errors import IdentityError
from firmware_iface.client import BusHub, JointClient
from firmware_iface.client.scan import scan
from firmware_iface.protocol.load import load_native
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

PROFILE = load_native()
ODRIVE_HEARTBEAT = 0x01
ODRIVE_IDLE = 1
TRAJECTORY_DONE = 0x80  # byte 7, bit 63
_channels = itertools.count()


def odrive_heartbeat(node: int) -> can.Message:
    data = struct.pack("<IB2xB", 0, ODRIVE_IDLE, TRAJECTORY_DONE)
    return can.Message(arbitration_id=node << 5 | ODRIVE_HEARTBEAT, data=data, is_extended_id=False)


@pytest.fixture
def buses(request: pytest.FixtureRequest) -> Iterator[tuple[can.BusABC, can.BusABC, can.BusABC]]:
    """(host, device, tap) on one virtual channel: the tap sees every frame the host sends."""
    channel = f"jointkit-identity-{next(_channels)}-{request.node.name}"
    opened = [can.Bus(interface="virtual", channel=channel) for _ in range(3)]
    yield tuple(opened)
    BusHub.of(opened[0], start=False).close()
    for bus in opened:
        bus.shutdown()


def host_frames(tap: can.BusABC, device_id: int) -> list[can.Message]:
    """The frames on the bus that the foreign device did not send."""
    out = []
    while (msg := tap.recv(0)) is not None:
        if msg.arbitration_id != device_id:
            out.append(msg)
    return out


def test_a_foreign_heartbeat_decodes_as_native_but_is_never_confirmed(buses):
    host, device, tap = buses
    beat = odrive_heartbeat(1)
    decoded = PROFILE.decode(beat)  # the danger: it is a valid native heartbeat
    assert (decoded.name, decoded.signals["state"], decoded.signals["mode"]) == ("heartbeat", "idle", "torque")
    task = device.send_periodic(beat, 0.05)  # python-can's own periodic sender, as a device's firmware would
    try:
        client = JointClient(host, 1, PROFILE)
        client.wait_alive(2.0)
        with pytest.raises(IdentityError) as e:
            client.enable("position")
        assert "node 1 is not confirmed as a jointkit_native joint" in str(e.value)
        assert "does not advance (stuck at 128)" in str(e.value)
        assert "--profile" in str(e.value)
        nodes = scan(host, PROFILE, 0.3)  # passive: sends nothing, reports the node unconfirmed
        assert [(n["node_id"], n["confirmed"]) for n in nodes] == [(1, False)]
        nodes = scan(host, PROFILE, 0.3, query=True)  # even asked to query: an unconfirmed node is not asked
        assert nodes[0]["profile_version"] is None
    finally:
        task.stop()
    assert host_frames(tap, beat.arbitration_id) == []


def test_a_native_joint_is_confirmed_by_its_advancing_heartbeat_counter(buses):
    host, joint_bus, tap = buses
    node = VirtualJointNode(joint_bus, 1, profile=PROFILE)
    with NodeRunner(joint_bus, [node], paced=True):
        client = JointClient(host, 1, PROFILE)
        client.identify(2.0)  # two heartbeats at 10 Hz
        assert client.identified and client.hub.identity(1) == "confirmed as jointkit_native"
        assert client.read_param("profile_version", 1.0) == 1.0
    sent = [PROFILE.decode(m).name for m in host_frames(tap, -1) if PROFILE.split_id(m.arbitration_id)[1] == 15]
    assert sent == ["param_read"]


def test_scan_table_says_a_foreign_node_is_not_confirmed(capsys):
    from firmware_iface.cli import main

    channel = f"jointkit-identity-{next(_channels)}-cli"
    device = can.Bus(interface="virtual", channel=channel)
    task = device.send_periodic(odrive_heartbeat(1), 0.05)
    try:
        assert main(["scan", "--interface", "virtual", "--channel", channel, "--listen-s", "0.3"]) == 0
    finally:
        task.stop()
        device.shutdown()
    out = capsys.readouterr().out
    assert "NOT confirmed" in out and "not asked" in out
    note = next(line for line in out.splitlines() if line.startswith("node 1: "))
    assert "frames decode as its heartbeat but their counter does not advance (stuck at 128)" in note
    assert note.endswith("no command is sent to it with this profile")
