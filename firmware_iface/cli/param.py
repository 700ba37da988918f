"""``jointkit param get|set|save|list``: a joint's parameters over the bus (the sidecar's ``[params]``).

``get`` and ``set`` print the value the joint holds afterwards; ``save`` stores the joint's parameters and gains
in its flash (idle only) and prints the number of saves since boot; ``list`` prints the profile's parameter
names and ids without a bus. Exit 2 (``error: ...``) for an unknown name (the allowed names listed), a value the
joint refuses (parameter, value and the joint's status), or a joint that does not answer in time. ``set`` of a
cascade gain with ``--preset`` checks the new set on the preset's linear model first: unstable is refused
(``--force`` sends it anyway), a low margin is a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from firmware_iface.cli.common import emit, print_json
from firmware_iface.cli.common_bus import add_bus_command_options, add_profile_options, bus_session, profile_from_args

REPLY_TIMEOUT_S = 0.5
SAVE_TIMEOUT_S = 2.0  # writing a flash page takes a real joint far longer than answering a read


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("param", help="read, write, save and list a joint's parameters")
    psub = p.add_subparsers(dest="param_command", required=True, metavar="ACTION")

    g = psub.add_parser("get", help="read a parameter from a joint")
    g.add_argument("name", help="parameter name (see `jointkit param list`)")
    _joint_options(g, REPLY_TIMEOUT_S)
    g.set_defaults(func=run_get)

    s = psub.add_parser("set", help="write a parameter; prints the value the joint now holds")
    s.add_argument("name", help="parameter name (see `jointkit param list`)")
    s.add_argument("value", type=float, help="the new value, in the parameter's unit")
    s.add_argument("--preset", help="the joint's preset (name or TOML): a cascade gain is checked on its linear "
                                    "model before it is sent; unstable gains are refused")
    s.add_argument("--force", action="store_true", help="send a gain the --preset check finds unstable")
    _joint_options(s, REPLY_TIMEOUT_S)
    s.set_defaults(func=run_set)

    v = psub.add_parser("save", help="store the joint's parameters and gains in its flash (idle only)")
    _joint_options(v, SAVE_TIMEOUT_S)
    v.set_defaults(func=run_save)

    ls = psub.add_parser("list", help="the profile's parameter names and ids (no bus needed)")
    add_profile_options(ls)
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=run_list)


def _joint_options(parser: argparse.ArgumentParser, timeout_s: float) -> None:
    parser.add_argument("--node", type=int, required=True, help="node id of the joint")
    parser.add_argument("--timeout-s", type=float, default=timeout_s,
                        help=f"how long to wait for the joint's reply, s (default {timeout_s:g})")
    add_bus_command_options(parser)


def run_get(args: argparse.Namespace) -> int:
    from firmware_iface.client.joint import JointClient
    from firmware_iface.client.scan import wire_value

    profile = profile_from_args(args)
    pid = profile.param_id(args.name)  # an unknown name fails here, listing the allowed ones, before the bus opens
    with bus_session(args, profile) as (bus, _):
        value = JointClient(bus, args.node, profile).read_param(args.name, args.timeout_s)
    emit({"node": args.node, "param": args.name, "id": pid, "value": wire_value(profile, value)}, args.json,
         f"jointkit param get: node {args.node}")
    return 0


def run_set(args: argparse.Namespace) -> int:
    from firmware_iface.client.gain_check import CASCADE, check_gains
    from firmware_iface.client.joint import JointClient
    from firmware_iface.client.scan import wire_value

    profile = profile_from_args(args)
    pid = profile.param_id(args.name)
    gain = args.name.removeprefix("gain.")
    warnings: list[str] = []
    with bus_session(args, profile) as (bus, _):
        client = JointClient(bus, args.node, profile)
        if args.preset and args.name.startswith("gain.") and gain in CASCADE:
            present = {name: client.read_gain(name, args.timeout_s) for name in CASCADE}
            check = check_gains(args.preset, {gain: args.value}, present=present, where=f"node {args.node}",
                                force=args.force)
            warnings = check.warnings
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
        value = client.write_param(args.name, args.value, args.timeout_s)
    emit({"node": args.node, "param": args.name, "id": pid, "requested": args.value,
          "value": wire_value(profile, value), **({"warnings": warnings} if warnings else {})}, args.json,
         f"jointkit param set: node {args.node}")
    return 0


def run_save(args: argparse.Namespace) -> int:
    from actuator.errors import ConfigError, TimeoutError
    from firmware_iface.client.joint import JointClient

    profile = profile_from_args(args)
    with bus_session(args, profile) as (bus, _):
        client = JointClient(bus, args.node, profile)
        try:
            saves = client.save(args.timeout_s)
        except ConfigError as e:
            with contextlib.suppress(TimeoutError):  # its next heartbeat tells the state, for the message
                client.wait_alive(2 * client.heartbeat_period_s)
            state = f"; the joint reports state {client.state}" if client.state is not None else ""
            raise ConfigError(f"{e} (a joint saves in idle only, and only when it has a flash{state})") from e
    emit({"node": args.node, "flash_saves": saves}, args.json, f"jointkit param save: node {args.node}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    profile = profile_from_args(args)
    params = dict(profile.sidecar.params)
    if args.json:
        print_json({"profile": profile.name, "params": params})
        return 0
    table = Table(title=f"jointkit param list: {profile.name}")
    table.add_column("name")
    table.add_column("id", justify="right")
    for name, pid in params.items():
        table.add_row(name, str(pid))
    Console().print(table)
    return 0
