"""``jointkit scan``: the joints on a bus, from their heartbeats, with the protocol version each one reports.

Exit 0 whether or not a joint is found ("no joints found" / ``"nodes": []``); 2 when the bus or the profile cannot
be opened. Also home of the options every bus command shares: the protocol profile (``--profile``/``--sidecar``)
and ``bus_session`` (the bus and its hub, both closed on the way out).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import can
from rich.console import Console
from rich.table import Table

from actuator.errors import ConfigError
from firmware_iface.cli.common import print_json
from firmware_iface.client.bus import add_bus_options, bus_from_args
from firmware_iface.client.hub import BusHub
from firmware_iface.client.scan import LISTEN_S, scan
from firmware_iface.protocol.profile import Profile, load_native


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """``--profile DBC [--sidecar TOML]``: the protocol the joints speak (default: the native profile)."""
    group = parser.add_argument_group("protocol profile")
    group.add_argument("--profile", type=Path, metavar="DBC", help="the DBC of the joints' protocol "
                                                                   "(default: the bundled jointkit_native profile)")
    group.add_argument("--sidecar", type=Path, metavar="TOML",
                       help="its sidecar TOML (default: DBC with .toml, when it exists)")


def profile_from_args(args: argparse.Namespace) -> Profile:
    if args.profile is None:
        if args.sidecar is not None:
            raise ConfigError(f"--sidecar {args.sidecar} needs --profile (the DBC it describes)")
        return load_native()
    sidecar = args.sidecar
    if sidecar is None and args.profile.with_suffix(".toml").is_file():
        sidecar = args.profile.with_suffix(".toml")
    return Profile.load(args.profile, sidecar)


@contextmanager
def bus_session(args: argparse.Namespace, profile: Profile) -> Iterator[tuple[can.BusABC, BusHub]]:
    """The bus of the command's options and its hub (reading with ``profile``); the hub's reader is stopped and the
    bus shut down on the way out, also on errors and Ctrl-C."""
    bus = bus_from_args(args)
    hub = None
    try:
        hub = BusHub.of(bus, profile)
        yield bus, hub
    finally:
        if hub is not None:
            hub.close()
        bus.shutdown()


def add_bus_command_options(parser: argparse.ArgumentParser) -> None:
    add_bus_options(parser)
    add_profile_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="list the joints on a bus (heartbeats, state, faults, protocol version)")
    add_bus_command_options(p)
    p.add_argument("--listen-s", type=float, default=LISTEN_S,
                   help=f"how long to listen for heartbeats, s (default {LISTEN_S:g}: 3 beats at 10 Hz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profile = profile_from_args(args)
    with bus_session(args, profile) as (bus, _):
        nodes = scan(bus, profile, args.listen_s)
        channel = bus.channel_info
    if args.json:
        print_json({"nodes": nodes, "bus": channel, "listen_s": args.listen_s})
        return 0
    if not nodes:
        print(f"no joints found on {channel} (listened {args.listen_s:g} s)")
        return 0
    table = Table(title=f"jointkit scan: {channel}")
    for name in ("node", "state", "mode", "faults", "profile version"):
        table.add_column(name, justify="right" if name in ("node", "profile version") else "left")
    for n in nodes:
        version = "no answer" if n["profile_version"] is None else str(n["profile_version"])
        table.add_row(str(n["node_id"]), str(n["state"]), str(n["mode"]), ", ".join(n["faults"]) or "none", version)
    Console().print(table)
    return 0
