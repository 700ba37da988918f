"""actuator: the joint's physics and control math (Numba kernels and their Python API). No I/O."""

from actuator.errors import ConfigError, JointkitError, SimulationError
from actuator.params import JointParams, load_params, load_preset
from actuator.simulation import Injection, JointModel, Trace, simulate, simulate_batch

__all__ = [
    "ConfigError",
    "Injection",
    "JointModel",
    "JointParams",
    "JointkitError",
    "SimulationError",
    "Trace",
    "load_params",
    "load_preset",
    "simulate",
    "simulate_batch",
]
