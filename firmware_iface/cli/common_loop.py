"""Options and helpers shared by the closed-loop commands (step, bode, tune): the joint, its gains."""

from __future__ import annotations

import argparse
from pathlib import Path

from actuator.control.config import ControllerConfig, default_controller, load_gains
from actuator.params import JointParams, load_preset


def add_joint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="knee", help="preset name (knee, wrist) or path to a joint TOML")
    p.add_argument("--gains", type=Path, help="gains file (default: the preset's seeds/gains/NAME.toml)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def joint_and_gains(args: argparse.Namespace) -> tuple[JointParams, ControllerConfig]:
    params = load_preset(args.preset)
    cfg = load_gains(args.gains) if args.gains else default_controller(params)
    return params, cfg


def png_next_to(out: Path) -> Path:
    return out.with_suffix(".png")
