"""Protocol profiles: a DBC file (frame layouts) plus a sidecar TOML (``firmware_iface.protocol.sidecar``: addressing,
semantic names, units, ranges, rates, modes), and the frame-by-frame codec of one node on top of cantools.

This module owns encoding signals into python-can Messages and decoding them back with range, value-table and
length checks (``ProtocolError``), and semantic-name lookups. Node addressing is ``firmware_iface.protocol.addressing``
(the shift of the native profile and ODrive, ODrive's per-axis DBC, CANopen's COB-IDs, MIT's node in the payload).

Decoded values are the toolkit's: a signal a semantic entry maps with ``scale``/``offset`` (ODrive's revolutions)
decodes to the toolkit's unit (radians) and is encoded back from it; a value-table signal with ``names`` decodes to
the toolkit's name (``closed_loop`` for ODrive's ``CLOSED_LOOP_CONTROL``); signals of ``[constants]`` are filled in
when a message is encoded; a frame equal to one of ``[raw_frames]`` decodes as its role, with no signals. Nothing in
it is specific to the native profile except the default paths of ``load_native``. A DBC without a sidecar is a
profile without node addressing (node 0 only).
"""

from __future__ import annotations

import logging
import math
from numbers import Integral
from pathlib import Path
from typing import NamedTuple

import can
import cantools
from cantools.database.can import Database, Message, Signal
from cantools.database.namedsignalvalue import NamedSignalValue

from actuator.errors import ConfigError, ProtocolError
from actuator.paths import DBC_DIR
from firmware_iface.protocol.addressing import MAX_EXTENDED_ID, MAX_STANDARD_ID, Addressing
from firmware_iface.protocol.frame import Frame
from firmware_iface.protocol.sidecar import RawFrame, SemanticSignal, Sidecar, read_sidecar

__all__ = ["MAX_EXTENDED_ID", "MAX_STANDARD_ID", "Decoded", "Profile", "RawFrame", "SemanticSignal", "Sidecar",
           "allowed_range", "inside", "read_dbc", "read_sidecar", "representable_range"]

NATIVE_DBC = DBC_DIR / "jointkit_native.dbc"
NATIVE_SIDECAR = DBC_DIR / "jointkit_native.toml"
FLOAT_MAX = {32: 3.4028234663852886e38, 64: 1.7976931348623157e308}

SignalValue = int | float | str


class Decoded(NamedTuple):
    node_id: int
    name: str
    signals: dict[str, SignalValue]


def read_dbc(path: str | Path) -> Database:
    """The CAN database at ``path``, loaded without cantools' strict layout checks (``dbc check`` reports those)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such DBC file")
    log = logging.getLogger("cantools.database.can.database")
    quiet = _SharedIdFilter()
    log.addFilter(quiet)  # ids shared on purpose (MIT's command and reply): ``check`` reports real collisions
    try:
        db = cantools.database.load_file(path, strict=False)
    except Exception as e:  # cantools raises parser, format, OS and Unicode errors alike
        raise ConfigError(f"{path}: cannot read the DBC: {e}") from e
    finally:
        log.removeFilter(quiet)
    if not isinstance(db, Database):
        raise ConfigError(f"{path}: not a CAN database")
    return db


class _SharedIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Overwriting message")


def representable_range(signal: Signal) -> tuple[float, float]:
    """The physical values the signal's length, signedness, scale and offset can encode."""
    if signal.is_float:
        big = FLOAT_MAX.get(signal.length, math.inf)
        return -big, big
    lo = -(1 << (signal.length - 1)) if signal.is_signed else 0
    hi = (1 << (signal.length - 1)) - 1 if signal.is_signed else (1 << signal.length) - 1
    a, b = lo * signal.scale + signal.offset, hi * signal.scale + signal.offset
    return (a, b) if a <= b else (b, a)


def allowed_range(signal: Signal) -> tuple[float, float]:
    """The representable range narrowed by the DBC's ``[min|max]`` where it gives one."""
    lo, hi = representable_range(signal)
    if signal.minimum is not None:
        lo = max(lo, signal.minimum)
    if signal.maximum is not None:
        hi = min(hi, signal.maximum)
    return lo, hi


def _tolerance(lo: float, hi: float, signal: Signal) -> float:
    return 1e-9 * max(1.0, abs(lo), abs(hi)) + (0.0 if signal.is_float else 1e-6 * abs(signal.scale))


def inside(value: float, lo: float, hi: float, signal: Signal) -> bool:
    """``lo <= value <= hi`` up to rounding: raw * scale + offset may land a hair outside a decimal [min|max]."""
    tol = _tolerance(lo, hi, signal)
    return lo - tol <= value <= hi + tol


