"""Options and helpers of the commands that can run on a joint over a bus (``--node N`` and the bus options)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from firmware_iface.client import JointClient, add_bus_options, bus_from_args


def add_node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", type=int, help="run on joint N over the bus (real or simulated) instead of in-process")
    add_bus_options(p)


@contextmanager
def joint_on_bus(args: argparse.Namespace) -> Iterator[JointClient]:
    """A client of ``--node`` on the bus of the options; the hub and the bus are closed afterwards."""
    bus = bus_from_args(args)
    client = None
    try:
        client = JointClient(bus, args.node)
        client.wait_alive(timeout_s=1.0)
        yield client
    finally:
        if client is not None:
            client.hub.close()
        bus.shutdown()


def on_node(args: argparse.Namespace, run_bus: Callable[[argparse.Namespace, JointClient], Any]) -> Any | None:
    """``run_bus(args, client)`` if ``--node`` was given, else None (the command runs in-process)."""
    if args.node is None:
        return None
    with joint_on_bus(args) as client:
        return run_bus(args, client)
