"""``jointkit step``: a step test of the position, velocity or impedance loop, on the simulated joint in-process
or on joint ``--node N`` over a bus (real or simulated)."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from actuator.analysis.loops import LOOPS
from firmware_iface.cli.common import emit
from firmware_iface.cli.common_bus import add_node_options, on_node
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains, png_next_to

CSV_COLUMNS = (("t_s", "t_s"), ("reference", "reference"), ("position_rad", "position_rad"),
               ("velocity_rad_s", "velocity_rad_s"), ("torque_nm", "transmitted_torque_nm"),
               ("torque_cmd_nm", "torque_cmd_nm"), ("iq_a", "iq_a"),
               ("velocity_reference_rad_s", "velocity_reference_rad_s"),
               ("motor_encoder_rad", "motor_encoder_rad"), ("output_encoder_rad", "output_encoder_rad"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("step", help="step test of a control loop (simulated joint)")
    add_joint_options(p)
    p.add_argument("--loop", choices=LOOPS, default="position", help="loop under test")
    p.add_argument("--amplitude", type=float, default=0.1, help="step size: rad (position, impedance) or rad/s")
    p.add_argument("--duration-s", type=float, default=1.0, help="simulated time, s (the step is at 0.05 s)")
    p.add_argument("--out", type=Path, help="write the trace as CSV here, and a PNG plot next to it")
    add_node_options(p)
    p.set_defaults(func=run)


def write_csv(trace, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([name for name, _ in CSV_COLUMNS])
        cols = [trace[src] for _, src in CSV_COLUMNS]
        w.writerows(zip(*(c.tolist() for c in cols), strict=True))


def run(args: argparse.Namespace) -> int:
    if on_node(args, run_bus) is not None:
        return 0
    from actuator.analysis.experiments import step_test

    params, cfg = joint_and_gains(args)
    result = step_test(params, cfg, args.loop, args.amplitude, duration_s=args.duration_s)
    figures = {"preset": params.name, "loop": args.loop, "amplitude": args.amplitude, **result.figures()}
    tr = result.trace
    figures["limits_hit"] = sorted({name for bit, name in _limit_names().items() if int(tr.limiter.max()) & bit})
    if args.out:
        from firmware_iface.plots import plot_step

        write_csv(tr, args.out)
        png = plot_step(tr, args.loop, png_next_to(args.out), f"{params.name}: {args.loop} step {args.amplitude:g}",
                        result.figures())
        figures.update(trace_csv=str(args.out), plot_png=str(png))
    emit(figures, args.json, f"jointkit step: {params.name} {args.loop}")
    return 0


def _limit_names() -> dict[int, str]:
    from actuator.control.cascade import LIMIT_NAMES

    return LIMIT_NAMES


def run_bus(args: argparse.Namespace, client) -> dict:
    """The step protocol on joint ``--node`` (bus executor) with its own gains (``--preset``/``--gains`` describe
    in-process joints only); the figures under the names the in-process test reports."""
    from firmware_iface.experiments.bus import step_test
    from firmware_iface.files import write_signals_csv

    outcome, signals, run, _ = step_test(client, args.loop, args.amplitude, duration_s=args.duration_s,
                                         start_rad=0.0)
    figures = {"node": client.node_id, "bus": client.hub.bus.channel_info, "loop": args.loop,
               "amplitude": args.amplitude, **outcome.figures, "host_loop": run.loop,
               "telemetry_gaps": dict(client.gaps)}
    if args.out:
        write_signals_csv(signals, args.out, ("t_s", "reference", "position_rad", "velocity_rad_s", "torque_nm",
                                              "iq_a"))
        figures["trace_csv"] = str(args.out)
    emit(figures, args.json, f"jointkit step: node {client.node_id} {args.loop}")
    return figures
