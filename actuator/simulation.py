"""The Python API over the joint kernels: ``JointModel``, ``simulate``, ``simulate_batch``, ``Trace``.

This layer validates, allocates, draws the seeded noise, calls the compiled kernels and turns their
status codes and arrays into results or exceptions. It never steps the model from Python: each call
advances the joint through a whole input array in one compiled, nogil call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actuator.control.cascade import CONTROL_FIELDS, CONTROL_SOURCE, N_REF, run_closed_loop
from actuator.control.config import ControllerConfig, compile_controller, load_gains, new_controller_state
from actuator.control.reference import Reference, reference_rows
from actuator.errors import SimulationError
from actuator.model import layout as L
from actuator.model.joint import run_batch_parallel, run_batch_serial, run_joint, trace_rows
from actuator.model.sensors import prime_encoders
from actuator.params import JointParams, load_preset

# name -> (env index, width, allowed low, allowed high, description)
INJECTIONS: dict[str, tuple[int, int, float, float, str]] = {
    "encoder_dropout": (L.E_ENC_M_DROPOUT, 1, 0.0, 1.0, "0 or 1: the motor encoder stops updating"),
    "output_encoder_dropout": (L.E_ENC_O_DROPOUT, 1, 0.0, 1.0, "0 or 1: the output encoder stops updating"),
    "encoder_offset": (L.E_ENC_M_OFFSET, 1, -math.pi, math.pi, "motor encoder offset, rad"),
    "output_encoder_offset": (L.E_ENC_O_OFFSET, 1, -math.pi, math.pi, "output encoder offset, rad"),
    "ft_bias_step": (L.E_FT_BIAS_STEP, 6, -1e4, 1e4, "bias added to Fx Fy Fz Mx My Mz, N and N·m"),
    "external_wrench": (L.E_WRENCH, 6, -1e5, 1e5, "wrench on the tool in the sensor frame, N and N·m"),
    "ambient_c": (L.E_AMBIENT_C, 1, -50.0, 150.0, "ambient temperature, °C"),
    "bus_voltage_v": (L.E_BUS_V, 1, 0.0, 200.0, "DC bus voltage, V"),
    "friction_scale": (L.E_FRICTION_SCALE, 1, 0.0, 100.0, "factor on Coulomb, static and viscous friction"),
    "stiffness_scale": (L.E_STIFFNESS_SCALE, 1, 0.01, 100.0, "factor on the flexspline stiffness"),
    "resistance_scale": (L.E_RESISTANCE_SCALE, 1, 0.1, 10.0, "factor on the winding resistance"),
    "ft_noise_scale": (L.E_FT_NOISE_SCALE, 1, 0.0, 1000.0, "factor on the F/T sensor noise"),
}
_CONTROL_SOURCE = np.array(CONTROL_SOURCE, dtype=np.int64)


@dataclass(frozen=True)
class Injection:
    """A fault or environment change applied at ``at_s`` of a simulation."""

    at_s: float
    name: str
    value: float | Sequence[float]


def _as_params(params: JointParams | str | Path) -> JointParams:
    return params if isinstance(params, JointParams) else load_preset(params)


class JointModel:
    """One simulated joint: compiled parameters, state, environment and a seeded noise source."""

    def __init__(self, params: JointParams | str | Path, *, seed: int = 0, position_rad: float = 0.0) -> None:
        self.params = _as_params(params)
        self.p = L.compile_params(self.params)
        self.x = L.initial_state(self.params, position_rad)
        self.env = L.default_env(self.params)
        self.rng = np.random.default_rng(seed)
        self.controller: ControllerConfig | None = None
        prime_encoders(self.p, self.x, 0.0, 0.0)

    @property
    def dt_s(self) -> float:
        return float(self.p[L.P_DT])

    @property
    def faults(self) -> int:
        return int(self.x[L.X_FAULTS])

    def clear_faults(self) -> None:
        self.x[L.X_FAULTS] = 0.0

    def inject(self, name: str, value: float | Sequence[float]) -> None:
        """Apply a fault injection or environment change (see ``INJECTIONS``)."""
        if name not in INJECTIONS:
            raise SimulationError(f"unknown injection {name!r}: allowed {', '.join(INJECTIONS)}")
        idx, width, lo, hi, what = INJECTIONS[name]
        values = np.atleast_1d(np.asarray(value, dtype=float))
        if values.shape != (width,):
            raise SimulationError(f"injection {name} = {value!r}: expected {width} value(s) ({what})")
        if not np.all(np.isfinite(values)) or np.any(values < lo) or np.any(values > hi):
            raise SimulationError(f"injection {name} = {value!r} is out of range: allowed [{lo:g}, {hi:g}] ({what})")
        self.env[idx:idx + width] = values

    def noise(self, n_steps: int) -> np.ndarray:
        rows = n_steps // int(self.p[L.P_FT_DECIM]) + 2
        return self.rng.standard_normal((rows, L.N_NOISE))

    def run(self, u: np.ndarray, record_every: int = 1, ref: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Advance through ``u`` (n, 3: iq_cmd_a, id_cmd_a, external torque N·m); returns (rows, fault bits).

        With a controller attached (``attach``) ``ref`` (n, N_REF) is its reference and the q-axis
        current of ``u`` is added to the controller's as a disturbance.
        """
        u = _checked("inputs", u, L.N_INPUTS)
        self.x[L.X_FT_NOISE_IDX] = 0.0
        noise = self.noise(u.shape[0])
        if self.controller is None:
            out = np.empty((trace_rows(u.shape[0], record_every), L.N_TRACE))
            bits = run_joint(self.p, self.x, self.env, u, noise, L.TRACE_SOURCE, out, record_every)
            return out, int(bits)
        ref = _checked("reference", ref, N_REF)
        if ref.shape[0] != u.shape[0]:
            raise SimulationError(f"reference has {ref.shape[0]} rows, inputs {u.shape[0]}: they must match")
        out = np.empty((trace_rows(u.shape[0], record_every), L.N_TRACE + len(CONTROL_FIELDS)))
        bits = run_closed_loop(self.p, self.x, self.env, self.c, self.k, ref, u, noise, L.TRACE_SOURCE,
                               _CONTROL_SOURCE, out, record_every)
        return out, int(bits)

    def attach(self, controller: ControllerConfig) -> None:
        """Run under ``controller`` from now on (compiled for this joint; fresh controller state)."""
        self.controller = controller
        self.c = compile_controller(controller, self.params)
        self.k = new_controller_state()

    @property
    def fields(self) -> tuple[str, ...]:
        return L.TRACE_FIELDS if self.controller is None else L.TRACE_FIELDS + CONTROL_FIELDS


