"""``jointkit replay FILE``: play a raw recording (BLF, candump .log or ASC) onto a bus, or re-analyse the step or
Bode test it holds.

* ``--interface/--channel`` (python-can's bus options): the frames go onto that bus at their recorded pace,
  ``--rate X`` times faster; ``--rx-only`` plays only the frames the recorder received (the joints' side), not the
  commands its process sent, so that no recorded command reaches a live joint. Ctrl-C stops (exit 0).
* ``--analyze step|bode --node N``: the position commands (reference) and joint_state positions (output) of node
  N, decoded with the profile, give the step metrics or the -3 dB bandwidth (``firmware_iface.experiments.replay``).
  A recording without those frames exits 2 naming the file, the node and what is missing.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from firmware_iface.cli.common import emit
from firmware_iface.cli.common_bus import add_bus_options, add_profile_options, bus_from_args, profile_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="play a recording onto a bus, or re-analyse the step/Bode test it holds")
    p.add_argument("file", type=Path, metavar="FILE", help="raw recording: .blf, .log (candump) or .asc")
    add_bus_options(p)
    add_profile_options(p)
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1: real time)")
    p.add_argument("--rx-only", action="store_true",
                   help="play only the frames the recorder received, not those its process sent (the commands)")
    p.add_argument("--analyze", choices=("step", "bode"), help="re-analyse the recording instead of playing it")
    p.add_argument("--node", type=int, help="the joint whose test to analyse (with --analyze)")
    p.add_argument("--pre-s", type=float, default=0.05,
                   help="step analysis: seconds kept before the step (default 0.05, the live step test's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    from actuator.errors import ConfigError

    on_bus = args.interface is not None or args.channel is not None
    if args.analyze is not None:
        if on_bus:
            raise ConfigError("replay: --analyze reads the file only; leave out --interface/--channel")
        if args.node is None:
            raise ConfigError(f"replay --analyze {args.analyze} needs --node N: the joint whose test to analyse")
        if not (math.isfinite(args.pre_s) and args.pre_s > 0):
            raise ConfigError(f"--pre-s {args.pre_s:g}: must be a positive number of seconds")
        return
    if not on_bus:
        raise ConfigError(f"replay {args.file}: give --interface/--channel to play it onto a bus, or "
                          "--analyze step|bode --node N to re-analyse it")
    if args.node is not None:
        raise ConfigError("replay: --node goes with --analyze; playback sends every node's frames")
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise ConfigError(f"--rate {args.rate:g}: must be a positive speed factor (2 plays twice as fast)")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    if args.analyze is not None:
        return _analyze(args)
    from firmware_iface.rig.recording import read_frames
    from firmware_iface.rig.replay import play

    frames = read_frames(args.file)
    bus = bus_from_args(args)
    try:
        figures = play(frames, bus, rate=args.rate, rx_only=args.rx_only)
    finally:
        channel = bus.channel_info
        bus.shutdown()
    figures = {"file": str(args.file), "bus": channel, "recorded_frames": len(frames), **figures}
    emit(figures, args.json, f"jointkit replay: {args.file.name}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from firmware_iface.experiments.replay import analyze_bode, analyze_step, step_report
    from firmware_iface.rig.recording import read_frames

    profile = profile_from_args(args)
    profile.check_node(args.node)
    frames = read_frames(args.file)
    source = str(args.file)
    figures: dict[str, Any] = {"file": source, "node": args.node, "analysis": args.analyze}
    if args.analyze == "step":
        figures.update(step_report(analyze_step(frames, profile, args.node, source=source, pre_s=args.pre_s)))
    else:
        figures.update(analyze_bode(frames, profile, args.node, source=source))
    emit(figures, args.json, f"jointkit replay --analyze {args.analyze}: {args.file.name}, node {args.node}")
    return 0
