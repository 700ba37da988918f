"""``jointkit bench TARGET``: benchmarks that print their figures (``--json`` for machines).

Speed is measured here, never in timed tests; ratios are taken within one run.
"""

from __future__ import annotations

import argparse
import importlib

from firmware_iface.cli.common import emit, load_entry_point

# each a module of firmware_iface.bench with run(preset, quick) -> dict; the GUI's is gui.bench, loaded through the
# jointkit.bench_gui entry point (firmware_iface never imports gui)
TARGETS = ("sim", "control", "codec", "loop", "gui", "record", "rig", "results", "anomaly", "population")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: " + ", ".join(TARGETS))
    p.add_argument("target", choices=TARGETS, help="what to measure")
    p.add_argument("--preset", default="knee", help="joint preset (default knee)")
    p.add_argument("--quick", action="store_true", help="short runs (a smoke test, noisier figures)")
    p.add_argument("--minutes", type=float, help="record: minutes of synthetic telemetry (default 60, --quick 3)")
    p.add_argument("--db", help="results: a postgresql:// URL to measure instead of a temporary server")
    p.add_argument("--joints", type=int, help="gui: also the whole window on this many simulated joints (1 kHz "
                                              "telemetry each): fps, event-loop lateness, set-point streamer "
                                              "misses; population: joints of the batch (default 200, --quick 8)")
    p.add_argument("--workers", default="1,2", help="population: worker counts of the local Dask clusters (default "
                                                   "1,2; an empty list: the local run only)")
    p.add_argument("--chunk", type=int, help="population: joints per Dask task (default: about 3 chunks per worker)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actuator.errors import ConfigError

    if args.target == "gui":
        bench_run = load_entry_point("bench_gui")
    else:
        bench_run = importlib.import_module(f"firmware_iface.bench.{args.target}").run
    if args.minutes is not None and not (args.target == "record" and 1.0 <= args.minutes <= 24 * 60):
        raise ConfigError(f"--minutes {args.minutes:g}: only for bench record, 1 to 1440 minutes")
    if args.db is not None and args.target != "results":
        raise ConfigError(f"--db: only for bench results, not bench {args.target}")
    if args.joints is not None and args.target not in ("gui", "population"):
        raise ConfigError(f"--joints {args.joints}: only for bench gui and bench population")
    if args.target != "population" and (args.chunk is not None or args.workers != "1,2"):
        raise ConfigError("--workers and --chunk: only for bench population")
    extra = ({"minutes": args.minutes} if args.target == "record" else {"db": args.db} if args.target == "results"
             else {})
    if args.target == "population":
        extra = _population_options(args)
    elif args.joints is not None:
        if not 1 <= args.joints <= 63:
            raise ConfigError(f"--joints {args.joints}: allowed 1 to 63 (the node ids of one bus)")
        extra["joints"] = args.joints
    figures = bench_run(args.preset, quick=args.quick, **extra)
    emit(figures, args.json, f"jointkit bench {args.target}")
    return 0


def _population_options(args: argparse.Namespace) -> dict:
    from actuator.errors import ConfigError

    try:
        workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
    except ValueError:
        raise ConfigError(f"--workers {args.workers!r}: allowed a list of worker counts, e.g. 1,2") from None
    if any(not 1 <= w <= 512 for w in workers):
        raise ConfigError(f"--workers {args.workers!r}: allowed counts 1..512")
    if args.joints is not None and not 1 <= args.joints <= 100_000:
        raise ConfigError(f"--joints {args.joints}: allowed 1..100000")
    if args.chunk is not None and args.chunk < 1:
        raise ConfigError(f"--chunk {args.chunk}: allowed an integer >= 1")
    return {"joints": args.joints, "workers": workers, "chunk": args.chunk}
