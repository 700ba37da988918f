"""The manufacturing spread of a joint type (``seeds/spread.toml``) and the joints drawn within it.

This module owns
* the spread file (``load_spread``): which parameters of a joint type vary from unit to unit and how much, as normal
  distributions about the preset (``sd_pct`` relative or ``sd`` absolute; ``group`` makes fields share one draw),
  plus model injections drawn per joint (``[injections]``, e.g. the motor encoder's offset);
* ``draw``: parameter sets and injections for n joints, reproducible by seed (joint j is the same joint whatever n).
  The groups share one seeded stream in the file's order; a group marked ``independent = true`` draws from a stream
  of its own (a child of the seed keyed by the group's name), so adding one leaves every other draw bit-identical;
* ``Spread.reaching``: the units as they reach a sequence. An injection marked ``calibrated_by = "STEP"`` (the output
  encoder's mounting zero, which the ``encoder_calibrate`` step measures and writes to the joint) is what a unit is
  built with; a line calibrates it before its other tests, so a sequence that does not run that step sees it as
  calibrated (its residual is within the calibration's bound: 1-2 LSB of the output encoder against the EOL's
  3e-4 rad encoder-consistency limit) and it is left out of that sequence's draws. Such a group must be independent,
  so leaving it out changes no other draw.

The batch that runs the drawn joints is ``firmware_iface.experiments.batch`` (``rig.population`` draws and runs them).
"""

from __future__ import annotations

import functools
import math
import numbers
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import numpy as np

from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.params import JointParams, load_preset, params_from_dict, params_to_dict, read_toml
from actuator.simulation import INJECTIONS
from firmware_iface.experiments.protocols import PROTOCOLS

_TOLERANCE_KEYS = {"parameter": ("sd_pct", "sd", "group", "independent"),
                   "injection": ("sd", "mean", "group", "independent", "calibrated_by")}


MAX_SD_PCT = 30.0  # 3 sd of 30 % leaves a unit at 10 % of the preset's value at worst: still a physical part
@dataclass(frozen=True)
class Tolerance:
    path: str              # "reducer.coulomb_friction_nm", or the injection's name
    sd: float = 0.0        # absolute, in the field's unit
    sd_pct: float = 0.0    # % of the preset's value
    group: str = ""        # joints draw one standard normal per group
    mean: float | None = None  # injections: the centre (None: the model's healthy value)
    independent: bool = False  # the group draws from a stream of its own (keyed by its name), not the shared one
    calibrated_by: str = ""  # injections: the protocol step that measures it and writes it to the joint


@dataclass(frozen=True)
class Spread:
    source: str
    preset: str | None
    parameters: tuple[Tolerance, ...]
    injections: tuple[Tolerance, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups drawn from the shared stream, in the file's order."""
        return tuple(dict.fromkeys(t.group for t in (*self.parameters, *self.injections) if not t.independent))

    @property
    def independent_groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.group for t in (*self.parameters, *self.injections) if t.independent))

    def reaching(self, steps: Iterable[str]) -> Spread:
        """The spread of units as they reach a sequence of the protocol ``steps``: without the injections that a
        step it does not run calibrates (the line calibrated them first)."""
        run = set(steps)
        kept = tuple(t for t in self.injections if not t.calibrated_by or t.calibrated_by in run)
        return self if len(kept) == len(self.injections) else replace(self, injections=kept)


@functools.cache
def _field_range(path: str) -> tuple[float, float]:
    """The allowed [lo, hi] of a dotted JointParams path (an open lower end moved just inside)."""
    cls: Any = JointParams
    *head, last = path.split(".")
    for part in head:
        cls = get_type_hints(cls)[part]
    meta = {f.name: f for f in fields(cls)}[last].metadata
    return (math.nextafter(meta["lo"], math.inf) if meta.get("lo_open") else meta["lo"]), meta["hi"]


def _numeric(hint: Any) -> bool:
    """A float or a vector of floats: what a tolerance can scale."""
    return hint is float or (get_origin(hint) is tuple and get_args(hint)[0] is float)


