"""``jointkit bode``: closed-loop frequency response of the position or velocity loop (simulated joint),
its -3 dB bandwidth and, where measurable, the gain and phase margins; the linear model's prediction
beside it."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from firmware_iface.cli.common import emit
from firmware_iface.cli.common_bus import add_node_options, on_node
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains, png_next_to


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bode", help="frequency response of a control loop (simulated joint)")
    add_joint_options(p)
    p.add_argument("--loop", choices=("position", "velocity"), default="position", help="loop under test")
    p.add_argument("--f0-hz", type=float, help="lowest frequency (default: a tenth of the predicted bandwidth)")
    p.add_argument("--f1-hz", type=float, help="highest frequency (default: 3x the predicted bandwidth)")
    p.add_argument("--amplitude", type=float, help="chirp amplitude, rad or rad/s (default: sized to the joint)")
    p.add_argument("--out", type=Path, help="write the response as CSV here, and a PNG Bode plot next to it")
    add_node_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if on_node(args, run_bus) is not None:
        return 0
    from actuator.analysis.linear import TwoMass, loop_response, predict
    from actuator.analysis.loop_gain import loop_gain_test
    from firmware_iface.experiments.inprocess import bode_test

    params, cfg = joint_and_gains(args)
    model = TwoMass.from_params(params)
    cfg_loop = cfg.with_mode(args.loop)
    pred = predict(model, cfg_loop, args.loop)
    f_b = pred.bandwidth_hz if math.isfinite(pred.bandwidth_hz) else 10.0
    f0 = args.f0_hz or 0.1 * f_b
    f1 = args.f1_hz or 3.0 * f_b
    outcome, _, chirp = bode_test(params, cfg, args.loop, f0, f1, args.amplitude)
    gm, pm = loop_gain_test(params, cfg, f0, f1)[1:] if args.loop == "position" else (math.nan, math.nan)
    fr, bw = outcome.response, outcome.figures["bandwidth_hz"]
    amplitude = chirp["amplitude_rad"]
    # at the chirp's amplitude: the gear's Coulomb friction by its describing function (actuator.analysis.linear)
    at_amplitude = predict(model, cfg_loop, args.loop, amplitude=amplitude)
    figures = {"preset": params.name, "loop": args.loop, "f0_hz": f0, "f1_hz": f1, "bandwidth_hz": bw,
               "gain_margin_db": gm, "phase_margin_deg": pm, "amplitude": amplitude,
               "predicted": {"bandwidth_hz": at_amplitude.bandwidth_hz, "linear_bandwidth_hz": pred.bandwidth_hz,
                             "gain_margin_db": pred.gain_margin_db, "phase_margin_deg": pred.phase_margin_deg}}
    if not math.isfinite(gm):
        figures["margins_note"] = ("not measurable: the loop-gain measurement needs the joint moving (static "
                                   "friction held it); the predicted margins are the linear model's")
    if args.out and fr is not None:
        from firmware_iface.plots import plot_bode

        band = (fr.freq_hz >= f0) & (fr.freq_hz <= f1)
        write_frf(args.out, fr, band)
        model_h = loop_response(model, cfg_loop, fr.freq_hz[band], args.loop, amplitude).closed
        png = plot_bode(fr, band, png_next_to(args.out), f"{params.name}: {args.loop} loop", bw, model_h)
        figures.update(response_csv=str(args.out), plot_png=str(png))
    emit(figures, args.json, f"jointkit bode: {params.name} {args.loop}")
    return 0


def write_frf(path: Path, fr, band) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["freq_hz", "magnitude_db", "phase_deg", "coherence"])
        w.writerows(zip(fr.freq_hz[band].tolist(), fr.magnitude_db[band].tolist(), fr.phase_deg[band].tolist(),
                        fr.coherence[band].tolist(), strict=True))


def run_bus(args: argparse.Namespace, client) -> dict:
    """The bode protocol on joint ``--node`` (bus executor): reference -> output only (the host cannot inject at the
    drive)."""
    from firmware_iface.experiments.bus import bode_test

    f0, f1, amplitude = args.f0_hz or 1.0, args.f1_hz or 20.0, args.amplitude or 0.002
    outcome, _, run, _ = bode_test(client, args.loop, f0, f1, amplitude)
    figures = {"node": client.node_id, "bus": client.hub.bus.channel_info, "loop": args.loop, "f0_hz": f0,
               "f1_hz": f1, "amplitude": amplitude, **outcome.figures, "host_loop": run.loop}
    if args.out and outcome.response is not None:
        fr = outcome.response
        write_frf(args.out, fr, (fr.freq_hz >= f0) & (fr.freq_hz <= f1))
        figures["response_csv"] = str(args.out)
    emit(figures, args.json, f"jointkit bode: node {client.node_id} {args.loop}")
    return figures
