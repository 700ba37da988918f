"""``jointkit tune``: auto-tune the position cascade (model-based or relay), verified in simulation."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from firmware_iface.cli.common import emit
from firmware_iface.cli.common_bus import add_node_options, on_node
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
    add_node_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params, cfg = joint_and_gains(args)
    result = _tune(args, params, cfg)
    if on_node(args, lambda a, client: run_bus(a, client, params, result)) is not None:
        return 0
    return _report(args, params, result)


def _tune(args: argparse.Namespace, params, cfg):
    from actuator.analysis.tuning import design_cascade
    from firmware_iface.experiments.tune import tune_model, tune_relay

    if args.method == "relay":
        return tune_relay(params, base=cfg)

    # only a missing option takes the default: --bandwidth-hz 0 is refused by tune_model, not silently replaced
    bw = design_cascade(params).requested_bandwidth_hz if args.bandwidth_hz is None else args.bandwidth_hz
    return tune_model(params, bw, zeta=args.zeta, base=cfg)


def _report(args, params, result) -> int:
    figures = {"preset": params.name, **result.figures()}
    if args.out:
        from actuator.analysis.linear import TwoMass, loop_response
        from firmware_iface.files import save_gains
        from firmware_iface.plots import plot_bode

        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_gains(result.config, args.out)
        fr = result.response
        band = fr.coherence > 0.9
        h = loop_response(TwoMass.from_params(params), result.config, fr.freq_hz[band]).closed
        png = plot_bode(fr, band, png_next_to(args.out), f"{params.name}: tuned position loop ({args.method})",
                        result.measured_bandwidth_hz, h)
        figures.update(gains_toml=str(args.out), plot_png=str(png))
    emit(figures, args.json, f"jointkit tune: {params.name}")
    return 0


def run_bus(args: argparse.Namespace, client, params, result) -> dict:
    """Gains designed and verified on the ``--preset`` model, written live to joint ``--node`` and measured there
    (``experiments.tune``), then a step test of the tuned joint (the step protocol on the bus executor)."""
    from firmware_iface.experiments.bus import step_test
    from firmware_iface.experiments.tune import tune_joint

    # a relay tune asks for no bandwidth: its loop is measured about the one it reached in simulation
    asked = result.requested_bandwidth_hz
    tuned = tune_joint(client, params, asked if math.isfinite(asked) else result.measured_bandwidth_hz, apply=True,
                       result=result)
    step, _, _, _ = step_test(client, "position", 0.05, duration_s=1.0)
    figures = {"node": client.node_id, "bus": client.hub.bus.channel_info, "method": result.method,
               **tuned.figures(), "step": step.figures, "gains_written": tuned.written,
               "predicted": result.figures().get("predicted")}
    emit(figures, args.json, f"jointkit tune: node {client.node_id}")
    return figures
