"""The compiled batch codec equals cantools: decoding random payloads of every telemetry message (little- and
big-endian, signed and unsigned, non-byte-aligned), encoding random values, bad rows, the plain-Python path, and
the ``bench codec`` figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actuator.errors import ProtocolError
from firmware_iface.cli import main
from firmware_iface.protocol import load_native
from firmware_iface.protocol.batch_codec import (
    ROW_BAD_LENGTH,
    ROW_BAD_NODE,
    ROW_OUT_OF_RANGE,
    ROW_UNKNOWN_ID,
    BatchCodec,
)
from firmware_iface.protocol.profile import allowed_range

PROFILE = load_native()
TELEMETRY = tuple(PROFILE.telemetry)
FLOATS = ("param_reply", "gain_write")  # float32 signals: the bit-cast path
SERIAL = BatchCodec(PROFILE, TELEMETRY + FLOATS)
PARALLEL = BatchCodec(PROFILE, TELEMETRY + FLOATS, parallel=True)
payloads = st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=40)


def same(a: float, b: float) -> bool:
    """Equal within float rounding (NaN equals NaN: random float32 payloads include NaNs)."""
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)


def reference(message: str, data: bytes) -> dict:
    return PROFILE.db.decode_message(PROFILE.message(message).frame_id, data, decode_choices=False, scaling=True)


def test_native_telemetry_covers_both_byte_orders_and_signedness():
    signals = [s for m in TELEMETRY for s in PROFILE.message(m).signals]
    assert {s.byte_order for s in signals} == {"little_endian", "big_endian"}
    assert any(s.is_signed and s.byte_order == "big_endian" for s in signals)
    assert any(s.start % 8 and s.byte_order == "big_endian" for s in signals)  # wrench_torque.sensor_temp, counter
    assert any(s.start % 8 and s.byte_order == "little_endian" for s in signals)  # motor_telemetry temperatures


@pytest.mark.parametrize("message", TELEMETRY + FLOATS)
@settings(max_examples=60, deadline=None)
@given(frames=payloads, nodes=st.lists(st.integers(1, 63), min_size=40, max_size=40))
def test_decode_equals_cantools(message, frames, nodes):
    cmd = PROFILE.message(message).frame_id
    ids = np.array([nodes[i] << 5 | cmd for i in range(len(frames))])
    arr = np.frombuffer(b"".join(frames), np.uint8).reshape(-1, 8)
    for codec in (SERIAL, PARALLEL):
        d = codec.decode(ids, arr, np.full(len(frames), 8), strict=True)
        assert d.bad == 0 and list(d.nodes) == nodes[:len(frames)]
        names = codec.signals(message)
        for i, data in enumerate(frames):
            ref = reference(message, data)
            assert all(same(d.values[i, j], ref[s]) for j, s in enumerate(names)), (message, data.hex())
            assert np.isnan(d.values[i, len(names):]).all()  # padding past the message's signals


@settings(max_examples=40, deadline=None)
@given(picks=st.lists(st.tuples(st.sampled_from(TELEMETRY), st.binary(min_size=8, max_size=8)), min_size=1,
                      max_size=12_000))
def test_mixed_stream_across_chunks_equals_cantools(picks):
    ids = np.array([7 << 5 | PROFILE.message(m).frame_id for m, _ in picks])
    arr = np.frombuffer(b"".join(d for _, d in picks), np.uint8).reshape(-1, 8)
    d = PARALLEL.decode(ids, arr)
    for i, (message, data) in enumerate(picks[::97]):
        row = i * 97
        assert SERIAL.messages[d.rows[row]] == message
        ref = reference(message, data)
        assert all(same(d.values[row, j], ref[s]) for j, s in enumerate(SERIAL.signals(message)))
    first = next(m for m, _ in picks)
    col = d.column(first, SERIAL.signals(first)[0])
    assert len(col) == sum(m == first for m, _ in picks)


def valid_rows(message: str) -> st.SearchStrategy[list[float]]:
    fields = []
    for s in PROFILE.message(message).signals:
        lo, hi = allowed_range(s)
        if s.choices:
            fields.append(st.sampled_from(sorted(float(k) for k in s.choices)))
        else:
            fields.append(st.floats(lo * 0.999 if s.is_float else lo, hi * 0.999 if s.is_float else hi,
                                    allow_nan=False, width=32 if s.is_float else 64))
    return st.tuples(*fields).map(list)


@pytest.mark.parametrize("message", TELEMETRY + FLOATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_equals_cantools(message, data):
    rows = data.draw(st.lists(valid_rows(message), min_size=1, max_size=20))
    m = PROFILE.message(message)
    for codec in (SERIAL, PARALLEL):
        ids, frames, status = codec.encode(message, 5, np.array(rows))
        assert (status >= 0).all() and (ids == 5 << 5 | m.frame_id).all()
        for i, row in enumerate(rows):
            want = m.encode({s.name: v for s, v in zip(m.signals, row, strict=True)}, scaling=True, strict=True)
            assert bytes(frames[i]) == want, (message, row)


def test_bad_rows_are_flagged_and_nan():
    jid = PROFILE.message("joint_state").frame_id
    ids = np.array([1 << 5 | jid, 0 << 5 | jid, 3 << 5 | 0x1F, 2 << 5 | jid, 63 << 5 | jid])
    frames = np.arange(40, dtype=np.uint8).reshape(5, 8)
    d = SERIAL.decode(ids, frames, dlc=np.array([8, 8, 8, 6, 8]))
    assert list(d.rows[1:4]) == [ROW_BAD_NODE, ROW_UNKNOWN_ID, ROW_BAD_LENGTH] and d.bad == 3
    assert np.isnan(d.values[1:4]).all() and not np.isnan(d.values[[0, 4], :3]).any()
    with pytest.raises(ProtocolError, match=r"3 bad frame\(s\) of 5; the first, row 1 id 0x009: node id outside"):
        SERIAL.decode(ids, frames, dlc=np.array([8, 8, 8, 6, 8]), strict=True)
    with pytest.raises(ProtocolError, match=r"frames must be \(n, 8\) uint8"):
        SERIAL.decode(ids, frames[:, :6])


def test_encode_refuses_out_of_range_values_by_name():
    codec = BatchCodec(PROFILE, ("impedance_command",))
    good = [0.5, 1.0, 300.0, 40.0, 10.0]
    codec.encode("impedance_command", 1, np.array([good]))
    with pytest.raises(ProtocolError, match=r"row 1: impedance_command\.kp = 1200 is outside the allowed range "
                                            r"\[0, 1000\]"):
        codec.encode("impedance_command", 1, np.array([good, [0.5, 1.0, 1200.0, 40.0, 10.0]]))
    with pytest.raises(ProtocolError, match=r"impedance_command\.position = nan"):
        codec.encode("impedance_command", 1, np.array([[math.nan, 1.0, 300.0, 40.0, 10.0]]))
    with pytest.raises(ProtocolError, match=r"node id 64 is outside 1\.\.63"):
        codec.encode("impedance_command", 64, np.array([good]))
    _, _, status = codec.encode("impedance_command", 1, np.array([[20.0, 0, 0, 0, 0]]), strict=False)
    assert status[0] == ROW_OUT_OF_RANGE


def test_codec_refuses_messages_it_cannot_compile():
    with pytest.raises(ProtocolError, match="no message named 'nope'"):
        BatchCodec(PROFILE, ("nope",))
    with pytest.raises(ProtocolError, match=r"compiled for joint_state, not 'heartbeat'"):
        BatchCodec(PROFILE, ("joint_state",)).decode(np.array([0x29]), np.zeros((1, 8), np.uint8)).column(
            "heartbeat", "state")


PLAIN_PATH = textwrap.dedent("""
    import json, sys
    import numpy as np
    from firmware_iface.protocol import load_native
    from firmware_iface.protocol.batch_codec import BatchCodec
    p = load_native()
    names = tuple(p.telemetry) + ("param_reply",)
    rng = np.random.default_rng(3)
    k = rng.integers(0, len(names), 300)
    ids = rng.integers(1, 64, 300) << 5 | np.array([p.message(m).frame_id for m in names])[k]
    frames = rng.integers(0, 256, (300, 8), dtype=np.uint8)
    codec = BatchCodec(p, names)
    d = codec.decode(ids, frames)
    worst = 0.0
    for i in range(300):
        ref = p.db.decode_message(p.message(names[k[i]]).frame_id, bytes(frames[i]), decode_choices=False)
        for j, s in enumerate(codec.signals(names[k[i]])):
            a, b = float(d.values[i, j]), float(ref[s])
            worst = max(worst, 0.0 if (a != a and b != b) else abs(a - b))
    _, _, status = codec.encode(d.rows, d.nodes, d.values, strict=False)
    print(json.dumps({"worst": worst, "bad": d.bad, "encoded": int((status >= 0).sum())}))
""")


@pytest.mark.slow
def test_plain_python_path_equals_cantools(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_PATH)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=True)
    figures = json.loads(out.stdout)
    assert figures["worst"] == 0.0 and figures["bad"] == 0 and figures["encoded"] > 200


def test_bench_codec_quick_json(capsys):
    code = main(["bench", "codec", "--quick", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    b = json.loads(out)
    for key in ("cantools_frames_per_s", "compiled_frames_per_s", "ratio", "compiled_parallel_frames_per_s",
                "ratio_parallel", "compiled_single_message_frames_per_s", "compiled_encode_frames_per_s"):
        assert isinstance(b[key], float) and math.isfinite(b[key]) and b[key] > 0, key
    assert b["ratio"] == pytest.approx(b["compiled_frames_per_s"] / b["cantools_frames_per_s"])
    assert b["max_abs_diff"] == 0.0 and b["width"] == 5 and "wrench_torque" in b["messages"]
