"""Export of a protocol profile as a per-node DBC that third-party tools (cantools, SavvyCAN, Vector CANdb++) load.

A profile's DBC defines each message once, for node 0; on the bus ``arbitration_id = node << node_shift |
command_id``, so a tool that reads the DBC alone decodes nothing of a recording of nodes 1 and up. This module owns
the translation: for each requested node and each message of the profile, a copy of the message at its bus id
(``Profile.arbitration_id``), named ``<message>_n<node>``, sent by or to the nodes ``Host`` and ``Joint<node>`` of
the exported BU_ list, with the source's signals, value tables, units, [min|max] and comments, and the cycle time
(``GenMsgCycleTime``, ms) of the sidecar's ``[rates_hz]``; the database carries the bitrate (``Baudrate``), the bus
type (``BusType``) and a comment naming the files and nodes it was generated from.

It uses the profile's public API only (``messages``, ``message``, ``arbitration_id``, ``check_node``, ``sidecar``,
``telemetry``): the addressing lives in the profile, not here. Names are kept at most 32 characters (Vector's limit
for DBC identifiers; a longer message name is cut and given a hash of the full name, deterministically), and two
exported messages at one bus id, or two with one name, raise ``ConfigError`` naming them.
"""

from __future__ import annotations

import copy
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from pathlib import Path

from cantools.database.can import Bus, Database, Message, Node, Signal
from cantools.database.can.formats.dbc import DbcSpecifics
from cantools.database.can.formats.dbc.dbc_attribute import DbcAttribute
from cantools.database.can.formats.dbc.dbc_attribute_definition import DbcAttributeDefinition

from actuator.errors import ConfigError, JointkitError
from firmware_iface.protocol.profile import Profile

MAX_NAME_CHARS = 32  # Vector CANdb++ (and the DBC's short names) allow 32 characters per identifier
HOST_NODE = "Host"
NO_NODE = "Vector__XXX"  # the DBC's placeholder for "no sender / no receiver", not a node of the BU_ list
DBC_ENCODING = "cp1252"  # what cantools (and Vector's tools) read a DBC as by default
MAX_CYCLE_TIME_MS = 2**16 - 1


def joint_node(node_id: int) -> str:
    """The BU_ name of the joint at ``node_id`` in an exported DBC."""
    return f"Joint{node_id}"


def fit_name(base: str, suffix: str = "") -> str:
    """``base + suffix`` if it has at most 32 characters; else the start of ``base``, the four hex digits of the
    CRC-32 of ``base`` and ``suffix``: deterministic, and two long names sharing their first 20-odd characters still
    differ."""
    name = base + suffix
    if len(name) <= MAX_NAME_CHARS:
        return name
    digest = f"_{zlib.crc32(base.encode()) & 0xFFFF:04x}"
    return base[:MAX_NAME_CHARS - len(suffix) - len(digest)] + digest + suffix


def node_message_name(message: str, node_id: int) -> str:
    """``<message>_n<node>``, at most 32 characters (``fit_name``)."""
    return fit_name(message, f"_n{node_id}")


def cycle_time_ms(rate_hz: float | None) -> int | None:
    """The ``GenMsgCycleTime`` of a default rate: the period in whole ms (at least 1), None when the message is off
    by default (rate 0) or has no rate."""
    if rate_hz is None or rate_hz <= 0:
        return None
    return min(MAX_CYCLE_TIME_MS, max(1, round(1000.0 / rate_hz)))


def _map_nodes(names: Sequence[str], node_id: int) -> list[str]:
    """BU_ names of the source DBC in the export: its host (any case) is ``Host``; every other node is the joint at
    ``node_id`` (a profile addresses one kind of device); the placeholder ``Vector__XXX`` is dropped."""
    mapped = [HOST_NODE if n.lower() == HOST_NODE.lower() else joint_node(node_id) for n in names if n != NO_NODE]
    return list(dict.fromkeys(mapped))


