"""Parameter sweeps of a joint type: how the yield of a production batch moves when a parameter of the type moves.

This module owns
* ``Vary`` and ``parse_vary``: what ``--vary NAME=SPEC`` means. NAME is a dotted field of the preset
  (``reducer.k1_nm_per_rad``, as in presets and ``seeds/spread.toml``), several joined by ``+`` that move together,
  or a group of the spread file (``stiffness``: every field drawn with that group, so a curve keeps its shape and the
  preset's rules, e.g. hysteresis stiffness <= K1, keep holding). SPEC is ``A..B:N``, N factors from A to B
  (evenly spaced) on the preset's values, or ``V1,V2,...``, absolute values in the field's unit (one field only);
* ``varied``: the preset with one point of a ``Vary`` applied, validated by the preset's own rules.

The joints of every point are drawn about the varied preset by the same seed (joint j has the same standard normals
at every point: common random numbers, so the curve shows the parameter, not the draw), and the firmware stays
configured for the type's nominal values, as a line's firmware is: a sweep asks "what if the parts move", not "what
if the design moves". Each point is one population through ``rig.population.run_population`` (this machine or Dask).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, get_type_hints

import numpy as np

from actuator.errors import ConfigError
from actuator.params import JointParams, params_from_dict, params_to_dict
from firmware_iface.rig.spread import Spread, _field_range, _put, _value

MAX_POINTS = 1000
_RANGE = re.compile(r"^\s*([^.:\s][^:]*?)\s*\.\.\s*([^:]+?)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Vary:
    """One varied quantity: its text, the fields it moves, and per point the factor (relative) or the value."""

    text: str
    name: str
    paths: tuple[str, ...]
    relative: bool
    points: tuple[float, ...]   # factors on the preset's values (relative) or values in the field's unit


def _is_numeric_field(path: str) -> bool:
    cls: Any = JointParams
    *head, last = path.split(".")
    for part in head:
        hints = get_type_hints(cls)
        if part not in hints or not is_dataclass(hints[part]):
            return False
        cls = hints[part]
    if not is_dataclass(cls) or last not in {f.name for f in fields(cls)}:
        return False
    hint = get_type_hints(cls)[last]
    return hint is float or str(hint).startswith("tuple[float")


def _paths(name: str, spread: Spread | None, text: str) -> tuple[str, ...]:
    if spread is not None and name in spread.groups and "." not in name:
        paths = tuple(t.path for t in spread.parameters if t.group == name)
        if not paths:
            raise ConfigError(f"--vary {text!r}: group {name!r} of {spread.source} holds only injections; allowed: a "
                              "group of preset fields")
        return paths
    paths = tuple(p.strip() for p in name.split("+"))
    for p in paths:
        if not _is_numeric_field(p):
            groups = ", ".join(spread.groups) if spread is not None else "none"
            raise ConfigError(f"--vary {text!r}: {p!r} is not a numeric field of a preset; allowed: a dotted field "
                              f"such as reducer.k1_nm_per_rad or motor.flux_linkage_wb (several joined by +), or a "
                              f"group of the spread file ({groups})")
    return paths


def _number(token: str, text: str) -> float:
    try:
        v = float(token)
    except ValueError:
        raise ConfigError(f"--vary {text!r}: {token.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(f"--vary {text!r}: {token.strip()!r} is not allowed: a finite number")
    return v


def parse_vary(text: str, spread: Spread | None = None) -> Vary:
    """``NAME=A..B:N`` (N factors from A to B on the preset's values) or ``NAME=V1,V2,...`` (absolute values of one
    field); a ConfigError naming the option, the part and what is allowed."""
    name, eq, spec = text.partition("=")
    name = name.strip()
    if not eq or not name or not spec.strip():
        raise ConfigError(f"--vary {text!r}: allowed NAME=A..B:N (N factors from A to B on the preset's value) or "
                          "NAME=V1,V2,... (absolute values), e.g. reducer.k1_nm_per_rad=0.8..1.2:9")
    paths = _paths(name, spread, text)
    m = _RANGE.match(spec)
    if m:
        a, b, n = _number(m[1], text), _number(m[2], text), int(m[3])
        if not 1 <= n <= MAX_POINTS or (n == 1 and a != b):
            raise ConfigError(f"--vary {text!r}: {n} points is not allowed: 2..{MAX_POINTS} (1 when A = B)")
        if a <= 0 or b <= 0:
            raise ConfigError(f"--vary {text!r}: factors {a:g}..{b:g} are not allowed: factors on the preset's "
                              "value must be > 0 (give absolute values as V1,V2,... for anything else)")
        # 12 digits: 0.9, not linspace's 0.8999999999999999, in the table and on the preset
        return Vary(text, name, paths, True, tuple(round(float(v), 12) for v in np.linspace(a, b, n)))
    if ".." in spec:
        raise ConfigError(f"--vary {text!r}: range {spec!r} is not allowed: A..B:N with N the number of points")
    if len(paths) > 1:
        raise ConfigError(f"--vary {text!r}: absolute values move one field, {name!r} names {len(paths)}: give "
                          "factors (A..B:N) to move them together")
    values = tuple(_number(v, text) for v in spec.split(","))
    if len(values) > MAX_POINTS:
        raise ConfigError(f"--vary {text!r}: {len(values)} values: allowed at most {MAX_POINTS}")
    return Vary(text, name, paths, False, values)


def varied(params: JointParams, vary: Vary, point: float) -> JointParams:
    """``params`` with ``vary``'s fields at ``point`` (a factor on each, or the value), checked by the preset's
    rules; a ConfigError naming the option, the field, the value and what is allowed."""
    data = params_to_dict(params)
    for path in vary.paths:
        base = np.asarray(_value(params, path), dtype=float)
        value = base * point if vary.relative else np.full_like(base, point)
        lo, hi = _field_range(path)
        if np.any(value < lo) or np.any(value > hi):
            raise ConfigError(f"--vary {vary.text!r}: {path} = {value.tolist()!r} at {_point_text(vary, point)} is "
                              f"out of range: allowed [{lo:g}, {hi:g}]")
        _put(data, path, value.tolist() if value.ndim else float(value))
    try:
        return params_from_dict(data, f"--vary {vary.text!r} at {_point_text(vary, point)}")
    except ConfigError as e:
        raise ConfigError(f"{e} (fields a preset rule binds must move together: join them with +, or vary a group "
                          "of the spread file)") from None


def _point_text(vary: Vary, point: float) -> str:
    return f"factor {point:g}" if vary.relative else f"value {point:g}"


def value_of(params: JointParams, vary: Vary, point: float) -> float:
    """The first field's value at ``point`` (its first entry for a vector), in its unit: the table's column."""
    base = np.ravel(np.asarray(_value(params, vary.paths[0]), dtype=float))[0]
    return float(base * point) if vary.relative else float(point)
