"""Playing a raw recording onto a bus in (scaled) real time: ``play`` (``can.MessageSync`` over the recorded timestamps,
divided by ``rate``). Re-analysing a recorded test is ``firmware_iface.experiments.replay``'s.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from typing import Any

import can

from actuator.errors import BusError, ConfigError


def play(frames: list[can.Message], bus: can.BusABC, *, rate: float = 1.0, rx_only: bool = False,
         stop: threading.Event | None = None) -> dict[str, Any]:
    """Send ``frames`` onto ``bus`` at their recorded pace sped up ``rate`` times; only the frames the recorder
    received (not those its process sent) with ``rx_only``. Stops early at ``stop`` or Ctrl-C. Returns frames sent,
    seconds taken and whether it was interrupted. ``frames`` are left as they are (copies are retimed)."""
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate = {rate!r}: must be a positive factor (2 plays twice as fast)")
    chosen = [copy.copy(m) for m in frames if (m.is_rx or not rx_only) and not m.is_error_frame]
    if chosen:
        t0 = chosen[0].timestamp
        for m in chosen:
            m.timestamp = t0 + (m.timestamp - t0) / rate
            m.channel = None  # the recording's channel names the recorder's adapter, not this bus's
    sent, start, interrupted = 0, time.perf_counter(), False
    try:
        for msg in can.MessageSync(chosen):
            if stop is not None and stop.is_set():
                break
            try:
                bus.send(msg)
            except (can.CanError, OSError, ValueError) as e:
                raise BusError(f"cannot send 0x{msg.arbitration_id:03x} on {bus.channel_info}: {e}") from e
            sent += 1
    except KeyboardInterrupt:  # Ctrl-C ends a playback early; what was sent is still reported
        interrupted = True
    return {"frames": sent, "duration_s": time.perf_counter() - start, "rate": rate, "interrupted": interrupted}
