"""Buses: opened from python-can's own arguments and configuration (the command line's bus options are
``firmware_iface.cli.common_bus.add_bus_options``).

``open_bus`` passes interface, channel and bitrate (and any other keyword) to ``can.Bus``; what is not given
comes from python-can's configuration (environment, ``can.ini``), so every adapter python-can supports works.
Failures raise ``BusError`` naming the interface and channel.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import can

from actuator.errors import BusError


def open_bus(interface: str | None = None, channel: str | int | None = None, bitrate: int | None = None,
             **kwargs: Any) -> can.BusABC:
    """A python-can bus; arguments left ``None`` come from python-can's configuration."""
    config = {k: v for k, v in (("interface", interface), ("channel", channel), ("bitrate", bitrate)) if v is not None}
    config.update(kwargs)
    if interface == "remote":
        config.pop("bitrate", None)  # the server's bus has its own; python-can-remote forwards only what it knows
    try:
        return can.Bus(**config)
    except Exception as e:  # python-can raises CanError, ValueError, ImportError, OSError by backend
        raise BusError(f"cannot open bus interface={interface or '(config)'} channel={channel or '(config)'}: "
                       f"{e}") from e


def bus_from_args(args: argparse.Namespace) -> can.BusABC:
    return open_bus(args.interface, args.channel, args.bitrate)


def close_bus(bus: can.BusABC) -> None:
    """Shut a bus down; a bus whose other end is already gone (a remote server killed) cannot close cleanly and
    has nothing left to lose, so its error is not raised over the one that ended the session."""
    try:
        bus.shutdown()
    except (can.CanError, OSError, ValueError):
        # the adapter's own shutdown failed half way (python-can-remote's, on a socket its server closed): python-can's
        # base shutdown marks the bus shut, else its finaliser tries again and raises in whatever thread collects it
        with contextlib.suppress(can.CanError, OSError, ValueError):
            can.BusABC.shutdown(bus)
