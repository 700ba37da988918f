"""The simulated joint as a CiA 402 drive, driven by the ``canopen`` library as master over python-can's in-process
``virtual`` bus: boot and identity, CSP tracking, modes without a set-point, PP, the heartbeat consumer, SYNC loss
and fault reset. Plus the drive's state machine and PP trajectory as pure functions.

The joint runs paced in a ``Cia402Runner`` thread and the master's SYNC comes from canopen's send_periodic thread at
1 kHz, so on a busy machine the timing jitters: verdicts are on values (positions, codes, statuswords) with generous
waits; the watchdog windows used here (100 ms heartbeat, 200-cycle SYNC loss) are far above the jitter seen.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

import can
import canopen
import pytest

from firmware_iface.virtual_joint.cia402 import EDS_PATH, Cia402JointNode, Cia402Runner
from firmware_iface.virtual_joint.cia402_drive import (
    ENABLED,
    FAULT,
    QUICK_STOP,
    READY,
    SWITCH_ON_DISABLED,
    SWITCHED_ON,
    Trajectory,
    transition,
)

NODE_ID, MASTER_ID = 5, 0x7E
COUNTS_PER_RAD = 2**20 / (2 * math.pi)
_channels = itertools.count()
SW_STATE_MASK = 0x6F


def wait_for(predicate: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def joint() -> Iterator[tuple[Cia402JointNode, Cia402Runner, str]]:
    channel = f"cia402-test-{os.getpid()}"
    bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    # the firmware's own watchdog (0.1 s by default) is the last resort behind the CANopen monitoring: longer than
    # the SYNC-loss window used here, so that SYNC loss is what trips first
    node = Cia402JointNode(bus, NODE_ID, watchdog_timeout_s=0.5)
    runner = node.start(paced=True)  # ticks once before the thread: the joint's kernels are compiled here
    yield node, runner, channel
    runner.stop()
    bus.shutdown()


@pytest.fixture
def master(joint: tuple[Cia402JointNode, Cia402Runner, str]) -> Iterator[canopen.BaseNode402]:
    """A fresh master network and BaseNode402 for each test; the joint reset by NMT and its boot-up seen."""
    node, _, channel = joint
    network = canopen.Network()
    network.connect(interface="virtual", channel=channel)
    drive = canopen.BaseNode402(NODE_ID, str(EDS_PATH))
    network.add_node(drive)
    for name, value in (("TIMEOUT_SWITCH_STATE_FINAL", 5.0), ("TIMEOUT_SWITCH_STATE_SINGLE", 2.0),
                        ("TIMEOUT_CHECK_TPDO", 1.0), ("TIMEOUT_SWITCH_OP_MODE", 3.0)):
        setattr(drive, name, value)  # the library's defaults (0.2-0.8 s) are tight for a loaded 2-core box
    booted = threading.Event()
    network.subscribe(0x700 + NODE_ID, lambda cob, data, t: data[:1] == b"\x00" and booted.set())
    drive.nmt.state = "RESET"
    assert booted.wait(5.0), "no boot-up after NMT reset node"
    wait_for(lambda: node.drive.state == SWITCH_ON_DISABLED, what="switch on disabled after boot")
    yield drive
    network.sync.stop()
    network.disconnect()


def enable(drive: canopen.BaseNode402, mode: str) -> float:
    """Configure from the joint's PDOs, go operational with SYNC at 1 kHz, select ``mode`` and enable with the
    target at the present position. Returns the seconds from the first controlword to OPERATION ENABLED."""
    drive.nmt.state = "PRE-OPERATIONAL"
    drive.setup_402_state_machine()  # reads the RPDO/TPDO configuration by SDO
    drive.nmt.state = "OPERATIONAL"
    drive.network.sync.start(0.001)
    assert drive.tpdo[1].wait_for_reception(5.0) is not None, "no TPDO1 at SYNC"
    drive.op_mode = mode
    assert drive.op_mode == mode
    drive.rpdo[1]["Target position"].raw = drive.tpdo_values[0x6064]
    t0 = time.monotonic()
    drive.state = "OPERATION ENABLED"
    return time.monotonic() - t0


def position_rad(drive: canopen.BaseNode402) -> float:
    return drive.tpdo_values[0x6064] / COUNTS_PER_RAD


def stream(drive: canopen.BaseNode402, duration_s: float, target: Callable[[float], float],
           on_sample: Callable[[float, float], None] | None = None,
           clock: Callable[[], float] = time.monotonic) -> None:
    """Send target position ``target(t)`` (rad) through RPDO1 about every millisecond for ``duration_s``, ``t`` on
    ``clock`` (the joint's own time keeps a ramp continuous for a joint that a stalled process made skip)."""
    t0 = clock()
    while (t := clock() - t0) < duration_s:
        x = target(t)
        drive.rpdo[1]["Target position"].raw = round(x * COUNTS_PER_RAD)
        drive.rpdo[1].transmit()
        if on_sample is not None:
            on_sample(x, position_rad(drive))
        time.sleep(0.001)


def test_boot_identity_and_heartbeat(master: canopen.BaseNode402) -> None:
    assert master.sdo[0x1000].raw == 0x00020192  # CiA 402 servo drive
    assert master.sdo[0x1018][1].raw == 0x4A4B5400  # the placeholder vendor id of the EDS
    assert master.sdo[0x6502].raw == 0x381  # PP, CSP, CSV, CST
    assert master.sdo[0x6076].raw == 50_000  # the knee's rated torque, mN m
    assert master.sdo[0x607D][2].raw == round(2.5 * COUNTS_PER_RAD)
    beats: list[bytes] = []
    master.network.subscribe(0x700 + NODE_ID, lambda cob, data, t: beats.append(bytes(data)))
    master.sdo[0x1017].raw = 20
    time.sleep(0.5)
    assert len(beats) >= 5 and set(beats) == {b"\x7f"}  # ~25 heartbeats, all pre-operational
    with pytest.raises(canopen.SdoAbortedError):
        master.sdo[0x6060].raw = 3  # profile velocity is not supported
    with pytest.raises(canopen.SdoAbortedError):
        master.sdo[0x1A00][1].raw = 0x60410020  # a 16-bit object mapped as 32 bits


def test_csp_follows_a_ramp_streamed_through_the_rpdo(master: canopen.BaseNode402,
                                                      joint: tuple[Cia402JointNode, Cia402Runner, str]) -> None:
    node = joint[0]
    seconds_to_enable = enable(master, "CYCLIC SYNCHRONOUS POSITION")
    assert master.state == "OPERATION ENABLED" and node.fw.state == "closed_loop"
    start = position_rad(master)
    errors: list[float] = []
    # 0.2 rad at 1 rad/s, then hold: the position loop lags a ramp by about v * tau, tau ~ rise time / 2.2 = 0.03 s
    # for the knee (rise 0.068 s): ~0.03 rad measured; 0.1 rad leaves room for a stalled thread
    # on the joint's clock: a process stopped 0.3 s, on the wall clock, moved the ramp 0.3 rad/s ahead of a joint
    # that resynchronised (0.18 rad of error seen)
    stream(master, 0.8, lambda t: start + 0.2 * min(t / 0.2, 1.0), lambda x, y: errors.append(abs(x - y)),
           clock=lambda: node.fw.t_s)
    final = position_rad(master)
    print(f"CSP: enable {seconds_to_enable * 1e3:.1f} ms, max ramp error {max(errors):.4f} rad, "
          f"final error {final - start - 0.2:+.2e} rad")
    assert max(errors) < 0.1
    assert abs(final - (start + 0.2)) < 0.002  # settled 0.6 s after the ramp: the step settles in 0.16 s
    assert abs(master.sdo[0x6064].raw / COUNTS_PER_RAD - (start + 0.2)) < 0.002
    sw = master.statusword
    assert sw & SW_STATE_MASK == 0x27 and sw & 0x0200 and sw & 0x1000 and not sw & 0x2000  # follows, no error
    assert node.fw.counters["watchdog_trips"] == 0


def test_a_mode_without_its_set_point_does_not_move_the_joint(
        master: canopen.BaseNode402, joint: tuple[Cia402JointNode, Cia402Runner, str]) -> None:
    node = joint[0]
    enable(master, "CYCLIC SYNCHRONOUS VELOCITY")
    start = position_rad(master)
    stream(master, 0.3, lambda t: start + 0.3)  # a position target in CSV: ignored
    assert abs(position_rad(master) - start) < 0.005
    master.rpdo[2]["Target velocity"].raw = round(0.5 * COUNTS_PER_RAD)  # 0.5 rad/s, the set-point of CSV: moves
    master.rpdo[2].transmit()
    # waits by condition, not by a wall-clock sleep: a saturated machine stalls the paced joint (it did, 0.3 s
    # slept, 0.0 rad moved); then the velocity actual reaches the set-point (10 %: a velocity loop settled on it)
    wait_for(lambda: abs(master.tpdo_values[0x606C] - 0.5 * COUNTS_PER_RAD) < 0.05 * COUNTS_PER_RAD, 30.0,
             "the joint at its CSV set-point of 0.5 rad/s")
    assert position_rad(master) - start > 0.0
    master.rpdo[2]["Target velocity"].raw = 0
    master.rpdo[2].transmit()
    wait_for(lambda: abs(master.tpdo_values[0x606C]) < 0.01 * COUNTS_PER_RAD, 30.0, "the joint stopped")
    master.op_mode = "NO MODE"  # enabled without a mode: holds where it is, whatever the targets say
    held = position_rad(master)
    master.rpdo[2]["Target velocity"].raw = round(0.5 * COUNTS_PER_RAD)
    master.rpdo[2].transmit()
    stream(master, 0.3, lambda t: held - 0.3)
    assert abs(position_rad(master) - held) < 0.005
    assert master.state == "OPERATION ENABLED" and node.fw.counters["watchdog_trips"] == 0


def test_cst_drives_the_torque_of_the_target_and_quick_stop_holds_still(master: canopen.BaseNode402) -> None:
    enable(master, "CYCLIC SYNCHRONOUS TORQUE")
    start = position_rad(master)
    master.rpdo[3]["Target torque"].raw = 400  # 40 % of the 50 N m rated: ~1 rad/s within 0.2 s (measured)
    master.rpdo[3].transmit()
    wait_for(lambda: master.tpdo_values[0x606C] > 0.3 * COUNTS_PER_RAD, 2.0, "the joint turning forward")
    assert 300 < master.tpdo_values[0x6077] < 500  # torque actual, per mille
    master.rpdo[3]["Target torque"].raw = 0
    master.rpdo[3].transmit()
    master.state = "QUICK STOP ACTIVE"
    wait_for(lambda: master.statusword & 0x0400, 2.0, "quick stop: standing still (bit 10)")
    assert position_rad(master) > start and abs(master.tpdo_values[0x606C]) < 0.05 * COUNTS_PER_RAD


def test_profile_position_moves_to_the_target_and_reports_it_reached(master: canopen.BaseNode402) -> None:
    master.sdo[0x6081].raw = round(2.0 * COUNTS_PER_RAD)
    master.sdo[0x6083].raw = master.sdo[0x6084].raw = round(20.0 * COUNTS_PER_RAD)
    enable(master, "PROFILED POSITION")
    start = position_rad(master)
    master.rpdo[1]["Target position"].raw = round((start + 0.3) * COUNTS_PER_RAD)
    master.controlword = 0x1F  # new set-point (bit 4)
    wait_for(lambda: master.statusword & 0x1000, what="set-point acknowledge (bit 12)")
    master.controlword = 0x0F
    wait_for(lambda: master.statusword & 0x1400 == 0x0400, 3.0, "target reached (bit 10), acknowledge cleared")
    assert abs(position_rad(master) - (start + 0.3)) <= master.sdo[0x6067].raw / COUNTS_PER_RAD


def test_heartbeat_consumer_timeout_faults_the_joint_and_fault_reset_clears_it(
        master: canopen.BaseNode402, joint: tuple[Cia402JointNode, Cia402Runner, str]) -> None:
    node = joint[0]
    master.sdo[0x1016][1].raw = MASTER_ID << 16 | 100  # expect the master's heartbeat every 100 ms at most
    beat = master.network.send_periodic(0x700 + MASTER_ID, [0x05], 0.02)
    try:
        enable(master, "CYCLIC SYNCHRONOUS POSITION")
        time.sleep(0.3)
        assert master.state == "OPERATION ENABLED"  # heartbeats arriving: no fault
    finally:
        beat.stop()
    emcy = wait_for(lambda: [e for e in master.emcy.log if e.code == 0x8130], what="EMCY 0x8130")[0]
    assert emcy.register & 0x11 == 0x11  # generic + communication
    wait_for(lambda: master.state == "FAULT", what="FAULT in the statusword")
    assert master.sdo[0x603F].raw == 0x8130 and master.sdo[0x1001].raw & 0x10
    assert node.fw.state == "fault"
    master.state = "SWITCH ON DISABLED"  # fault reset: rising edge of controlword bit 7
    wait_for(lambda: [e for e in master.emcy.log if e.code == 0], what="EMCY error reset")
    assert master.sdo[0x1001].raw == 0 and master.sdo[0x603F].raw == 0 and node.fw.state == "idle"


def test_sync_loss_faults_the_enabled_joint(master: canopen.BaseNode402,
                                            joint: tuple[Cia402JointNode, Cia402Runner, str]) -> None:
    node = joint[0]
    master.sdo[0x1006].raw = 1000  # 1 ms cycle
    master.sdo[0x2000].raw = 150  # SYNC loss after 150 cycles: far above the SYNC thread's jitter
    enable(master, "CYCLIC SYNCHRONOUS POSITION")
    time.sleep(0.3)
    assert master.state == "OPERATION ENABLED"
    master.network.sync.stop()
    wait_for(lambda: [e for e in master.emcy.log if e.code == 0x8700], what="EMCY 0x8700")
    # without SYNC the TPDOs stop too: the statusword by SDO
    wait_for(lambda: master.sdo[0x6041].raw & 0x4F == 0x08, what="FAULT")
    assert node.fw.state == "fault" and node.drive.state == FAULT
    master.sdo[0x6040].raw = 0x00
    master.sdo[0x6040].raw = 0x80
    assert master.sdo[0x6041].raw & 0x4F == 0x40  # switch on disabled
    assert master.sdo[0x1001].raw == 0


def test_without_sync_monitoring_the_firmware_watchdog_stops_the_joint(
        master: canopen.BaseNode402, joint: tuple[Cia402JointNode, Cia402Runner, str]) -> None:
    node = joint[0]
    enable(master, "CYCLIC SYNCHRONOUS POSITION")  # 0x1006 = 0: SYNC not monitored
    master.network.sync.stop()  # no SYNC and no RPDO: nothing feeds the firmware's watchdog
    wait_for(lambda: [e for e in master.emcy.log if e.code == 0x8250], what="EMCY 0x8250")
    wait_for(lambda: master.sdo[0x6041].raw & 0x4F == 0x08, what="FAULT")
    assert node.fw.counters["watchdog_trips"] == 1


def test_a_firmware_fault_is_reported_with_its_code_and_persists_through_a_reset_while_present(
        master: canopen.BaseNode402, joint: tuple[Cia402JointNode, Cia402Runner, str]) -> None:
    node = joint[0]
    enable(master, "CYCLIC SYNCHRONOUS POSITION")
    node.inject("over_temperature", 20.0)  # the winding 20 °C over its limit: it cools in minutes, not here
    emcy = wait_for(lambda: [e for e in master.emcy.log if e.code == 0x4310], what="EMCY 0x4310")[0]
    assert emcy.register == 0x09  # generic + temperature
    wait_for(lambda: master.state == "FAULT", what="FAULT")
    master.emcy.reset()
    master.controlword = 0x00
    master.controlword = 0x80  # fault reset while still hot: back in fault, reported again
    wait_for(lambda: [e for e in master.emcy.log if e.code == 0x4310], what="EMCY 0x4310 again")
    assert master.sdo[0x603F].raw == 0x4310 and node.drive.state == FAULT


def test_sync_loss_rule_in_lock_step() -> None:
    """No master library, no threads: raw frames and ``runner.step()``, so the rule is checked to the millisecond of
    joint time: enabled in CSP with 0x1006 = 1 ms and 0x2000 = 3, the fault comes at the first chunk more than 3 ms
    after the last SYNC: the SYNC is taken at joint time t, the chunks end at t + 1, 2, 3 (not yet), 4 ms (fault)."""
    channel = f"cia402-lockstep-{os.getpid()}-{next(_channels)}"
    node_bus = can.Bus(interface="virtual", channel=channel)
    host = can.Bus(interface="virtual", channel=channel)
    try:
        node = Cia402JointNode(node_bus, 7, watchdog_timeout_s=0.5)
        runner = Cia402Runner(node_bus, [node], paced=False)

        def send(cob: int, data: bytes, steps: int = 1) -> None:
            host.send(can.Message(arbitration_id=cob, data=data, is_extended_id=False))
            for _ in range(steps):
                runner.step()

        def sdo_write(index: int, sub: int, value: int, size: int) -> None:
            send(0x607, bytes([0x23 | (4 - size) << 2, index & 0xFF, index >> 8, sub]) + value.to_bytes(4, "little"))

        runner.step()  # boot-up
        sdo_write(0x1006, 0, 1000, 4)
        sdo_write(0x2000, 0, 3, 1)
        sdo_write(0x6060, 0, 8, 1)
        send(0x000, bytes([0x01, 7]))  # NMT start
        for cw in (0x06, 0x07, 0x0F):
            sdo_write(0x6040, 0, cw, 2)
            send(0x080, b"")
        for _ in range(20):
            send(0x080, b"")
        assert node.drive.state == ENABLED
        steps = 0  # chunks after the one that followed the last SYNC
        while node.drive.state == ENABLED and steps < 50:
            runner.step()
            steps += 1
        assert steps == 3 and node.last_error.startswith("no SYNC")
        frames = []
        while (msg := host.recv(0.0)) is not None:
            frames.append(msg)
        emcy = [m for m in frames if m.arbitration_id == 0x087]
        assert len(emcy) == 1 and int.from_bytes(emcy[0].data[:2], "little") == 0x8700
    finally:
        host.shutdown()
        node_bus.shutdown()


def test_state_machine_transitions() -> None:
    assert transition(SWITCH_ON_DISABLED, 0x06, 0) == READY  # 2
    assert transition(READY, 0x07, 0x06) == SWITCHED_ON  # 3
    assert transition(READY, 0x0F, 0x06) == ENABLED  # 3 + 4
    assert transition(SWITCHED_ON, 0x0F, 0x07) == ENABLED  # 4
    assert transition(ENABLED, 0x07, 0x0F) == SWITCHED_ON  # 5
    assert transition(SWITCHED_ON, 0x06, 0x07) == READY  # 6
    assert transition(READY, 0x00, 0x06) == SWITCH_ON_DISABLED  # 7
    assert transition(ENABLED, 0x06, 0x0F) == READY  # 8
    assert transition(ENABLED, 0x00, 0x0F) == SWITCH_ON_DISABLED  # 9
    assert transition(ENABLED, 0x02, 0x0F) == QUICK_STOP  # 11
    assert transition(QUICK_STOP, 0x0F, 0x02) == ENABLED  # 16
    assert transition(QUICK_STOP, 0x00, 0x02) == SWITCH_ON_DISABLED  # 12
    assert transition(SWITCH_ON_DISABLED, 0x07, 0) == SWITCH_ON_DISABLED  # switch on needs shutdown first
    assert transition(FAULT, 0x80, 0x00) == SWITCH_ON_DISABLED  # 15 on the rising edge
    assert transition(FAULT, 0x80, 0x80) == FAULT
    assert transition(FAULT, 0x0F, 0x00) == FAULT


def test_profile_trajectory_is_a_trapezoid_without_overshoot() -> None:
    traj, dt = Trajectory(0.0, 0.0), 0.001
    positions, speeds = [], []
    for _ in range(2000):
        done = traj.step(0.3, 2.0, 20.0, 20.0, dt)
        positions.append(traj.position_rad)
        speeds.append(traj.velocity_rad_s)
        if done:
            break
    assert done and traj.position_rad == 0.3
    assert max(positions) <= 0.3 + 1e-12 and max(speeds) <= 2.0 + 1e-12
    steps = [abs(b - a) for a, b in itertools.pairwise(speeds)]
    assert max(steps[:-1]) <= 20.0 * dt + 1e-9 and steps[-1] <= 2 * 20.0 * dt + 1e-9  # the landing step snaps
    # 0.3 rad at 2 rad/s and 20 rad/s^2: 0.1 s up, 0.05 s cruise, 0.1 s down = 0.25 s
    assert len(positions) * dt == pytest.approx(0.25, abs=0.01)
