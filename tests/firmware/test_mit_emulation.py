"""The simulated joint emulating MIT-mode motors (CubeMars AK80-9 profile) on one bus, driven by jointkit's client
(issue 15, items 3-5), on a lock-step rig (the host's clock is the joints' time: figures independent of the load).

An MIT motor says nothing until spoken to: the client's first frame to it is the query (exit motor mode, the one
frame that moves nothing), and nothing else goes out before its reply. The impedance step on the bus, with the
profile's kp 50 N·m/rad and kd 5 N·m·s/rad, agrees with the in-process step of the same joint and gains within 10 %
(the bus adds the reply's 16/12-bit quantisation, 0.0004 rad and 0.009 N·m, and one frame of delay). MIT's timeout:
a motor left without commands for its watchdog time stops and ignores set-points until enabled again.
"""

from __future__ import annotations

import pytest

from firmware_iface.experiments import bus as on_bus
from firmware_iface.experiments import inprocess
from firmware_iface.protocol.load import load_named
from firmware_iface.rig.rig import sim_rig
from firmware_iface.virtual_joint.firmware import JointFirmware
from tests.firmware.ticked import SentFrames

MIT = load_named("mit")
KP, KD = MIT.sidecar.impedance["kp_nm_per_rad"], MIT.sidecar.impedance["kd_nm_s_per_rad"]
STEP_RAD = 0.2  # kp x 0.2 = 10 N·m: well above the wrist's 3.4 N·m of Coulomb friction


@pytest.fixture
def rig():
    r = sim_rig([1, 2], "wrist", profile=MIT)
    yield r
    r.close()


def test_the_first_frame_to_a_motor_is_the_query_and_its_reply_confirms_it(rig):
    tap = SentFrames()
    rig.hub.add_listener(tap)
    c = rig.clients[1]
    assert not c.identified and c.state is None  # silent until asked
    c.identify()
    assert tap.sent == [(1, bytes.fromhex("FFFFFFFFFFFFFFFD"))]
    assert c.identified and c.state == "idle" and c.faults == []
    assert not rig.clients[2].identified  # its reply is its own


def test_an_impedance_step_on_the_bus_is_the_in_process_step(rig):
    c = rig.clients[1]
    figures = on_bus.step_test(c, "impedance", STEP_RAD)[0].figures
    fw = JointFirmware("wrist")
    gains = fw.gains.replace("impedance", kp_nm_per_rad=KP, kd_nm_s_per_rad=KD)
    ref = inprocess.step_test(fw.params, gains, "impedance", STEP_RAD)[0].figures
    for name in ("rise_time_s", "peak_torque_nm"):
        assert figures[name] == pytest.approx(ref[name], rel=0.10), name
    # the joint sticks where kp e falls inside the gear's breakaway (N F_s / kp = 0.068 rad wide each way); the
    # bus's latency changes the last swing and so the point: measured -0.0110 (bus) and -0.0098 rad (in process)
    band = 100 * fw.params.reducer.static_friction_nm / KP
    assert abs(figures["steady_state_error_rad"]) < band
    assert figures["steady_state_error_rad"] == pytest.approx(ref["steady_state_error_rad"], abs=0.05 * band)
    assert abs(figures["overshoot_pct"] - ref["overshoot_pct"]) < 2.0  # points
    other = rig.clients[2]
    other.identify()
    assert abs(other.latest()["telemetry.position_rad"]) < 1e-3  # motor 2 did not move


def test_a_motor_that_timed_out_ignores_set_points_until_enabled_again(rig):
    c = rig.clients[1]
    c.enable("impedance")
    for _ in range(50):
        c.impedance(0.0, 0.0, KP, KD)
        c.clock.sleep(0.002)
    c.clock.sleep(0.3)  # three watchdog periods without a command
    for _ in range(200):
        c.impedance(STEP_RAD, 0.0, KP, KD)
        c.clock.sleep(0.002)
    assert abs(c.latest()["telemetry.position_rad"]) < 0.01  # stopped: the set-point is ignored
    c.enable("impedance")
    for _ in range(300):
        c.impedance(STEP_RAD, 0.0, KP, KD)
        c.clock.sleep(0.002)
    assert c.latest()["telemetry.position_rad"] == pytest.approx(STEP_RAD, abs=0.05)  # friction / kp = 0.07 at most
    c.disable()


def test_the_quasi_direct_drive_preset_is_an_mit_motor_s_simulated_joint():
    """The qdd preset (AK80-9-class motor, 9:1 planetary, peak 18 N·m: the profile's range) behind the MIT profile:
    the impedance step on the bus is the in-process one within 10 % (issue 16, item 10)."""
    r = sim_rig([1], "qdd", profile=MIT)
    try:
        figures = on_bus.step_test(r.clients[1], "impedance", STEP_RAD)[0].figures
    finally:
        r.close()
    fw = JointFirmware("qdd")
    gains = fw.gains.replace("impedance", kp_nm_per_rad=KP, kd_nm_s_per_rad=KD)
    ref = inprocess.step_test(fw.params, gains, "impedance", STEP_RAD)[0].figures
    for name in ("rise_time_s", "peak_torque_nm"):
        assert figures[name] == pytest.approx(ref[name], rel=0.10), name
    # an impedance step stops where the spring's pull meets the gear's static friction: anywhere in a band of
    # Fs N / kp = 0.026 x 9 / 50 = 4.7e-3 rad, which the set-points' timing on the bus moves the joint within
    # (measured: 2.8e-3 on the bus, 5.2e-3 in-process, with the tuned 1.5 kHz velocity estimator's dither)
    r_p = fw.params.reducer
    stick_band_rad = r_p.static_friction_nm * r_p.ratio / KP
    assert abs(figures["steady_state_error_rad"] - ref["steady_state_error_rad"]) < stick_band_rad
    assert ref["peak_torque_nm"] <= 18.0  # within the AK80-9's peak, which the MIT profile carries