def _choices_text(signal: Signal) -> str:
    return ", ".join(f"{k} {v}" for k, v in signal.choices.items())


def _fmt(x: float) -> str:
    return f"{x:.12g}"


class _SignalPlan(NamedTuple):
    """How one DBC signal is encoded and decoded, made once per signal (``_plan``)."""

    bounds: tuple[float, float, float, float]  # allowed lo, hi, and both widened by the rounding tolerance
    table: bool  # decoded through its value table (it has one and is not a bit field)
    to_toolkit: dict[str, str]  # the DBC's value name -> the toolkit's
    to_wire: dict[str, str]  # the toolkit's value name -> the DBC's
    masks: tuple[tuple[str, int, int], ...]
    convert: tuple[float, float] | None  # (scale, offset): toolkit value = wire value * scale + offset


def _plan(signal: Signal, sem: SemanticSignal | None) -> _SignalPlan:
    lo, hi = allowed_range(signal)
    tol = _tolerance(lo, hi, signal)
    names = sem.names if sem is not None else {}
    # several of the toolkit's names may map to one value of the DBC's: it decodes to the first listed; a list of the
    # DBC's names under one of ours is a sequence when sent, any of them when read
    to_toolkit = {v: k for k, vs in reversed(names.items()) for v in ((vs,) if isinstance(vs, str) else vs)}
    return _SignalPlan((lo, hi, lo - tol, hi + tol), bool(signal.choices) and not (sem is not None and sem.bitfield),
                       to_toolkit, {k: v for k, v in names.items() if isinstance(v, str)},
                       sem.masks if sem is not None else (), (sem.scale, sem.offset) if sem and sem.converted else None)


def _plain(plan: _SignalPlan) -> tuple[float, float, tuple[float, float] | None] | None:
    """What a number signal's decode needs (its range widened by the tolerance, and its conversion); None for a
    signal decoded through a value table or masks."""
    return None if plan.table or plan.masks else (plan.bounds[2], plan.bounds[3], plan.convert)


