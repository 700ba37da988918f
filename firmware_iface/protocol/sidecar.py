"""The sidecar TOML of a protocol profile: what a DBC cannot say, read and type-checked (``ConfigError`` naming the
file and field); checked against the DBC by ``firmware_iface.protocol.check``.

Sections: ``[profile]`` (name, version, bitrate, fd, source), ``[addressing]`` (``firmware_iface.protocol.addressing``),
``[rates_hz]``, ``[modes]``, ``[commands]``, ``[faults]`` (the simulated joint's fault names -> this profile's bits, or
codes where status.faults is one code), ``[params]``, ``[messages]`` (roles of signal-less messages, and
``status_reply``: the joint's answer to every command, where it sends no heartbeat), ``[impedance]`` (the host's
``kp_nm_per_rad`` and ``kd_nm_s_per_rad`` for a joint that keeps no impedance gains), ``[constants]`` (signals a
message always carries with one value, e.g. ODrive's ``Input_Mode`` beside ``Control_Mode``), ``[raw_frames]``
(special frames by role: a message's id with fixed data, e.g. MIT mode's enable, disable, zero and query) and
``[semantic]``. A semantic entry maps a toolkit name to a message's signal, with the toolkit's ``unit`` and ``range``,
and where the wire differs from the toolkit: ``scale`` and ``offset`` (toolkit value = signal * scale + offset, e.g.
rev -> rad), the DBC's own unit as ``signal_unit``, ``names`` (the toolkit's state or mode names -> the DBC's
value-table names, or lists of them: sent in turn for a command, any of them for a status), ``with`` (other
signals sent with the name, e.g. an SDO's command specifier), ``masks`` (a number read as the name of the first
[name, mask, value] it matches: CiA 402's statusword) and ``bitfield``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actuator.errors import ConfigError


@dataclass(frozen=True)
class SemanticSignal:
    """One semantic name of the toolkit mapped to a message's signal; ``range_`` is what it must be able to carry
    (in the toolkit's unit, after ``scale`` and ``offset``)."""

    name: str
    message: str
    signal: str
    unit: str | None = None
    range_: tuple[float, float] | None = None
    # the signal is a set of bits (faults, errors): its value table names single bits, any combination is valid
    bitfield: bool = False
    scale: float = 1.0  # toolkit value = signal value * scale + offset
    offset: float = 0.0
    signal_unit: str | None = None  # the DBC's unit where scale/offset convert it to ``unit``
    # toolkit value name -> the DBC's value-table name, or a sequence of them sent in turn (CiA 402: shutdown, then
    # enable operation)
    names: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    masks: tuple[tuple[str, int, int], ...] = ()  # (toolkit name, mask, value): the first with raw & mask == value
    # other signals of the message sent with this name, and their values (CiA 301's SDO: the command specifier)
    with_: dict[str, int | float | str] = field(default_factory=dict)

    @property
    def converted(self) -> bool:
        return self.scale != 1.0 or self.offset != 0.0


@dataclass(frozen=True)
class RawFrame:
    """A special frame: the id of ``message`` for the node, with exactly ``data``."""

    role: str
    message: str
    data: bytes


@dataclass(frozen=True)
class Sidecar:
    """The sidecar TOML of a profile, parsed and type-checked (not yet checked against the DBC)."""

    path: Path | None
    name: str
    version: str = ""
    source: str = ""
    bitrate: int = 1_000_000
    fd: bool = False
    scheme: str = "shift"
    node_shift: int = 0
    node_bits: int = 0  # width of the node field; 0: every bit above node_shift
    node_min: int = 0
    node_max: int = 0
    message_prefix: str = ""  # per_axis: the DBC's per-node message names, e.g. "Axis{node}_"
    broadcast: tuple[str, ...] = ()  # messages without a node: on the DBC's id for every node
    node_in_payload: dict[str, str] = field(default_factory=dict)  # message -> the signal carrying the node id
    rates_hz: dict[str, float] = field(default_factory=dict)
    modes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    always: tuple[str, ...] = ()
    faults: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    semantic: dict[str, SemanticSignal] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # role (estop, clear_faults, ...) -> message name
    constants: dict[str, dict[str, int | float | str]] = field(default_factory=dict)
    raw_frames: dict[str, RawFrame] = field(default_factory=dict)
    impedance: dict[str, float] = field(default_factory=dict)  # the host's kp, kd where the joint keeps none (MIT)
    emulation: str = ""  # how the simulated joint speaks it: "" (VirtualJointNode, by the profile) or "cia402"


SCHEMES = ("shift", "per_axis")


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


def _number(entry: dict, key: str, where: str, default: float) -> float:
    return float(_field(entry, key, int | float, where, default))


def _semantic_entry(name: str, entry: Any, where: str) -> SemanticSignal:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: {name!r} must be a table with message and signal")
    at = f"{where} {name!r}"
    rng = _field(entry, "range", list, at, None)
    if rng is not None:
        if len(rng) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng) \
                or not rng[0] <= rng[1]:
            raise ConfigError(f"{at}: range = {rng!r} must be [low, high] numbers with low <= high")
        rng = (float(rng[0]), float(rng[1]))
    names = _field(entry, "names", dict, at, {})
    if not all(isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v))
               for v in names.values()):
        raise ConfigError(f"{at}: names = {names!r} must map the toolkit's names to the DBC's value names (or to "
                          "lists of them, sent in turn)")
    names = {k: tuple(v) if isinstance(v, list) else v for k, v in names.items()}
    masks = _field(entry, "masks", list, at, [])
    if not all(isinstance(m, list) and len(m) == 3 and isinstance(m[0], str) and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in m[1:]) for m in masks):
        raise ConfigError(f"{at}: masks = {masks!r} must be [name, mask, value] lists (non-negative integers)")
    scale = _number(entry, "scale", at, 1.0)
    if scale == 0.0:
        raise ConfigError(f"{at}: scale = 0 loses the value: allowed any other number")
    unknown = sorted(set(entry) - {"message", "signal", "unit", "range", "bitfield", "scale", "offset",
                                   "signal_unit", "names", "masks", "with"})
    if unknown:
        raise ConfigError(f"{at}: unknown field(s) {', '.join(unknown)}")
    return SemanticSignal(name, _field(entry, "message", str, at), _field(entry, "signal", str, at),
                          _field(entry, "unit", str, at, None), rng, _field(entry, "bitfield", bool, at, False),
                          scale, _number(entry, "offset", at, 0.0), _field(entry, "signal_unit", str, at, None),
                          names, tuple((m[0], m[1], m[2]) for m in masks), _constant_values(entry.get("with", {}), at))


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} = {value!r} must be a list of message names")
    return tuple(value)


