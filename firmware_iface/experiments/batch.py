"""The batch executor: the protocols of ``firmware_iface.experiments.protocols`` on many simulated joints at once,
through the closed-loop batch kernel (``run_closed_batch_parallel``: all cores), supervised by the firmware's own
supervisor (``actuator.control.supervisor``, n = the joints), minus the bus.

``run_batch`` does what the bus executor (``experiments.bus``) does to one joint over its bus: set-points evaluated
per joint at 1 kHz and held for 1 ms as a joint holds a CAN set-point; state and mode changes as ``JointClient``
sends them (enable = mode then closed loop, a mode change, disable), which the supervisor handles as the firmware
does (fresh integrators on entering closed loop, the output position held until a set-point comes, commands
clamped, the tracking check, faults, a diverged joint put back at rest); the fixture load per model step as an
external torque, let go per joint as the bus executor's fixture does (``Segment.release_rad_s``: such a segment runs
one tick per kernel call, each joint's velocity estimate, what its telemetry reports, checked before every tick,
until every running joint's fixture has let go). One row per 1 ms is recorded and turned into the ``Signals`` of the
bus executor, which the protocol's own ``analyze`` judges. Telemetry here is exact: no bus latency, no
sample-and-hold of slower messages, no quantisation of the frames (the position is still the output encoder's
reading). Beside it the rows hold the model's true output angle and speed, which no telemetry carries
(``true_position_rad``, ``true_velocity_rad_s``: the step's true figures).

The firmware's constants (the controller's torque per amp, the telemetry's Kt N) come from ``firmware`` when given:
a production firmware is flashed with the type's nominal values, not the unit's own, so a weak magnet shows as more
current for the same work, as on a real line. ``rig.population.population_eol`` passes the nominal preset.
"""

from __future__ import annotations

import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from actuator.analysis.tuning import default_controller
from actuator.control import cascade as C
from actuator.control import supervisor as S
from actuator.control.config import (
    ControllerConfig,
    compile_controller,
    load_gains,
    new_controller_state,
    resolved_limits,
)
from actuator.errors import CalibrationError, ConfigError
from actuator.model import layout as L
from actuator.model.sensors import prime_encoders
from actuator.params import JointParams
from actuator.simulation import JointModel
from firmware_iface.experiments.protocols import PROTOCOLS, RATE_HZ, Outcome, Segment, released

JOINT_STEPS_PER_CALL = 2_000_000  # per kernel call: bounds the per-step arrays (REF, U, NOISE: ~130 MB)
RECORD_BYTES = 256 * 2**20      # the 1 kHz record of one step, all joints of a group
NOISE_POOL_MIN = 2**16          # noise numbers per call from which they are drawn on threads
# recorded row: state indices (what telemetry reports, then the true output angle and speed, which no telemetry
# reports: the step's true figures), the F/T sensor's saturation flag, then the controller's velocity estimate (what
# telemetry reports)
_SOURCE = np.array([L.X_ENC_O, L.X_ENC_M, L.X_IQ, L.X_TW, *range(L.X_FT_MEAS, L.X_FT_MEAS + 6), L.X_THL, L.X_WL,
                    L.X_FT_SAT, L.X_TH], dtype=np.int64)
_CSOURCE = np.array([C.K_VEL], dtype=np.int64)
R_ENC_O, R_ENC_M, R_IQ, R_TW, R_FT, R_THL, R_WL, R_FT_SAT, R_TH, R_VEL = 0, 1, 2, 3, 4, 10, 11, 12, 13, 14
N_ROW = 15


# --- the batch ---------------------------------------------------------------------------------------------------
class BatchOutcomes(list):
    """``run_batch``'s result: a list (joint) of lists (step) of ``Outcome``, carrying also per joint the fault
    names that stopped it (``faults``, [] when healthy) and the index of the step it happened in (``fault_step``),
    and ``timing`` (seconds)."""

    faults: list[list[str]]
    fault_step: list[int | None]
    timing: dict[str, float]