def _checked(what: str, a: np.ndarray | None, width: int) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != width:
        raise SimulationError(f"{what} have shape {a.shape}: expected (n_steps, {width})")
    if not np.all(np.isfinite(a)):
        raise SimulationError(f"{what} contain NaN or infinity")
    return a


class Trace:
    """A recorded run: named numpy columns in SI units (``trace.position_rad``, ``trace["t_s"]``).

    A closed-loop run adds the controller's columns (``actuator.control.cascade.CONTROL_FIELDS``).
    """

    def __init__(self, data: np.ndarray, meta: dict[str, Any] | None = None,
                 fields: Sequence[str] = L.TRACE_FIELDS) -> None:
        if data.ndim != 2 or data.shape[1] != len(fields):
            raise SimulationError(f"trace data has shape {data.shape}: expected (rows, {len(fields)})")
        self.data = data
        self.fields = tuple(fields)
        self.meta = meta or {}
        self._index = {name: i for i, name in enumerate(self.fields)}

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "current_a":
            return np.hypot(self["id_a"], self["iq_a"])
        try:
            return self.data[:, self._index[name]]
        except KeyError:
            raise KeyError(f"no trace field {name!r}: fields are {', '.join(self.fields)}") from None

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name in ("data", "fields", "meta"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(str(e)) from None

    def __len__(self) -> int:
        return self.data.shape[0]

    def summary(self) -> dict[str, Any]:
        bits = int(self.data[-1, self._index["faults"]])
        return {
            "duration_s": float(self.t_s[-1]),
            "final_position_rad": float(self.position_rad[-1]),
            "final_velocity_rad_s": float(self.velocity_rad_s[-1]),
            "peak_current_a": float(np.max(self.current_a)),
            "peak_transmitted_torque_nm": float(np.max(np.abs(self.transmitted_torque_nm))),
            "winding_temp_c": float(self.winding_temp_c[-1]),
            "housing_temp_c": float(self.housing_temp_c[-1]),
            "faults": L.fault_names(bits),
        }

def _per_step(value: float | np.ndarray | Sequence[float], n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise SimulationError(f"{what} has {arr.size} samples: expected a scalar or {n} (one per model step)")
    return arr


def _inputs(p: JointParams, n: int, torque_nm: Any, current_a: Any, external_torque_nm: Any) -> np.ndarray:
    if torque_nm is not None and current_a is not None:
        raise SimulationError("give either torque_nm or current_a, not both")
    u = np.zeros((n, L.N_INPUTS))
    if current_a is not None:
        u[:, L.U_IQ_CMD] = _per_step(current_a, n, "current_a")
    elif torque_nm is not None:
        # an output torque command through the ideal ratio: the open-loop drive knows Kt and N only
        u[:, L.U_IQ_CMD] = _per_step(torque_nm, n, "torque_nm") / (p.torque_constant_nm_per_a * p.reducer.ratio)
    u[:, L.U_EXT_TORQUE] = _per_step(external_torque_nm, n, "external_torque_nm")
    return u


MAX_SIMULATION_BYTES = 2 * 2**30  # one in-memory run: a tenth of these machines' memory, seconds to fill


def _steps(duration_s: float, dt_s: float, record_every: int) -> int:
    if not (isinstance(duration_s, int | float) and math.isfinite(duration_s) and duration_s > 0):
        raise SimulationError(f"duration_s = {duration_s!r}: must be a finite number > 0")
    if not (isinstance(record_every, int) and record_every >= 1):
        raise SimulationError(f"record_every = {record_every!r}: must be an integer >= 1")
    n = max(1, round(duration_s / dt_s))
    # inputs and references are held per model step and the trace per recorded row, all in memory at once
    per_step = 8 * (L.N_INPUTS + 3 + (L.N_TRACE + len(CONTROL_FIELDS)) / record_every)
    if n * per_step > MAX_SIMULATION_BYTES:
        longest = MAX_SIMULATION_BYTES / per_step * dt_s
        raise SimulationError(f"duration_s = {duration_s:g} needs {n * per_step / 2**30:.1f} GiB of inputs and "
                              f"trace at record_every = {record_every} ({n} model steps of {dt_s:g} s): allowed up "
                              f"to {longest:g} s ({MAX_SIMULATION_BYTES / 2**30:g} GiB); record fewer rows "
                              "(record_every) or run it in pieces")
    return n


def simulate(params: JointParams | str | Path, *, duration_s: float, torque_nm: Any = None,
             current_a: Any = None, external_torque_nm: Any = 0.0, injections: Sequence[Injection] = (),
             seed: int = 0, record_every: int = 1, position_rad: float = 0.0,
             controller: ControllerConfig | str | Path | None = None, reference: Reference | None = None) -> Trace:
    """Run one joint from rest and return its trace.

    Open loop: ``torque_nm`` (output torque through the ideal ratio) or ``current_a`` (q-axis current)
    is a scalar step at t = 0 or one value per model step. Closed loop: ``controller`` (a configuration
    or a gains file) follows ``reference`` (a Step, Chirp, Prbs, Trajectory, scalar or per-step array,
    relative to ``position_rad`` in the position-like modes); ``current_a`` is then a q-axis current
    disturbance added to the controller's output. ``injections`` change faults or the environment mid-run.
    """
    model = JointModel(params, seed=seed, position_rad=position_rad)
    n = _steps(duration_s, model.dt_s, record_every)
    ref = None
    if controller is not None:
        if torque_nm is not None:
            raise SimulationError("torque_nm is an open-loop input: with a controller give a reference")
        cfg = controller if isinstance(controller, ControllerConfig) else load_gains(controller)
        model.attach(cfg)
        ref = reference_rows(0.0 if reference is None else reference, n, model.dt_s, cfg.mode, position_rad)
    elif reference is not None:
        raise SimulationError("a reference needs a controller (controller=...)")
    u = _inputs(model.params, n, torque_nm, current_a, external_torque_nm)
    for inj in injections:
        if not (math.isfinite(inj.at_s) and 0.0 <= inj.at_s <= duration_s):
            raise SimulationError(f"injection {inj.name} at_s = {inj.at_s!r}: allowed [0, {duration_s:g}] s")
    # sorted by step only: two injections at one step keep their given order
    cuts = sorted(((round(inj.at_s / model.dt_s), inj) for inj in injections), key=lambda cut: cut[0])
    pieces, start = [], 0
    for k, inj in [*cuts, (n, None)]:
        if k > start:
            rows, _ = model.run(u[start:k], record_every, None if ref is None else ref[start:k])
            pieces.append(rows[:-1])
            start = k
        if inj is not None:
            model.inject(inj.name, inj.value)
    pieces.append(rows[-1:])
    meta = {"preset": model.params.name, "dt_s": model.dt_s, "seed": seed,
            "mode": None if controller is None else model.controller.mode}
    return Trace(np.concatenate(pieces), meta, model.fields)


def simulate_batch(params: Sequence[JointParams | str | Path], *, duration_s: float, torque_nm: Any = None,
                   current_a: Any = None, seed: int = 0, record_every: int = 1,
                   parallel: bool = True) -> list[Trace]:
    """Run many joints (parameter sets) open loop at once; joint j uses noise seed ``seed + j``.

    Every joint gets the same command (a scalar step, or one value per model step); all parameter sets
    must share one model step. With ``parallel`` the joints are spread over all cores (``prange``).
    """
    models = [JointModel(p, seed=seed + j) for j, p in enumerate(params)]
    if not models:
        raise SimulationError("simulate_batch needs at least one parameter set")
    dts = {m.dt_s for m in models}
    if len(dts) != 1:
        raise SimulationError(f"parameter sets have different model steps {sorted(dts)} s: use one current-loop rate")
    n = _steps(duration_s, models[0].dt_s, record_every)
    args = batch_arguments(models, [_inputs(m.params, n, torque_nm, current_a, 0.0) for m in models], record_every)
    (run_batch_parallel if parallel else run_batch_serial)(*args)
    out = args[6]
    return [Trace(out[j], {"preset": m.params.name, "dt_s": m.dt_s, "seed": seed + j})
            for j, m in enumerate(models)]


def batch_arguments(models: Sequence[JointModel], inputs: Sequence[np.ndarray], record_every: int) -> tuple:
    """The argument tuple of ``run_batch_*`` for these joints: stacked parameters, states, environments,
    inputs and fresh noise, the trace source map, preallocated traces, record_every and a status array."""
    n = inputs[0].shape[0]
    return (np.stack([m.p for m in models]), np.stack([m.x for m in models]), np.stack([m.env for m in models]),
            np.stack(inputs), np.stack([m.noise(n) for m in models]), L.TRACE_SOURCE,
            np.empty((len(models), trace_rows(n, record_every), L.N_TRACE)), record_every,
            np.zeros(len(models), dtype=np.int64))
