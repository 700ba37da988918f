"""The building blocks every protocol is made of (``experiments.protocols``, ``experiments.friction_calibration``):
the ``Segment`` an executor runs, the ``Outcome`` an analysis returns, the set-point shapes and the sample selection
by tag. Kept apart from the protocols' table so that a protocol defined in its own module can use them without an
import cycle (the table imports that module to register it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actuator.analysis.frequency import FrequencyResponse
from actuator.errors import ConfigError
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.panels import Panel

RATE_HZ = 1000.0
# a fixture that lets go (Segment.release_rad_s) takes its load to 0 over this time: a load motor's torque ramp,
# quick enough that a back-driven idle knee stops within 0.01 rad of where it started to move (test_population)
RELEASE_S = 0.1
Signals = dict[str, np.ndarray]
Reference = Callable[[float, float], float]  # (seconds into the segment, position at its start) -> set-point


@dataclass(frozen=True)
class Segment:
    duration_s: float
    mode: str | None                       # control mode; None: drive idle (no current)
    reference: Reference | None = None     # set-point of the mode (rad, rad/s or N·m)
    load_nm: Callable[[float], float] | float = 0.0  # fixture torque about the joint axis, seconds into the segment
    tag: str = ""                          # the analysis picks its samples by tag
    # the fixture lets go once the output moves faster than this (|velocity| as the joint reports it): from that
    # tick the load falls from its value then to 0 over RELEASE_S and stays 0 for the rest of the step, whatever
    # the later segments' loads. The executor watches the telemetry (bus) or the joints' state (batch, in-process)
    release_rad_s: float | None = None
    # a wrench fixture's known load on the tool, in the sensor frame (Fx Fy Fz N, Mx My Mz N·m), held over the segment
    # on top of ``load_nm`` (None: none): masses hung and forces applied at known lever arms, as a sensor's
    # calibration rig applies them (``experiments.ft_crosstalk``). What of it turns the joint (Mz + d Fy) the joint's
    # own loop holds
    wrench: tuple[float, ...] | None = None


@dataclass
class Outcome:
    figures: dict[str, Any]
    panels: list[Panel] = field(default_factory=list)
    response: FrequencyResponse | None = None  # a frequency test's estimate, for a Bode plot or a CSV
    fit: Any = None  # a fitted model with its uncertainties (identify: ``actuator.analysis.identify.RigidBodyId``)
    # a calibration's certificates, unjudged (``experiments.certificate``): the rig judges them by the step's limits
    certificates: list[Certificate] = field(default_factory=list)


def hold(q: float) -> Reference:
    return lambda t, q0: q


def move_to(q1: float, duration_s: float) -> Reference:
    """A cosine ramp from wherever the segment starts to ``q1``."""
    return lambda t, q0: q0 + (q1 - q0) * 0.5 * (1.0 - math.cos(math.pi * min(t / duration_s, 1.0)))


def ramp(v0: float, v1: float, duration_s: float) -> Reference:
    return lambda t, q0: v0 + (v1 - v0) * min(t / duration_s, 1.0)


def go_home(home_rad: float, move_s: float = 0.6, settle_s: float = 0.3, mode: str = "position") -> list[Segment]:
    return [Segment(move_s, mode, move_to(home_rad, move_s)), Segment(settle_s, mode, hold(home_rad))]


def tagged(s: Signals, segments: list[Segment], tag: str) -> np.ndarray:
    idx = [i for i, seg in enumerate(segments) if seg.tag == tag]
    return np.isin(s["segment"], idx)


def mean_or_nan(a: np.ndarray) -> float:
    return float(np.mean(a)) if a.size else math.nan


def check_at_least(**values: tuple[float, float]) -> None:
    """A protocol configuration's numbers, each ``name=(value, lowest allowed)``: ``ConfigError`` naming the first
    that is not a finite number at least its lowest."""
    for name, (value, lo) in values.items():
        if not (math.isfinite(value) and value >= lo):
            raise ConfigError(f"{name} = {value!r} is out of range: a finite number >= {lo:g}")
