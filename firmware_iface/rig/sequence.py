"""Rig sequences: the TOML format, its validation, and the checked ``Sequence`` the runner executes.

A sequence file has a ``[sequence]`` table (name, description, node, preset for ``--sim``, ratio: the reducer
ratio of the joint type) and an array of ``[[steps]]``. Each step has a ``type``, an optional ``name`` (unique;
default: the type, numbered when repeated), an optional ``node`` and the keys of its type (``STEP_TYPES``: each key
with its kind, default and allowed range). Measuring steps take ``limits``: ``{ figure = { min = .., max = .. } }``
with either bound optional, on the figures their type produces. Everything is checked before anything moves:
an error names the file, the step (number and name), the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from actuator.control.config import GAINS
from actuator.errors import ConfigError
from actuator.params import JointParams, load_preset
from firmware_iface.defaults import ENABLE_MODES as MODES
from firmware_iface.experiments.calibrations import BY_STEP, config_of
from firmware_iface.experiments.certificate import Limit
from firmware_iface.experiments.encoder_calibration import SPEED_RAD_S as ENCODER_SPEED_RAD_S
from firmware_iface.experiments.friction_calibration import MIN_SPEEDS as FRICTION_MIN_SPEEDS
from firmware_iface.experiments.ft_calibration import DEFAULT_POSES_RAD as FT_POSES_RAD
from firmware_iface.experiments.ft_calibration import MIN_POSES as FT_MIN_POSES
from firmware_iface.experiments.motor_calibration import FIGURES as MOTOR_FIGURES
from firmware_iface.experiments.protocols import PROTOCOLS
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile

INF = math.inf
_POS = (0.0, INF)
_Q = (-2.5, 2.5)


def _k(kind: type | tuple, default: Any = None, lo: float = -INF, hi: float = INF, choices: tuple = ()) -> dict:
    return {"kind": kind, "default": default, "range": (lo, hi), "choices": choices}


_HOME = {"home_rad": _k(float, 0.0, *_Q)}
# a calibration whose result the joint keeps as parameters (experiments.calibrations.joint_params): write it, save it
_WRITE = {"write": _k(bool, False), "save": _k(bool, False)}
STEP_TYPES: dict[str, dict[str, dict]] = {
    "connect": {"timeout_s": _k(float, 5.0, 0.1, 120.0)},
    "enable": {"mode": _k(str, "position", choices=MODES), "timeout_s": _k(float, 1.0, 0.05, 30.0)},
    "disable": {},
    "gains": {"file": _k(str, None), "values": _k(dict, None), "save": _k(bool, False)},
    "move": {"position_rad": _k(float, None, *_Q), "duration_s": _k(float, 1.0, 0.05, 60.0),
             "hold_s": _k(float, 0.2, 0.0, 60.0)},
    "hold": {"position_rad": _k(float, None, *_Q), "duration_s": _k(float, 1.0, 0.0, 3600.0)},
    "wait": {"duration_s": _k(float, 1.0, 0.0, 3600.0)},
    "step": {**_HOME, "amplitude_rad": _k(float, 0.1, -1.0, 1.0), "pre_s": _k(float, 0.1, 0.0, 5.0),
             "duration_s": _k(float, 1.0, 0.1, 30.0)},
    "bode": {**_HOME, "f0_hz": _k(float, 1.0, 0.05, 100.0), "f1_hz": _k(float, 20.0, 0.1, 250.0),
             "amplitude_rad": _k(float, 0.002, 1e-5, 0.2), "periods": _k(int, 4, 2, 50)},
    "friction": {**_HOME, "velocity_rad_s": _k(float, 0.5, 0.01, 5.0), "travel_rad": _k(float, 0.6, 0.01, 4.0),
                 "ramp_s": _k(float, 0.3, 0.01, 5.0)},
    "backdrive": {**_HOME, "load_rate_nm_s": _k(float, 20.0, 0.1, 1000.0), "max_load_nm": _k(float, 40.0, 0.1, 500.0),
                  "moving_rad_s": _k(float, 0.05, 1e-3, 5.0)},
    "stiffness": {**_HOME, "loads_nm": _k(list, [-40.0, -20.0, 0.0, 20.0, 40.0]),
                  "settle_s": _k(float, 0.4, 0.05, 10.0),
                  "average_s": _k(float, 0.2, 0.01, 10.0)},
    "ft_zero": {**_HOME, "duration_s": _k(float, 1.0, 0.05, 60.0), "expected_force_n": _k(list, [0.0, 0.0, 0.0]),
                "expected_moment_nm": _k(list, [0.0, 0.0, 0.0])},
    # the F/T sensor's bias and tool load (experiments.ft_calibration): poses inside the preset's position limits
    "ft_calibrate": {**_WRITE, "poses_rad": _k(list, list(FT_POSES_RAD)), "settle_s": _k(float, 0.4, 0.0, 30.0),
                     "average_s": _k(float, 0.5, 0.01, 60.0), "move_s": _k(float, 0.8, 0.05, 30.0),
                     "hang_offset_rad": _k(float, 0.0, -math.pi, math.pi),
                     "reach_tol_rad": _k(float, 0.01, 1e-6, 0.5)},
    # the F/T sensor's sensitivity and crosstalk against the wrench fixture's known loads (experiments.ft_crosstalk):
    # the default load set from the preset's sensor range and rated torque, checked against them
    "ft_crosstalk_calibrate": {
        **_HOME, **_WRITE, "wrenches": _k(list, None), "force_fraction": _k(float, 0.2, 0.0, 1.0),
        "moment_fraction": _k(float, 0.5, 0.0, 1.0), "joint_torque_fraction": _k(float, 0.5, 0.0, 1.0),
        "settle_s": _k(float, 0.3, 0.0, 30.0), "average_s": _k(float, 0.5, 0.01, 60.0),
        "ramp_s": _k(float, 0.2, 0.0, 10.0), "move_s": _k(float, 0.8, 0.05, 30.0),
        "reach_tol_rad": _k(float, 0.01, 1e-6, 0.5)},
    # the friction map (experiments.friction_calibration): speeds default to the preset's (log-spaced to 0.8 of its
    # velocity limit), each pair's travel checked against its position limits
    "friction_calibrate": {"write_gains": _k(bool, False), **_HOME, "speeds_rad_s": _k(list, None),
                           "plateau_s": _k(float, 0.4, 0.02, 30.0),
                           "settle_s": _k(float, 0.2, 0.0, 10.0), "ramp_s": _k(float, 0.2, 0.01, 5.0),
                           "max_travel_rad": _k(float, 1.0, 1e-3, 4.0), "move_s": _k(float, 0.5, 0.05, 30.0),
                           "stuck_fraction": _k(float, 0.5, 0.0, 1.0)},
    # the encoders and the kinematic-error map (experiments.encoder_calibration): the range defaults to the preset's
    # position limits less 0.2 rad (a full output turn where they allow it), checked against them
    "encoder_calibrate": {"speed_rad_s": _k(float, ENCODER_SPEED_RAD_S, 1e-3, 5.0), "range_rad": _k(list, None),
                          "ramp_s": _k(float, 0.5, 0.01, 5.0), "settle_s": _k(float, 0.5, 0.0, 10.0),
                          "move_s": _k(float, 1.0, 0.05, 30.0), "stuck_fraction": _k(float, 0.5, 0.0, 1.0)},
    # the friction map over temperature (experiments.friction_temperature): the friction map's keys, the maps and
    # the loaded heats between them; the heat's load defaults to 0.85 of the preset's drive ceiling, checked against it
    "friction_temperature_calibrate": {
        **_HOME, "write_gains": _k(bool, False), "maps": _k(int, 3, 2, 20), "heat_s": _k(float, 240.0, 1.0, 36000.0),
        "heat_load_nm": _k(float, None, 0.0, 500.0), "min_span_k": _k(float, 3.0, 0.0, 100.0),
        "speeds_rad_s": _k(list, None), "plateau_s": _k(float, 0.4, 0.02, 30.0), "settle_s": _k(float, 0.2, 0.0, 10.0),
        "ramp_s": _k(float, 0.2, 0.01, 5.0), "max_travel_rad": _k(float, 1.0, 1e-3, 4.0),
        "move_s": _k(float, 0.5, 0.05, 30.0), "stuck_fraction": _k(float, 0.5, 0.0, 1.0)},
    # the torque constant against the fixture (experiments.kt_calibration): loads default to the preset's (+-0.8 and
    # +-0.4 of its rated torque and 0), checked against its drive's ceiling, the speed against its velocity limit
    "kt_calibrate": {**_HOME, **_WRITE, "loads_nm": _k(list, None), "speed_rad_s": _k(float, 0.5, 0.01, 10.0),
                     "plateau_s": _k(float, 0.4, 0.05, 30.0), "settle_s": _k(float, 0.2, 0.0, 10.0),
                     "ramp_s": _k(float, 0.2, 0.01, 5.0), "load_ramp_s": _k(float, 0.3, 0.01, 10.0),
                     "move_s": _k(float, 0.5, 0.05, 30.0), "stuck_fraction": _k(float, 0.5, 0.0, 1.0),
                     "saturation_fraction": _k(float, 0.9, 0.1, 1.0)},
    # the cogging map (experiments.cogging_calibration): the sweep's cogging frequency sets its speed, checked
    # against the preset's velocity limit and the flexspline's mode
    "cogging_calibrate": {**_HOME, "cogging_hz": _k(float, 20.0, 0.1, 500.0), "revolutions": _k(float, 1.0, 1.0, 20.0),
                          "harmonics": _k(int, 2, 1, 8), "settle_s": _k(float, 1.0, 0.0, 10.0),
                          "ramp_s": _k(float, 0.5, 0.01, 5.0), "move_s": _k(float, 0.5, 0.05, 30.0),
                          "stuck_fraction": _k(float, 0.5, 0.0, 1.0)},
    # the drive's own motor calibration (experiments.motor_calibration): no protocol, the drive moves the motor
    "motor_calibrate": {"current_a": _k(float, None, 0.01, 1000.0), "save": _k(bool, False),
                        "timeout_s": _k(float, 30.0, 1.0, 600.0)},
    "thermal_soak": {**_HOME, "load_nm": _k(float, 100.0, 0.0, 500.0), "duration_s": _k(float, 6.0, 1.0, 36000.0),
                     "average_s": _k(float, 0.3, 0.05, 60.0)},
    "fault_reaction": {**_HOME, "command_s": _k(float, 0.3, 0.05, 10.0), "timeout_s": _k(float, 2.0, 0.1, 60.0)},
    "identify": {**_HOME, "duration_s": _k(float, 8.0, 2.0, 120.0), "amplitude_nm": _k(float, 15.0, 0.1, 200.0),
                 "f_low_hz": _k(float, 0.5, 0.05, 50.0), "f_high_hz": _k(float, 4.0, 0.1, 100.0)},
    "tune": {"bandwidth_hz": _k(float, 5.0, 0.2, 100.0), "apply": _k(bool, True)},
    "measure": {"duration_s": _k(float, 1.0, 0.01, 3600.0), "signals": _k(list, [])},
}
PROTOCOL_OF = {"thermal_soak": "thermal"} | {t: t for t in PROTOCOLS}
FIGURES: dict[str, tuple[str, ...]] = {  # the figures a step reports: its protocol's, or its executor's in rig.steps
    **{t: PROTOCOLS[p].figures for t, p in PROTOCOL_OF.items() if t in STEP_TYPES},
    "fault_reaction": ("watchdog_reaction_s",),
    "identify": ("inertia_kg_m2", "viscous_nm_s_per_rad", "coulomb_nm", "gravity_nm"),
    "tune": ("simulated_bandwidth_hz", "measured_bandwidth_hz"),
    "motor_calibrate": MOTOR_FIGURES,
}
WRITE_KEYS = ("write_gains", *_WRITE)  # what a calibration step does with its result: the rig's, not the protocol's
STATS = ("mean", "std", "min", "max", "p2p", "rms")


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    type: str
    node: int
    cfg: dict[str, Any]
    limits: dict[str, Limit] = field(default_factory=dict)


@dataclass(frozen=True)
class Sequence:
    path: Path
    name: str
    description: str
    node: int
    preset: str
    ratio: float
    steps: tuple[Step, ...]
    sha256: str

    @property
    def nodes(self) -> list[int]:
        return sorted({s.node for s in self.steps} | {self.node})


def _where(path: Path, i: int | None, name: str | None, key: str | None) -> str:
    out = str(path)
    if i is not None:
        out += f": step {i + 1}" + (f" ({name})" if name else "")
    return out + (f": {key}" if key else "")


def _fail(path: Path, i: int | None, name: str | None, key: str | None, msg: str) -> None:
    raise ConfigError(f"{_where(path, i, name, key)}: {msg}")


def _check_value(path: Path, i: int, name: str, key: str, value: Any, spec: dict) -> Any:
    kind, (lo, hi), choices = spec["kind"], spec["range"], spec["choices"]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        _fail(path, i, name, key, f"{value!r} is not allowed: expected a {kind.__name__}")
    if kind in (int, float) and not (math.isfinite(value) and lo <= value <= hi):
        _fail(path, i, name, key, f"{value!r} is out of range: allowed [{lo:g}, {hi:g}]")
    if choices and value not in choices:
        _fail(path, i, name, key, f"{value!r} is not allowed: choose one of {', '.join(choices)}")
    if kind is list and not all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in value):
        _fail(path, i, name, key, f"{value!r}: a list of numbers (or signal names) expected")
    return value


def _limits(path: Path, i: int, name: str, stype: str, raw: Any, extra: tuple[str, ...]) -> dict[str, Limit]:
    if not isinstance(raw, dict):
        _fail(path, i, name, "limits", f"{raw!r}: a table {{ figure = {{ min = .., max = .. }} }} expected")
    allowed = FIGURES.get(stype, ()) + extra
    out = {}
    for fig, lim in raw.items():
        if fig not in allowed:
            _fail(path, i, name, f"limits.{fig}", f"not a figure of a {stype} step: allowed "
                  f"{', '.join(allowed) or 'none (this step measures nothing)'}")
        if not isinstance(lim, dict) or not lim or set(lim) - {"min", "max"}:
            _fail(path, i, name, f"limits.{fig}", f"{lim!r}: a table with min and/or max expected")
        for b, v in lim.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                _fail(path, i, name, f"limits.{fig}.{b}", f"{v!r} is not a finite number")
        lo, hi = lim.get("min"), lim.get("max")
        if lo is not None and hi is not None and lo > hi:
            _fail(path, i, name, f"limits.{fig}", f"min {lo} > max {hi}")
        out[fig] = Limit(None if lo is None else float(lo), None if hi is None else float(hi))
    return out


def _measure_figures(path: Path, i: int, name: str, signals: list) -> tuple[str, ...]:
    """The figures of a measure step: ``signals = ["std:telemetry.force_x_n", ...]`` -> ``force_x_n_std``."""
    out = []
    for item in signals:
        stat, _, semantic = str(item).partition(":")
        if stat not in STATS or not semantic.startswith("telemetry."):
            _fail(path, i, name, "signals",
                  f"{item!r}: expected STAT:telemetry.NAME with STAT one of {', '.join(STATS)}")
        out.append(f"{semantic.removeprefix('telemetry.')}_{stat}")
    return tuple(out)


# list keys of fixed content: key -> (how many numbers: None for any number >= 2, -n for n or more; unit in errors)
_VECTORS = {"loads_nm": (None, "N·m"), "expected_force_n": (3, "N (x, y, z)"),
            "expected_moment_nm": (3, "N·m (x, y, z)"), "poses_rad": (-FT_MIN_POSES, "rad (output angles)"),
            "speeds_rad_s": (-FRICTION_MIN_SPEEDS, "rad/s (output speeds)")}


def _check_contents(path: Path, i: int, name: str, cfg: dict, telemetry: set[str] | None) -> None:
    """What ``_check_value`` cannot see from a key's kind: the numbers in a vector, a gains table's names and values,
    a measured signal's name."""
    for key, (size, unit) in _VECTORS.items():
        value = cfg.get(key)
        if value is None:
            continue
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            _fail(path, i, name, key, f"{value!r}: allowed a list of finite numbers, {unit}")
        if size is not None and size < 0 and len(value) < -size:  # a negative size: at least that many
            _fail(path, i, name, key, f"{value!r} has {len(value)} numbers: allowed {-size} or more, {unit}")
        if key == "poses_rad" and not all(_Q[0] <= v <= _Q[1] for v in value):
            _fail(path, i, name, key, f"{value!r}: allowed angles in [{_Q[0]:g}, {_Q[1]:g}] rad")
        if size is not None and size > 0 and len(value) != size:
            _fail(path, i, name, key, f"{value!r} has {len(value)} numbers: allowed exactly {size}, {unit}")
        if size is None and len(value) < 2:
            _fail(path, i, name, key, f"{value!r}: allowed 2 or more loads, {unit} (a stiffness is a slope)")
    values = cfg.get("values")
    if values is not None:
        for gain, v in values.items():
            if gain not in GAINS:
                _fail(path, i, name, f"values.{gain}", f"not a gain: allowed {', '.join(GAINS)}")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                _fail(path, i, name, f"values.{gain}", f"{v!r} is not allowed: a finite number")
        if not values:
            _fail(path, i, name, "values", "an empty table sets no gain")
    for item in cfg.get("signals") or ():
        semantic = str(item).partition(":")[2]
        if telemetry is not None and semantic not in telemetry:
            _fail(path, i, name, "signals", f"{item!r}: {semantic} is not a telemetry name of the profile: allowed "
                  f"{', '.join(sorted(telemetry))}")


