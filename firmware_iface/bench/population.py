"""Benchmark of a simulated production batch: the EOL sequence's measuring steps on N knees drawn from
``seeds/spread.toml``, on this machine (one batch, all cores) and on local Dask clusters of 1, 2, ... workers
(``firmware_iface.rig.population``: chunks of the batch, one Numba thread per worker process).

Reported, all from one run (the machines are shared: compare ratios, not seconds across runs):

* ``local``: wall time and joints/s of the local run;
* per worker count K: the cluster's start-up, the wall time of the batch (kernels warmed in every worker first:
  a cold cache compiles them in each worker process, ~15 s each), joints/s, ``worker_s`` (the chunks' own batch
  time, summed) and ``scaling`` = joints/s over the 1-worker joints/s of this run;
* ``cpu_s`` (CPU seconds the batch's processes got, all their threads), ``cores_got`` = cpu_s / wall and
  ``joints_per_cpu_s``: on a shared machine (the load average before and after is reported) a worker may get less
  than its core, and then the scaling ratio measures the machine's spare CPU, not Dask; joints per CPU second is the
  cost that does not depend on the load;
* ``identical``: every figure of every joint of each cluster run equals the local run's, bit for bit;
* ``task_overhead_s``: the scheduler's round trip per task, measured on ``OVERHEAD_TASKS`` empty tasks through the
  2-worker (else the last) cluster, and ``chunk_overhead_s``: (wall x workers - worker_s) / chunks of that run
  (per chunk: scheduling, transfer of the results, and the workers idle at the end, the gather's tail);
* ``model``: throughput(W workers) ~ W x r1 (r1: a worker's rate on a core of its own, the joints per CPU second
  measured here) as long as the scheduler keeps up, i.e. while the tasks it must hand out per second,
  W x r1 / chunk, stay below 1 / task_overhead_s: up to W_max = chunk / (r1 x task_overhead_s) workers; beyond that
  the scheduler is the limit (chunk / overhead joints/s) and larger chunks move it. Per machine, W is its cores (one
  worker per core): a machine of C cores adds about C x r1 joints/s.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from actuator.params import SEEDS_DIR, load_preset
from firmware_iface.rig.population import BatchSpec, PopulationResult, cluster, default_chunk, run_population, warm
from firmware_iface.rig.sequence import PROTOCOL_OF, load_sequence, protocol_config
from firmware_iface.rig.spread import load_spread

SEQUENCE = SEEDS_DIR / "sequences" / "eol.toml"
OVERHEAD_TASKS = 200
DEFAULT_JOINTS, QUICK_JOINTS = 200, 8


def _spec(preset: str, n: int, seed: int = 0) -> BatchSpec:
    seq = load_sequence(SEQUENCE)
    nominal = load_preset(preset)
    steps = tuple((PROTOCOL_OF[s.type], protocol_config(s, seq, nominal)) for s in seq.steps if s.type in PROTOCOL_OF)
    return BatchSpec(nominal, load_spread(SEEDS_DIR / "spread.toml"), steps, n, seed, nominal)


def _same(a: PopulationResult, b: PopulationResult) -> bool:
    """Every figure equal bit for bit (NaN equal to NaN: a faulted joint's figures), and the same faults."""
    def eq(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        if isinstance(x, list | tuple) and isinstance(y, list | tuple):
            return len(x) == len(y) and all(eq(u, v) for u, v in zip(x, y, strict=True))
        return x == y
    return a.faults == b.faults and all(
        fa.keys() == fb.keys() and all(eq(fa[k], fb[k]) for k in fa)
        for ja, jb in zip(a.figures, b.figures, strict=True) for fa, fb in zip(ja, jb, strict=True))


def _noop() -> None:
    return None


def _task_overhead_s(client: Any) -> float:
    """The scheduler's round trip per task: empty tasks submitted at once and gathered."""
    t0 = time.perf_counter()
    client.gather([client.submit(_noop, pure=False) for _ in range(OVERHEAD_TASKS)])
    return (time.perf_counter() - t0) / OVERHEAD_TASKS


def _on_cluster(spec: BatchSpec, k: int, local: PopulationResult, chunk: int | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    with cluster(workers=k) as client:
        t1 = time.perf_counter()
        warm(client, spec)
        t2 = time.perf_counter()
        size = chunk or default_chunk(spec.n, k)
        result = run_population(spec, client, size)
        wall = result.timing["batch_wall_s"]
        worker_s = sum(result.timing[key] for key in ("setup_s", "simulate_s", "analyze_s"))
        overhead = _task_overhead_s(client)
    return {"workers": k, "chunk": size, "chunks": result.timing["chunks"], "startup_s": t1 - t0,
            "warm_s": t2 - t1, "wall_s": wall, "joints_per_s": spec.n / wall, "worker_s": worker_s,
            "cpu_s": result.timing["cpu_s"], "cores_got": result.timing["cpu_s"] / wall,
            "joints_per_cpu_s": spec.n / result.timing["cpu_s"],
            "chunk_overhead_s": (wall * k - worker_s) / result.timing["chunks"], "task_overhead_s": overhead,
            "identical": _same(result, local)}


def run(preset: str, quick: bool = False, joints: int | None = None, workers: tuple[int, ...] = (1, 2),
        chunk: int | None = None) -> dict[str, Any]:
    n = joints or (QUICK_JOINTS if quick else DEFAULT_JOINTS)
    spec = _spec(preset, n)
    warm_local = time.perf_counter()
    run_population(BatchSpec(spec.params, spec.spread, spec.steps[:1], 1, 0, spec.firmware))  # kernels loaded
    warm_local = time.perf_counter() - warm_local
    local = run_population(spec)
    local_wall = local.timing["batch_wall_s"]
    out: dict[str, Any] = {"joints": n, "sequence": "eol (measuring steps)", "preset": preset,
                           "cores": os.cpu_count(), "load_average_before": os.getloadavg()[0],
                           "joint_time_s_per_joint": local.timing["joint_time_s"], "local_warm_s": warm_local,
                           "local": {"wall_s": local_wall, "joints_per_s": n / local_wall,
                                     "cpu_s": local.timing["cpu_s"], "cores_got": local.timing["cpu_s"] / local_wall,
                                     "joints_per_cpu_s": n / local.timing["cpu_s"]}, "clusters": []}
    for k in workers:
        out["clusters"].append(_on_cluster(spec, k, local, chunk))
    base = next((c for c in out["clusters"] if c["workers"] == 1), None)
    for c in out["clusters"]:
        c["scaling"] = c["joints_per_s"] / base["joints_per_s"] if base else None
    out["load_average_after"] = os.getloadavg()[0]
    ref = next((c for c in out["clusters"] if c["workers"] == 2), out["clusters"][-1] if out["clusters"] else None)
    out["identical"] = all(c["identical"] for c in out["clusters"])
    if ref is not None:
        # the rate of a worker on a core of its own: joints per CPU second, which a shared machine's load does not
        # move (its wall rate, per_worker_joints_per_s, is what this machine gave)
        r1 = ref["joints_per_cpu_s"]
        w_max = ref["chunk"] / (r1 * ref["task_overhead_s"])
        out.update(task_overhead_s=ref["task_overhead_s"], chunk_overhead_s=ref["chunk_overhead_s"],
                   per_worker_joints_per_s=ref["joints_per_s"] / ref["workers"], per_core_joints_per_s=r1,
                   model={"statement": f"throughput(W workers, a core each) ~ W x {r1:.3g} joints/s (joints per CPU "
                                       f"second here) while W < W_max = chunk / (rate x task overhead) = "
                                       f"{ref['chunk']} / ({r1:.3g} x {ref['task_overhead_s'] * 1e3:.3g} ms) ~ "
                                       f"{w_max:.0f}; beyond, the scheduler's "
                                       f"{ref['chunk'] / ref['task_overhead_s']:.0f} joints/s, raised by larger "
                                       "chunks; a machine of C cores runs C workers",
                          "w_max_at_chunk": ref["chunk"], "w_max": w_max,
                          "scheduler_limit_joints_per_s": ref["chunk"] / ref["task_overhead_s"],
                          "joints_per_day_per_core": r1 * 86400,
                          "cores_for_10000_joints_in_10_min": 10_000 / (600 * r1)})
    return out
