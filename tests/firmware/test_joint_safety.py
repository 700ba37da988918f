"""The simulated joint never goes silent and never takes a setting that cannot work (issue 13, items 2, 3, 9).

Lock-step, as in ``test_node_client``: the node advances 1 ms chunks of joint time in the test thread and a
``threaded=False`` client is fed after each chunk, so every time below is joint time, whatever the machine's load.

* A gain that makes the loop diverge (``velocity_kp = 1e-3`` on the knee turned the state NaN within 20 ms, after
  which the node raised on every encode and sent nothing again) latches the ``unstable`` fault; the drive goes off,
  heartbeats go on, and sane gains plus ``clear_faults`` bring the joint back into closed loop.
* A telemetry rate change takes effect at once (0.001 Hz then 10 Hz was silent for up to 1000 s).
* An empty position window ([0, 0]) is refused instead of read as "unset" and widened to the joint's limits.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import can
import numpy as np
import pytest

from actuator.control.supervisor import FAULT_UNSTABLE
from actuator.params import load_preset
from firmware_iface.client import BusHub, JointClient
from firmware_iface.experiments.batch import run_batch
from firmware_iface.protocol.load import load_native
from firmware_iface.virtual_joint.firmware import JointFirmware
from firmware_iface.virtual_joint.node import VirtualJointNode
from tests.firmware.ticked import confirm

PROFILE = load_native()
NODE = 1
CHUNK_S = 0.001
KNEE_VELOCITY_KP = 174.4  # seeds/gains: the knee's default velocity loop gain
_channels = itertools.count()


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[VirtualJointNode, JointClient, can.BusABC]]:
    channel = f"jointkit-safety-{next(_channels)}-{request.node.name}"
    joint_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    host_bus = can.Bus(interface="virtual", channel=channel)
    node = VirtualJointNode(joint_bus, NODE, profile=PROFILE)
    client = JointClient(host_bus, NODE, PROFILE, threaded=False, missed_heartbeats=1_000_000)
    confirm(node, client, CHUNK_S)
    yield node, client, host_bus
    BusHub.of(host_bus, start=False).close()
    joint_bus.shutdown()
    host_bus.shutdown()


def tick(node: VirtualJointNode, client: JointClient, n: int, target_rad: float | None = None) -> None:
    for _ in range(n):
        if target_rad is not None and client.state == "closed_loop":
            client.position(target_rad)
        node.run_for(CHUNK_S)
        client.hub.poll()


def write_param(bus: can.BusABC, name: str, value: float) -> None:
    """A parameter write frame (its reply is not waited for: the test reads the joint's state)."""
    bus.send(PROFILE.encode("param_write", NODE, param_id=PROFILE.param_id(name), value=value))


def heartbeats(tap: can.BusABC) -> int:
    """Heartbeat frames a tap on the bus has received since it was last drained."""
    n = 0
    while (msg := tap.recv(0)) is not None:
        n += PROFILE.decode(msg).name == "heartbeat"
    return n


def test_a_diverging_gain_latches_unstable_and_the_joint_keeps_talking(rig):
    node, client, _ = rig
    tick(node, client, 3)
    client.enable("position", wait=False)
    tick(node, client, 2)
    client.write_gain("velocity_kp", 1e-3)  # in the gain frame's range, but the loop diverges
    t_write = node.fw.t_s
    tick(node, client, 100, target_rad=0.1)
    # before the fix the state was NaN about 20 ms after the write and the node raised on every frame from then on
    assert "unstable" in client.faults, client.faults
    assert client.state == "fault"
    assert node.fw.counters["diverged"] >= 1
    assert np.isfinite(node.fw.model.x).all() and np.isfinite(node.fw.model.k).all()
    tap = can.Bus(interface="virtual", channel=node.bus.channel_id)
    try:
        tick(node, client, 1000)  # one second of joint time in fault: 10 heartbeats at 10 Hz
        assert heartbeats(tap) == pytest.approx(10, abs=1)
    finally:
        tap.shutdown()
    assert node.counters.get("nonfinite", 0) == 0
    assert abs(client.latest()["telemetry.position_rad"]) < 0.2  # at rest near where it was, not NaN, not 1e13
    assert node.fw.t_s - t_write == pytest.approx(1.1 + 0.0, abs=0.01)  # joint time ran on throughout
    # sane gains, clear, enable: the joint holds a set-point again
    client.write_gain("velocity_kp", KNEE_VELOCITY_KP)
    client.clear_faults()
    tick(node, client, 2)
    assert client.faults == [] and client.state == "idle"
    client.enable("position", wait=False)
    tick(node, client, 600, target_rad=0.05)
    assert client.state == "closed_loop" and client.faults == []
    assert client.latest()["telemetry.position_rad"] == pytest.approx(0.05, abs=1e-3)


def test_a_nan_set_point_is_rejected_not_tracked():
    fw = JointFirmware("knee")
    fw.set_mode("position")
    fw.set_state("closed_loop")
    assert fw.command("position", math.nan) is False
    fw.advance(0.01)
    assert np.isfinite(fw.model.x).all() and fw.faults == 0


def test_the_batch_faults_the_diverging_joint_only():
    from actuator.analysis.tuning import default_controller

    knee = load_preset("knee")
    gains = default_controller(knee)
    bad = gains.replace("velocity", kp=1e-3)
    step = ("step", {"home_rad": 0, "amplitude_rad": 0.1, "pre_s": 0.1, "duration_s": 1.0})
    good_run = run_batch([knee], [{}], [step], gains=gains, panels=False)
    bad_run = run_batch([knee, knee], [{}, {}], [step], gains=bad, panels=False)
    assert good_run.faults[0] == []
    for j in range(2):  # both joints run the diverging gains: each latches unstable, the batch finishes
        assert "unstable" in bad_run.faults[j], bad_run.faults
        assert all(not np.isfinite(v) for v in _numbers(bad_run[j][0].figures))
    assert PROFILE.sidecar.faults["unstable"] == FAULT_UNSTABLE


def _numbers(figures: dict) -> list[float]:
    return [float(v) for v in figures.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def test_a_telemetry_rate_change_takes_effect_at_once(rig):
    node, client, host = rig
    tick(node, client, 3)
    write_param(host, "rate_joint_state_hz", 0.001)  # next joint_state due in 1000 s
    tick(node, client, 50)
    count = client.rings["joint_state"].count
    write_param(host, "rate_joint_state_hz", 10.0)
    t_set = node.fw.t_s
    tick(node, client, 200)
    ring = client.rings["joint_state"]
    new = ring.since(-math.inf)[:, ring.index["bus_t_s"]][count - ring.count:] if ring.count > count else []
    # at 10 Hz the first frame comes within one 1 ms chunk of the change and one more every 0.1 s: 2 in 0.2 s
    assert len(new) >= 2, f"{len(new)} joint_state frames in 0.2 s after the rate went back to 10 Hz"
    assert new[0] - (node.time_origin + t_set) < 0.002


def test_an_empty_position_window_is_refused(rig):
    node, client, host = rig
    tick(node, client, 3)
    write_param(host, "position_max_rad", 0.0)
    tick(node, client, 2)
    assert node.fw.limits.position_max_rad == 0.0  # [-2.5, 0] is a window: accepted
    write_param(host, "position_min_rad", 0.0)  # [0, 0] is not
    tick(node, client, 2)
    assert node.fw.limits.position_min_rad == pytest.approx(load_preset("knee").limits.position_min_rad)
    assert node.fw.limits.position_max_rad == 0.0
    assert "leaves no position window" in node.last_error
    fw = JointFirmware("knee")
    fw.write_param("position_max_rad", 0.5)
    with pytest.raises(Exception, match="leaves no position window"):
        fw.write_param("position_min_rad", 0.5)


def test_the_set_point_echo_reports_the_tracked_reference_on_the_joints_clock(rig):
    """setpoint_state (off by default; rate_setpoint_hz): the set-point after the joint's clamping and the joint's
    own clock in ms, which bus step and Bode tests take as their reference and time axis (issue 13, item 13)."""
    node, client, host = rig
    tick(node, client, 3)
    assert client.rings["setpoint_state"].count == 0  # off by default: no bus load unless a test asks
    write_param(host, "rate_setpoint_hz", 1000.0)
    write_param(host, "position_max_rad", 0.05)
    client.enable("position", wait=False)
    tick(node, client, 2)
    limit = node.fw.limits.position_max_rad
    assert limit == pytest.approx(0.05)  # float32 on the wire
    tick(node, client, 50, target_rad=0.1)  # beyond the joint's window: it clamps the set-point, and says so
    ring = client.rings["setpoint_state"]
    rows = ring.since(-math.inf)
    assert rows[-1, ring.index["position_setpoint"]] == pytest.approx(limit, abs=1e-6)
    ms = rows[:, ring.index["time_ms"]]
    assert np.all(np.diff(ms) == 1)  # one frame each 1 ms chunk, stamped with the joint's own clock
    assert ms[-1] == round(node.fw.t_s * 1e3) % 65536
