"""jointkit's own client driving a CiA 402 joint (issue 15, item 3): the simulated joint's CANopen drive
(``virtual_joint.cia402``, on the canopen library) on a lock-step rig, read and commanded through the shipped
``cia402`` profile (the EDS's default PDO mapping as a DBC, COB-IDs by node).

Scanned by its NMT heartbeat (nothing sent), brought to OPERATION ENABLED through the 402 state machine (NMT start,
then the controlwords shutdown and enable operation, read back from the statusword by CiA 402's masks), stepped in
CSP with jointkit producing SYNC after each set-point, within 10 % of the in-process step of the same joint (the
bus adds the TPDO's sampling at SYNC and one frame of delay). Its watchdog: set-points (and SYNC) that stop make the
joint fault, reported by EMCY with the firmware's bits; a fault reset brings it back.
"""

from __future__ import annotations

import pytest

from actuator.errors import ConfigError, FaultError
from firmware_iface.experiments import bus as on_bus
from firmware_iface.experiments import inprocess
from firmware_iface.protocol.load import load_named
from firmware_iface.rig.rig import sim_rig
from firmware_iface.virtual_joint.firmware import JointFirmware
from tests.firmware.ticked import SentFrames

CIA402 = load_named("cia402")


@pytest.fixture
def rig():
    r = sim_rig([1, 2], "knee", profile=CIA402)
    yield r
    r.close()


def test_a_drive_is_confirmed_by_its_heartbeat_and_enabled_through_the_state_machine(rig):
    tap = SentFrames()
    rig.hub.add_listener(tap)
    c = rig.clients[1]
    c.identify()
    assert tap.sent == []  # confirmed by listening
    assert c.identified and c.state is None  # pre-operational: no PDO yet
    c.enable("position")
    assert (c.state, c.mode) == ("closed_loop", "position")
    frames = [f for f in tap.sent if f[0] != 0x080]  # without the SYNCs
    assert frames[0] == (0x000, bytes([0x01, 1]))  # NMT start node 1
    controlwords = [int.from_bytes(d[:2], "little") for i, d in frames if i == 0x201]
    assert controlwords[-2:] == [0x06, 0x0F]  # shutdown, enable operation
    assert {i for i, _ in frames} <= {0x000, 0x201}  # nothing to node 2
    assert any(i == 0x080 and d == b"" for i, d in tap.sent)  # jointkit produced SYNC


def test_a_csp_step_on_the_bus_is_the_in_process_step(rig):
    c = rig.clients[1]
    figures = on_bus.step_test(c, "position", 0.1)[0].figures
    fw = JointFirmware("knee")
    ref = inprocess.step_test(fw.params, fw.gains, "position", 0.1)[0].figures
    for name in ("rise_time_s", "settling_time_s"):
        assert figures[name] == pytest.approx(ref[name], rel=0.10), name
    assert abs(figures["overshoot_pct"] - ref["overshoot_pct"]) < 1.0
    assert abs(figures["steady_state_error_rad"]) < 1e-3


def test_a_drive_left_without_set_points_faults_with_emcy_and_is_reset(rig):
    c = rig.clients[1]
    c.enable("position")
    c.position(c.latest()["telemetry.position_rad"])
    c.clock.sleep(0.5)  # no set-point, no SYNC: the firmware's watchdog (0.1 s) stops the joint
    c.sync()
    c.wait_for(lambda: c.state == "fault", 0.5, "the statusword's fault")
    assert "watchdog" in c.faults  # EMCY 0x8250, its manufacturer bytes the firmware's bits
    with pytest.raises(FaultError, match="watchdog"):
        c.position(0.0)
    c.clear_faults()  # disable voltage, fault reset: SWITCH ON DISABLED
    c.wait_for(lambda: c.state == "idle", 0.5, "the statusword out of fault")
    assert c.faults == [] and c.status["Statusword"] == "idle"
    c.enable("position")
    assert c.state == "closed_loop"


def test_gains_are_sdo_objects_read_written_live_and_refused_by_the_drive(rig):
    c = rig.clients[1]
    fw = rig.nodes[1].fw
    assert c.read_gain("position_kp") == pytest.approx(fw.read_gain("position_kp"), rel=1e-6)  # REAL32
    assert c.write_param("gain.velocity_kp", 150.0) == pytest.approx(150.0)  # downloaded, then uploaded back
    assert fw.read_gain("velocity_kp") == pytest.approx(150.0)
    with pytest.raises(ConfigError, match="refused by the joint: refused"):
        c.write_param("gain.position_kp", -1.0)  # SDO abort 0x06090030: nothing changes
    assert fw.read_gain("position_kp") > 0.0


def test_tune_writes_the_gains_by_sdo_and_measures_the_joint(rig):
    from actuator.params import load_preset
    from firmware_iface.experiments.tune import tune_joint

    tuned = tune_joint(rig.clients[1], load_preset("knee"), 5.0, apply=True)
    fw = rig.nodes[1].fw
    assert tuned.written["position_kp"] == pytest.approx(fw.read_gain("position_kp"), rel=1e-6)
    assert tuned.measured.figures["bandwidth_hz"] == pytest.approx(5.0, rel=0.10)  # the 4.87 Hz the model verifies
