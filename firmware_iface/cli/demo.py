"""``jointkit demo``: the README's main job, a torque step on the simulated knee, as a table and a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from actuator.paths import SEEDS_DIR
from firmware_iface.cli.common import print_json

DEMO_SEQUENCE = SEEDS_DIR / "sequences" / "demo.toml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the demo sequence on a simulated joint over its bus: report and recordings")
    p.add_argument("--open-loop", action="store_true", help="instead: an open-loop torque step in-process (CSV, PNG)")
    p.add_argument("--preset", default="knee", help="preset name or path (default knee)")
    p.add_argument("--torque-nm", type=float, default=30.0, help="output torque step, N·m (default 30)")
    p.add_argument("--duration-s", type=float, default=0.8, help="simulated time, s (default 0.8)")
    p.add_argument("--rows", type=int, default=9, help="rows of the printed table")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--sequence", type=Path, default=DEMO_SEQUENCE, help="sequence to run (default the demo's)")
    p.add_argument("--realtime", action="store_true", help="pace the simulated joint to wall time (default lock-step)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.open_loop:
        from firmware_iface.cli import build_parser

        argv = ["run", str(args.sequence), "--sim", "--serial", "DEMO", "--out", str(args.out)]
        rig_args = build_parser().parse_args([*argv, *(["--json"] if args.json else []),
                                              *(["--realtime"] if args.realtime else [])])
        return rig_args.func(rig_args)
    return _open_loop(args)


def _open_loop(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from actuator.params import load_preset
    from actuator.simulation import simulate
    from firmware_iface.files import write_trace_csv
    from firmware_iface.plots import plot_trace

    params = load_preset(args.preset)
    # record at 1 kHz: the table and plot need no more, the model still steps at the current-loop rate
    record_every = max(1, round(1e-3 / params.dt_s))
    trace = simulate(params, duration_s=args.duration_s, torque_nm=args.torque_nm, record_every=record_every)
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "torque_step.csv"
    write_trace_csv(trace, csv_path)
    png = plot_trace(trace, args.out / "torque_step.png",
                     f"{params.name}: {args.torque_nm:g} N·m torque step, open loop")
    summary = {"preset": params.name, "torque_nm": args.torque_nm, **trace.summary(),
               "trace_csv": str(csv_path), "plot_png": str(png)}
    if args.json:
        print_json(summary)
        return 0
    table = Table(title=f"{params.name}: {args.torque_nm:g} N·m torque step (simulated, open loop)")
    for col in ("t_s", "position_rad", "velocity_rad_s", "current_a", "winding_c"):
        table.add_column(col, justify="right")
    for k in np.linspace(0, len(trace) - 1, max(2, args.rows)).round().astype(int):
        table.add_row(f"{trace.t_s[k]:.3f}", f"{trace.position_rad[k]:.4f}", f"{trace.velocity_rad_s[k]:.4f}",
                      f"{trace.current_a[k]:.3f}", f"{trace.winding_temp_c[k]:.3f}")
    console = Console()
    console.print(table)
    console.print(f"faults: {', '.join(summary['faults']) or 'none'}")
    console.print(f"trace: {csv_path}\nplot:  {png}")
    return 0