def _number(value: Any, where: str, key: str, lo: float, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < lo:
        raise ConfigError(f"{where}.{key} = {value!r} is not allowed: {allowed}")
    return float(value)


def _tolerance(entry: Any, source: str, path: str, kind: str) -> Tolerance:
    """One entry; ``path`` is the field's dotted path (parameters) or ``injections.NAME``."""
    keys = _TOLERANCE_KEYS[kind]
    where = f"{source}: {path}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} = {entry!r} has the wrong type: expected a table like {{ {keys[0]} = 5.0 }} "
                          f"(keys: {', '.join(keys)})")
    unknown = sorted(set(entry) - set(keys))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} = {entry[unknown[0]]!r}: unknown key; allowed keys: {', '.join(keys)}")
    spreads = [k for k in ("sd_pct", "sd") if k in entry]
    if len(spreads) != 1:
        raise ConfigError(f"{where} = {entry!r} is not allowed: give exactly one of "
                          f"{' or '.join(k for k in keys if k.startswith('sd'))}")
    sd_pct = _number(entry.get("sd_pct", 0.0), where, "sd_pct", 0.0, f"a number in [0, {MAX_SD_PCT:g}] (% of the "
                     "preset's value)")
    if sd_pct > MAX_SD_PCT:
        raise ConfigError(f"{where}.sd_pct = {sd_pct!r} is out of range: allowed [0, {MAX_SD_PCT:g}] (% of the "
                          "preset's value: a 3-sd unit beyond it is non-physical: negative or near zero)")
    sd = _number(entry.get("sd", 0.0), where, "sd", 0.0, "a finite number >= 0 (in the field's unit)")
    mean = entry.get("mean")
    if mean is not None:
        mean = _number(mean, where, "mean", -math.inf, "a finite number")
    group = entry.get("group", path)
    if not isinstance(group, str) or not group:
        raise ConfigError(f"{where}.group = {group!r} is not allowed: a non-empty name of the fields drawn together")
    independent = entry.get("independent", False)
    if not isinstance(independent, bool):
        raise ConfigError(f"{where}.independent = {independent!r} is not allowed: true (a stream of the group's own) "
                          "or false (the shared stream)")
    calibrated_by = entry.get("calibrated_by", "")
    if calibrated_by and calibrated_by not in PROTOCOLS:
        raise ConfigError(f"{where}.calibrated_by = {calibrated_by!r} is not allowed: the protocol step that "
                          f"calibrates it, one of {', '.join(sorted(PROTOCOLS))}")
    if calibrated_by and not independent:
        raise ConfigError(f"{where}.calibrated_by = {calibrated_by!r} needs independent = true: a sequence without "
                          "that step leaves the group out, which must not move the other groups' draws")
    return Tolerance(path.removeprefix("injections.") if kind == "injection" else path, sd, sd_pct, group, mean,
                     independent, calibrated_by)


def _parameter_tolerances(table: dict, prefix: str, cls: Any, source: str) -> list[Tolerance]:
    hints, names = get_type_hints(cls), [f.name for f in fields(cls)]
    out = []
    for key, entry in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"{source}: {path} = {entry!r}: unknown key; allowed keys here: {', '.join(names)}")
        hint = hints[key]
        if is_dataclass(hint):
            if not isinstance(entry, dict):
                raise ConfigError(f"{source}: {path} = {entry!r} has the wrong type: expected a table")
            out += _parameter_tolerances(entry, path, hint, source)
        elif _numeric(hint):
            out.append(_tolerance(entry, source, path, "parameter"))
        else:
            raise ConfigError(f"{source}: {path} = {entry!r}: this field cannot vary; allowed are numeric fields (a "
                              "float or a vector of floats), not integers, names or matrices")
    return out


def _injection_tolerances(table: Any, source: str) -> list[Tolerance]:
    allowed = [name for name, spec in INJECTIONS.items() if spec[1] == 1]
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: injections = {table!r} has the wrong type: expected a table")
    out = []
    for name, entry in table.items():
        if name not in allowed:
            raise ConfigError(f"{source}: injections.{name} = {entry!r}: unknown injection; allowed: "
                              f"{', '.join(allowed)} (the model's scalar injections)")
        out.append(_tolerance(entry, source, f"injections.{name}", "injection"))
    return out


def _check_against_preset(spread: Spread) -> None:
    if spread.preset is None:
        return
    try:
        p = load_preset(spread.preset)
    except ConfigError as e:
        raise ConfigError(f"{spread.source}: preset = {spread.preset!r}: {e}") from None
    for t in spread.parameters:
        if t.sd_pct > 0 and not np.any(np.asarray(_value(p, t.path)) != 0.0):
            raise ConfigError(f"{spread.source}: {t.path} = {{ sd_pct = {t.sd_pct:g} }} draws nothing: the preset "
                              f"{spread.preset!r} has {t.path} = 0; give an absolute sd")


