"""``jointkit step``: a step test of the position, velocity or impedance loop, on the simulated joint in-process
or on joint ``--node N`` over a bus (real or simulated).

Both run the one step protocol (``experiments.protocols``, analysed by ``analyze_step``) with the one set of defaults
(``firmware_iface.defaults``: the GUI's tests panel takes the same), the step from where the joint is unless
``--start-rad`` says where; the figures carry ``clock``: ``joint`` when they were timed by the joint's own stamps
(its set-point echo and state, ``experiments.grid``), ``host`` when the profile gives no such stamps, and
``config``: the protocol's configuration as run (``protocols.step_config``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from actuator.analysis.loops import LOOPS
from firmware_iface.cli.common import emit
from firmware_iface.cli.common_bus import add_node_options, on_node
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains, png_next_to
from firmware_iface.defaults import STEP_AMPLITUDE, STEP_AT_S, STEP_DURATION_S

# the step's signals as CSV, in-process and on a bus alike (``experiments.protocols.Signals`` names)
CSV_COLUMNS = ("t_s", "reference", "position_rad", "velocity_rad_s", "torque_nm", "iq_a")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("step", help="step test of a control loop (simulated joint)")
    add_joint_options(p)
    p.add_argument("--loop", choices=LOOPS, default="position", help="loop under test")
    p.add_argument("--amplitude", type=float, default=STEP_AMPLITUDE,
                   help="step size: rad (position, impedance) or rad/s")
    p.add_argument("--duration-s", type=float, default=STEP_DURATION_S,
                   help=f"time held after the step, s (the step comes {STEP_AT_S:g} s into the hold)")
    p.add_argument("--start-rad", type=float, default=None,
                   help="position and impedance steps: move here first (default: step from where the joint is; the "
                        "in-process joint is at rest at 0)")
    p.add_argument("--out", type=Path, help="write the trace as CSV here, and a PNG plot next to it")
    add_node_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The step protocol on the simulated joint in-process (``experiments.inprocess``), the joint at rest at 0."""
    if on_node(args, run_bus) is not None:
        return 0
    import numpy as np

    from actuator.control.cascade import LIMIT_NAMES
    from firmware_iface.experiments.inprocess import step_test

    params, gains = joint_and_gains(args)
    outcome, signals, cfg = step_test(params, gains, args.loop, args.amplitude, duration_s=args.duration_s,
                                      start_rad=args.start_rad)
    bits = int(np.bitwise_or.reduce(signals["limits"]))
    # the in-process executor has no clock but the joint's: its samples are the joint's own ticks
    figures = {"preset": params.name, "loop": args.loop, "amplitude": args.amplitude, **_start(cfg),
               **outcome.figures, "clock": "joint", "config": cfg,
               "limits_hit": sorted(name for bit, name in LIMIT_NAMES.items() if bits & bit)}
    title = f"{params.name}: {args.loop} step {args.amplitude:g}"
    figures.update(_write(args, signals, cfg, outcome.figures, title))
    emit(figures, args.json, f"jointkit step: {params.name} {args.loop}")
    return 0


def _start(cfg: dict) -> dict:
    """Where a position or impedance step started (a velocity step starts from rest)."""
    return {"start_rad": cfg["home_rad"]} if "home_rad" in cfg else {}


def _write(args: argparse.Namespace, signals: dict, cfg: dict, metrics: dict, title: str) -> dict:
    """With ``--out``: the step's samples (hold and step, without the move home) as CSV, and their plot next to it."""
    if not args.out:
        return {}
    from firmware_iface.experiments.protocols import PROTOCOLS, window
    from firmware_iface.files import write_signals_csv
    from firmware_iface.plots import plot_step

    step = window(signals, PROTOCOLS["step"].segments(cfg), "step")
    write_signals_csv(step, args.out, CSV_COLUMNS)
    png = plot_step(step, args.loop, png_next_to(args.out), title, metrics)
    return {"trace_csv": str(args.out), "plot_png": str(png)}


def run_bus(args: argparse.Namespace, client) -> dict:
    """The step protocol on joint ``--node`` (bus executor) with its own gains (``--preset``/``--gains`` describe
    in-process joints only); the figures under the names the in-process test reports."""
    from firmware_iface.experiments.bus import step_test

    outcome, signals, run, cfg = step_test(client, args.loop, args.amplitude, duration_s=args.duration_s,
                                           start_rad=args.start_rad)
    figures = {"node": client.node_id, "bus": client.hub.bus.channel_info, "loop": args.loop,
               "amplitude": args.amplitude, **_start(cfg), **outcome.figures,
               "clock": "joint" if run.echoed else "host", "config": cfg, "host_loop": run.loop,
               "telemetry_gaps": dict(client.gaps)}
    title = f"node {client.node_id}: {args.loop} step {args.amplitude:g}"
    figures.update(_write(args, signals, cfg, outcome.figures, title))
    emit(figures, args.json, f"jointkit step: node {client.node_id} {args.loop}")
    return figures
