"""``jointkit sweep SEQUENCE --vary NAME=A..B:N [--vary ...]``: the yield of a simulated production batch against
parameters of the joint type, one parameter at a time (the others at the preset's values).

Each point is a population of ``--population N`` joints (default 20) drawn about the varied preset by one seed and
judged by the sequence's limits, run as ``jointkit run --population`` runs it (this machine, or ``--workers K`` /
``--scheduler ADDR``: one cluster for the whole sweep). What NAME and the range mean: ``firmware_iface.rig.sweep``.
Prints a table (parameter, factor, value, yield, each check's mean and sd), writes DIR/sweep.csv, DIR/sweep.json and
DIR/sweep.png (yield against each varied parameter). Exit 0 when the sweep ran (its yields are figures, not a verdict).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_cluster import add_cluster_options, add_population_options

DEFAULT_POPULATION = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="yield of a simulated batch against parameters of the joint type")
    p.add_argument("sequence", type=Path, help="sequence file, e.g. seeds/sequences/eol.toml")
    p.add_argument("--vary", action="append", required=True, metavar="NAME=A..B:N|NAME=V1,V2,...",
                   help="a preset field (reducer.k1_nm_per_rad; several joined by +) or a group of the spread file "
                        "(stiffness), at N factors from A to B on the preset's value, or at absolute values "
                        "V1,V2,... in the field's unit (repeatable: each swept alone)")
    p.add_argument("--preset", help="joint type (default: the sequence's)")
    add_population_options(p, default=DEFAULT_POPULATION)
    p.add_argument("--inject", action="append", default=[], metavar="NAME[=VALUE]",
                   help="a simulated defect on every joint of every point (as run --inject)")
    p.add_argument("--out", type=Path, help="output folder (default out/sweep-SEQUENCE)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_cluster_options(p)
    p.set_defaults(func=run)


def _point(seq: Any, measured: list, result: Any, info: dict) -> dict[str, Any]:
    """Yield and, per check, mean, sd and fails of one point's joints (judged by the sequence's limits)."""
    import numpy as np

    from firmware_iface.cli.population import population_records
    from firmware_iface.rig.results_db import capability

    records = population_records(seq, measured, result, "SWEEP-", info)
    n = len(records)
    checks: dict[str, dict[str, Any]] = {}
    for r in records:
        for step in r["steps"]:
            for c in step["checks"]:
                entry = checks.setdefault(c["name"], {"values": [], "lsl": c["min"], "usl": c["max"], "fails": 0})
                if c["value"] is not None:
                    entry["values"].append(c["value"])
                entry["fails"] += c["verdict"] != "pass"
    table = {}
    for name, e in checks.items():
        stats = capability(np.asarray(e["values"], dtype=float), e["lsl"], e["usl"])
        table[name] = {"mean": stats["mean"], "sd": stats["std"], "n": stats["n"], "fails": e["fails"],
                       "lsl": e["lsl"], "usl": e["usl"]}
    passed = sum(r["verdict"] == "pass" for r in records)
    return {"joints": n, "passed": passed, "yield": passed / n, "checks": table,
            "faulted_joints": sum(bool(f) for f in result.faults)}


def run(args: argparse.Namespace) -> int:
    import time

    from firmware_iface.cli.population import open_cluster, population_spec, run_batch_cli
    from firmware_iface.jsonsafe import json_safe as clean
    from firmware_iface.rig.population import BatchSpec
    from firmware_iface.rig.rig import parse_injection
    from firmware_iface.rig.sequence import load_sequence
    from firmware_iface.rig.sweep import parse_vary, value_of, varied

    t0 = time.perf_counter()
    seq = load_sequence(args.sequence)
    injections = [parse_injection(t) for t in args.inject]
    base, measured = population_spec(args, seq, injections)
    varies = [parse_vary(text, base.spread) for text in args.vary]
    # every point's preset is built (and checked) before any batch runs: a bad point fails in a second, not later
    plan = [(v, x, varied(base.firmware, v, x)) for v in varies for x in v.points]
    out_dir = args.out or Path("out") / f"sweep-{seq.name}"
    rows = []
    with open_cluster(args) as client:
        for k, (v, x, params) in enumerate(plan, 1):
            spec = BatchSpec(params, base.spread, base.steps, base.n, base.seed, base.firmware, base.injections)
            result = run_batch_cli(spec, client, args.chunk, f"{k}/{len(plan)} {v.name} {x:g}")
            info = {"sim": True, "population": base.n, "seed": args.seed, "vary": v.name, "point": x}
            rows.append({"parameter": v.name, "fields": list(v.paths), "relative": v.relative,
                         "factor": x if v.relative else None, "value": value_of(base.firmware, v, x),
                         **_point(seq, measured, result, info)})
    report = clean({"sequence": seq.name, "preset": base.firmware.name, "population": base.n, "seed": args.seed,
                    "spread": base.spread.source, "points": rows, "wall_s": time.perf_counter() - t0,
                    "out_dir": str(out_dir)})
    report["outputs"] = _write(out_dir, report)
    if args.json:
        print_json(report)
    else:
        _print(report)
    return 0


def _csv_rows(report: dict) -> tuple[list[str], list[list[Any]]]:
    checks = list(dict.fromkeys(c for p in report["points"] for c in p["checks"]))
    header = ["parameter", "factor", "value", "joints", "passed", "yield",
              *(f"{c}.{s}" for c in checks for s in ("mean", "sd", "fails"))]
    out = []
    for p in report["points"]:
        cells = [p["parameter"], p["factor"], p["value"], p["joints"], p["passed"], p["yield"]]
        for c in checks:
            e = p["checks"].get(c, {})
            cells += [e.get("mean"), e.get("sd"), e.get("fails")]
        out.append(["" if v is None else v for v in cells])
    return header, out


def _write(out_dir: Path, report: dict) -> dict[str, str]:
    import csv
    import json

    from firmware_iface.plots import plot_sweep_yield

    out_dir.mkdir(parents=True, exist_ok=True)
    header, rows = _csv_rows(report)
    with (out_dir / "sweep.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    (out_dir / "sweep.json").write_text(json.dumps(report, indent=2))
    curves: dict[str, tuple[list[float], list[float], str]] = {}
    for p in report["points"]:
        label = "factor on the preset's value" if p["relative"] else f"{p['fields'][0]} (absolute)"
        xs, ys, _ = curves.setdefault(p["parameter"], ([], [], label))
        xs.append(p["factor"] if p["relative"] else p["value"])
        ys.append(100.0 * p["yield"])
    plot_sweep_yield(out_dir / "sweep.png", f"{report['sequence']}: yield of {report['population']} joints per point "
                     f"(seed {report['seed']})", curves)
    return {name: str(out_dir / name) for name in ("sweep.csv", "sweep.json", "sweep.png")}


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = _csv_rows(report)
    table = Table(title=f"sweep of {report['sequence']}: {report['population']} joints per point, seed "
                        f"{report['seed']}")
    for col in header:
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for cells in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells))
    console = Console()
    console.print(table)
    console.print(f"{report['wall_s']:.1f} s; " + ", ".join(report["outputs"].values()))
