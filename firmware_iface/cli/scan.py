"""``jointkit scan``: the joints on a bus, from their heartbeats: passive (nothing is sent), each node reported as
confirmed or not as a joint of the profile; ``--query`` asks each confirmed joint for its protocol version;
``--profile auto`` names the shipped profile(s) each node's heartbeats confirm it as.

Exit 0 whether or not a joint is found ("no joints found" / ``"nodes": []``); 2 when the bus or the profile cannot
be opened.
"""

from __future__ import annotations

import argparse

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_bus_command_options, bus_session, profile_from_args
from firmware_iface.defaults import LISTEN_S


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="list the joints on a bus (heartbeats, state, faults, protocol version)")
    add_bus_command_options(p)
    p.add_argument("--query", action="store_true",
                   help="ask each confirmed joint for its protocol version (sends param_read; default: send nothing)")
    p.add_argument("--nodes", help="with --query, for joints that only answer (MIT mode): the node ids to ask, e.g. "
                                   "1,2 (nothing is sent to any other)")
    p.add_argument("--listen-s", type=float, default=LISTEN_S,
                   help=f"how long to listen for heartbeats, s (default {LISTEN_S:g}: 3 beats at 10 Hz)")
    p.set_defaults(func=run)


def _detect(args: argparse.Namespace) -> int:
    """``--profile auto``: the profile each node matches, among the shipped ones (nothing is sent)."""
    from actuator.errors import ConfigError
    from firmware_iface.client.scan import detect
    from firmware_iface.protocol.load import SHIPPED, load_named

    if args.query or args.sidecar is not None:
        raise ConfigError("--profile auto listens only: without --query and --sidecar")
    profiles = {name: load_named(name) for name in SHIPPED}
    with bus_session(args, profiles["native"]) as (bus, _):
        nodes = detect(bus, profiles, args.listen_s)
        channel = bus.channel_info
    if args.json:
        print_json({"nodes": nodes, "bus": channel, "listen_s": args.listen_s, "profiles": list(profiles)})
        return 0
    if not nodes:
        print(f"no joints found on {channel} (listened {args.listen_s:g} s)")
    for n in nodes:
        found = ", ".join(n["matches"]) or f"none confirmed (decodes as {', '.join(n['decodes_as'])})"
        print(f"node {n['node_id']}: {found}" + (f", state {n['state']}" if n["matches"] else ""))
    return 0


def _replies_only(profile: object) -> bool:
    from firmware_iface.protocol.capabilities import replies_only

    return replies_only(profile)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from firmware_iface.client.scan import scan

    if args.profile == "auto":
        return _detect(args)
    from firmware_iface.protocol.load import parse_nodes

    profile = profile_from_args(args)
    asked = parse_nodes(args.nodes, profile) if args.nodes else None
    with bus_session(args, profile) as (bus, _):
        nodes = scan(bus, profile, args.listen_s, query=args.query, nodes=asked)
        channel = bus.channel_info
    if args.json:
        print_json({"nodes": nodes, "bus": channel, "listen_s": args.listen_s})
        return 0
    if not nodes:
        how = "asked" if args.query else f"listened {args.listen_s:g} s"
        hint = "; its joints only answer: --query --nodes 1,2 asks them" if _replies_only(profile) and \
            not args.query else ""
        print(f"no joints found on {channel} ({how}){hint}")
        return 0
    table = Table(title=f"jointkit scan: {channel}")
    for name in ("node", "identity", "state", "mode", "faults", "profile version"):
        table.add_column(name, justify="right" if name in ("node", "profile version") else "left")
    for n in nodes:
        version = "n/a" if "profile_version" not in profile.sidecar.params else "not asked" if not (
            args.query and n["confirmed"]) else "no answer" if n["profile_version"] is None else str(
            n["profile_version"])
        state, mode = (str(n["state"]), str(n["mode"])) if n["confirmed"] else ("?", "?")
        table.add_row(str(n["node_id"]), "confirmed" if n["confirmed"] else "NOT confirmed", state, mode,
                      ", ".join(n["faults"]) or "none", version)
    console = Console()
    console.print(table)
    for n in nodes:
        if not n["confirmed"]:  # why, and that nothing will be sent to it
            print(f"node {n['node_id']}: {n['identity']}; no command is sent to it with this profile")
    return 0