def _copy_signal(signal: Signal, node_id: int) -> Signal:
    return Signal(
        name=signal.name, start=signal.start, length=signal.length, byte_order=signal.byte_order,
        is_signed=signal.is_signed, raw_initial=signal.raw_initial, raw_invalid=signal.raw_invalid,
        conversion=copy.deepcopy(signal.conversion), minimum=signal.minimum, maximum=signal.maximum, unit=signal.unit,
        dbc_specifics=copy.deepcopy(signal.dbc), comment=copy.deepcopy(signal.comments),
        receivers=_map_nodes(signal.receivers, node_id), is_multiplexer=signal.is_multiplexer,
        multiplexer_ids=copy.copy(signal.multiplexer_ids), multiplexer_signal=signal.multiplexer_signal,
        spn=signal.spn)


def _copy_message(profile: Profile, name: str, node_id: int, *, shared: bool = False) -> Message:
    source = profile.message(name)
    if source.is_container:
        raise ConfigError(f"{profile.dbc_path}: message {name} is a container message, which the export does not "
                          "support")
    try:
        frame_id = profile.arbitration_id(name, node_id)
    except JointkitError as e:
        raise ConfigError(f"{profile.dbc_path}: cannot export {name} for node {node_id}: {e}") from e
    rate = profile.telemetry.get(name)
    return Message(
        frame_id=frame_id, name=name if shared else node_message_name(name, node_id), length=source.length,
        signals=[_copy_signal(s, node_id) for s in source.signals], unused_bit_pattern=source.unused_bit_pattern,
        comment=copy.deepcopy(source.comments), senders=_map_nodes(source.senders, node_id),
        send_type=source.send_type, cycle_time=cycle_time_ms(rate) if rate is not None else source.cycle_time,
        dbc_specifics=copy.deepcopy(source.dbc), is_extended_frame=source.is_extended_frame,
        is_fd=source.is_fd or profile.sidecar.fd, bus_name=source.bus_name,
        signal_groups=copy.deepcopy(source.signal_groups), protocol=source.protocol, strict=True)


def _files(profile: Profile) -> str:
    dbc = profile.dbc_path.name if profile.dbc_path is not None else "(no file)"
    side = profile.sidecar.path
    return f"{dbc} and {side.name}" if side is not None else f"{dbc} (no sidecar)"


def _comment(profile: Profile, node_ids: Sequence[int]) -> str:
    sc = profile.sidecar
    version = f" {sc.version}" if sc.version else ""
    nodes = ", ".join(map(str, node_ids))
    text = (f"Generated by jointkit (jointkit dbc export) from {_files(profile)}, profile {sc.name}{version}, for "
            f"node(s) {nodes}: each message of the profile once per node, at its bus id (node << {sc.node_shift} | "
            f"command id), named <message>_n<node>, sent by or to Host and Joint<node>. Regenerate it rather than "
            "edit it.")
    source = [b.comment for b in profile.db.buses if b.comment]
    if source:
        text += " Source description: " + " ".join(source)
    return text.replace('"', "'")  # cantools writes the database comment unescaped


def _database_specifics(profile: Profile, db_name: str) -> DbcSpecifics:
    source = profile.db.dbc
    definitions = copy.deepcopy(source.attribute_definitions) if source is not None else OrderedDict()
    attributes = copy.deepcopy(source.attributes) if source is not None else OrderedDict()
    value_tables = copy.deepcopy(source.value_tables) if source is not None else OrderedDict()
    for name, default in (("BusType", "CAN"), ("DBName", "")):
        if name not in definitions:
            definitions[name] = DbcAttributeDefinition(name=name, default_value=default, kind=None,
                                                       type_name="STRING")
    if "Baudrate" not in definitions:
        definitions["Baudrate"] = DbcAttributeDefinition(name="Baudrate", default_value=1_000_000, kind=None,
                                                         type_name="INT", minimum=0, maximum=8_000_000)
    attributes["BusType"] = DbcAttribute(value="CAN FD" if profile.sidecar.fd else "CAN",
                                         definition=definitions["BusType"])
    attributes["DBName"] = DbcAttribute(value=db_name, definition=definitions["DBName"])
    return DbcSpecifics(attributes=attributes, attribute_definitions=definitions, value_tables=value_tables)


