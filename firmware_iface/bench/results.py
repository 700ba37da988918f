"""Benchmark of the results database with many rigs at once: 8 processes each append 1,000 runs, one transaction
per run as a rig appends after each unit, to SQLite (a file in a temporary directory, locking with its busy
timeout) and to PostgreSQL (a temporary server of its own, ``rig.pg_server``, unless ``--db postgresql://...``).

Each run is an EOL results record as the runner writes it (``runner.new_results`` on seeds/sequences/eol.toml, its
15 checks with values inside their limits, the trace metadata), serials unique to this bench. Reported per
back-end: ``runs``, ``wall_s`` (from the moment every process is ready to the last one's exit), ``runs_per_s``,
and the check that nothing was lost and nothing stored twice: ``stored`` (runs with this bench's serial prefix),
``distinct_ids``, ``lost`` and ``duplicates`` (both must be 0). ``--quick``: 8 x 100.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actuator.errors import ConfigError
from actuator.params import SEEDS_DIR
from firmware_iface.protocol.load import load_native
from firmware_iface.rig import results_db
from firmware_iface.rig.pg_server import temporary_server
from firmware_iface.rig.runner import checks_of, new_results, run_metadata, utc_now
from firmware_iface.rig.sequence import Sequence, load_sequence

PROCESSES = 8
RUNS_EACH, RUNS_EACH_QUICK = 1000, 100
SEQUENCE = SEEDS_DIR / "sequences" / "eol.toml"
JOIN_TIMEOUT_S = 1800.0  # 8,000 appends take about a minute or two; half an hour means a station is stuck


def _inside(lo: float | None, hi: float | None, k: int) -> float:
    """A value inside [lo, hi] that differs with k (the figures of different units differ)."""
    frac = 0.3 + 0.4 * ((k * 0.618034) % 1.0)
    if lo is not None and hi is not None:
        return lo + frac * (hi - lo)
    if hi is not None:
        return hi * frac if hi > 0 else hi - 1.0 - frac
    return (lo or 0.0) + 1.0 + frac


def eol_record(seq: Sequence, metadata: dict, serial: str, k: int) -> dict:
    """A passing EOL results record of unit ``serial`` as the runner writes it."""
    results = new_results(seq, serial, {"sim": True, "bench": "results"}, {**metadata, "serial": serial})
    for step, entry in zip(seq.steps, results["steps"], strict=True):
        figures = {fig: _inside(lim.min, lim.max, k + i) for i, (fig, lim) in enumerate(step.limits.items())}
        entry.update(status="pass", figures=figures, checks=checks_of(step, figures))
    results.update(verdict="pass", finished_utc=utc_now())
    return results


def _station(barrier: Any, target: str, prefix: str, station: int, count: int) -> None:
    seq = load_sequence(SEQUENCE)
    metadata = run_metadata(seq, None, load_native(), rig_id=f"BENCH-{station}")
    records = [eol_record(seq, metadata, f"{prefix}{station}-{i:05d}", station * count + i) for i in range(count)]
    barrier.wait()
    for record in records:
        results_db.append(target, record)


def append_concurrently(target: str | Path, processes: int, runs_each: int, prefix: str) -> float:
    """``processes`` stations append ``runs_each`` runs each to ``target`` at once; the wall time in seconds from
    the moment all are ready (their records built) to the last one's exit. RuntimeError if a station fails."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=_station, args=(barrier, str(target), prefix, k, runs_each))
             for k in range(processes)]
    for p in procs:
        p.start()
    barrier.wait(timeout=JOIN_TIMEOUT_S)
    t0 = time.perf_counter()
    for p in procs:
        p.join(JOIN_TIMEOUT_S)
    wall = time.perf_counter() - t0
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {processes} stations failed (exit codes {failed})")
    return wall


def measure(target: str | Path, processes: int, runs_each: int) -> dict[str, Any]:
    prefix = f"BENCH-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-"
    total = processes * runs_each
    wall = append_concurrently(target, processes, runs_each, prefix)
    stored = results_db.list_runs(target, serial_prefix=prefix)
    serials = {r["serial"] for r in stored}
    return {"db": results_db.display(target), "processes": processes, "runs": total, "wall_s": wall,
            "runs_per_s": total / wall, "stored": len(stored), "distinct_ids": len({r["id"] for r in stored}),
            "lost": total - len(serials), "duplicates": len(stored) - len(serials)}


def run(preset: str = "knee", quick: bool = False, db: str | None = None) -> dict[str, Any]:
    if db is not None and not results_db.open_store(db).dialect == "postgresql":
        raise ConfigError(f"--db {db}: bench results takes a postgresql:// URL (its SQLite file is a temporary one)")
    runs_each = RUNS_EACH_QUICK if quick else RUNS_EACH
    with tempfile.TemporaryDirectory(prefix="jointkit-bench-results-") as folder:
        sqlite = measure(Path(folder) / "results.db", PROCESSES, runs_each)
    if db is not None:
        postgresql = measure(db, PROCESSES, runs_each)
    else:
        with temporary_server() as url:  # durable (fsync on), as a line's server is
            postgresql = measure(url, PROCESSES, runs_each)
        postgresql["db"] = "temporary server (Unix socket, fsync on)"
    return {"sqlite": sqlite, "postgresql": postgresql,
            "sqlite_runs_per_s": sqlite["runs_per_s"], "postgresql_runs_per_s": postgresql["runs_per_s"],
            "nothing_lost_or_doubled": all(b["lost"] == 0 and b["duplicates"] == 0 and b["stored"] == b["runs"]
                                           for b in (sqlite, postgresql))}
