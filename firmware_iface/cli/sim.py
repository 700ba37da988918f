"""``jointkit sim``: run the simulated joint open loop on a torque or q-axis current step."""

from __future__ import annotations

import argparse
from pathlib import Path

from actuator.errors import SimulationError
from actuator.params import load_preset
from actuator.simulation import simulate
from firmware_iface.cli.common import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="simulate the joint open loop on a torque or current step")
    p.add_argument("--preset", default="knee", help="preset name (knee, wrist) or path to a joint TOML")
    cmd = p.add_mutually_exclusive_group(required=True)
    cmd.add_argument("--torque-nm", type=float, help="output torque step, N·m (through the ideal ratio)")
    cmd.add_argument("--current-a", type=float, help="q-axis current step, A")
    p.add_argument("--duration-s", type=float, required=True, help="simulated time, s")
    p.add_argument("--seed", type=int, default=0, help="noise seed (runs are reproducible)")
    p.add_argument("--record-every", type=int, default=1, help="record one trace row every N model steps")
    p.add_argument("--out", type=Path, help="write the trace as CSV here, and a PNG plot next to it")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.duration_s is None or not args.duration_s > 0:
        raise SimulationError(f"--duration-s {args.duration_s}: must be > 0")
    params = load_preset(args.preset)
    trace = simulate(params, duration_s=args.duration_s, torque_nm=args.torque_nm, current_a=args.current_a,
                     seed=args.seed, record_every=args.record_every)
    summary = {"preset": params.name, "model_step_s": params.dt_s, **trace.summary()}
    if args.out:
        from firmware_iface.plots import plot_trace

        args.out.parent.mkdir(parents=True, exist_ok=True)
        trace.to_csv(args.out)
        png = plot_trace(trace, args.out.with_suffix(".png"), f"{params.name}: open-loop step")
        summary.update(trace_csv=str(args.out), plot_png=str(png))
    emit(summary, args.json, f"jointkit sim: {params.name}")
    return 0
