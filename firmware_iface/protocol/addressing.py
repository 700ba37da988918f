"""Node addressing of a protocol profile: where each message is on the bus for each node, and which node and message
a bus frame is. The sidecar's ``[addressing]`` chooses the scheme:

- ``shift`` (native, ODrive CANSimple's node-0 DBC, CANopen's COB-IDs): the DBC defines each message once, for node
  0, and ``arbitration_id = node << node_shift | frame_id``. ``node_bits`` is the width of the node field (0: every
  bit above ``node_shift``): CANopen's predefined connection set is ``node_shift = 0, node_bits = 7`` (TPDO1 of node
  5 is 0x180 | 5). With ``node_shift = node_bits = 0`` there is no addressing (node 0 only).
- ``per_axis`` (ODrive's published DBC, unchanged): the DBC has each message once per node, at its own fixed id,
  named with ``message_prefix`` (``"Axis{node}_"``); the profile's names are the names without the prefix.

In either scheme ``broadcast`` messages have no node (CANopen's NMT and SYNC: the DBC's id, node 0 when read), and
``node_in_payload`` messages are sent on one id by every node, with the node in a signal (MIT mode's replies, sent
to the master's id with the motor id in byte 0).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from cantools.database.can import Database, Message

from actuator.errors import ProtocolError
from firmware_iface.protocol.sidecar import Sidecar

MAX_STANDARD_ID = 0x7FF
MAX_EXTENDED_ID = 0x1FFFFFFF
LOCATED_MAX = 4096  # bus ids remembered by ``locate`` (a 63-node native bus uses 63 * 32)


class Located(NamedTuple):
    node_id: int
    name: str  # the profile's name of the message (without a per-axis prefix)
    message: Message  # the DBC message the frame is (its per-node copy in per_axis)


class Addressing:
    """The addressing tables of one profile, built once from its DBC and sidecar."""

    def __init__(self, db: Database, sc: Sidecar, profile_name: str) -> None:
        self.sc, self.profile_name = sc, profile_name
        self.per_axis = sc.scheme == "per_axis"
        self._mask = (1 << sc.node_bits) - 1 if sc.node_bits else (0 if not sc.node_shift else -1)
        self._per_node: dict[tuple[str, int], Message] = {}
        self.profile_names: dict[str, str] = {m.name: m.name for m in db.messages}  # DBC name -> the profile's
        self._by_id: dict[tuple[int, bool], Located] = {}  # exact bus ids: per-axis, broadcast, node-in-payload
        self._axis_names: set[str] = set()  # per_axis: the names with a copy per node
        self._located: dict[tuple[int, bool], Located] = {}  # ``locate``'s answers that do not depend on the data
        if self.per_axis:
            self.templates = self._per_axis_tables(db)
        else:
            self.templates = {m.name: m for m in db.messages}
            self._by_command = {(m.frame_id, m.is_extended_frame): m for m in db.messages
                                if m.name not in sc.broadcast and m.name not in sc.node_in_payload}
        for name in (*sc.broadcast, *sc.node_in_payload):
            m = self.templates.get(name)
            if m is not None:
                self._by_id[(m.frame_id, m.is_extended_frame)] = Located(0, name, m)

    def prefix(self, node_id: int) -> str:
        return self.sc.message_prefix.replace("{node}", str(node_id))

    def _per_axis_tables(self, db: Database) -> dict[str, Message]:
        by_name = {m.name: m for m in db.messages}
        templates: dict[str, Message] = {}
        for node in range(self.sc.node_min, self.sc.node_max + 1):
            prefix = self.prefix(node)
            for m in db.messages:
                if m.name.startswith(prefix):
                    base = m.name[len(prefix):]
                    templates.setdefault(base, m)
                    self._per_node[(base, node)] = m
                    self.profile_names[m.name] = base
                    self._by_id[(m.frame_id, m.is_extended_frame)] = Located(node, base, m)
        self._axis_names = set(templates)
        # messages of no axis keep their names and ids; those of an axis outside the node range are left out
        any_axis = re.compile(re.escape(self.sc.message_prefix).replace(re.escape("{node}"), r"\d+"))
        for name, m in by_name.items():
            if not any_axis.match(name):
                templates.setdefault(name, m)
        return templates

    def message(self, name: str, node_id: int) -> Message:
        """The DBC message carrying ``name`` for ``node_id`` (its own copy in per_axis)."""
        if self.per_axis and name not in self.sc.broadcast:
            m = self._per_node.get((name, node_id))
            if m is not None:
                return m
            if name in self._axis_names:
                raise ProtocolError(f"profile {self.profile_name}: the DBC has no {self.prefix(node_id)}{name} "
                                    f"for node {node_id}")
        return self.templates[name]

    def arbitration_id(self, name: str, node_id: int) -> int:
        arb = self._bus_id(name, node_id)
        limit = MAX_EXTENDED_ID if self.templates[name].is_extended_frame else MAX_STANDARD_ID
        if arb > limit:
            raise ProtocolError(f"{name} for node {node_id}: arbitration id 0x{arb:x} exceeds 0x{limit:x}")
        return arb

    def _bus_id(self, name: str, node_id: int) -> int:
        m = self.message(name, node_id)
        if self.per_axis or name in self.sc.broadcast or name in self.sc.node_in_payload or not self._mask:
            return m.frame_id
        return node_id << self.sc.node_shift | m.frame_id

    def split(self, arbitration_id: int) -> tuple[int, int]:
        """(node id, command id) of a bus id under the shift scheme (per-axis ids are looked up instead)."""
        if not self._mask:
            return 0, arbitration_id
        shift = self.sc.node_shift  # a mask of -1 (no node_bits) takes every bit above the shift
        return arbitration_id >> shift & self._mask, arbitration_id & ~(self._mask << shift)

    def locate(self, arbitration_id: int, is_extended: bool, data: bytes = b"") -> Located | None:
        """The node and message of a bus frame, None when the profile has no such id. A node-in-payload message's
        node is read from its data (``data`` too short: node -1)."""
        key = (arbitration_id, is_extended)
        located = self._located.get(key)
        if located is not None:
            return located
        located = self._locate(arbitration_id, is_extended, data)
        # every frame is located two or three times (runner, node, hub): remember the ids that do not depend on the
        # data; the dict is bounded, as garbage ids must not grow it without end
        if located is not None and located.name not in self.sc.node_in_payload and len(self._located) < LOCATED_MAX:
            self._located[key] = located
        return located

    def _locate(self, arbitration_id: int, is_extended: bool, data: bytes) -> Located | None:
        exact = self._by_id.get((arbitration_id, is_extended)) if self._by_id else None
        if exact is not None:
            if exact.name in self.sc.node_in_payload:
                return exact._replace(node_id=self._payload_node(exact.message, data))
            return exact
        if self.per_axis:
            return None
        node, command = self.split(arbitration_id)
        m = self._by_command.get((command, is_extended))
        return Located(node, m.name, m) if m is not None else None

    def _payload_node(self, message: Message, data: bytes) -> int:
        signal = message.get_signal_by_name(self.sc.node_in_payload[message.name])
        try:
            return int(message.decode(data, decode_choices=False, scaling=False)[signal.name])
        except Exception:  # too short or garbage: the codec reports it when the frame is decoded
            return -1

    def node_of(self, arbitration_id: int, is_extended: bool, data: bytes = b"") -> int | None:
        """The node a frame is for or from; None for a broadcast or an id the profile does not have."""
        located = self.locate(arbitration_id, is_extended, data)
        if located is None or located.name in self.sc.broadcast:
            return None
        return located.node_id

    def bus_ids(self) -> dict[tuple[int, bool], list[tuple[str, int]]]:
        """Every (bus id, extended) the profile uses -> the (message, node) pairs on it, for the checks."""
        out: dict[tuple[int, bool], list[tuple[str, int]]] = {}
        for name, m in self.templates.items():
            nodes = [0] if name in self.sc.broadcast or name in self.sc.node_in_payload else \
                range(self.sc.node_min, self.sc.node_max + 1)
            for node in nodes:
                try:
                    arb = self._bus_id(name, node)
                except ProtocolError:  # a per-axis DBC without this node's copy: the checks report it
                    continue
                out.setdefault((arb, m.is_extended_frame), []).append((name, node))
        return out
