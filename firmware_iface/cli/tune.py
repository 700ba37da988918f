"""``jointkit tune``: auto-tune the position cascade (model-based or relay), verified in simulation."""

from __future__ import annotations

import argparse
from pathlib import Path

from actuator.analysis.linear import TwoMass, loop_response
from actuator.analysis.tuning import tune_model, tune_relay
from actuator.control.config import save_gains
from firmware_iface.cli.common import emit
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains, png_next_to


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="auto-tune the position loop (model-based or relay), verified in simulation")
    add_joint_options(p)
    p.add_argument("--loop", choices=("position",), default="position", help="loop to tune")
    p.add_argument("--bandwidth-hz", type=float, help="requested -3 dB bandwidth (model method; default: a "
                   "tenth of the reducer resonance)")
    p.add_argument("--zeta", type=float, default=1.0, help="damping of the velocity loop's poles (model method)")
    p.add_argument("--method", choices=("model", "relay"), default="model", help="tuning method")
    p.add_argument("--out", type=Path, help="write the tuned gains file (TOML) here, and a PNG plot next to it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params, cfg = joint_and_gains(args)
    if args.method == "relay":
        result = tune_relay(params, base=cfg)
    else:
        from actuator.analysis.tuning import design_cascade

        bw = args.bandwidth_hz or design_cascade(params).requested_bandwidth_hz
        result = tune_model(params, bw, zeta=args.zeta, base=cfg)
    figures = {"preset": params.name, **result.figures()}
    if args.out:
        from firmware_iface.plots import plot_bode

        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_gains(result.config, args.out)
        fr = result.bode.response
        band = fr.coherence > 0.9
        h = loop_response(TwoMass.from_params(params), result.config, fr.freq_hz[band]).closed
        png = plot_bode(fr, band, png_next_to(args.out), f"{params.name}: tuned position loop ({args.method})",
                        result.measured_bandwidth_hz, h)
        figures.update(gains_toml=str(args.out), plot_png=str(png))
    emit(figures, args.json, f"jointkit tune: {params.name}")
    return 0