def _step(path: Path, i: int, raw: Any, default_node: int, seen: dict[str, int],
          telemetry: set[str] | None = None) -> Step:
    if not isinstance(raw, dict):
        _fail(path, i, None, None, f"{raw!r}: a table expected")
    stype = raw.get("type")
    if stype not in STEP_TYPES:
        _fail(path, i, raw.get("name"), "type", f"{stype!r} is not allowed: choose one of {', '.join(STEP_TYPES)}")
    name = raw.get("name")
    if name is None:
        seen[stype] = seen.get(stype, 0) + 1
        name = stype if seen[stype] == 1 else f"{stype}{seen[stype]}"
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        _fail(path, i, None, "name", f"{name!r}: letters, digits, - and _ only")
    node = raw.get("node", default_node)
    if isinstance(node, bool) or not isinstance(node, int) or not 1 <= node <= 63:
        _fail(path, i, name, "node", f"{node!r} is out of range: allowed 1..63")
    spec = STEP_TYPES[stype]
    unknown = set(raw) - set(spec) - {"type", "name", "node", "limits"}
    if unknown:
        _fail(path, i, name, sorted(unknown)[0], f"not a key of a {stype} step: allowed "
              f"{', '.join(['name', 'node', 'limits', *spec])}")
    cfg = {k: _check_value(path, i, name, k, raw[k], s) if k in raw else s["default"] for k, s in spec.items()}
    extra = _measure_figures(path, i, name, cfg["signals"]) if stype == "measure" else ()
    _check_contents(path, i, name, cfg, telemetry)
    if stype == "bode" and cfg["f0_hz"] >= cfg["f1_hz"]:
        _fail(path, i, name, "f1_hz", f"{cfg['f1_hz']} must be above f0_hz = {cfg['f0_hz']}")
    if stype == "gains" and (cfg["file"] is None) == (cfg["values"] is None):
        _fail(path, i, name, "file", "give exactly one of file (a gains TOML) or values (a table of gains)")
    return Step(i, name, stype, node, cfg, _limits(path, i, name, stype, raw.get("limits", {}), extra))


