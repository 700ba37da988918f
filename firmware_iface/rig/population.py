"""A production batch in simulation: many joints of one type, each built within its manufacturing tolerances, put
through the rig's measuring steps at once (``jointkit run --population N``), on this machine or on a Dask cluster.

This module owns
* ``BatchSpec`` and ``run_chunk``: joints ``first .. first + count - 1`` of a population drawn within the spread
  (``firmware_iface.rig.spread``) and run through the steps by the batch executor
  (``firmware_iface.experiments.batch.run_batch``). Joint j's draw and noise depend on j and the seed only, so a
  population cut into chunks gives the same figures, bit for bit, as one chunk;
* ``run_population``: the chunks on this machine (one chunk: the local run) or on a Dask cluster (``cluster``: a
  local one of K worker processes, or an existing scheduler), gathered in population order;
* ``population_eol``: the same per joint with what was drawn, for studies in Python.
Limits and verdicts are the caller's.

Dask is optional (imported only when a cluster is asked for). Each worker process compiles the Numba kernels on
its first chunk unless their cache (``__pycache__`` beside the sources, shared by processes of one checkout) is
warm: ~15 s per worker on a cold cache; ``warm`` runs a tiny batch on every worker first.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actuator.errors import ConfigError
from actuator.params import JointParams, load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.rig.spread import Spread, _value, draw, load_spread

MAX_CHUNK = 250          # joints per chunk by default at most: a chunk's 1 kHz record is bounded by the batch anyway
CHUNKS_PER_WORKER = 3    # default chunks per worker: a slow worker (a busy machine) delays the gather by a third
CONNECT_TIMEOUT_S = 10.0  # a scheduler that has not answered by then is reported as unreachable


# --- chunks of a population ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSpec:
    """A population: ``n`` joints drawn about ``params`` within ``spread`` by ``seed``, each with the model
    injections ``injections`` on top of its drawn ones, through the protocol ``steps`` (name, cfg), with the
    firmware configured for ``firmware`` (the type's nominal; default ``params``). Picklable: sent to workers."""

    params: JointParams
    spread: Spread
    steps: tuple[tuple[str, dict], ...]
    n: int
    seed: int = 0
    firmware: JointParams | None = None
    injections: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        # the units as they reach these steps: what a step they do not run calibrates is calibrated (spread.reaching)
        object.__setattr__(self, "spread", self.spread.reaching(name for name, _ in self.steps))


@dataclass
class ChunkResult:
    """Joints ``first .. first + len(figures) - 1``: per joint the figures of each step, the faults that stopped it
    and the index of the step they happened in; the batch's timing (seconds)."""

    first: int
    figures: list[list[dict[str, Any]]]
    faults: list[list[str]]
    fault_step: list[int | None]
    timing: dict[str, float] = field(default_factory=dict)


def run_chunk(spec: BatchSpec, first: int, count: int, threads: int | None = None) -> ChunkResult:
    """Joints ``first .. first + count - 1`` of ``spec``'s population. ``threads``: Numba threads for the batch
    kernel (a Dask worker's task: 1, its thread is one core; None: all cores, the local run)."""
    drawn = draw(spec.params, spec.spread, count, spec.seed, first)
    extra = dict(spec.injections)
    cpu0 = time.process_time()
    with _numba_threads(threads):
        batch = run_batch([p for p, _ in drawn], [{**inj, **extra} for _, inj in drawn], list(spec.steps),
                          seed=spec.seed, firmware=spec.firmware or spec.params, panels=False, first=first)
    # the CPU the chunk's process got (all its threads): beside the batch's wall time it tells a busy machine's
    # share of a core from the batch's own cost
    timing = {**batch.timing, "cpu_s": time.process_time() - cpu0}
    return ChunkResult(first, [[o.figures for o in joint] for joint in batch], batch.faults, batch.fault_step, timing)


@contextlib.contextmanager
def _numba_threads(threads: int | None) -> Iterator[None]:
    import numba

    if threads is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(first, count) of each chunk of ``size`` joints (the last one shorter)."""
    if not (isinstance(size, int) and size >= 1):
        raise ConfigError(f"chunk size {size!r}: allowed an integer >= 1 (joints per chunk)")
    return [(first, min(size, n - first)) for first in range(0, n, size)]


def default_chunk(n: int, workers: int) -> int:
    """About CHUNKS_PER_WORKER chunks per worker (load balance), at most MAX_CHUNK joints (a batch runs its joints
    at once: larger chunks share the per-tick Python work of the batch better, smaller ones balance better)."""
    return max(1, min(MAX_CHUNK, math.ceil(n / (CHUNKS_PER_WORKER * max(1, workers)))))


@dataclass
class PopulationResult:
    """The gathered chunks in population order; ``timing`` sums the chunks' batch timings (worker seconds) and adds
    the wall time, the chunks and the workers."""

    figures: list[list[dict[str, Any]]]
    faults: list[list[str]]
    fault_step: list[int | None]
    timing: dict[str, Any]


def _gather(parts: list[ChunkResult], wall_s: float, workers: int) -> PopulationResult:
    parts = sorted(parts, key=lambda c: c.first)
    timing: dict[str, Any] = {k: sum(c.timing.get(k, 0.0) for c in parts)
                              for k in ("setup_s", "simulate_s", "analyze_s", "cpu_s")}
    timing.update(joint_time_s=parts[0].timing.get("joint_time_s"), joints=sum(len(c.figures) for c in parts),
                  chunks=len(parts), workers=workers, batch_wall_s=wall_s)
    return PopulationResult([f for c in parts for f in c.figures], [f for c in parts for f in c.faults],
                            [s for c in parts for s in c.fault_step], timing)


def run_population(spec: BatchSpec, client: Any = None, chunk: int | None = None,
                   progress: Callable[[int], None] | None = None) -> PopulationResult:
    """``spec``'s population: with no ``client`` one chunk on this machine (all cores); with a Dask ``client`` the
    chunks (``chunk`` joints each, default ``default_chunk``) on its workers, one Numba thread a task, gathered in
    population order. ``progress(joints)`` is called as chunks finish. The figures are the same either way."""
    t0 = time.perf_counter()
    if client is None:
        if chunk is not None:
            raise ConfigError(f"chunk size {chunk}: only for a Dask cluster (--workers or --scheduler); the local "
                              "run is one chunk")
        parts = [run_chunk(spec, 0, spec.n)]
        if progress:
            progress(spec.n)
        return _gather(parts, time.perf_counter() - t0, 0)
    from distributed import as_completed

    workers = len(client.scheduler_info().get("workers", {}))
    cuts = chunks(spec.n, chunk or default_chunk(spec.n, workers))
    scattered = client.scatter(spec, broadcast=True)  # sent once to every worker, not once per chunk
    futures = [client.submit(run_chunk, scattered, first, count, 1, pure=False) for first, count in cuts]
    parts = []
    for fut in as_completed(futures, loop=client.loop):
        part = fut.result()
        parts.append(part)
        if progress:
            progress(len(part.figures))
    return _gather(parts, time.perf_counter() - t0, workers)


# --- Dask clusters ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def cluster(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: on a local cluster of ``workers`` processes (one thread each, bound to 127.0.0.1), or on the
    scheduler at ``scheduler`` (``tcp://HOST:PORT``); None when neither is given (the local run). An unreachable
    scheduler is a ConfigError naming its address."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise ConfigError(f"--workers {workers} and --scheduler {scheduler}: give one (a local cluster of K workers, "
                          "or an existing cluster's scheduler)")
    if workers is not None and not (isinstance(workers, int) and 1 <= workers <= 512):
        raise ConfigError(f"--workers {workers!r}: allowed 1..512 worker processes")
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:  # an install without the dependency
        raise ConfigError(f"a Dask cluster needs dask[distributed] (pip install 'dask[distributed]'): {e}") from e
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise ConfigError(f"--scheduler {scheduler}: no Dask scheduler answered there within "
                              f"{CONNECT_TIMEOUT_S:g} s ({type(e).__name__}: {e}); allowed: the address of a running "
                              "scheduler, tcp://HOST:PORT") from e
        with client:
            yield client
        return
    # one Numba thread per worker (its one Dask thread is a core); every server on 127.0.0.1, the scheduler's HTTP
    # server (health, metrics; a dashboard with bokeh) on a free port rather than 8787, which another may hold
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env={"NUMBA_NUM_THREADS": "1"},
                      silence_logs=logging.ERROR) as local, \
            Client(local, set_as_default=False) as client:
        yield client


def warm(client: Any, spec: BatchSpec) -> None:
    """Load (or compile, on a cold cache) the kernels in every worker: one joint through ``spec``'s steps, shortened
    to its first step, on each, so that a timed run measures the batch, not the compiler."""
    tiny = BatchSpec(spec.params, spec.spread, spec.steps[:1], 1, spec.seed, spec.firmware, spec.injections)
    client.run(run_chunk, tiny, 0, 1, 1)


# --- the population EOL -----------------------------------------------------------------------------------------
def _step_keys(steps: list[tuple[str, dict]]) -> list[str]:
    """Step names, a repeated one numbered (``step``, ``step#2``)."""
    seen: dict[str, int] = {}
    keys = []
    for name, _ in steps:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def population_eol(steps: list[tuple[str, dict]], n: int, spread: Spread | str | Path,
                   params: JointParams | str | None = None, seed: int = 0, client: Any = None) -> dict[str, Any]:
    """Draw ``n`` joints of ``params`` (default: the spread's preset) within ``spread``, run ``steps`` on them all
    (``run_population``: this machine, or the Dask ``client``'s workers), and return per joint the figures by step,
    the faults and what was drawn, with the timing. No limits here."""
    t0 = time.perf_counter()
    spread = spread if isinstance(spread, Spread) else load_spread(spread)
    nominal = params if isinstance(params, JointParams) else load_preset(params or spread.preset or "knee")
    spec = BatchSpec(nominal, spread, tuple(steps), n, seed, nominal)
    spread = spec.spread
    drawn = draw(nominal, spread, n, seed)  # what each joint is (the chunks draw the same joints again)
    t_draw = time.perf_counter() - t0
    result = run_population(spec, client)
    keys = _step_keys(steps)
    joints = []
    for j, ((p, inj), figures) in enumerate(zip(drawn, result.figures, strict=True)):
        at = result.fault_step[j]
        joints.append({"joint": j, "figures": dict(zip(keys, figures, strict=True)),
                       "faults": result.faults[j], "fault_step": None if at is None else keys[at],
                       "drawn": {**{t.path: _plain(_value(p, t.path)) for t in spread.parameters}, **inj}})
    timing = {"draw_s": t_draw, **result.timing, "total_s": time.perf_counter() - t0}
    return {"preset": nominal.name, "spread": spread.source, "n": n, "seed": seed, "steps": keys, "joints": joints,
            "timing": timing}
