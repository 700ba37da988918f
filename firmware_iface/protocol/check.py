"""Validation of a protocol profile (DBC + sidecar): the checks behind ``jointkit dbc check`` and ``load_profile``.

This module owns the list of things a profile must not do: signals overlapping inside a message (bit sets computed
for little- and big-endian layouts), signals beyond the message length, [min|max] beyond what a signal can encode,
frame ids that do not fit the command bits or collide once node ids are added, sidecar names of missing messages or
signals, units that differ from the DBC's, sidecar ranges a signal cannot carry, modes naming unknown commands, and
a bitrate that differs from the DBC's. Each problem names the file, message, signal and numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from cantools.database.can import Message, Signal

from firmware_iface.protocol.profile import (
    MAX_EXTENDED_ID,
    MAX_STANDARD_ID,
    Profile,
    SemanticSignal,
    allowed_range,
    inside,
    representable_range,
)

MAX_CLASSIC_DLC = 8
MAX_FD_DLC = 64


@dataclass(frozen=True)
class Problem:
    file: str
    message: str | None
    signal: str | None
    text: str

    def __str__(self) -> str:
        where = self.file
        if self.message:
            where += f": {self.message}" + (f".{self.signal}" if self.signal else "")
        return f"{where}: {self.text}"

    def as_dict(self) -> dict[str, str | None]:
        return {"file": self.file, "message": self.message, "signal": self.signal, "text": self.text}


def signal_bits(signal: Signal) -> list[int]:
    """Bits the signal occupies, numbered ``8 * byte + bit`` (bit 0 the least significant bit of a byte)."""
    if signal.byte_order == "little_endian":
        return list(range(signal.start, signal.start + signal.length))
    bits, pos = [], signal.start  # Motorola: start is the MSB, walk down a byte then on to the next byte's bit 7
    for _ in range(signal.length):
        bits.append(pos)
        pos = pos + 15 if pos % 8 == 0 else pos - 1
    return bits


def _spans(bits: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3..5, 9"``."""
    out, ordered = [], sorted(bits)
    lo = prev = ordered[0]
    for b in [*ordered[1:], None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        out.append(f"{lo}..{prev}" if prev > lo else f"{lo}")
        if b is not None:
            lo = prev = b
    return ", ".join(out)


def _layout(signal: Signal) -> str:
    order = 1 if signal.byte_order == "little_endian" else 0
    kind = "float" if signal.is_float else ("-" if signal.is_signed else "+")
    return f"{signal.start}|{signal.length}@{order}{kind}"


def _may_share_bits(a: Signal, b: Signal) -> bool:
    """Multiplexed signals of different multiplexer values may use the same bits."""
    if a.multiplexer_ids and b.multiplexer_ids and a.multiplexer_signal == b.multiplexer_signal:
        return not set(a.multiplexer_ids) & set(b.multiplexer_ids)
    return False


def _signal_problems(file: str, message: Message, fd: bool) -> list[Problem]:
    out: list[Problem] = []
    n_bits = 8 * message.length
    for s in message.signals:
        bits = signal_bits(s)
        outside = [b for b in bits if not 0 <= b < n_bits]
        if outside:
            out.append(Problem(file, message.name, s.name, f"{_layout(s)} needs bits {_spans(outside)}, beyond the "
                                                           f"{message.length}-byte message (bits 0..{n_bits - 1})"))
        if s.is_float and s.length not in (32, 64):
            out.append(Problem(file, message.name, s.name, f"a float signal must be 32 or 64 bits, not {s.length}"))
        lo, hi = representable_range(s)
        for what, v in (("minimum", s.minimum), ("maximum", s.maximum)):
            if v is not None and not inside(v, lo, hi, s):
                out.append(Problem(file, message.name, s.name, f"DBC {what} {v:g} cannot be encoded: {_layout(s)} "
                                   f"with scale {s.scale:g}, offset {s.offset:g} carries [{lo:.12g}, {hi:.12g}]"))
    for a, b in combinations(message.signals, 2):
        common = set(signal_bits(a)) & set(signal_bits(b))
        if common and not _may_share_bits(a, b):
            out.append(Problem(file, message.name, f"{a.name}+{b.name}",
                               f"signals {a.name} ({_layout(a)}) and {b.name} ({_layout(b)}) overlap at bits "
                               f"{_spans(sorted(common))}"))
    limit = MAX_FD_DLC if fd else MAX_CLASSIC_DLC
    if message.length > limit:
        out.append(Problem(file, message.name, None, f"length {message.length} bytes exceeds {limit} "
                                                     f"({'CAN-FD' if fd else 'classic CAN'})"))
    return out


def _addressing_problems(profile: Profile, dbc: str, side: str) -> list[Problem]:
    sc, out = profile.sidecar, []
    if not 0 <= sc.node_shift <= 28 or not 0 <= sc.node_bits <= 28 or not 0 <= sc.node_min <= sc.node_max:
        return [Problem(side, None, None, f"[addressing] node_shift = {sc.node_shift}, node_bits = {sc.node_bits}, "
                                          f"nodes {sc.node_min}..{sc.node_max}: need 0 <= node_shift, node_bits <= 28 "
                                          "and 0 <= node_min <= node_max")]
    if sc.node_bits and sc.node_max >> sc.node_bits:
        out.append(Problem(side, None, None, f"[addressing] node_max = {sc.node_max} does not fit node_bits = "
                                             f"{sc.node_bits}"))
    for role, names in (("broadcast", sc.broadcast), ("node_in_payload", tuple(sc.node_in_payload))):
        out += [Problem(side, n, None, f"[addressing] {role} names message {n!r}, not in the DBC")
                for n in names if n not in profile.messages]
    for name, signal in sc.node_in_payload.items():
        if name in profile.messages and signal not in {s.name for s in profile.message(name).signals}:
            out.append(Problem(side, name, signal, f"[addressing] node_in_payload: {name} has no signal {signal!r}"))
    if sc.scheme == "per_axis":
        out += _per_axis_problems(profile, dbc)
    elif sc.node_shift or sc.node_bits:
        width = sc.node_shift or 0
        for m in profile.db.messages:
            if m.name in sc.broadcast or m.name in sc.node_in_payload:
                continue
            if sc.node_bits and m.frame_id >> width & ((1 << sc.node_bits) - 1):
                out.append(Problem(dbc, m.name, None, f"frame id 0x{m.frame_id:x} has bits in the node field "
                                                      f"(bits {width}..{width + sc.node_bits - 1})"))
            elif not sc.node_bits and m.frame_id >> width:
                out.append(Problem(dbc, m.name, None, f"frame id 0x{m.frame_id:x} does not fit in the {width} "
                                                      f"command bits (max 0x{(1 << width) - 1:x})"))
    return out + _collisions(profile, dbc)


def _collisions(profile: Profile, dbc: str) -> list[Problem]:
    """Ids beyond the frame format, and ids two (message, node) pairs share: once per pair of messages."""
    out, pairs, too_big = [], set(), set()
    for (arb, ext), users in profile.addressing.bus_ids().items():
        limit = MAX_EXTENDED_ID if ext else MAX_STANDARD_ID
        name, node = users[0]
        if arb > limit and name not in too_big:
            too_big.add(name)
            out.append(Problem(dbc, name, None, f"at node {node} the id 0x{arb:x} exceeds 0x{limit:x}"))
        for other, other_node in users[1:]:
            if (name, other) not in pairs:
                pairs.add((name, other))
                out.append(Problem(dbc, other, None, f"id 0x{arb:x} of {other} at node {other_node} collides with "
                                                     f"{name} at node {node}"))
    return out


def _per_axis_problems(profile: Profile, dbc: str) -> list[Problem]:
    """Every node in range has its copy of each per-axis message, with the first node's layout."""
    sc, out = profile.sidecar, []
    address = profile.addressing
    by_name = {m.name: m for m in profile.db.messages}
    for name, template in address.templates.items():
        if not template.name.startswith(address.prefix(sc.node_min)):
            continue
        layout = [(s.name, _layout(s), s.scale, s.offset) for s in template.signals]
        for node in range(sc.node_min, sc.node_max + 1):
            copy = by_name.get(address.prefix(node) + name)
            if copy is None:
                out.append(Problem(dbc, name, None, f"per_axis: no {address.prefix(node)}{name} for node {node}"))
            elif [(s.name, _layout(s), s.scale, s.offset) for s in copy.signals] != layout \
                    or copy.length != template.length:
                out.append(Problem(dbc, copy.name, None, f"per_axis: layout differs from {template.name}"))
    return out


def _semantic_problems(profile: Profile, side: str) -> list[Problem]:
    out: list[Problem] = []
    for sem in profile.sidecar.semantic.values():
        where = f"[semantic] {sem.name}"
        if sem.message not in profile.messages:
            out.append(Problem(side, sem.message, None, f"{where} names message {sem.message!r}, not in the DBC"))
            continue
        message = profile.message(sem.message)
        signal = next((s for s in message.signals if s.name == sem.signal), None)
        if signal is None:
            out.append(Problem(side, sem.message, sem.signal, f"{where} names signal {sem.signal!r}, not in message "
                               f"{sem.message} ({', '.join(s.name for s in message.signals) or 'no signals'})"))
            continue
        if sem.bitfield:
            out += _bitfield_problems(side, sem, signal)
        out += _unit_problems(side, sem, signal, where)
        out += [Problem(side, sem.message, name, f"{where} sends with it {name!r}, not a signal of {sem.message}")
                for name in sem.with_ if name not in {s.name for s in message.signals}]
        out += _names_problems(side, sem, signal, where)
        if sem.range_ is not None:
            lo, hi = allowed_range(signal)
            wire = sorted((v - sem.offset) / sem.scale for v in sem.range_)
            if not (inside(wire[0], lo, hi, signal) and inside(wire[1], lo, hi, signal)):
                conv = f" (the signal's [{wire[0]:.12g}, {wire[1]:.12g}])" if sem.converted else ""
                out.append(Problem(side, sem.message, sem.signal,
                                   f"{where} range [{sem.range_[0]:g}, {sem.range_[1]:g}]{conv} is more than the "
                                   f"signal can carry: [{lo:.12g}, {hi:.12g}] ({_layout(signal)}, scale "
                                   f"{signal.scale:g}, offset {signal.offset:g}, "
                                   f"DBC [{signal.minimum}|{signal.maximum}])"))
    return out


def _unit_problems(side: str, sem: SemanticSignal, signal: Signal, where: str) -> list[Problem]:
    """Without a conversion the toolkit's unit is the DBC's; with one, ``signal_unit`` names the DBC's (where the DBC
    gives a unit: ODrive's has some wrong, e.g. Input_Torque_FF in rev/s, so a conversion may leave it out)."""
    dbc_unit = signal.unit or ""
    if sem.converted:
        if sem.signal_unit is not None and dbc_unit and sem.signal_unit != dbc_unit:
            return [Problem(side, sem.message, sem.signal, f"{where} has signal_unit {sem.signal_unit!r}, the DBC "
                                                           f"{dbc_unit!r}")]
        return []
    if sem.unit is not None and sem.unit != dbc_unit:
        return [Problem(side, sem.message, sem.signal, f"{where} has unit {sem.unit!r}, the DBC {dbc_unit!r} "
                                                       "(give scale/offset and signal_unit to convert)")]
    return []


def _names_problems(side: str, sem: SemanticSignal, signal: Signal, where: str) -> list[Problem]:
    table = {str(v) for v in (signal.choices or {}).values()}
    return [Problem(side, sem.message, sem.signal, f"{where} names {ours} = {theirs!r}, not a value of the signal "
                                                   f"({', '.join(sorted(table)) or 'no value table'})")
            for ours, names in sem.names.items() for theirs in ((names,) if isinstance(names, str) else names)
            if theirs not in table]


def _constant_problems(profile: Profile, side: str) -> list[Problem]:
    out = []
    for message, values in profile.sidecar.constants.items():
        if message not in profile.messages:
            out.append(Problem(side, message, None, f"[constants] names message {message!r}, not in the DBC"))
            continue
        signals = {s.name: s for s in profile.message(message).signals}
        for name, value in values.items():
            s = signals.get(name)
            if s is None:
                out.append(Problem(side, message, name, f"[constants] {message} has no signal {name!r}"))
            elif isinstance(value, str) and value not in {str(v) for v in (s.choices or {}).values()}:
                out.append(Problem(side, message, name, f"[constants] {value!r} is not a value of {name}"))
    for role, frame in profile.sidecar.raw_frames.items():
        if frame.message not in profile.messages:
            out.append(Problem(side, frame.message, None, f"[raw_frames] {role} names message {frame.message!r}, "
                                                          "not in the DBC"))
    return out


def _bitfield_problems(side: str, sem: SemanticSignal, signal: Signal) -> list[Problem]:
    """A ``bitfield`` signal is an unsigned integer whose value table, if any, names single bits (and 0: none)."""
    where = f"[semantic] {sem.name} (bitfield)"
    if signal.is_float or signal.is_signed or signal.scale != 1 or signal.offset != 0:
        return [Problem(side, sem.message, sem.signal, f"{where}: the signal must be an unsigned integer with scale 1 "
                                                       f"and offset 0 ({_layout(signal)})")]
    return [Problem(side, sem.message, sem.signal, f"{where}: value {value} ({name}) is not a single bit")
            for value, name in (signal.choices or {}).items() if value < 0 or value & (value - 1)]


def _sidecar_problems(profile: Profile, dbc: str, side: str) -> list[Problem]:
    sc, names, out = profile.sidecar, set(profile.messages), []
    for message, rate in sc.rates_hz.items():
        if message not in names:
            out.append(Problem(side, message, None, f"[rates_hz] names message {message!r}, not in the DBC"))
        elif not rate >= 0:
            out.append(Problem(side, message, None, f"[rates_hz] {message} = {rate:g} Hz must be >= 0 (0: off)"))
    for mode, commands in [*sc.modes.items(), ("[commands] always", sc.always)]:
        for command in commands:
            if command not in names:
                where = mode if mode.startswith("[") else f"[modes] {mode}"
                out.append(Problem(side, None, None, f"{where} names command {command!r}, not a message of the DBC"))
    for role, message in sc.messages.items():
        if message not in names:
            out.append(Problem(side, message, None, f"[messages] {role} names message {message!r}, not in the DBC"))
    for semantic in ("status.mode", "command.mode"):
        mode_signal = _mapped_signal(profile, semantic)
        if mode_signal is not None and mode_signal.choices:
            table = {str(v) for v in mode_signal.choices.values()} | set(profile.sidecar.semantic[semantic].names)
            out += [Problem(side, None, None, f"[modes] {mode} is not a value of {semantic} "
                                              f"({', '.join(sorted(table))})")
                    for mode in sc.modes if mode not in table]
    out += _fault_problems(profile, side)
    out += _constant_problems(profile, side)
    baud = profile.db.dbc.attributes.get("Baudrate") if profile.db.dbc else None
    if baud is not None and baud.value != sc.bitrate:
        out.append(Problem(side, None, None, f"[profile] bitrate = {sc.bitrate}, but {dbc} says Baudrate "
                                             f"{baud.value}"))
    return out


def _mapped_signal(profile: Profile, name: str) -> Signal | None:
    sem = profile.sidecar.semantic.get(name)
    message = profile.message(sem.message) if sem and sem.message in profile.messages else None
    return next((s for s in message.signals if s.name == sem.signal), None) if message else None


def _fault_problems(profile: Profile, side: str) -> list[Problem]:
    out, signal = [], _mapped_signal(profile, "status.faults")
    if profile.fault_codes:  # one code, not bits (MIT's error byte): [faults] gives codes of the value table
        return [Problem(side, None, None, f"[faults] {name} = {code} is not a value of status.faults "
                                          f"({_choices(signal)})")
                for name, code in profile.sidecar.faults.items() if code not in signal.choices]
    for name, bit in profile.sidecar.faults.items():
        if bit <= 0 or bit & (bit - 1):
            out.append(Problem(side, None, None, f"[faults] {name} = {bit} is not a single bit"))
        elif signal is not None and bit.bit_length() > signal.length:
            out.append(Problem(side, None, None, f"[faults] {name} = {bit} does not fit the {signal.length}-bit "
                                                 "status.faults signal"))
    return out


def _choices(signal: Signal) -> str:
    return ", ".join(f"{k} {v}" for k, v in signal.choices.items())


def _param_problems(profile: Profile, side: str) -> list[Problem]:
    out, seen = [], {}
    signal = _mapped_signal(profile, "command.param_id")
    for name, pid in profile.sidecar.params.items():
        first = seen.setdefault(pid, name)
        if first != name:
            out.append(Problem(side, None, None, f"[params] {name} = {pid} is also the id of {first}"))
        if pid < 0 or (signal is not None and pid.bit_length() > signal.length):
            out.append(Problem(side, None, None, f"[params] {name} = {pid} does not fit the "
                                                 f"{signal.length if signal else '?'}-bit command.param_id signal"))
    return out


def check_profile(profile: Profile) -> list[Problem]:
    """Every problem of a loaded profile (empty when clean)."""
    dbc = str(profile.dbc_path) if profile.dbc_path else "<dbc>"
    side = str(profile.sidecar.path) if profile.sidecar.path else "<no sidecar>"
    out: list[Problem] = []
    ids: dict[tuple[int, bool], str] = {}
    for m in profile.db.messages:
        out += _signal_problems(dbc, m, profile.sidecar.fd)
        if m.name in profile.sidecar.node_in_payload or m.name in profile.sidecar.broadcast:
            continue  # on its own id, apart from the node-addressed ids (MIT: replies to the master's id 0)
        first = ids.setdefault((m.frame_id, m.is_extended_frame), m.name)
        if first != m.name:
            out.append(Problem(dbc, m.name, None, f"frame id 0x{m.frame_id:x} is also the id of {first}"))
    out += _addressing_problems(profile, dbc, side)
    out += _semantic_problems(profile, side)
    out += _sidecar_problems(profile, dbc, side)
    out += _param_problems(profile, side)
    return out


def check_files(dbc_path: str | Path, sidecar_path: str | Path | None = None) -> tuple[Profile, list[Problem]]:
    """Load a profile without validating it, then check it; unreadable files raise ``ConfigError``."""
    profile = Profile.load(dbc_path, sidecar_path)
    return profile, check_profile(profile)
