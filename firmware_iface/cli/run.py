"""``jointkit run SEQUENCE.toml``: run a rig sequence on simulated joints (default) or on a bus; exit 0 pass,
1 fail, 2 error or incomplete. ``--population N`` runs a production batch in the batch simulation instead."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_bus_options, add_profile_options, bus_from_args, profile_from_args
from firmware_iface.cli.common_cluster import add_cluster_options, add_population_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a rig sequence (TOML): results.json, report.html, frames, MF4, database")
    p.add_argument("sequence", type=Path, help="sequence file, e.g. seeds/sequences/eol.toml")
    p.add_argument("--sim", action="store_true", help="simulated joints on an in-process bus (default without "
                                                       "--interface)")
    p.add_argument("--preset", help="joint preset of --sim (default: the sequence's)")
    p.add_argument("--realtime", action="store_true",
                   help="pace the simulated joints to wall time in their own thread, as a real bus runs (default: "
                        "lock-step with the host, deterministic and faster than real time)")
    p.add_argument("--inject", action="append", default=[], metavar="NAME[=VALUE]",
                   help="simulated defect: friction, stiffness, ft_noise, encoder_offset, resistance, ... (repeatable)")
    p.add_argument("--node", type=int, help="run every step on joint N (default: the sequence's nodes)")
    p.add_argument("--serial", help="serial number of the unit under test")
    p.add_argument("--out", type=Path, help="output folder (default out/run-SERIAL or out/run-TIME)")
    p.add_argument("--db", help="results database: an SQLite file or a postgresql://USER@HOST/DB URL (default: "
                                "results.db next to the output folder)")
    p.add_argument("--rig-id", help="this test station's id, stored with each run (default: $JOINTKIT_RIG_ID, else "
                                    "the host name)")
    p.add_argument("--no-db", action="store_true", help="do not append the run to a database")
    add_population_options(p)
    p.add_argument("--anomaly-model", type=Path, default=None,
                   help="score each unit against this anomaly model (from jointkit results report): results.json "
                        "gains an 'anomaly' entry (T^2, threshold, flag, driving figures); the verdict is unchanged")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_cluster_options(p)
    add_bus_options(p)
    add_profile_options(p)
    p.set_defaults(func=run)


def _out_dir(args: argparse.Namespace) -> Path:
    from firmware_iface.rig.runner import default_out_dir

    return args.out or default_out_dir(args.serial)


_LOCKSTEP: list = []  # the lock-step clock of the running simulated rig, if any


def _on_sigterm(*_: object) -> None:
    # once: a second SIGTERM (an impatient `kill`, a supervisor repeating itself) must not cut short the safe stop,
    # the closing of the recordings and the storing of the incomplete run that the first one started
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _interrupt()


def _on_sigint(*_: object) -> None:
    _interrupt()


def _interrupt() -> None:
    """Stop the run as Ctrl-C does. A lock-step rig runs the joints in this thread, through queues and locks that an
    exception raised at an arbitrary bytecode could leave held (a hang seen under load): there the clock raises it
    at its next chunk boundary instead, where nothing is held."""
    if _LOCKSTEP:
        _LOCKSTEP[0].interrupt()
        return
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from actuator.errors import ConfigError
    from firmware_iface.rig.rig import bus_rig, parse_injection, sim_rig
    from firmware_iface.rig.runner import run_sequence
    from firmware_iface.rig.sequence import load_sequence, with_node

    profile = profile_from_args(args)
    seq = with_node(load_sequence(args.sequence, profile), args.node)
    sim = args.sim or args.interface is None
    injections = [parse_injection(t) for t in args.inject]
    if injections and not sim:
        raise ConfigError("--inject simulates a defect: it needs --sim")
    if args.realtime and not sim:
        raise ConfigError("--realtime paces the simulated joints: it needs --sim")
    if args.population is None and (args.workers is not None or args.scheduler or args.chunk is not None):
        raise ConfigError("--workers, --scheduler and --chunk spread a population over a Dask cluster: they need "
                          "--population N")
    model = None
    if args.anomaly_model is not None:
        from firmware_iface.rig import anomaly

        model = anomaly.load(args.anomaly_model)  # a bad model file is refused before anything moves
        if model.sequence != seq.name:
            raise ConfigError(f"--anomaly-model {args.anomaly_model}: a model of sequence {model.sequence!r}, "
                              f"this is {seq.name!r}")
    if args.population is not None:
        from firmware_iface.cli.population import run_population_cli

        return run_population_cli(args, seq, injections, model)
    signal.signal(signal.SIGTERM, _on_sigterm)
    out_dir = _out_dir(args)
    db = args.db or out_dir.parent / "results.db"
    if not args.no_db:
        from firmware_iface.rig.results_db import ensure

        ensure(db)  # a file that is not a results database is refused before anything moves
    if sim:
        # the first run on a clone compiles the joint's kernels (tens of seconds): say so instead of looking hung
        with Console(stderr=True).status("starting the simulated joints (the first run compiles their kernels)"):
            rig = sim_rig(seq.nodes, args.preset or seq.preset, injections, profile=profile, seed=args.seed,
                          lockstep=not args.realtime)
    else:
        rig = bus_rig(bus_from_args(args), seq.nodes, profile)
    previous_sigint = signal.getsignal(signal.SIGINT)
    if rig.clock.lockstep:
        _LOCKSTEP[:] = [rig.clock]
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        results = run_sequence(seq, rig, out_dir, serial=args.serial, rig_id=args.rig_id)
    finally:
        rig.close()
        _LOCKSTEP.clear()
        signal.signal(signal.SIGINT, previous_sigint)
    if model is not None and results["verdict"] in ("pass", "fail"):
        from firmware_iface.rig.anomaly import annotate
        from firmware_iface.rig.runner import write_json

        annotate(results, model, args.anomaly_model)
        write_json(out_dir / results["outputs"]["results"], results)
    if not args.no_db:
        from firmware_iface.rig.results_db import append, display

        append(db, results)
        results["outputs"]["database"] = display(db)  # a URL's password never goes into a file
    return _emit(args, results, out_dir)


def _emit(args: argparse.Namespace, results: dict, out_dir: Path) -> int:
    from rich.console import Console

    from firmware_iface.jsonsafe import json_safe as clean
    from firmware_iface.rig.runner import EXIT_CODES

    results = clean(results)
    results["out_dir"] = str(out_dir)
    if args.json:
        print_json(results)
    else:
        console = Console()
        colour = {"pass": "green", "fail": "red"}.get(results["verdict"], "yellow")
        console.print(f"[bold {colour}]{results['verdict'].upper()}[/] {results['sequence']['name']} "
                      f"{results['serial'] or ''} in {results.get('duration_s', 0):.1f} s")
        for c in results["failed_checks"]:
            console.print(f"  failed: {c}")
        a = results.get("anomaly")
        if a and a["flagged"]:
            console.print(f"[yellow]  anomalous: T^2 {a['t2']:.1f} > {a['threshold']:.1f} (alpha {a['alpha']:g}); "
                          f"driven by {', '.join(a['drivers'])}[/]")
        for s in results["steps"]:
            if s["error"]:
                console.print(f"  {s['name']}: {s['error']}")
        console.print(f"report: {out_dir / 'report.html'}")
    return EXIT_CODES[results["verdict"]]