def load_sequence(path: str | Path, profile: Profile | None = None) -> Sequence:
    """Read and check a sequence file (see the module docstring) against ``profile``'s telemetry names (default the
    native profile's); ConfigError on the first problem."""
    path = Path(path)
    telemetry = {n for n in (profile or load_native()).sidecar.semantic if n.startswith("telemetry.")}
    try:
        blob = path.read_bytes()
        data = tomllib.loads(blob.decode())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the sequence: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    unknown = set(data) - {"sequence", "steps"}
    if unknown:
        _fail(path, None, None, sorted(unknown)[0], "unknown table: allowed [sequence] and [[steps]]")
    head = data.get("sequence", {})
    allowed_head = {"name", "description", "node", "preset", "ratio"}
    if not isinstance(head, dict) or set(head) - allowed_head:
        _fail(path, None, None, "sequence", f"keys allowed: {', '.join(sorted(allowed_head))}")
    node = head.get("node", 1)
    if isinstance(node, bool) or not isinstance(node, int) or not 1 <= node <= 63:
        _fail(path, None, None, "sequence.node", f"{node!r} is out of range: allowed 1..63")
    ratio = head.get("ratio", 100.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio > 0:
        _fail(path, None, None, "sequence.ratio", f"{ratio!r}: the reducer ratio, a number > 0")
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        _fail(path, None, None, "steps", "a sequence needs at least one [[steps]] table")
    seen: dict[str, int] = {}
    steps = tuple(_step(path, i, raw, node, seen, telemetry) for i, raw in enumerate(steps_raw))
    names = [s.name for s in steps]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        _fail(path, names.index(dup, names.index(dup) + 1), dup, "name", "step names must be unique")
    for s in steps:
        if s.type == "gains" and s.cfg["file"] and not (path.parent / s.cfg["file"]).is_file():
            _fail(path, s.index, s.name, "file", f"{s.cfg['file']!r}: no such gains file next to the sequence")
    return Sequence(path, str(head.get("name", path.stem)), str(head.get("description", "")), node,
                    str(head.get("preset", "knee")), float(ratio), steps, hashlib.sha256(blob).hexdigest())


def with_node(seq: Sequence, node: int | None) -> Sequence:
    """``seq`` with every step on joint ``node`` (``jointkit run --node``, the GUI's selected joint); None: as
    written."""
    if node is None:
        return seq
    return replace(seq, node=node, steps=tuple(replace(s, node=node) for s in seq.steps))


def protocol_config(step: Step, seq: Sequence, params: JointParams | None = None) -> dict[str, Any]:
    """A measuring step's configuration for its protocol: its keys and the sequence's ratio; a calibration's checked
    against the joint type (``params``, default the sequence's preset: position limits, gravity)."""
    routine = BY_STEP.get(step.type)
    if routine is not None and routine.config is not None:
        ratio = {"ratio": seq.ratio} if step.type == "encoder_calibrate" else {}
        cfg = {k: v for k, v in step.cfg.items() if k not in WRITE_KEYS}  # the step's, not the protocol's
        return config_of(routine, params or load_preset(seq.preset), **cfg, **ratio)
    return {**step.cfg, "ratio": seq.ratio}
