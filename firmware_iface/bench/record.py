"""Benchmark of the signal recorder over a long soak: does a flush cost the same after an hour as after a minute,
and does the recorder's memory stay flat?

Synthetic telemetry of one knee at the native profile's default rates (joint_state 1 kHz, wrench 2 x 500 Hz, motor
telemetry 100 Hz, heartbeat 10 Hz, diagnostics 1 Hz: 2111 frames/s) is fed to a ``SignalRecorder`` as fast as the
machine allows, with synthetic timestamps, and flushed every second of recording time (the recorder's own timer is
set far out of the way), so an hour of soak takes minutes. Reported:

* ``flush_ms_at_1_min`` / ``flush_ms_at_60_min``: the median flush time over the 30 flushes before each point, and
  ``flush_ratio`` (target <= 1.5);
* ``peak_rss_mb_at_1_min`` / ``peak_rss_mb_at_60_min`` (the process's high-water mark, ``ru_maxrss``) and their
  difference (target within 50 MB);
* ``frames`` and ``mf4_mb``: what was written; ``frames_read_back`` equals ``frames`` (and ``positions_read_back``
  equals ``positions_fed``) when the file reads back whole; ``wall_s``: the whole run, reading back included.
"""

from __future__ import annotations

import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Decoded, Profile
from firmware_iface.rig.recording import SignalRecorder, read_signals

WINDOW = 30  # flushes whose median is reported at each point


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _schedule(profile: Profile) -> list[tuple[str, int]]:
    """(message, frames per second) of one joint at the profile's default telemetry rates."""
    return [(message, int(rate)) for message, rate in profile.telemetry.items() if rate >= 1]


def run(preset: str = "knee", quick: bool = False, minutes: float | None = None) -> dict[str, Any]:
    profile = load_native()
    minutes = minutes or (3.0 if quick else 60.0)
    seconds = math.ceil(minutes * 60)
    rng = np.random.default_rng(0)
    schedule = [(m, n, [s.name for s in profile.message(m).signals], profile.message(m)) for m, n in _schedule(profile)]
    flush_ms: list[float] = []
    rss: dict[int, float] = {}
    frames = 0
    t0 = time.time()
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jointkit-bench-record-") as folder:
        path = Path(folder) / "signals.mf4"
        recorder = SignalRecorder(path, profile, flush_interval_s=1e9, metadata={"bench": "record"})
        try:
            for second in range(seconds):
                for name, n, signals, message in schedule:
                    values = rng.normal(size=(n, len(signals)))
                    choices = [s.choices for s in message.signals]
                    for k in range(n):
                        row = {s: (str(next(iter(c.values()))) if c else float(values[k, j]))
                               for j, (s, c) in enumerate(zip(signals, choices, strict=True))}
                        recorder.on_decoded(Decoded(1, name, row), t0 + second + k / n)
                    frames += n
                start = time.perf_counter()
                recorder.flush()
                flush_ms.append((time.perf_counter() - start) * 1e3)
                if second + 1 in (60, seconds):
                    rss[second + 1] = _rss_mb()
        finally:
            recorder.stop()
        size_mb = path.stat().st_size / 1e6
        signals = read_signals(path)
        read_back = sum(v.size for k, (_, v) in signals.items() if k.endswith(".position"))
        # one count per channel group (node and message): the time axis of its first channel
        per_group = {name.rsplit(".", 1)[0]: t.size for name, (t, _) in signals.items()}
        del signals
        expected_position = seconds * 1000  # joint_state carries .position at 1 kHz
    first = float(np.median(flush_ms[max(0, 60 - WINDOW):60]))
    last = float(np.median(flush_ms[-WINDOW:]))
    rss_1, rss_end = rss.get(60, math.nan), rss[seconds]
    return {"minutes": minutes, "frames": frames, "frames_per_s_of_recording": frames / seconds,
            "flush_ms_at_1_min": first, f"flush_ms_at_{minutes:g}_min": last, "flush_ratio": last / first,
            "peak_rss_mb_at_1_min": rss_1, f"peak_rss_mb_at_{minutes:g}_min": rss_end,
            "peak_rss_growth_mb": rss_end - rss_1, "mf4_mb": size_mb,
            "frames_read_back": sum(per_group.values()), "positions_read_back": int(read_back),
            "positions_fed": expected_position,
            "wall_s": time.perf_counter() - wall0,
            "target": {"flush_ratio_max": 1.5, "peak_rss_growth_mb_max": 50.0}}
