"""The shipped MIT-mode profile (CubeMars AK80-9) against a plain-Python packer of the protocol (the Mini Cheetah
motor controller's ``pack_cmd``/``unpack_reply``: unsigned integers mapped linearly onto [min, max], big-endian, 12-bit
fields sharing nibbles), and its addressing: commands on the motor's id, replies of every motor on the master's id 0
with the motor's id in byte 0, and the special frames decoded as what they are, not as a maximal command.
"""

from __future__ import annotations

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actuator.errors import ProtocolError
from firmware_iface.protocol.capabilities import provided, replies_only
from firmware_iface.protocol.load import load_named

PROFILE = load_named("mit")
# AK80-9 (CubeMars manual, MIT mode)
P, V, KP, KD, T = (-12.5, 12.5), (-50.0, 50.0), (0.0, 500.0), (0.0, 5.0), (-18.0, 18.0)


def to_uint(x: float, lo_hi: tuple[float, float], bits: int) -> int:
    lo, hi = lo_hi
    return round((x - lo) * ((1 << bits) - 1) / (hi - lo))


def from_uint(n: int, lo_hi: tuple[float, float], bits: int) -> float:
    lo, hi = lo_hi
    return n * (hi - lo) / ((1 << bits) - 1) + lo


def pack_cmd(p: float, v: float, kp: float, kd: float, t: float) -> bytes:
    pi, vi, kpi, kdi, ti = (to_uint(p, P, 16), to_uint(v, V, 12), to_uint(kp, KP, 12), to_uint(kd, KD, 12),
                            to_uint(t, T, 12))
    return bytes([pi >> 8, pi & 0xFF, vi >> 4, (vi & 0xF) << 4 | kpi >> 8, kpi & 0xFF, kdi >> 4,
                  (kdi & 0xF) << 4 | ti >> 8, ti & 0xFF])


def pack_reply(motor: int, p: float, v: float, t: float, temp_c: int, error: int) -> bytes:
    pi, vi, ti = to_uint(p, P, 16), to_uint(v, V, 12), to_uint(t, T, 12)
    return bytes([motor, pi >> 8, pi & 0xFF, vi >> 4, (vi & 0xF) << 4 | ti >> 8, ti & 0xFF, temp_c + 40, error])


def within(lo_hi: tuple[float, float]) -> st.SearchStrategy[float]:
    return st.floats(*lo_hi, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(node=st.integers(1, 127), p=within((-2.5, 2.5)), v=within((-6.0, 6.0)), kp=within(KP), kd=within(KD),
       t=within(T))
def test_commands_pack_as_the_reference_does(node, p, v, kp, kd, t):
    msg = PROFILE.encode("MIT_Command", node, Position=p, Velocity=v, Kp=kp, Kd=kd, Torque_FF=t)
    assert msg.arbitration_id == node and len(msg.data) == 8
    ref = pack_cmd(p, v, kp, kd, t)
    # the same integers, up to one count where x sits half a count between two (cantools and round() may differ)
    fields = [(0, 16), (16, 12), (28, 12), (40, 12), (52, 12)]
    ours, theirs = int.from_bytes(msg.data, "big"), int.from_bytes(ref, "big")
    for start, bits in fields:
        shift = 64 - start - bits
        assert abs((ours >> shift & (1 << bits) - 1) - (theirs >> shift & (1 << bits) - 1)) <= 1


@settings(max_examples=60, deadline=None)
@given(motor=st.integers(1, 127), p=within(P), v=within(V), t=within(T), temp=st.integers(-40, 215),
       error=st.integers(0, 7))
def test_replies_of_every_motor_decode_to_their_own_node(motor, p, v, t, temp, error):
    d = PROFILE.decode(can.Message(arbitration_id=0, data=pack_reply(motor, p, v, t, temp, error),
                                   is_extended_id=False))
    assert (d.node_id, d.name) == (motor, "MIT_Reply")
    assert d.signals["Position"] == pytest.approx(from_uint(to_uint(p, P, 16), P, 16), abs=1e-9)
    assert d.signals["Velocity"] == pytest.approx(from_uint(to_uint(v, V, 12), V, 12), abs=1e-9)
    assert d.signals["Torque"] == pytest.approx(from_uint(to_uint(t, T, 12), T, 12), abs=1e-9)
    assert d.signals["Temperature"] == temp
    assert PROFILE.faults_of(d.signals["Error"]) == ([] if error == 0 else [d.signals["Error"]])


def test_special_frames_are_their_roles_not_a_maximal_command():
    for role, last in (("enable", 0xFC), ("disable", 0xFD), ("zero", 0xFE)):
        msg = PROFILE.encode_raw(role, 5)
        assert msg.arbitration_id == 5 and bytes(msg.data) == bytes([0xFF] * 7 + [last])
        assert PROFILE.decode(msg) == (5, role, {})
    maximal = PROFILE.decode(can.Message(arbitration_id=5, data=bytes([0xFF] * 8), is_extended_id=False))
    assert maximal.name == "MIT_Command" and maximal.signals["Position"] == pytest.approx(12.5)


def test_a_motor_id_outside_the_range_and_a_short_reply_are_refused():
    with pytest.raises(ProtocolError, match="node id 0"):
        PROFILE.decode(can.Message(arbitration_id=0, data=pack_reply(0, 0, 0, 0, 25, 0), is_extended_id=False))
    with pytest.raises(ProtocolError, match="6 data bytes, expected 8"):
        PROFILE.decode(can.Message(arbitration_id=0, data=pack_reply(3, 0, 0, 0, 25, 0)[:6], is_extended_id=False))


def test_capabilities_of_a_motor_that_only_answers():
    caps = provided(PROFILE)
    assert replies_only(PROFILE)
    assert all(caps[c] for c in ("heartbeat", "state_machine", "faults", "position_telemetry", "torque_telemetry",
                                 "impedance"))
    assert not any(caps[c] for c in ("modes", "position_command", "gains", "parameters", "estop", "clear_faults"))
    assert PROFILE.sidecar.impedance == {"kp_nm_per_rad": 50.0, "kd_nm_s_per_rad": 5.0}
