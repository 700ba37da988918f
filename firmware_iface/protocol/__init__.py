"""The protocol layer: a profile (DBC + sidecar TOML) that encodes and decodes frames of one node, its checker, a
compiled batch codec for high-rate telemetry, and the per-node DBC export for third-party tools. cantools is the
reference codec; nothing here opens a bus.
"""

from __future__ import annotations

from firmware_iface.protocol.load import load_native, load_profile
from firmware_iface.protocol.profile import Decoded, Profile, SemanticSignal

__all__ = ["Decoded", "Profile", "SemanticSignal", "load_native", "load_profile"]
