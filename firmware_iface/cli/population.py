"""``jointkit run SEQUENCE --sim --population N``: a production batch of simulated joints, judged like one joint.

N joints are drawn from the manufacturing spread (``seeds/spread.toml``, or ``--spread``) and the sequence's
measuring steps (those with a test protocol: friction, back-drive, stiffness, step, Bode, F/T zero, thermal soak)
run on all of them at once in the batch simulation (``firmware_iface.experiments.batch``, all cores), with the same
protocols and analyses as over the bus, and the sequence's limits; with ``--workers K`` or ``--scheduler ADDR`` the
batch is cut into chunks run on a Dask cluster (``firmware_iface.rig.population``), with the same figures. Steps
that exercise the firmware over the bus (connect, enable, gains, fault reaction, tune, ...) are not in the batch
model and are listed as not simulated.

Every joint becomes a results record (serial ``POP-<UTC time>-s<seed>-0001``...) appended to DIR/results.db (or
``--db``: a results database is appended to, never replaced; any other file is refused before the batch runs), so
``jointkit results summary DB --serial-prefix POP-<time>`` gives the same yield and Cpk; the command prints the
yield, the failures per check and, per check, the Cpk, and writes DIR/population.json.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from actuator.errors import ConfigError
from actuator.params import SEEDS_DIR, JointParams, load_preset
from firmware_iface.cli.common import print_json
from firmware_iface.experiments.segments import Outcome
from firmware_iface.jsonsafe import json_safe as clean
from firmware_iface.rig.anomaly import AnomalyModel, annotate, file_sha256
from firmware_iface.rig.population import BatchSpec, PopulationResult, cluster, run_population
from firmware_iface.rig.results_db import append_many, display, ensure, summary
from firmware_iface.rig.runner import (
    SCHEMA,
    checks_of,
    default_rig_id,
    preset_identity,
    tool_version,
    utc_now,
    write_json,
)
from firmware_iface.rig.sequence import PROTOCOL_OF, Sequence, Step, protocol_config
from firmware_iface.rig.spread import load_spread


def _joint_results(seq: Sequence, serial: str, measured: list, outcomes: list, faults: list[str], info: dict,
                   metadata: dict) -> dict:
    steps = []
    for step, outcome in zip(measured, outcomes, strict=True):
        figures = dict(outcome.figures)
        checks = checks_of(step, figures)
        steps.append({"index": step.index, "name": step.name, "type": step.type, "node": step.node,
                      "status": "fail" if any(c["verdict"] != "pass" for c in checks) else "pass",
                      "started_s": None, "duration_s": None, "figures": figures, "checks": checks,
                      "error": f"faults: {', '.join(faults)}" if faults else None, "plot": None})
    failed = [c["name"] for s in steps for c in s["checks"] if c["verdict"] != "pass"]
    now = utc_now()
    return clean({"schema": SCHEMA, "metadata": {**metadata, "serial": serial},
                  "sequence": {"name": seq.name, "path": str(seq.path), "sha256": seq.sha256},
                  "serial": serial, "started_utc": now, "finished_utc": now, "rig": info,
                  "verdict": "fail" if failed or faults else "pass", "failed_checks": failed, "error": None,
                  "steps": steps, "outputs": {}})


def population_spec(args: argparse.Namespace, seq: Sequence, injections: list[tuple[str, float]],
                    params: JointParams | None = None) -> tuple[BatchSpec, list[Step]]:
    """The batch of ``--population N`` joints (drawn about ``params``, default the type's nominal preset, which the
    firmware is configured with) and the sequence's measuring steps it runs."""
    n = args.population
    if not 1 <= n <= 100_000:
        raise ConfigError(f"--population {n}: allowed 1..100000 joints")
    if args.chunk is not None and ((args.workers is None and args.scheduler is None) or args.chunk < 1):
        raise ConfigError(f"--chunk {args.chunk}: allowed an integer >= 1 (joints per Dask task), with --workers or "
                          "--scheduler (the local run is one batch)")
    spread = load_spread(args.spread or SEEDS_DIR / "spread.toml")
    nominal = load_preset(args.preset or seq.preset)
    measured = [s for s in seq.steps if s.type in PROTOCOL_OF]
    steps = tuple((PROTOCOL_OF[s.type], protocol_config(s, seq, nominal)) for s in measured)
    return BatchSpec(params or nominal, spread, steps, n, args.seed, nominal, tuple(injections)), measured


def population_records(seq: Sequence, measured: list[Step], result: PopulationResult, prefix: str, info: dict,
                       metadata: dict | None = None) -> list[dict]:
    """A results record per joint (serial PREFIX0001...), judged by the sequence's limits, with the trace
    ``metadata`` a bus run carries (rig id, jointkit version, preset)."""
    return [_joint_results(seq, f"{prefix}{j + 1:04d}", measured, [Outcome(f) for f in figures], result.faults[j],
                           info, metadata or {}) for j, figures in enumerate(result.figures)]