class _Batch:
    """The stacked joints and their firmware's state (one mode for the whole batch, as all run one protocol)."""

    def __init__(self, params_list: list[JointParams], injections_list: list[dict[str, float]],
                 gains: ControllerConfig | list[ControllerConfig], firmware: JointParams | None, seed: int,
                 first: int = 0) -> None:
        n = len(params_list)
        # one gains set per joint (a unit's own calibration, e.g. its cogging compensation), or one for all
        per_joint = gains if isinstance(gains, list) else [gains] * n
        gains = per_joint[0]
        models = [JointModel(p) for p in params_list]
        for m, inj in zip(models, injections_list, strict=True):
            for name, value in inj.items():
                m.inject(name, value)
            # a unit's encoder offsets are there from power-up, not a jump at t = 0
            prime_encoders(m.p, m.x, m.env[L.E_ENC_M_OFFSET], m.env[L.E_ENC_O_OFFSET])
        dts = {m.dt_s for m in models}
        if len(dts) != 1:
            raise ConfigError(f"the joints have different model steps {sorted(dts)} s: one current-loop rate per batch")
        dt = dts.pop()
        self.spt = round(1.0 / (RATE_HZ * dt))
        if abs(self.spt * dt * RATE_HZ - 1.0) > 1e-9:
            raise ConfigError(f"model step {dt!r} s does not divide the rig's 1 ms tick")
        self.dt = dt
        fw = [firmware or p for p in params_list]
        self.P, self.X, self.ENV = (np.stack([getattr(m, a) for m in models]) for a in ("p", "x", "env"))
        self.C = np.stack([compile_controller(g, f) for g, f in zip(per_joint, fw, strict=True)])
        self.K = np.stack([new_controller_state() for _ in range(n)])
        self.kt_n = np.array([f.torque_constant_nm_per_a * f.reducer.ratio for f in fw])
        lims = [resolved_limits(gains, f) for f in fw]
        self.params_list = params_list
        # joint j's noise: child j of the seed, as SeedSequence(seed).spawn would give it, whatever the grouping
        self.rngs = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(first + j,))) for j in range(n)]
        self.ft_decim = int(self.P[:, L.P_FT_DECIM].min())
        self.unread = [np.empty((0, L.N_NOISE))] * n
        self.chunk_ticks = max(1, JOINT_STEPS_PER_CALL // (n * self.spt))
        steps = self.chunk_ticks * self.spt
        self._buffers: dict[str, np.ndarray] = {}
        self._buffer_sizes = {"ref": n * steps * C.N_REF, "u": n * steps * L.N_INPUTS,
                              "noise": n * (steps // self.ft_decim + 2) * L.N_NOISE}
        self.mode: str | None = None  # the protocol's mode: one for the whole batch, None for idle
        # the firmware's supervision, the virtual firmware's own rules over all the joints (powered up idle)
        self.sup = S.Supervisor(params_list, self.P, self.X, self.K, self.C, self.ENV, limits=lims,
                                gravity_ff_nm=gains.gravity_feedforward_nm, mode=gains.mode)
        self.faulted = np.zeros(n, dtype=bool)  # a joint that faulted is out of the run from then on
        self.fault_step: list[int | None] = [None] * n
        self.wrench_on = False
        self.new_step()

    def new_step(self) -> None:
        """A step starts: every joint's fixture follows the protocol's loads again."""
        self.release_t = np.full(self.n, np.nan)  # step time at which the joint's fixture let go
        self.release_load = np.zeros(self.n)
        self.apply_wrench(None)

    def apply_wrench(self, wrench: tuple[float, ...] | None) -> None:
        """The wrench fixture's load on every joint's tool (``Segment.wrench``, sensor frame; None: none), as
        ``bus.SimFixture`` applies it: the model's external wrench, which its F/T sensor reads and its joint feels."""
        if wrench is not None or self.wrench_on:
            self.ENV[:, L.E_WRENCH:L.E_WRENCH + 6] = wrench if wrench is not None else 0.0
        self.wrench_on = wrench is not None

    @property
    def n(self) -> int:
        return self.P.shape[0]

    def enter(self, seg: Segment) -> None:
        """The state and mode changes the bus executor sends on entering ``seg`` (JointClient.enable, set_mode,
        disable), to the joints still running."""
        live = ~self.faulted
        if seg.mode is None:
            if self.mode is not None:
                self.sup.set_state(live, S.IDLE)
        elif self.mode is None:
            self.sup.set_mode(live, seg.mode)
            self.sup.set_state(live, S.CLOSED_LOOP)
        elif seg.mode != self.mode:
            self.sup.set_mode(live, seg.mode)
        self.mode = seg.mode

    @property
    def faults(self) -> list[list[str]]:
        """Per joint the faults that stopped it ([] for a joint still running)."""
        return [S.fault_names(int(bits) & S.LATCHING) if faulted else []
                for bits, faulted in zip(self.sup.faults, self.faulted, strict=True)]

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous array of ``shape`` over a flat buffer kept for the batch (the kernel's per-step inputs are
        large: reused, they are not paged in again on every call)."""
        size = math.prod(shape)
        if self._buffers.get(name, np.empty(0)).size < size:
            self._buffers[name] = np.empty(max(size, self._buffer_sizes.get(name, 0)))
        return self._buffers[name][:size].reshape(shape)

    def noise(self, steps: int) -> np.ndarray:
        """F/T noise rows for a call of ``steps``: first the rows the last call drew but did not reach, then fresh
        ones, so that each joint reads its generator's stream in order however the run is cut into calls (joint j
        of a seed is the same joint in any batch)."""
        out = self.buffer("noise", (self.n, steps // self.ft_decim + 2, L.N_NOISE))

        def fill(j: int) -> None:
            k = self.unread[j].shape[0]
            out[j, :k] = self.unread[j]
            self.rngs[j].standard_normal(out=out[j, k:])
        if out.size < NOISE_POOL_MIN:  # a call of a few ticks (a watched segment): threads cost more than they save
            for j in range(self.n):
                fill(j)
            return out
        with ThreadPoolExecutor(numba.get_num_threads()) as pool:  # numpy's generators fill without the GIL
            list(pool.map(fill, range(self.n)))
        return out

    def advance(self, values: np.ndarray | None, loads: np.ndarray, rows: np.ndarray, step_index: int) -> None:
        """Run all joints through m ticks of 1 ms: the set-points ``values`` (n, m, N_REF) sent one per tick in the
        batch's mode (None: none sent, the joints hold their reference), with the fixture's ``loads`` per model step
        (m * spt, the same for all joints, or n, m * spt); the state at the start of each tick into ``rows``
        (n, m, N_ROW). The supervisor runs before and after, as the firmware's does around a chunk."""
        n, m = rows.shape[:2]
        sup = self.sup
        sup.before_chunk()
        ticks = np.repeat(sup.ref[:, None, :], m, axis=1)  # a joint sent nothing holds its reference
        if values is not None and self.mode is not None:
            ok, clamped = sup.command(~self.faulted, self.mode, values, self.X[:, L.X_TIME] + (m - 1) / RATE_HZ)
            ticks[ok] = clamped[ok]
        ref = self.buffer("ref", (n, m * self.spt, C.N_REF))
        ref.reshape(n, m, self.spt, C.N_REF)[:] = ticks[:, :, None, :]
        u = self.buffer("u", (n, m * self.spt, L.N_INPUTS))
        u[:, :, :L.U_EXT_TORQUE] = 0.0
        u[:, :, L.U_EXT_TORQUE] = loads
        out = np.empty((n, m + 1, N_ROW))
        status = np.zeros(n, dtype=np.int64)
        noise = self.noise(m * self.spt)
        self.X[:, L.X_FT_NOISE_IDX] = 0.0
        x_before = self.X.copy()
        C.run_closed_batch_parallel(self.P, self.X, self.ENV, self.C, self.K, ref, u, noise, _SOURCE, _CSOURCE, out,
                                    self.spt, status)
        self.unread = [noise[j, int(i):].copy() for j, i in enumerate(self.X[:, L.X_FT_NOISE_IDX])]
        rows[:] = out[:, :m]
        # the firmware checks tracking after every 1 ms: the largest error over the ticks
        error = np.abs(ticks[:, :, C.R_POS] - out[:, 1:, R_ENC_O]).max(axis=1)
        sup.after_chunk(status, x_before, x_before[:, L.X_TIME] + m / RATE_HZ, error)
        stopped = (sup.state == S.FAULT) & ~self.faulted
        self.faulted |= stopped
        for j in np.flatnonzero(stopped):
            self.fault_step[j] = step_index


# --- protocols on the batch ---------------------------------------------------------------------------------------
def _references(seg: Segment, t_in: np.ndarray, q0: np.ndarray) -> np.ndarray:
    """The segment's set-points (joints, ticks), each joint from its own start position ``q0``. The reference is
    called with all the q0 at once (the protocols' references are numpy-friendly), else joint by joint."""
    out = np.empty((q0.size, t_in.size))
    if q0.size > 1:
        try:
            for i, t in enumerate(t_in):
                out[:, i] = seg.reference(float(t), q0)
            return out
        except (TypeError, ValueError):
            pass
    for j, q in enumerate(q0):
        out[j] = [seg.reference(float(t), float(q)) for t in t_in]
    return out


def _loads(seg: Segment, t_in: np.ndarray, spt: int, dt: float) -> np.ndarray:
    """The fixture's load at every model step of the ticks ``t_in``."""
    if not callable(seg.load_nm):
        return np.full(t_in.size * spt, float(seg.load_nm))
    ts = (t_in[:, None] + dt * np.arange(spt)).ravel()
    return np.fromiter((seg.load_nm(float(t)) for t in ts), dtype=float, count=ts.size)


def _run_segment(b: _Batch, seg: Segment, t_step: np.ndarray, t_in: np.ndarray, rows: np.ndarray,
                 reference: np.ndarray, load: np.ndarray, step_index: int) -> None:
    """Ticks at ``t_step`` (seconds into the step) = ``t_in`` (into the segment); ``load`` (joints, ticks)."""
    b.enter(seg)
    b.apply_wrench(seg.wrench)
    sends = seg.mode is not None and seg.reference is not None
    refs = _references(seg, t_in, b.X[:, L.X_ENC_O].copy()) if sends else None
    if refs is not None:
        reference[:] = refs
    profile = _loads(seg, t_in, b.spt, b.dt)
    t_model = (t_step[:, None] + b.dt * np.arange(b.spt)).ravel()  # step time of every model step
    col = {"position": C.R_POS, "velocity": C.R_VEL}.get(seg.mode or "", C.R_TORQUE)  # the bus executor's set-point
    a = 0
    while a < t_in.size:
        e = min(a + b.chunk_ticks, t_in.size)
        if seg.release_rad_s is not None:
            holding = np.isnan(b.release_t) & ~b.faulted
            if holding.any():  # the bus executor's check before each tick, on the velocity the telemetry would report
                moving = holding & (np.abs(b.K[:, C.K_VEL]) > seg.release_rad_s)
                b.release_t[moving], b.release_load[moving] = t_step[a], profile[a * b.spt]
                e = a + 1 if (holding & ~moving).any() else e
        loads = profile[a * b.spt:e * b.spt]  # one profile for all joints, unless a fixture has let go
        let_go = np.flatnonzero(np.isfinite(b.release_t))
        if let_go.size:
            loads = np.repeat(loads[None], b.n, axis=0)
            loads[let_go] = released(b.release_load[let_go, None],
                                     t_model[None, a * b.spt:e * b.spt] - b.release_t[let_go, None])
        load[:, a:e] = loads[..., ::b.spt]
        values = None
        if refs is not None:  # the set-point in the mode's field, the feedforwards 0 (JointClient.setpoint)
            values = np.zeros((b.n, e - a, C.N_REF))
            values[:, :, col] = refs[:, a:e]
        b.advance(values, loads, rows[:, a:e], step_index)
        a = e


@dataclass
class _Recorded:
    segments: list[Segment]
    t_s: np.ndarray
    segment: np.ndarray
    rows: np.ndarray        # (joints, ticks, N_ROW)
    reference: np.ndarray   # (joints, ticks)
    load: np.ndarray        # (joints, ticks): a fixture that lets go does so per joint


def _run_step(b: _Batch, index: int, segs: list[Segment]) -> _Recorded:
    """The 1 kHz walk of the bus executor: tick k at k ms, in the segment whose span holds it (the last at the end)."""
    ends = np.cumsum([s.duration_s for s in segs])
    n_ticks = math.ceil(ends[-1] * RATE_HZ) + 1
    ts = np.arange(n_ticks) / RATE_HZ
    seg_of = np.minimum(np.searchsorted(ends, ts, side="right"), len(segs) - 1)
    rec = _Recorded(segs, ts, seg_of, np.empty((b.n, n_ticks, N_ROW)), np.full((b.n, n_ticks), np.nan),
                    np.zeros((b.n, n_ticks)))
    cuts = [0, *(np.flatnonzero(np.diff(seg_of)) + 1), n_ticks]
    b.new_step()
    for k0, k1 in itertools.pairwise(cuts):
        i = int(seg_of[k0])
        seg = segs[i]
        _run_segment(b, seg, ts[k0:k1], ts[k0:k1] - (ends[i] - seg.duration_s), rec.rows[:, k0:k1],
                     rec.reference[:, k0:k1], rec.load[:, k0:k1], index)
    b.apply_wrench(None)
    return rec


def _signals(rec: _Recorded, j: int, kt_n: float) -> dict[str, np.ndarray]:
    """Joint j's rows as the bus executor's Signals (same names, units, shapes)."""
    r = rec.rows[j]
    return {"t_s": rec.t_s.copy(), "segment": rec.segment.copy(), "reference": rec.reference[j].copy(),
            "load_nm": rec.load[j].copy(), "position_rad": r[:, R_ENC_O].copy(), "velocity_rad_s": r[:, R_VEL].copy(),
            "torque_nm": r[:, R_IQ] * kt_n, "iq_a": r[:, R_IQ].copy(), "winding_temp_c": r[:, R_TW].copy(),
            "force_n": r[:, R_FT:R_FT + 3].copy(), "moment_nm": r[:, R_FT + 3:R_FT + 6].copy(),
            "motor_encoder_rad": r[:, R_ENC_M].copy(), "output_encoder_rad": r[:, R_ENC_O].copy(),
            "true_position_rad": r[:, R_THL].copy(), "true_velocity_rad_s": r[:, R_WL].copy(),
            "ft_saturated": r[:, R_FT_SAT].copy(), "housing_temp_c": r[:, R_TH].copy()}


def _nan_like(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: [math.nan] * len(v) if isinstance(v, list | tuple) else math.nan for k, v in figures.items()}


def _analyze(b: _Batch, rec: _Recorded, name: str, cfg: dict, panels: bool) -> list[Outcome]:
    """The protocol's own analysis for every joint still running; NaN figures (same names) for the faulted."""
    proto = PROTOCOLS[name]
    out: list[Outcome | None] = [None] * b.n
    for j in np.flatnonzero(~b.faulted):
        try:
            o = proto.analyze(_signals(rec, j, b.kt_n[j]), rec.segments, cfg)
        except CalibrationError:  # this joint refused its calibration: NaN figures, so its checks fail
            continue
        out[j] = o if panels else Outcome(o.figures)
    template = next((o.figures for o in out if o is not None), None)
    if template is None:  # every joint faulted: the names from what joint 0 recorded, if it can be analysed
        try:
            template = proto.analyze(_signals(rec, 0, b.kt_n[0]), rec.segments, cfg).figures
        except Exception:  # a faulted joint's record may be anything: its figures are NaN anyway
            template = {}
    return [o if o is not None else Outcome(_nan_like(template)) for o in out]


def _controller(gains: ControllerConfig | str | Path | None, params: JointParams) -> ControllerConfig:
    if isinstance(gains, list):
        if not gains or not all(isinstance(g, ControllerConfig) for g in gains):
            raise ConfigError("gains: a list of gains needs one ControllerConfig per joint")
        return gains
    if gains is None:
        return default_controller(params)
    return gains if isinstance(gains, ControllerConfig) else load_gains(gains)


def _check_steps(steps: list[tuple[str, dict]]) -> None:
    for name, cfg in steps:
        if name not in PROTOCOLS:
            raise ConfigError(f"step {name!r} has no protocol: allowed {', '.join(PROTOCOLS)}")
        if not isinstance(cfg, dict):
            raise ConfigError(f"step {name!r}: cfg = {cfg!r} has the wrong type: expected a dict")


def _run_group(b: _Batch, steps: list[tuple[str, dict]], segments: list[list[Segment]], panels: bool,
               timing: dict[str, float]) -> list[list[Outcome]]:
    out: list[list[Outcome]] = [[] for _ in range(b.n)]
    for index, ((name, cfg), segs) in enumerate(zip(steps, segments, strict=True)):
        t1 = time.perf_counter()
        rec = _run_step(b, index, segs)
        t2 = time.perf_counter()
        for j, outcome in enumerate(_analyze(b, rec, name, cfg, panels)):
            out[j].append(outcome)
        timing["simulate_s"] += t2 - t1
        timing["analyze_s"] += time.perf_counter() - t2
    return out


def run_batch(params_list: list[JointParams], injections_list: list[dict[str, float]], steps: list[tuple[str, dict]],
              gains: ControllerConfig | str | Path | list[ControllerConfig] | None = None, seed: int = 0, *,
              firmware: JointParams | None = None, panels: bool = True, first: int = 0) -> BatchOutcomes:
    """Run the protocol ``steps`` (name, cfg) in order on every joint at once, the state carried from one step to
    the next; ``result[joint][step]`` is the protocol's Outcome. A joint whose model (or tracking check) faults gets
    NaN figures from that step on (``result.faults``, ``result.fault_step``). ``gains``: the firmware's gains
    (default: the preset's), or a list of one per joint (mode, limits and gravity feed-forward of the
    first); ``firmware``: the parameters it is configured with (default: each joint's own);
    ``panels=False`` drops the plots (and the recorded arrays they hold) to keep a large batch small; ``first``: the
    population index of ``params_list[0]`` (a chunk of a larger batch: joint ``first + j`` draws its noise from child
    ``first + j`` of the seed, so a joint's figures do not depend on how the population is cut)."""
    t0 = time.perf_counter()
    _check_steps(steps)
    n = len(params_list)
    if not n or n != len(injections_list):
        raise ConfigError(f"run_batch needs one injections dict per joint: {n} parameter sets, "
                          f"{len(injections_list)} injection dicts")
    config = _controller(gains, firmware or params_list[0])
    if isinstance(config, list) and len(config) != n:
        raise ConfigError(f"gains: {len(config)} gains sets for {n} joints: one per joint")
    segments = [PROTOCOLS[name].segments(cfg) for name, cfg in steps]
    ticks = max(math.ceil(sum(s.duration_s for s in segs) * RATE_HZ) + 1 for segs in segments)
    # the 1 kHz record of a step is held for all joints of a group: bound it (a joint is the same in any group)
    group = max(1, RECORD_BYTES // (ticks * (N_ROW + 2) * 8))
    result, timing = BatchOutcomes(), {"setup_s": 0.0, "simulate_s": 0.0, "analyze_s": 0.0}
    result.faults, result.fault_step = [], []
    for start in range(0, n, group):
        t1 = time.perf_counter()
        cfg = config[start:start + group] if isinstance(config, list) else config
        b = _Batch(list(params_list[start:start + group]), list(injections_list[start:start + group]), cfg,
                   firmware, seed, first + start)
        timing["setup_s"] += time.perf_counter() - t1
        result += _run_group(b, steps, segments, panels, timing)
        result.faults += b.faults
        result.fault_step += b.fault_step
    joint_time = sum(math.ceil(sum(s.duration_s for s in segs) * RATE_HZ) + 1 for segs in segments) / RATE_HZ
    timing.update(joint_time_s=joint_time, total_s=time.perf_counter() - t0, joints=n, group=min(group, n),
                  threads=numba.get_num_threads())
    result.timing = timing
    return result
