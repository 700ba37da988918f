"""A joint ticked by hand in a test (``node.run_for`` then ``client.hub.poll()``): the client writes nothing to a node
before the node's heartbeats confirm it (``BusHub``), so such a test first runs the idle joint until they do."""

from __future__ import annotations

from firmware_iface.client import JointClient
from firmware_iface.virtual_joint.node import VirtualJointNode

CONFIRM_WITHIN_S = 0.3  # two heartbeats with the counter advancing: at most two 100 ms periods, and some to spare


def confirm(node: VirtualJointNode, client: JointClient, chunk_s: float = 0.001) -> None:
    """Run the idle joint ``chunk_s`` at a time until the client has confirmed it."""
    for _ in range(round(CONFIRM_WITHIN_S / chunk_s)):
        if client.identified:
            return
        node.run_for(chunk_s)
        client.hub.poll()
    raise AssertionError(f"node {client.node_id} not confirmed: {client.hub.identity(client.node_id)}")


class SentFrames:
    """A hub listener keeping every frame the host sends, as (id, data)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []

    def on_message_received(self, msg) -> None:
        if not msg.is_rx:
            self.sent.append((msg.arbitration_id, bytes(msg.data)))