class Profile:
    """A loaded protocol profile: the cantools database, its sidecar, and the codec of single frames."""

    def __init__(self, db: Database, sidecar: Sidecar, dbc_path: Path | None = None) -> None:
        self.db = db
        self.sidecar = sidecar
        self.dbc_path = dbc_path
        self.addressing = Addressing(db, sidecar, sidecar.name)
        self._by_name = self.addressing.templates
        # each signal's codec plan (every per-axis copy too), made once: encode and decode run per frame
        by_signal = {(s.message, s.signal): s for s in sidecar.semantic.values()}
        self._plans = {id(sig): _plan(sig, by_signal.get((self.addressing.profile_names[m.name], sig.name)))
                       for m in db.messages for sig in m.signals}
        # per message, its signals with (lo, hi widened, convert) for a number signal (no table, no masks), else None
        self._decoders = {id(m): tuple((sig, _plain(self._plans[id(sig)])) for sig in m.signals) for m in db.messages}
        self._signal_names = {id(m): frozenset(s.name for s in m.signals) for m in db.messages}
        self._raw: dict[tuple[str, bytes], str] = {}
        self._arbitration_ids: dict[tuple[str, int], int] = {}
        for f in sidecar.raw_frames.values():  # two roles of one frame (MIT's query is its disable): the first
            self._raw.setdefault((f.message, f.data), f.role)

    @classmethod
    def load(cls, dbc_path: str | Path, sidecar_path: str | Path | None = None) -> Profile:
        """Read a DBC and its sidecar, unchecked (``firmware_iface.protocol.load.load_profile`` reads and checks).

        Without a sidecar the profile has no node addressing: frame ids are the DBC's, node 0 only.
        """
        dbc_path = Path(dbc_path)
        db = read_dbc(dbc_path)
        sidecar = read_sidecar(sidecar_path) if sidecar_path is not None else Sidecar(path=None, name=dbc_path.stem)
        return cls(db, sidecar, dbc_path)

    @property
    def name(self) -> str:
        return self.sidecar.name

    @property
    def messages(self) -> tuple[str, ...]:
        """The profile's message names (per-axis DBCs: without the axis prefix)."""
        return tuple(self._by_name)

    @property
    def telemetry(self) -> dict[str, float]:
        """Messages with a default rate in the sidecar, and that rate in Hz."""
        return dict(self.sidecar.rates_hz)

    def message(self, name: str) -> Message:
        """The layout of message ``name`` (per-axis DBCs: the first node's copy)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ProtocolError(f"profile {self.name}: no message named {name!r}") from None

    def signal(self, message: str, signal: str) -> Signal:
        msg = self.message(message)
        for s in msg.signals:
            if s.name == signal:
                return s
        raise ProtocolError(f"profile {self.name}: message {message} has no signal {signal!r}")

    def check_node(self, node_id: int) -> int:
        """``node_id`` as an int if the profile's addressing has it (numpy integers welcome), else ``ProtocolError``."""
        sc = self.sidecar
        if isinstance(node_id, bool) or not isinstance(node_id, Integral) or not sc.node_min <= node_id <= sc.node_max:
            raise ProtocolError(f"profile {self.name}: node id {node_id!r} is outside {sc.node_min}..{sc.node_max}")
        return int(node_id)

    def arbitration_id(self, name: str, node_id: int) -> int:
        """The bus identifier of message ``name`` sent to or from ``node_id``."""
        # remembered per (message, node) once checked: every command asks; only a plain int is looked up (True == 1)
        arb = self._arbitration_ids.get((name, node_id)) if type(node_id) is int else None
        if arb is None:
            node_id = self.check_node(node_id)
            self.message(name)
            arb = self._arbitration_ids[name, node_id] = self.addressing.arbitration_id(name, node_id)
        return arb

    def split_id(self, arbitration_id: int) -> tuple[int, int]:
        """(node id, command id) of a bus identifier under shift addressing (``node_of`` for any scheme)."""
        return self.addressing.split(arbitration_id)

    def node_of(self, msg: can.Message) -> int | None:
        """The node a frame is for or from; None for a broadcast (CANopen's NMT, SYNC) or an id of no message."""
        return self.addressing.node_of(msg.arbitration_id, msg.is_extended_id, bytes(msg.data))

    def encode(self, name: str, node_id: int, /, **signals: SignalValue) -> can.Message:
        """A python-can Message of ``name`` for ``node_id``; every signal of the message must be given, but for the
        sidecar's ``[constants]`` of the message and, where the node is in the payload, the node's signal.

        Values are the toolkit's (scaled by the semantic entry's ``scale``/``offset`` where it has them), or value
        names (the toolkit's where the entry maps ``names``, else the DBC's) for signals with a value table.
        """
        arb = self.arbitration_id(name, node_id)
        message = self.addressing.message(name, node_id)
        signals = {**self.sidecar.constants.get(name, {}), **signals}
        node_signal = self.sidecar.node_in_payload.get(name)
        if node_signal is not None:
            signals.setdefault(node_signal, node_id)
        names = self._signal_names[id(message)]
        if len(signals) != len(names) or not names.issuperset(signals):  # else each signal is given, once
            unknown = sorted(set(signals) - names)
            if unknown:
                raise ProtocolError(f"{name}: unknown signal(s) {', '.join(unknown)}; the message has "
                                    f"{', '.join(s.name for s in message.signals) or 'no signals'}")
            missing = [s.name for s in message.signals if s.name not in signals]
            raise ProtocolError(f"{name}: missing signal(s) {', '.join(missing)}")
        wire = {s.name: self._wire_value(name, s, signals[s.name]) for s in message.signals}
        try:
            data = message.encode(wire, scaling=True, padding=False, strict=True)
        except Exception as e:  # cantools raises EncodeError, ValueError, TypeError, KeyError
            raise ProtocolError(f"{name}: cannot encode {signals}: {e}") from e
        return Frame(arbitration_id=arb, data=data, is_extended_id=message.is_extended_frame, is_fd=self.sidecar.fd)

    def encode_raw(self, role: str, node_id: int) -> can.Message:
        """The special frame ``role`` of ``[raw_frames]`` for ``node_id`` (MIT mode's enter, exit, zero)."""
        frame = self.sidecar.raw_frames.get(role)
        if frame is None:
            raise ProtocolError(f"profile {self.name}: no raw frame {role!r}; raw frames: "
                                f"{', '.join(self.sidecar.raw_frames) or 'none'}")
        return Frame(arbitration_id=self.arbitration_id(frame.message, node_id), data=frame.data,
                     is_extended_id=self.message(frame.message).is_extended_frame, is_fd=self.sidecar.fd)

    def _wire_value(self, name: str, signal: Signal, value: SignalValue) -> SignalValue:
        """The DBC's value of a toolkit value, checked against the signal's range or value table."""
        plan = self._plans[id(signal)]
        if isinstance(value, NamedSignalValue):
            value = value.name
        if isinstance(value, str):
            value = plan.to_wire.get(value, value)
        elif plan.convert is not None and isinstance(value, int | float) and not isinstance(value, bool):
            value = (value - plan.convert[1]) / plan.convert[0]
        self._check_encode_value(name, signal, value)
        return value

    def _check_encode_value(self, name: str, signal: Signal, value: SignalValue) -> None:
        if type(value) is float:  # a set-point: a finite number in range needs nothing more
            lo_tol, hi_tol = self._plans[id(signal)].bounds[2:]
            if lo_tol <= value <= hi_tol and math.isfinite(value):
                return
        where = f"{name}: signal {signal.name}"
        if isinstance(value, str):
            if not signal.choices or value not in {str(v) for v in signal.choices.values()}:
                raise ProtocolError(f"{where} = {value!r} is not in its value table "
                                    f"({_choices_text(signal) if signal.choices else 'the signal has none'})")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{where} = {value!r} is not a number")
        if not math.isfinite(value):
            raise ProtocolError(f"{where} = {value!r} is not finite")
        lo, hi, lo_tol, hi_tol = self._plans[id(signal)].bounds
        if not lo_tol <= value <= hi_tol:
            unit = f" {signal.unit}" if signal.unit else ""
            raise ProtocolError(f"{where} = {_fmt(value)}{unit} is outside the allowed range "
                                f"[{_fmt(lo)}, {_fmt(hi)}]{unit}")

    def decode(self, msg: can.Message, *, choices: bool = True) -> Decoded:
        """(node id, message name, signals) of a received frame; values outside the DBC's ranges or value tables,
        non-finite floats, unknown ids and wrong lengths raise ``ProtocolError``.

        With ``choices`` signals that have a value table decode to the value's name, else to the number.
        """
        arb = msg.arbitration_id
        if msg.is_error_frame or msg.is_remote_frame:
            raise ProtocolError(f"frame 0x{arb:03x}: {'an error' if msg.is_error_frame else 'a remote'} frame "
                                "carries no signals")
        data = bytes(msg.data)
        located = self.addressing.locate(arb, msg.is_extended_id, data)
        if located is None:
            kind = "extended" if msg.is_extended_id else "standard"
            node, command = self.addressing.split(arb)
            raise ProtocolError(f"unknown frame id 0x{arb:03x} ({kind}; node {node}, command 0x{command:02x}) "
                                f"in profile {self.name}")
        node_id, name, message = located
        sc = self.sidecar
        role = self._raw.get((name, data)) if self._raw else None  # a profile without special frames: no lookup
        if role is None and len(data) != message.length:
            raise ProtocolError(f"frame 0x{arb:03x} ({name}, node {node_id}): {len(data)} data bytes, "
                                f"expected {message.length}")
        if name not in sc.broadcast and not sc.node_min <= node_id <= sc.node_max:
            raise ProtocolError(f"frame 0x{arb:03x} ({name}): node id {node_id} is outside "
                                f"{sc.node_min}..{sc.node_max}")
        if role is not None:
            return Decoded(node_id, role, {})
        try:
            raw = message.decode(data, decode_choices=False, scaling=True)
        except Exception as e:  # cantools raises DecodeError, ValueError
            raise ProtocolError(f"frame 0x{arb:03x} ({name}, node {node_id}): cannot decode "
                                f"{data.hex()}: {e}") from e
        values = {}
        for signal, plain in self._decoders[id(message)]:
            value = raw[signal.name]
            # a number in its range needs no more (NaN fails the test too): the rest is _checked_value's
            if plain is not None and plain[0] <= value <= plain[1]:
                values[signal.name] = value if plain[2] is None else value * plain[2][0] + plain[2][1]
            else:
                values[signal.name] = self._checked_value(name, signal, value, choices)
        return Decoded(node_id, name, values)

    def _checked_value(self, name: str, signal: Signal, value: int | float, choices: bool) -> SignalValue:
        plan = self._plans[id(signal)]
        if plan.table:
            if value not in signal.choices:
                raise ProtocolError(f"{name}: signal {signal.name} = {value} is not in its value table "
                                    f"({_choices_text(signal)})")
            if not choices:
                return value
            text = str(signal.choices[value])
            return plan.to_toolkit.get(text, text)
        lo, hi, lo_tol, hi_tol = plan.bounds
        if plan.masks and lo_tol <= value <= hi_tol:
            raw = int(value)
            return next((name for name, mask, want in plan.masks if raw & mask == want), raw) if choices else raw
        if lo_tol <= value <= hi_tol:  # NaN fails this too
            convert = plan.convert
            return value if convert is None else value * convert[0] + convert[1]
        where = f"{name}: signal {signal.name}"
        if not math.isfinite(value):
            raise ProtocolError(f"{where} = {value} is not finite")
        raise ProtocolError(f"{where} = {_fmt(value)} is outside the allowed range [{_fmt(lo)}, {_fmt(hi)}]")

    def value_numbers(self, message: str, signal: str) -> dict[str, int] | None:
        """The number each name a decoded value of ``signal`` can be stands for (a recording stores numbers): the
        DBC's value names, the toolkit's names for them, and a masked signal's names as the value they match (the
        state, not every bit: CiA 402's statusword). None for a signal decoded to numbers only."""
        sig = self.signal(message, signal)
        plan = self._plans[id(sig)]
        if sig.choices and not plan.table:  # a bit field
            return None
        out = {str(v): k for k, v in sig.choices.items()} if sig.choices else {}
        out.update({ours: out[theirs] for theirs, ours in plan.to_toolkit.items() if theirs in out})
        for name, _, want in reversed(plan.masks):
            out[name] = want
        return out or None

    def semantic(self, name: str) -> tuple[str, str]:
        """(message, signal) carrying the toolkit's semantic name, e.g. ``telemetry.position_rad``."""
        info = self.semantic_info(name)
        return info.message, info.signal

    def semantic_info(self, name: str) -> SemanticSignal:
        try:
            return self.sidecar.semantic[name]
        except KeyError:
            raise ProtocolError(f"profile {self.name}: no semantic name {name!r}") from None

    def accepts(self, mode: str, command: str) -> bool:
        """Whether a joint in control mode ``mode`` accepts message ``command``."""
        if mode not in self.sidecar.modes:
            raise ProtocolError(f"profile {self.name}: no mode {mode!r}; modes: {', '.join(self.sidecar.modes)}")
        return command in self.sidecar.always or command in self.sidecar.modes[mode]

    def param_id(self, name: str) -> int:
        """The protocol id of the joint parameter ``name`` (the sidecar's [params])."""
        try:
            return self.sidecar.params[name]
        except KeyError:
            raise ProtocolError(f"profile {self.name}: no parameter {name!r}; parameters: "
                                f"{', '.join(self.sidecar.params) or 'none'}") from None

    @property
    def gain_names(self) -> tuple[str, ...]:
        """The gains a joint of this profile has, by name (its ``gain.NAME`` parameters, readable back): a joint of
        another vendor has its own, or none, whatever the native firmware's table says."""
        return tuple(k.removeprefix("gain.") for k in self.sidecar.params if k.startswith("gain."))

    def param_name(self, param_id: int) -> str | None:
        for name, pid in self.sidecar.params.items():
            if pid == param_id:
                return name
        return None

    @property
    def fault_codes(self) -> bool:
        """Whether status.faults is one code with a value table (MIT's error byte), not a set of bits."""
        sem = self.sidecar.semantic.get("status.faults")
        if sem is None or sem.bitfield or sem.message not in self._by_name:
            return False
        signal = next((s for s in self.message(sem.message).signals if s.name == sem.signal), None)
        return bool(signal is not None and signal.choices)

    def faults_of(self, value: SignalValue) -> list[str]:
        """The faults a status.faults value reports: the names of its bits (``fault_names``), or of a fault code (a
        value-table name; the code 0 is no fault)."""
        if isinstance(value, str):
            sem = self.sidecar.semantic["status.faults"]
            return [] if value == str(self.signal(sem.message, sem.signal).choices.get(0)) else [value]
        return self.fault_names(int(value))

    def fault_names(self, bits: int) -> list[str]:
        """Names of the fault bits set in ``bits``: the value table of a ``bitfield`` status.faults signal (the
        joint's own names, e.g. ODrive's axis errors), else the sidecar's [faults]; a set bit neither names is
        ``bit N``, so every set bit is reported."""
        sem = self.sidecar.semantic.get("status.faults")
        table = {}
        if self.fault_codes:
            choices = self.signal(sem.message, sem.signal).choices
            return [] if int(bits) == 0 else [str(choices.get(int(bits), f"code {int(bits)}"))]
        if sem is not None and sem.bitfield:
            choices = self.signal(sem.message, sem.signal).choices or {}
            table = {str(name): int(value) for value, name in choices.items() if value > 0}
        table = table or dict(self.sidecar.faults)
        bits, names, named = int(bits), [], 0
        for name, bit in table.items():
            if bits & bit:
                names.append(name)
                named |= bit
        rest = bits & ~named
        return names + [f"bit {n}" for n in range(rest.bit_length()) if rest >> n & 1]
