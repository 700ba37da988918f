"""The ``jointkit gui`` command's work, owned by the GUI package: ``firmware_iface.cli.gui`` parses the options and
loads this through the ``jointkit.gui`` entry point (firmware_iface never imports gui)."""

from __future__ import annotations

import argparse

from firmware_iface.cli.common import emit


def run(args: argparse.Namespace) -> int:
    from firmware_iface.cli.common_bus import profile_from_args
    from firmware_iface.protocol.load import parse_nodes
    from gui.app import run as run_gui
    from gui.session import Connection

    sim = args.sim or args.interface is None
    if args.after_step and args.screenshot is None:
        from actuator.errors import ConfigError
        raise ConfigError("--after-step needs --screenshot FILE.png")
    profile = profile_from_args(args)
    nodes = tuple(parse_nodes(args.nodes, profile)) if args.nodes else ((1,) if sim else ())
    conn = Connection(sim=sim, preset=args.preset, nodes=nodes, interface=args.interface, channel=args.channel,
                      bitrate=args.bitrate, profile=profile, in_process=args.in_process,
                      lockstep=args.lockstep)
    result = run_gui(conn, screenshot=args.screenshot, after_step=args.after_step, amplitude=args.amplitude,
                     db=args.db)
    if isinstance(result, dict):
        emit(result, args.json, "jointkit gui")
        return 0
    return int(result)
