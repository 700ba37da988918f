"""Options and helpers of the commands that talk to joints over a bus: the bus options, the protocol profile
(``--profile``/``--sidecar``), ``bus_session`` (the bus and its hub, both closed on the way out, also on errors
and Ctrl-C) and ``--node N`` for the tests that run on a joint over a bus instead of in-process.

Cheap to import (python-can, cantools and the client are imported when a command runs)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actuator.errors import ConfigError
from firmware_iface.defaults import MISSED_HEARTBEATS

if TYPE_CHECKING:
    import can

    from firmware_iface.client import BusHub, JointClient
    from firmware_iface.protocol.profile import Profile

DEFAULT_BITRATE = 1_000_000  # shown in the help: what adapters that need a bitrate are commonly set to


def add_bus_options(parser: argparse.ArgumentParser) -> None:
    """``--interface/--channel/--bitrate``: the same on every command that talks to a bus."""
    group = parser.add_argument_group("bus (python-can)")
    group.add_argument("--interface", help="python-can interface: socketcan, pcan, kvaser, remote, virtual, ... "
                                           "(default: python-can's configuration)")
    group.add_argument("--channel", help="channel of the interface, e.g. can0, PCAN_USBBUS1, ws://127.0.0.1:54701/")
    group.add_argument("--bitrate", type=int, default=None,
                       help=f"bit/s (default: the configuration, or {DEFAULT_BITRATE} for adapters that need one)")


def bus_from_args(args: argparse.Namespace) -> can.BusABC:
    """The bus of the options (``firmware_iface.client.bus.bus_from_args``)."""
    from firmware_iface.client import bus

    return bus.bus_from_args(args)


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME|DBC [--sidecar TOML]``: the protocol the joints speak (default: the native profile)."""
    from firmware_iface.defaults import SHIPPED_PROFILES

    group = parser.add_argument_group("protocol profile")
    group.add_argument("--profile", metavar="NAME|DBC",
                       help=f"the joints' protocol: a shipped profile ({', '.join(SHIPPED_PROFILES)}) or the path of "
                            "a DBC (default: native)")
    group.add_argument("--sidecar", type=Path, metavar="TOML",
                       help="its sidecar TOML (default: DBC with .toml, when it exists)")


def profile_from_args(args: argparse.Namespace) -> Profile:
    from firmware_iface.protocol.load import load_named, load_native

    if args.profile is None:
        if args.sidecar is not None:
            raise ConfigError(f"--sidecar {args.sidecar} needs --profile (the DBC it describes)")
        return load_native()
    return load_named(args.profile, args.sidecar)


@contextmanager
def bus_session(args: argparse.Namespace, profile: Profile) -> Iterator[tuple[can.BusABC, BusHub]]:
    """The bus of the command's options and its hub (reading with ``profile``); the hub's reader is stopped and the
    bus shut down on the way out, also on errors and Ctrl-C."""
    from firmware_iface.client import BusHub
    from firmware_iface.client.bus import close_bus

    bus = bus_from_args(args)
    hub = None
    try:
        hub = BusHub.of(bus, profile)
        yield bus, hub
    finally:
        if hub is not None:
            hub.close()
        close_bus(bus)


def add_bus_command_options(parser: argparse.ArgumentParser) -> None:
    add_bus_options(parser)
    add_profile_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", type=int, help="run on joint N over the bus (real or simulated) instead of in-process")
    p.add_argument("--missed-heartbeats", type=int, default=MISSED_HEARTBEATS, metavar="N",
                   help=f"heartbeat periods without one before the joint counts as lost (default {MISSED_HEARTBEATS}; "
                        "more for a simulated joint on a saturated machine, which stalls with it)")
    p.add_argument("--sim", action="store_true",
                   help="with --node: joint N simulated (the --preset) on an in-process virtual bus in lock-step with "
                        "this command: the routine over the protocol as on a rig, its figures independent of the "
                        "machine's load")
    add_bus_options(p)
    add_profile_options(p)


@contextmanager
def joint_on_bus(args: argparse.Namespace) -> Iterator[JointClient]:
    """A client of ``--node`` (the ``--profile``, default native) on the bus of the options, closed with its bus
    afterwards."""
    from firmware_iface.client import JointClient

    missed = getattr(args, "missed_heartbeats", MISSED_HEARTBEATS)
    if missed < 1:
        raise ConfigError(f"--missed-heartbeats {missed} is not allowed: a whole number >= 1")
    if getattr(args, "sim", False):
        yield from _simulated_node(args, missed)
        return
    with bus_session(args, profile_from_args(args)) as (bus, hub):
        client = JointClient(bus, args.node, hub.profile, missed_heartbeats=missed)
        client.wait_alive(timeout_s=1.0)
        yield client


def _simulated_node(args: argparse.Namespace, missed: int) -> Iterator[JointClient]:
    """``--sim``: the client of joint ``--node`` on a one-joint lock-step rig (``rig.sim_rig``), closed afterwards."""
    from firmware_iface.rig.rig import sim_rig

    if args.interface is not None or args.channel is not None:
        raise ConfigError(f"--sim simulates the joint on its own bus: not with --interface {args.interface} "
                          f"--channel {args.channel}")
    rig = sim_rig([args.node], getattr(args, "preset", None) or "knee", profile=profile_from_args(args),
                  seed=getattr(args, "seed", 0) or 0)
    try:
        client = rig.client(args.node)
        client.missed_heartbeats = missed
        client.wait_alive(timeout_s=1.0)
        yield client
    finally:
        rig.close()


def on_node(args: argparse.Namespace, run_bus: Callable[[argparse.Namespace, JointClient], Any]) -> Any | None:
    """``run_bus(args, client)`` if ``--node`` was given, else None (the command runs in-process)."""
    if args.node is None:
        if getattr(args, "sim", False):
            raise ConfigError("--sim simulates joint --node N on a bus: it needs --node (without both, the command "
                              "runs on an in-process simulated joint)")
        if args.profile is not None or args.sidecar is not None:
            raise ConfigError("--profile and --sidecar describe a joint on a bus: they need --node")
        return None
    with joint_on_bus(args) as client:
        return run_bus(args, client)
