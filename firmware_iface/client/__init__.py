"""The host side: buses, the per-bus reader, ``JointClient`` and the fixed-rate host loop."""

from firmware_iface.client.bus import bus_from_args, open_bus
from firmware_iface.client.hub import BusHub
from firmware_iface.client.joint import ClampWarning, JointClient

__all__ = ["BusHub", "ClampWarning", "JointClient", "bus_from_args", "open_bus"]
