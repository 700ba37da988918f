"""actuator: the joint's physics and control math (Numba kernels and their Python API). No I/O.

The names below are loaded on first use (PEP 562): ``import actuator.errors`` (every layer's error types) must not
compile or load the kernels, so that a command such as ``jointkit dbc check`` starts in a fraction of a second.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"ConfigError": "actuator.errors", "JointkitError": "actuator.errors", "SimulationError": "actuator.errors",
          "JointParams": "actuator.params", "load_params": "actuator.params", "load_preset": "actuator.params",
          "Injection": "actuator.simulation", "JointModel": "actuator.simulation", "Trace": "actuator.simulation",
          "simulate": "actuator.simulation", "simulate_batch": "actuator.simulation"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'actuator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
