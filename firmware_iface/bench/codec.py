"""Benchmark of the protocol codec: cantools (the reference decoder) against the compiled batch decoder.

* The stream: random 8-byte payloads of the native profile's telemetry messages (the messages with a rate in the
  sidecar: joint_state, wrench_force, wrench_torque (big-endian, signed), motor_telemetry, heartbeat,
  diagnostics), drawn uniformly, for random nodes 1..63; every frame decodes.
* ``cantools_frames_per_s``: ``Database.decode_message(command_id, data, decode_choices=False, scaling=True)`` per
  frame over 100k frames of the stream, best of 3 (the node is stripped beforehand, in cantools' favour).
* ``compiled_frames_per_s``: ``BatchCodec.decode`` (serial: one core, as cantools) over 2M frames of the same stream,
  output arrays reused, after a warm-up call (compilation or loading the cache is not timed); best of 5.
  ``ratio`` is the one against the other; ``compiled_parallel_frames_per_s`` and ``ratio_parallel`` use every core.
* ``compiled_single_message_frames_per_s``: serial, a stream of joint_state only (one message, three signals).
* ``compiled_encode_frames_per_s``: ``BatchCodec.encode`` (serial) of the decoded stream back into frames.
* ``max_abs_diff``: the largest difference between the two decoders over the frames cantools decoded (0.0).

The decoder writes ``width`` float64 and two int32 a frame (48 bytes for the native telemetry) and, for a mixed
stream, groups each chunk's rows by message first; those, not the bit arithmetic (a fraction of a ns a signal), set
the rate. ``--quick`` shortens every run (a smoke test; noisier figures).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from firmware_iface.protocol.batch_codec import BatchCodec
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile


def telemetry_stream(profile: Profile, messages: tuple[str, ...], n: int, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arbitration ids, frames (n, 8) uint8, command ids) of ``n`` random frames of ``messages``."""
    rng = np.random.default_rng(seed)
    command = np.array([profile.message(m).frame_id for m in messages], np.int64)[rng.integers(0, len(messages), n)]
    sc = profile.sidecar
    nodes = rng.integers(sc.node_min, sc.node_max + 1, n)
    return nodes << sc.node_shift | command, rng.integers(0, 256, (n, 8), dtype=np.uint8), command


def cantools_rate(profile: Profile, frames: np.ndarray, command: np.ndarray, repeats: int) -> tuple[float, list]:
    """Best frames per second of cantools over ``frames``, and its decoded dicts (from an untimed pass)."""
    data, ids = [bytes(f) for f in frames], command.tolist()
    decode = profile.db.decode_message
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for frame_id, payload in zip(ids, data, strict=True):
            decode(frame_id, payload, decode_choices=False, scaling=True)
        best = min(best, time.perf_counter() - t0)
    return len(data) / best, [decode(i, d, decode_choices=False, scaling=True) for i, d in zip(ids, data, strict=True)]


def compiled_rate(codec: BatchCodec, ids: np.ndarray, frames: np.ndarray, repeats: int) -> float:
    """Best frames per second of ``codec.decode`` over the frames, after a warm-up call."""
    out = codec.decode(ids, frames)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        codec.decode(ids, frames, out=out)
        best = min(best, time.perf_counter() - t0)
    return len(ids) / best


def encode_rate(codec: BatchCodec, ids: np.ndarray, frames: np.ndarray, repeats: int) -> float:
    d = codec.decode(ids, frames)
    codec.encode(d.rows, d.nodes, d.values, strict=False)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        codec.encode(d.rows, d.nodes, d.values, strict=False)
        best = min(best, time.perf_counter() - t0)
    return len(ids) / best


def max_abs_diff(codec: BatchCodec, ids: np.ndarray, frames: np.ndarray, reference: list[dict]) -> float:
    """Largest |compiled - cantools| over every signal of the frames (NaN pairs count as equal)."""
    d = codec.decode(ids, frames, strict=True)
    worst = 0.0
    for i, ref in enumerate(reference):
        names = codec.layout.signals[d.rows[i]]
        got = d.values[i, :len(names)]
        want = np.array([ref[s] for s in names], np.float64)
        diff = np.abs(got - want)
        worst = max(worst, float(np.max(np.where(np.isnan(got) & np.isnan(want), 0.0, diff))))
    return worst


def run(preset: str = "knee", quick: bool = False) -> dict[str, Any]:
    del preset  # the codec does not depend on the joint
    profile = load_native()
    codec = BatchCodec(profile)
    n_ref, n_compiled = (20_000, 200_000) if quick else (100_000, 2_000_000)
    ids, frames, command = telemetry_stream(profile, codec.messages, n_compiled)
    ref_rate, reference = cantools_rate(profile, frames[:n_ref], command[:n_ref], 1 if quick else 3)
    repeats = 2 if quick else 5
    serial = compiled_rate(codec, ids, frames, repeats)
    parallel = compiled_rate(BatchCodec(profile, parallel=True), ids, frames, repeats)
    single_ids, single_frames, _ = telemetry_stream(profile, ("joint_state",), n_compiled, seed=1)
    single = compiled_rate(BatchCodec(profile, ("joint_state",)), single_ids, single_frames, repeats)
    return {
        "profile": profile.name,
        "messages": list(codec.messages),
        "width": codec.width,
        "cantools_frames": n_ref,
        "compiled_frames": n_compiled,
        "cantools_frames_per_s": ref_rate,
        "compiled_frames_per_s": serial,
        "ratio": serial / ref_rate,
        "compiled_parallel_frames_per_s": parallel,
        "ratio_parallel": parallel / ref_rate,
        "compiled_single_message_frames_per_s": single,
        "compiled_encode_frames_per_s": encode_rate(codec, ids, frames, repeats),
        "max_abs_diff": max_abs_diff(codec, ids[:n_ref], frames[:n_ref], reference),
        "cores": os.cpu_count(),
    }
