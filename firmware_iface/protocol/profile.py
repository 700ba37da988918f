"""Protocol profiles: a DBC file (frame layouts) plus a sidecar TOML (addressing, semantic names, units, ranges, rates,
modes), and the frame-by-frame codec of one node on top of cantools.

This module owns reading a profile's two files, node addressing (``arbitration_id = node_id << node_shift |
command_id``: the DBC defines each message once, for node 0), encoding signals into python-can Messages and decoding
them back with range, value-table and length checks (``ProtocolError``), and semantic-name lookups. Nothing in it
is specific to the native profile except the default paths of ``load_native``. A DBC without a sidecar is a profile
without node addressing (``node_shift = 0``, node 0 only).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, NamedTuple

import can
import cantools
from cantools.database.can import Database, Message, Signal
from cantools.database.namedsignalvalue import NamedSignalValue

from actuator.errors import ConfigError, ProtocolError
from actuator.paths import DBC_DIR

NATIVE_DBC = DBC_DIR / "jointkit_native.dbc"
NATIVE_SIDECAR = DBC_DIR / "jointkit_native.toml"
MAX_STANDARD_ID = 0x7FF
MAX_EXTENDED_ID = 0x1FFFFFFF
FLOAT_MAX = {32: 3.4028234663852886e38, 64: 1.7976931348623157e308}

SignalValue = int | float | str


@dataclass(frozen=True)
class SemanticSignal:
    """One semantic name of the toolkit mapped to a message's signal; ``range_`` is what it must be able to carry."""

    name: str
    message: str
    signal: str
    unit: str | None = None
    range_: tuple[float, float] | None = None
    # the signal is a set of bits (faults, errors): its value table names single bits, any combination is valid
    bitfield: bool = False


@dataclass(frozen=True)
class Sidecar:
    """The sidecar TOML of a profile, parsed and type-checked (not yet checked against the DBC)."""

    path: Path | None
    name: str
    version: str = ""
    bitrate: int = 1_000_000
    fd: bool = False
    node_shift: int = 0
    node_min: int = 0
    node_max: int = 0
    rates_hz: dict[str, float] = field(default_factory=dict)
    modes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    always: tuple[str, ...] = ()
    faults: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    semantic: dict[str, SemanticSignal] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # role (estop, clear_faults, ...) -> message name


class Decoded(NamedTuple):
    node_id: int
    name: str
    signals: dict[str, SignalValue]


def read_dbc(path: str | Path) -> Database:
    """The CAN database at ``path``, loaded without cantools' strict layout checks (``dbc check`` reports those)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such DBC file")
    try:
        db = cantools.database.load_file(path, strict=False)
    except Exception as e:  # cantools raises parser, format, OS and Unicode errors alike
        raise ConfigError(f"{path}: cannot read the DBC: {e}") from e
    if not isinstance(db, Database):
        raise ConfigError(f"{path}: not a CAN database")
    return db


def _field(table: dict, key: str, kinds: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}: missing field {key!r}")
        return default
    value = table[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ConfigError(f"{where}: {key} = {value!r} must be a number")
    if not isinstance(value, kinds):
        raise ConfigError(f"{where}: {key} = {value!r} has the wrong type")
    return value


def _semantic_entry(name: str, entry: Any, where: str) -> SemanticSignal:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: {name!r} must be a table with message and signal")
    message = _field(entry, "message", str, f"{where} {name!r}")
    signal = _field(entry, "signal", str, f"{where} {name!r}")
    unit = _field(entry, "unit", str, f"{where} {name!r}", None)
    rng = _field(entry, "range", list, f"{where} {name!r}", None)
    if rng is not None:
        if len(rng) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng) \
                or not rng[0] <= rng[1]:
            raise ConfigError(f"{where} {name!r}: range = {rng!r} must be [low, high] numbers with low <= high")
        rng = (float(rng[0]), float(rng[1]))
    bitfield = _field(entry, "bitfield", bool, f"{where} {name!r}", False)
    return SemanticSignal(name, message, signal, unit, rng, bitfield)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} = {value!r} must be a list of message names")
    return tuple(value)


def _section(doc: dict, key: str, path: Path) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{key}] must be a table")
    return value


def read_sidecar(path: str | Path) -> Sidecar:
    """The sidecar TOML at ``path``, its fields type-checked (``ConfigError`` naming the file and field)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the sidecar: {e}") from e
    prof, addr, rates, faults, params = (_section(doc, k, path)
                                         for k in ("profile", "addressing", "rates_hz", "faults", "params"))
    where_prof, where_addr = f"{path} [profile]", f"{path} [addressing]"
    return Sidecar(
        path=path,
        name=_field(prof, "name", str, where_prof),
        version=str(_field(prof, "version", str | int | float, where_prof, "")),
        bitrate=_field(prof, "bitrate", int, where_prof, 1_000_000),
        fd=_field(prof, "fd", bool, where_prof, False),
        node_shift=_field(addr, "node_shift", int, where_addr, 0),
        node_min=_field(addr, "node_min", int, where_addr, 0),
        node_max=_field(addr, "node_max", int, where_addr, 0),
        rates_hz={k: float(_field(rates, k, int | float, f"{path} [rates_hz]")) for k in rates},
        modes={k: _str_list(v, f"{path} [modes] {k}") for k, v in _section(doc, "modes", path).items()},
        always=_str_list(_section(doc, "commands", path).get("always", []), f"{path} [commands] always"),
        faults={k: _field(faults, k, int, f"{path} [faults]") for k in faults},
        params={k: _field(params, k, int, f"{path} [params]") for k in params},
        semantic={k: _semantic_entry(k, v, f"{path} [semantic]") for k, v in _section(doc, "semantic", path).items()},
        messages={k: _field(_section(doc, "messages", path), k, str, f"{path} [messages]")
                  for k in _section(doc, "messages", path)},
    )


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


