"""``jointkit gui``: the tuning GUI (PySide6 + pyqtgraph) on simulated joints or a bus; ``--screenshot FILE.png
[--after-step]`` renders the window offscreen (no display needed) and exits."""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_iface.cli.common import load_entry_point
from firmware_iface.cli.common_bus import add_bus_options, add_profile_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="the tuning GUI: live plots, control, gains, tests, faults, recording")
    p.add_argument("--sim", action="store_true", help="built-in simulated joints (the default without --interface)")
    p.add_argument("--in-process", action="store_true",
                   help="simulated joints in the GUI's own process, each with a fixture on its output (for the "
                        "calibrations that load it); by default they run in a process of their own (jointkit sim "
                        "serve on a free loopback port), stopped with the GUI")
    p.add_argument("--lockstep", action="store_true",
                   help="simulated joints in the GUI's process in lock-step with it: a job (a calibration, a test) "
                        "owns their clock, so its result does not depend on the wall clock or the machine's load; "
                        "between jobs they run at most at wall-clock pace (unattended runs)")
    p.add_argument("--preset", default="knee", help="joint preset of the simulated joints, and the model "
                                                    "auto-tune designs on (default knee)")
    p.add_argument("--nodes", default=None, help="node ids, e.g. 1,2 or 1-6 (simulated: default 1; on a bus: "
                                                 "default every joint heard)")
    p.add_argument("--db", help="the sequence panel's results database: an SQLite file or a postgresql://USER@HOST/DB "
                                "URL (default, as jointkit run: results.db next to the run's output folder)")
    add_bus_options(p)
    add_profile_options(p)
    p.add_argument("--screenshot", type=Path, metavar="FILE.png",
                   help="render the window to a PNG (offscreen without a display) and exit")
    p.add_argument("--after-step", action="store_true",
                   help="with --screenshot: first enable the first joint and run a step test from the Tests panel")
    p.add_argument("--amplitude", type=float, default=None, help="with --after-step: the step (rad; default 0.1)")
    p.add_argument("--json", action="store_true", help="with --screenshot: print the figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return load_entry_point("gui")(args)
