"""``Frame``: a python-can Message whose copies (the virtual bus makes one per receiver) equal python-can's own."""

from __future__ import annotations

import copy
import uuid

import can

from firmware_iface.protocol.frame import Frame, copy_frame
from firmware_iface.protocol.load import load_native

FIELDS = ("timestamp", "arbitration_id", "is_extended_id", "is_remote_frame", "is_error_frame", "channel", "dlc",
          "data", "is_fd", "is_rx", "bitrate_switch", "error_state_indicator")


def _fields(msg: can.Message) -> dict:
    return {f: getattr(msg, f) for f in FIELDS}


def test_a_frame_copies_as_python_can_copies_a_message() -> None:
    kwargs = {"timestamp": 1733475600.123456, "arbitration_id": 0x29, "data": bytes(range(8)),
              "is_extended_id": False, "is_fd": False, "is_rx": False, "channel": "vcan-x", "bitrate_switch": True,
              "error_state_indicator": True}
    frame, plain = Frame(**kwargs), can.Message(**kwargs)
    for made in (copy.deepcopy(frame), copy_frame(plain)):
        assert type(made) is Frame
        assert _fields(made) == _fields(copy.deepcopy(plain))  # python-can's own deep copy: every field equal
        assert made.data is not frame.data and made.data is not plain.data
        made.data[0] = 0xFF  # the copy owns its data: the sender's frame is untouched
        assert frame.data[0] == 0 and plain.data[0] == 0
    odd = Frame(arbitration_id=1, data=b"\x01", channel=["a", "list"])  # a channel python-can would deep-copy
    assert copy.deepcopy(odd).channel == ["a", "list"] and copy.deepcopy(odd).channel is not odd.channel


def test_frames_cross_the_virtual_bus_unchanged() -> None:
    """What a profile encodes reaches another endpoint of a python-can virtual channel with its id, data and flags."""
    profile = load_native()
    channel = f"test-frame-{uuid.uuid4().hex[:8]}"
    tx = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    rx = can.Bus(interface="virtual", channel=channel)
    try:
        sent = profile.encode("position_command", 3, position=0.25, velocity_ff=-1.5, torque_ff=2.0)
        sent.timestamp = 1733475600.5
        assert isinstance(sent, Frame)
        tx.send(sent)
        got = rx.recv(1.0)
        assert got is not None and got is not sent
        assert (got.arbitration_id, bytes(got.data), got.is_extended_id, got.dlc, got.timestamp, got.is_rx) == (
            sent.arbitration_id, bytes(sent.data), False, 8, 1733475600.5, True)
        decoded = profile.decode(got)
        # within the DBC's resolution of each signal (position 1e-6 rad, velocity 1e-3 rad/s, torque 1e-2 N·m): the
        # encoder rounds to the nearest step
        assert decoded.node_id == 3 and decoded.name == "position_command"
        assert abs(decoded.signals["position"] - 0.25) <= 1e-6
        assert abs(decoded.signals["velocity_ff"] + 1.5) <= 1e-3 and abs(decoded.signals["torque_ff"] - 2.0) <= 1e-2
    finally:
        tx.shutdown()
        rx.shutdown()