def _db_name(profile: Profile, node_ids: Sequence[int]) -> str:
    """A C identifier of at most 32 characters naming the exported network (Vector's ``DBName``)."""
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in profile.name) or "jointkit"
    if base[0].isdigit():
        base = "_" + base
    suffix = "_nodes_" + "_".join(map(str, node_ids))
    return fit_name(base, suffix if len(suffix) <= MAX_NAME_CHARS // 2 else f"_{len(node_ids)}_nodes")


def _check_unique(messages: list[tuple[int, str, Message]], profile: Profile) -> None:
    by_id: dict[tuple[int, bool], list[str]] = defaultdict(list)
    by_name: dict[str, list[str]] = defaultdict(list)
    for node_id, name, m in messages:
        by_id[m.frame_id, m.is_extended_frame].append(f"{name} of node {node_id}")
        by_name[m.name].append(f"{name} of node {node_id}")
    for (frame_id, _), owners in by_id.items():
        if len(owners) > 1:
            raise ConfigError(f"{profile.dbc_path}: the export would put {' and '.join(owners)} at one bus id "
                              f"0x{frame_id:03x} (node_shift = {profile.sidecar.node_shift}, nodes "
                              f"{profile.sidecar.node_min}..{profile.sidecar.node_max}): a tool could not tell them "
                              "apart")
    for name, owners in by_name.items():
        if len(owners) > 1:
            raise ConfigError(f"{profile.dbc_path}: the export would name {' and '.join(owners)} {name}")


def export_dbc(profile: Profile, node_ids: Sequence[int]) -> Database:
    """A cantools Database with every message of ``profile`` once per node of ``node_ids``, at its bus id.

    A node outside the profile's range, a node given twice, an id beyond 11 (29) bits, or two messages at one bus id
    raise ``ConfigError``.
    """
    if not node_ids:
        raise ConfigError(f"{profile.dbc_path}: no nodes to export (give node ids, e.g. --nodes 1,2)")
    nodes: list[int] = []
    for n in node_ids:
        try:
            node = profile.check_node(n)
        except JointkitError as e:
            raise ConfigError(f"cannot export node {n!r}: {e}") from e
        if node in nodes:
            raise ConfigError(f"cannot export node {node} twice: node ids must be given once each")
        nodes.append(node)
    # messages of every node on one id (CANopen's NMT and SYNC, MIT's replies with the motor id inside) once, as named
    shared = set(profile.sidecar.broadcast) | set(profile.sidecar.node_in_payload)
    exported = [(n, name, _copy_message(profile, name, n)) for n in nodes for name in profile.messages
                if name not in shared]
    exported += [(nodes[0], name, _copy_message(profile, name, nodes[0], shared=True)) for name in profile.messages
                 if name in shared]
    _check_unique(exported, profile)
    bus = Bus(name="", comment=_comment(profile, nodes), baudrate=profile.sidecar.bitrate)
    bu = [Node(HOST_NODE, "The host (controller) commanding the joints.")]
    bu += [Node(joint_node(n), f"Joint actuator at node {n}.") for n in nodes]
    version = profile.db.version or f"{profile.sidecar.name} {profile.sidecar.version}".strip()
    return Database(messages=[m for _, _, m in exported], nodes=bu, buses=[bus], version=version,
                    dbc_specifics=_database_specifics(profile, _db_name(profile, nodes)), strict=True)


def dbc_text(db: Database) -> str:
    """The DBC text of an exported database (cantools' writer), after checking what third-party tools require:
    identifiers of at most 32 characters and every sender and receiver in the BU_ list."""
    known = {n.name for n in db.nodes}
    for m in db.messages:
        if len(m.name) > MAX_NAME_CHARS:
            raise ConfigError(f"exported message name {m.name!r} is longer than {MAX_NAME_CHARS} characters")
        used = set(m.senders).union(*(s.receivers for s in m.signals))
        if used - known:
            raise ConfigError(f"exported message {m.name} names node(s) {', '.join(sorted(used - known))} missing "
                              f"from the BU_ list ({', '.join(sorted(known))})")
    return db.as_dbc_string()


def write_dbc(db: Database, path: str | Path) -> Path:
    """Write ``db`` to ``path`` as a DBC (cp1252, cantools' and Vector's default); ``ConfigError`` if it cannot."""
    path = Path(path)
    text = dbc_text(db)
    try:
        path.write_bytes(text.encode(DBC_ENCODING))
    except UnicodeEncodeError as e:
        raise ConfigError(f"{path}: the DBC has text {DBC_ENCODING} cannot encode: {e}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the DBC: {e}") from e
    return path