@contextlib.contextmanager
def open_cluster(args: argparse.Namespace) -> Iterator[Any]:
    """``rig.population.cluster`` for ``--workers`` / ``--scheduler``, saying on stderr what it starts."""
    if args.workers is None and args.scheduler is None:
        with cluster() as client:
            yield client
        return
    what = (f"connecting to the Dask scheduler {args.scheduler}" if args.scheduler else
            f"starting {args.workers} Dask worker processes")
    with contextlib.ExitStack() as stack:
        with Console(stderr=True).status(f"{what} (each compiles the kernels on its first chunk if their cache is "
                                         "cold, ~15 s)"):
            client = stack.enter_context(cluster(args.workers, args.scheduler))
        yield client


def run_batch_cli(spec: BatchSpec, client: Any, chunk: int | None, what: str) -> PopulationResult:
    """``run_population`` with a progress bar (joints done) on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=spec.n)
        return run_population(spec, client, chunk, progress=lambda k: bar.advance(task, k))


def run_population_cli(args: argparse.Namespace, seq: Sequence, injections: list[tuple[str, float]],
                       model: AnomalyModel | None = None) -> int:
    t0 = time.perf_counter()
    spec, measured = population_spec(args, seq, injections)
    n = spec.n
    out_dir = args.out or Path("out") / f"population-{seq.name}-{n}"
    db = args.db or out_dir / "results.db"
    ensure(db)  # a file that is not a results database is refused before the batch runs; one is appended to
    # serials unique to this batch (time and seed): its runs sit beside earlier batches' in the database
    prefix = f"POP-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-s{args.seed}-"
    with open_cluster(args) as client:
        result = run_batch_cli(spec, client, args.chunk, f"{seq.name}: {n} joints")
    info = {"sim": True, "population": n, "spread": spec.spread.source, "preset": spec.params.name,
            "seed": args.seed, "injections": dict(injections)}
    # the trace a bus run carries, less the profile (the batch model speaks no protocol) and the gains (none written)
    metadata = {"jointkit_version": tool_version(), "rig_id": args.rig_id or default_rig_id(),
                "preset": preset_identity(args.preset or seq.preset), "sequence": seq.name,
                "sequence_sha256": seq.sha256, "gains_sha256": None}
    records = population_records(seq, measured, result, prefix, info, metadata)
    if model is not None:
        sha = file_sha256(args.anomaly_model)
        for r in records:
            annotate(r, model, args.anomaly_model, sha)
    out_dir.mkdir(parents=True, exist_ok=True)
    append_many(db, records)
    stats = summary(db, serial_prefix=prefix)  # this batch's yield and Cpk, whatever else the database holds
    report = _report(seq, records, stats, result.timing, measured, time.perf_counter() - t0)
    if model is not None:
        report["anomaly_flagged"] = [r["serial"] for r in records if r.get("anomaly", {}).get("flagged")]
    report.update(out_dir=str(out_dir), database=display(db), serial_prefix=prefix,
                  not_simulated=[s.name for s in seq.steps if s.type not in PROTOCOL_OF])
    write_json(out_dir / "population.json", {**report, "joints": records})
    if args.json:
        print_json(clean(report))
    else:
        _print(report)
    return 0


def _report(seq: Sequence, records: list[dict], stats: dict, timing: dict, measured: list, wall_s: float) -> dict:
    n = len(records)
    passed = sum(r["verdict"] == "pass" for r in records)
    failures: dict[str, int] = {}
    for r in records:
        for c in r["failed_checks"]:
            failures[c] = failures.get(c, 0) + 1
    group = stats["sequences"][0] if stats.get("sequences") else {}
    checks = {c["name"]: {k: c.get(k) for k in ("n", "mean", "std", "lsl", "usl", "cp", "cpk", "fails")}
              for c in group.get("checks", [])}
    return {"sequence": seq.name, "joints": n, "passed": passed, "yield": passed / n,
            "failures_by_check": dict(sorted(failures.items(), key=lambda kv: -kv[1])),
            "faulted_joints": sum(bool(r["steps"] and r["steps"][-1]["error"]) for r in records),
            "checks": checks, "steps_simulated": [s.name for s in measured],
            "timing_s": {**timing, "wall_s": wall_s}}


def _print(report: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]{report['sequence']}[/]: {report['passed']}/{report['joints']} passed, yield "
                  f"{100 * report['yield']:.1f} % in {report['timing_s']['wall_s']:.1f} s")
    table = Table(title="checks")
    for col in ("check", "mean", "std", "LSL", "USL", "Cpk", "fails"):
        table.add_column(col, justify="right" if col != "check" else "left")
    for name, c in report["checks"].items():
        cells = [c["mean"], c["std"], c["lsl"], c["usl"], c["cpk"]]
        table.add_row(name, *("—" if v is None else f"{v:.4g}" for v in cells), str(c["fails"]))
    console.print(table)
    console.print(f"database: {report['database']}  (jointkit results summary {report['database']} "
                  f"--serial-prefix {report['serial_prefix']})")