def load_spread(path: str | Path) -> Spread:
    """A spread file; errors name the file, the key, the value and what is allowed."""
    path = Path(path)
    data = read_toml(path, "spread file")
    source = str(path)
    if not data:
        raise ConfigError(f"{source}: empty spread file: it draws nothing; allowed: preset, injections and the "
                          "preset's sections with { sd_pct = P } or { sd = S } per field (see seeds/spread.toml)")
    preset = data.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{source}: preset = {preset!r} has the wrong type: expected a preset name or path")
    injections = _injection_tolerances(data.pop("injections", {}), source)
    sections = [f.name for f in fields(JointParams) if is_dataclass(get_type_hints(JointParams)[f.name])]
    for key in data:
        if key not in sections:
            raise ConfigError(f"{source}: {key} = {data[key]!r}: unknown key; allowed: preset, injections, "
                              f"{', '.join(sections)}")
    spread = Spread(source, preset, tuple(_parameter_tolerances(data, "", JointParams, source)), tuple(injections))
    _check_streams(spread)
    _check_against_preset(spread)
    return spread


def _check_streams(spread: Spread) -> None:
    """A group is drawn from one stream: its fields agree on ``independent``."""
    for g in set(spread.groups) & set(spread.independent_groups):
        paths = [t.path for t in (*spread.parameters, *spread.injections) if t.group == g]
        raise ConfigError(f"{spread.source}: group = {g!r} ({', '.join(paths)}): its fields disagree on independent; "
                          "allowed: the same value for every field of a group (one draw per group and joint)")


# --- drawing joints --------------------------------------------------------------------------------------------
def _value(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def _put(data: dict, path: str, value: Any) -> None:
    *head, last = path.split(".")
    for part in head:
        data = data[part]
    data[last] = value


def _drawn(nominal: Any, t: Tolerance, z: float) -> np.ndarray:
    base = np.asarray(nominal, dtype=float)
    return base * (1.0 + t.sd_pct / 100.0 * z) if t.sd_pct else base + t.sd * z


def group_key(group: str) -> int:
    """The spawn key of an independent group's stream: a stable hash of its name (CRC-32, the same on every run
    and platform, unlike Python's ``hash``)."""
    return zlib.crc32(group.encode())


def _normals(spread: Spread, n: int, seed: int, first: int = 0) -> tuple[np.ndarray, dict[str, int]]:
    """One standard normal per joint and group for joints first .. first + n - 1 (row j is joint first + j's
    whatever the chunk): the shared groups from one stream in the file's order (as before independent groups
    existed), each independent group from ``SeedSequence(seed, spawn_key=(group_key,))``."""
    shared, own = spread.groups, spread.independent_groups
    z = np.empty((n, len(shared) + len(own)))
    z[:, :len(shared)] = np.random.default_rng(seed).standard_normal((first + n, len(shared)))[first:]
    for i, g in enumerate(own):
        stream = np.random.SeedSequence(seed, spawn_key=(group_key(g),))
        z[:, len(shared) + i] = np.random.default_rng(stream).standard_normal(first + n)[first:]
    return z, {g: i for i, g in enumerate((*shared, *own))}


def draw(params: JointParams, spread: Spread, n: int, seed: int, first: int = 0
         ) -> list[tuple[JointParams, dict[str, float]]]:
    """``n`` joints: (parameter set, model injections) each, about ``params`` within ``spread``; reproducible by
    seed, and joint j is the same whatever ``n``. Values are clipped into each field's (and injection's) range.
    ``first``: the population index of the first joint drawn (a chunk of a batch: joints first .. first + n - 1)."""
    if not (isinstance(n, int) and n >= 1):
        raise ConfigError(f"population size n = {n!r}: must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"population seed = {seed!r}: must be an integer >= 0")
    if not (isinstance(first, int) and first >= 0):
        raise ConfigError(f"first joint = {first!r}: must be an integer >= 0")
    z, col = _normals(spread, n, seed, first)
    healthy_env = L.default_env(params)
    out = []
    for j in range(n):
        data = params_to_dict(params)
        for t in spread.parameters:
            v = np.clip(_drawn(_value(params, t.path), t, z[j, col[t.group]]), *_field_range(t.path))
            _put(data, t.path, v.tolist() if v.ndim else float(v))
        injections = {}
        for t in spread.injections:
            idx, _, lo, hi, _ = INJECTIONS[t.path]
            mean = healthy_env[idx] if t.mean is None else t.mean
            injections[t.path] = float(np.clip(_drawn(mean, t, z[j, col[t.group]]), lo, hi))
        try:
            joint = params_from_dict(data, f"{spread.source}: joint {first + j} of seed {seed}")
        except ConfigError as e:
            raise ConfigError(f"{e} (every drawn joint must pass the preset's rules: let fields that a rule binds "
                              "share a group)") from None
        out.append((joint, injections))
    return out
