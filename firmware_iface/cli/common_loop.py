"""Options and helpers shared by the closed-loop commands (step, bode, tune): the joint, its gains (the models
imported when a command runs: building the parser stays cheap)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actuator.control.config import ControllerConfig
    from actuator.params import JointParams


def add_joint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="knee", help="preset name (knee, wrist) or path to a joint TOML")
    p.add_argument("--gains", type=Path, help="gains file (default: the preset's seeds/gains/NAME.toml)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def joint_and_gains(args: argparse.Namespace) -> tuple[JointParams, ControllerConfig]:
    """The preset and the gains; a gains file whose cascade is unstable on the preset's linear model is refused,
    naming the file, the gains it sets and the loop's margin (a simulation of it would only end in NaN)."""
    from actuator.analysis.tuning import default_controller
    from actuator.control.config import load_gains
    from actuator.params import load_preset, read_toml
    from firmware_iface.client.gain_check import CASCADE, check_gains
    from firmware_iface.virtual_joint.firmware import gain_of

    params = load_preset(args.preset)
    if not args.gains:
        return params, default_controller(params)
    cfg = load_gains(args.gains)
    raw = read_toml(args.gains, "gains file")
    set_here = {name: gain_of(cfg, name) for name, (section, key) in CASCADE.items()
                if isinstance(raw.get(section), dict) and key in raw[section]}
    loop = getattr(args, "loop", "position")
    if set_here and loop in ("position", "velocity"):  # the impedance loop does not run the cascade
        check_gains(params, set_here, cfg, where=f"gains file {args.gains}",
                    loops=("velocity",) if loop == "velocity" else ("velocity", "position"))
    return params, cfg


def png_next_to(out: Path) -> Path:
    return out.with_suffix(".png")