def _section(doc: dict, key: str, path: Path | str) -> dict:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{key}] must be a table")
    return value


def _raw_frame(role: str, entry: Any, where: str) -> RawFrame:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} {role}: must be a table with message and data (hex)")
    text = _field(entry, "data", str, f"{where} {role}")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{where} {role}: data = {text!r} is not hex bytes (e.g. \"FFFFFFFFFFFFFFFC\")") from None
    return RawFrame(role, _field(entry, "message", str, f"{where} {role}"), data)


def _constants(section: dict, where: str) -> dict[str, dict[str, int | float | str]]:
    return {message: _constant_values(values, f"{where} {message}") for message, values in section.items()}


def _constant_values(values: Any, where: str) -> dict[str, int | float | str]:
    if not isinstance(values, dict) or not all(
            isinstance(v, int | float | str) and not isinstance(v, bool) for v in values.values()):
        raise ConfigError(f"{where} = {values!r} must map signals to numbers or value names")
    return dict(values)


def _addressing(addr: dict, where: str) -> dict[str, Any]:
    scheme = _field(addr, "scheme", str, where, "shift")
    if scheme not in SCHEMES:
        raise ConfigError(f"{where}: scheme = {scheme!r}: allowed {', '.join(SCHEMES)}")
    payload = _field(addr, "node_in_payload", dict, where, {})
    if not all(isinstance(v, str) for v in payload.values()):
        raise ConfigError(f"{where}: node_in_payload = {payload!r} must map messages to the signal with the node")
    prefix = _field(addr, "message_prefix", str, where, "")
    if scheme == "per_axis" and "{node}" not in prefix:
        raise ConfigError(f"{where}: message_prefix = {prefix!r} must contain {{node}} (e.g. \"Axis{{node}}_\")")
    return dict(scheme=scheme, node_shift=_field(addr, "node_shift", int, where, 0),
                node_bits=_field(addr, "node_bits", int, where, 0), node_min=_field(addr, "node_min", int, where, 0),
                node_max=_field(addr, "node_max", int, where, 0), message_prefix=prefix,
                broadcast=_str_list(addr.get("broadcast", []), f"{where} broadcast"), node_in_payload=dict(payload))


def read_sidecar(path: str | Path) -> Sidecar:
    """The sidecar TOML at ``path``, its fields type-checked (``ConfigError`` naming the file and field)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the sidecar: {e}") from e
    prof, addr, rates, faults, params, messages = (
        _section(doc, k, path) for k in ("profile", "addressing", "rates_hz", "faults", "params", "messages"))
    where_prof = f"{path} [profile]"
    return Sidecar(
        path=path,
        name=_field(prof, "name", str, where_prof),
        version=str(_field(prof, "version", str | int | float, where_prof, "")),
        source=_field(prof, "source", str, where_prof, ""),
        bitrate=_field(prof, "bitrate", int, where_prof, 1_000_000),
        fd=_field(prof, "fd", bool, where_prof, False),
        emulation=_field(prof, "emulation", str, where_prof, ""),
        **_addressing(addr, f"{path} [addressing]"),
        rates_hz={k: float(_field(rates, k, int | float, f"{path} [rates_hz]")) for k in rates},
        modes={k: _str_list(v, f"{path} [modes] {k}") for k, v in _section(doc, "modes", path).items()},
        always=_str_list(_section(doc, "commands", path).get("always", []), f"{path} [commands] always"),
        faults={k: _field(faults, k, int, f"{path} [faults]") for k in faults},
        params={k: _field(params, k, int, f"{path} [params]") for k in params},
        semantic={k: _semantic_entry(k, v, f"{path} [semantic]") for k, v in _section(doc, "semantic", path).items()},
        messages={k: _field(messages, k, str, f"{path} [messages]") for k in messages},
        constants=_constants(_section(doc, "constants", path), f"{path} [constants]"),
        raw_frames={k: _raw_frame(k, v, f"{path} [raw_frames]") for k, v in _section(doc, "raw_frames", path).items()},
        impedance={k: float(_field(_section(doc, "impedance", path), k, int | float, f"{path} [impedance]"))
                   for k in _section(doc, "impedance", path)},
    )
