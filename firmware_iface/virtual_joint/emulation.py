"""The simulated joint in any shipped profile: ``joint_node`` makes the node that speaks a profile, ``node_runner`` the
runner of nodes on one bus. Profiles described by their DBC and sidecar (native, ODrive, MIT) are spoken by
``VirtualJointNode`` through the profile; a profile whose sidecar names an ``emulation`` is spoken by its own node
(``cia402``: ``Cia402JointNode``, CANopen on the ``canopen`` library's object dictionary and SDO server).
"""

from __future__ import annotations

from typing import Any

import can

from firmware_iface.protocol.profile import Profile
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode


def joint_node(bus: can.BusABC, node_id: int, profile: Profile, **options: Any) -> Any:
    """A simulated joint ``node_id`` on ``bus`` speaking ``profile`` (options: preset, seed, firmware options)."""
    if profile.sidecar.emulation == "cia402":
        from firmware_iface.virtual_joint.cia402 import Cia402JointNode

        options.pop("paced", None)
        return Cia402JointNode(bus, node_id, **options)
    return VirtualJointNode(bus, node_id, profile=profile, **options)


def node_runner(bus: can.BusABC, nodes: list[Any], profile: Profile, *, paced: bool = True) -> NodeRunner:
    """The runner of ``nodes`` on ``bus`` (one thread, or the lock-step clock's ``step``)."""
    if profile.sidecar.emulation == "cia402":
        from firmware_iface.virtual_joint.cia402 import Cia402Runner

        return Cia402Runner(bus, nodes, paced=paced)
    return NodeRunner(bus, nodes, paced=paced)