class Profile:
    """A loaded protocol profile: the cantools database, its sidecar, and the codec of single frames."""

    def __init__(self, db: Database, sidecar: Sidecar, dbc_path: Path | None = None) -> None:
        self.db = db
        self.sidecar = sidecar
        self.dbc_path = dbc_path
        self._by_name = {m.name: m for m in db.messages}
        self._by_command = {m.frame_id: m for m in db.messages}
        # each signal's allowed range widened by the rounding tolerance, computed once: decode runs per frame
        self._bounds = {}
        for m in db.messages:
            for sig in m.signals:
                lo, hi = allowed_range(sig)
                tol = _tolerance(lo, hi, sig)
                self._bounds[id(sig)] = (lo, hi, lo - tol, hi + tol)
        # signals whose value table names bits (``bitfield = true``): decoded to their number, any combination valid
        self._bitfields = {id(s) for sem in sidecar.semantic.values() if sem.bitfield
                           for m in db.messages if m.name == sem.message for s in m.signals if s.name == sem.signal}

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
        return tuple(self._by_name)

    @property
    def telemetry(self) -> dict[str, float]:
        """Messages with a default rate in the sidecar, and that rate in Hz."""
        return dict(self.sidecar.rates_hz)

    def message(self, name: str) -> Message:
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
        node_id = self.check_node(node_id)
        message = self.message(name)
        arb = node_id << self.sidecar.node_shift | message.frame_id
        limit = MAX_EXTENDED_ID if message.is_extended_frame else MAX_STANDARD_ID
        if arb > limit:
            raise ProtocolError(f"{name} for node {node_id}: arbitration id 0x{arb:x} exceeds 0x{limit:x}")
        return arb

    def split_id(self, arbitration_id: int) -> tuple[int, int]:
        """(node id, command id) of a bus identifier."""
        shift = self.sidecar.node_shift
        if shift == 0:
            return 0, arbitration_id
        return arbitration_id >> shift, arbitration_id & ((1 << shift) - 1)

    def encode(self, name: str, node_id: int, /, **signals: SignalValue) -> can.Message:
        """A python-can Message of ``name`` for ``node_id``; every signal of the message must be given.

        Values are physical (scaled) numbers, or value-table names for signals that have one.
        """
        message = self.message(name)
        arb = self.arbitration_id(name, node_id)
        unknown = sorted(set(signals) - {s.name for s in message.signals})
        if unknown:
            raise ProtocolError(f"{name}: unknown signal(s) {', '.join(unknown)}; the message has "
                                f"{', '.join(s.name for s in message.signals) or 'no signals'}")
        missing = [s.name for s in message.signals if s.name not in signals]
        if missing:
            raise ProtocolError(f"{name}: missing signal(s) {', '.join(missing)}")
        for s in message.signals:
            self._check_encode_value(message, s, signals[s.name])
        try:
            data = message.encode(dict(signals), scaling=True, padding=False, strict=True)
        except Exception as e:  # cantools raises EncodeError, ValueError, TypeError, KeyError
            raise ProtocolError(f"{name}: cannot encode {signals}: {e}") from e
        return can.Message(arbitration_id=arb, data=data, is_extended_id=message.is_extended_frame,
                           is_fd=self.sidecar.fd)

    def _check_encode_value(self, message: Message, signal: Signal, value: SignalValue) -> None:
        where = f"{message.name}: signal {signal.name}"
        if isinstance(value, str | NamedSignalValue):
            text = value.name if isinstance(value, NamedSignalValue) else value
            if not signal.choices or text not in {str(v) for v in signal.choices.values()}:
                raise ProtocolError(f"{where} = {text!r} is not in its value table "
                                    f"({_choices_text(signal) if signal.choices else 'the signal has none'})")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{where} = {value!r} is not a number")
        if not math.isfinite(value):
            raise ProtocolError(f"{where} = {value!r} is not finite")
        lo, hi, lo_tol, hi_tol = self._bounds[id(signal)]
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
        node_id, command_id = self.split_id(arb)
        message = self._by_command.get(command_id)
        if message is None or message.is_extended_frame != msg.is_extended_id:
            kind = "extended" if msg.is_extended_id else "standard"
            raise ProtocolError(f"unknown frame id 0x{arb:03x} ({kind}; node {node_id}, command 0x{command_id:02x}) "
                                f"in profile {self.name}")
        sc = self.sidecar
        if not sc.node_min <= node_id <= sc.node_max:
            raise ProtocolError(f"frame 0x{arb:03x} ({message.name}): node id {node_id} is outside "
                                f"{sc.node_min}..{sc.node_max}")
        data = bytes(msg.data)
        if len(data) != message.length:
            raise ProtocolError(f"frame 0x{arb:03x} ({message.name}, node {node_id}): {len(data)} data bytes, "
                                f"expected {message.length}")
        try:
            raw = message.decode(data, decode_choices=False, scaling=True)
        except Exception as e:  # cantools raises DecodeError, ValueError
            raise ProtocolError(f"frame 0x{arb:03x} ({message.name}, node {node_id}): cannot decode "
                                f"{data.hex()}: {e}") from e
        values = {s.name: self._checked_value(message, s, raw[s.name], choices) for s in message.signals}
        return Decoded(node_id, message.name, values)

    def _checked_value(self, message: Message, signal: Signal, value: int | float, choices: bool) -> SignalValue:
        if signal.choices and id(signal) not in self._bitfields:
            if value not in signal.choices:
                raise ProtocolError(f"{message.name}: signal {signal.name} = {value} is not in its value table "
                                    f"({_choices_text(signal)})")
            return str(signal.choices[value]) if choices else value
        lo, hi, lo_tol, hi_tol = self._bounds[id(signal)]
        if lo_tol <= value <= hi_tol:  # NaN fails this too
            return value
        where = f"{message.name}: signal {signal.name}"
        if not math.isfinite(value):
            raise ProtocolError(f"{where} = {value} is not finite")
        raise ProtocolError(f"{where} = {_fmt(value)} is outside the allowed range [{_fmt(lo)}, {_fmt(hi)}]")

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

    def fault_names(self, bits: int) -> list[str]:
        """Names of the fault bits set in ``bits``: the sidecar's [faults], or the value table of a ``bitfield``
        status.faults signal; a set bit neither names is ``bit N``, so every set bit is reported."""
        table = dict(self.sidecar.faults)
        sem = self.sidecar.semantic.get("status.faults")
        if not table and sem is not None and sem.bitfield:
            table = {str(name): int(value) for value, name in self.signal(sem.message, sem.signal).choices.items()}
        bits, names, named = int(bits), [], 0
        for name, bit in table.items():
            if bits & bit:
                names.append(name)
                named |= bit
        rest = bits & ~named
        return names + [f"bit {n}" for n in range(rest.bit_length()) if rest >> n & 1]
