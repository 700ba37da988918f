"""The virtual joint node and the host client talking over a python-can ``virtual`` bus.

Most tests are lock-step and deterministic: the node advances 1 ms chunks of joint time in the test thread
(``node.run_for``) and a ``threaded=False`` client is fed by ``client.hub.poll()`` after each chunk, so every
number below is joint time, not wall time. Heartbeat loss, frame delay and round trip run on the host's lock-step
clock (``LockStepClock``: the client's waits advance the joint), so their times are joint time too. Request/reply
calls (parameters, gains, flash) run the node in a paced ``NodeRunner`` thread against a threaded client.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import can
import numpy as np
import pytest

from actuator.control import cascade as C
from actuator.control.supervisor import STOP_TIME_S
from actuator.errors import ConfigError, FaultError
from actuator.errors import TimeoutError as JointTimeoutError
from firmware_iface.client import BusHub, ClampWarning, JointClient
from firmware_iface.client.clock import LockStepClock
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode
from tests.firmware.ticked import confirm

PROFILE = load_native()
NODE = 1
CHUNK_S = 0.001  # one node tick: 40 model steps at 40 kHz
HEARTBEAT_PERIOD_S = 1.0 / PROFILE.telemetry["heartbeat"]  # 0.1 s at the default 10 Hz
_channels = itertools.count()


# --- buses -------------------------------------------------------------------------------------------------------
class Wire:
    """One python-can virtual channel: the joint's end, the host's end, and any taps opened on it."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.buses: list[can.BusABC] = []
        self.joint = self.open(preserve_timestamps=True)  # the joint stamps its frames with its own time
        self.host = self.open()

    def open(self, preserve_timestamps: bool = False) -> can.BusABC:
        """Another endpoint: it receives every frame the others send from now on (a tap, or a rogue sender)."""
        bus = can.Bus(interface="virtual", channel=self.channel, preserve_timestamps=preserve_timestamps)
        self.buses.append(bus)
        return bus


@pytest.fixture
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    w = Wire(f"jointkit-test-{next(_channels)}-{request.node.name}")
    yield w
    for bus in w.buses:
        BusHub.of(bus, start=False).close()  # stops a reader thread before its bus goes away
    for bus in w.buses:
        bus.shutdown()


def frame(command_id: int, data: bytes = b"", node_id: int = NODE, **kw: object) -> can.Message:
    """A hand-made frame of the native addressing (``node_id << 5 | command_id``)."""
    kw.setdefault("is_extended_id", False)
    return can.Message(arbitration_id=node_id << PROFILE.sidecar.node_shift | command_id, data=data, **kw)


def cmd_id(name: str) -> int:
    return PROFILE.message(name).frame_id


def frames_by_name(tap: can.BusABC) -> Counter[str]:
    """How many frames of each message a tap has received so far (it is drained)."""
    names: Counter[str] = Counter()
    while (msg := tap.recv(0)) is not None:
        names[PROFILE.decode(msg).name] += 1
    return names


# --- lock-step helpers ---------------------------------------------------------------------------------------------
def lockstep(wire: Wire, **options: object) -> tuple[VirtualJointNode, JointClient]:
    node = VirtualJointNode(wire.joint, NODE, profile=PROFILE, **options)
    # heartbeat supervision is by wall clock, but a lock-step joint's time runs at the machine's pace (slower
    # than wall time on a loaded machine): never declare it lost here; loss is tested with a paced runner
    client = JointClient(wire.host, NODE, PROFILE, threaded=False, missed_heartbeats=1_000_000)
    confirm(node, client, CHUNK_S)
    return node, client



def tick(node: VirtualJointNode, client: JointClient, n: int = 1, each: Callable[[], object] | None = None) -> None:
    """``n`` chunks of joint time; ``each()`` (a command) before every chunk, the client fed after it."""
    for _ in range(n):
        if each is not None:
            each()
        node.run_for(CHUNK_S)
        client.hub.poll()


def enable(node: VirtualJointNode, client: JointClient, mode: str) -> None:
    """set_mode + set_state in one chunk: the node answers both with a heartbeat at once."""
    client.enable(mode, wait=False)
    tick(node, client)
    assert (client.state, client.mode) == ("closed_loop", mode)


def position(node: VirtualJointNode) -> float:
    return float(node.fw.telemetry()["position_rad"])


# --- threaded helpers ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def running(wire: Wire, client: JointClient | None = None, **options: object
            ) -> Iterator[tuple[VirtualJointNode, JointClient]]:
    """A node paced to wall time in a runner thread and a threaded client that has seen its heartbeat."""
    node = VirtualJointNode(wire.joint, NODE, profile=PROFILE, **options)
    client = client or JointClient(wire.host, NODE, PROFILE)
    with NodeRunner(wire.joint, [node], paced=True):
        client.wait_alive()
        yield node, client


def clocked(wire: Wire, **options: object) -> tuple[VirtualJointNode, JointClient, LockStepClock]:
    """A node run by the host's lock-step clock and a client (no reader thread) that has confirmed it by its
    heartbeats: the client's waits and the clock's sleeps advance the joint, so every time is joint time."""
    node = VirtualJointNode(wire.joint, NODE, profile=PROFILE, **options)
    hub = BusHub.of(wire.host, PROFILE, start=False)
    clock = hub.clock = LockStepClock(NodeRunner(wire.joint, [node]), hub)
    client = JointClient(wire.host, NODE, PROFILE, threaded=False)
    client.identify()
    return node, client, clock


def with_param(name: str, param_id: int) -> Profile:
    """The native profile with one more parameter id, which the joint does not know."""
    sidecar = replace(PROFILE.sidecar, params={**PROFILE.sidecar.params, name: param_id})
    return Profile(PROFILE.db, sidecar, PROFILE.dbc_path)


# --- 1. back to back ---------------------------------------------------------------------------------------------
def test_position_back_to_back_settles_and_telemetry_keeps_its_rates(wire):
    node, client = lockstep(wire)
    tick(node, client, 3)  # the first tick sends every message once (all are due at t = 0)
    tap = wire.open()
    rings = {name: ring.count for name, ring in client.rings.items()}
    client.enable("position", wait=False)  # handled before the first chunk of the window: 2 immediate heartbeats
    tick(node, client, 500, each=lambda: client.position(0.1))
    assert client.state == "closed_loop"
    # default knee gains settle a 0.1 rad step in ~0.16 s; 0.5 s in, the joint is within 1e-4 rad (as in the
    # firmware's own test), far above the 1e-6 rad resolution of joint_state.position
    _, received = client.series("telemetry.position_rad")
    assert received[-1] == pytest.approx(0.1, abs=1e-4)
    tick(node, client, 500, each=lambda: client.position(0.1))
    counts = frames_by_name(tap)
    # 1000 chunks = 1.0 s of joint time; a periodic message falls due at the window's start or at its end, so
    # each count is rate x 1 s within one frame; the heartbeat adds the two answers to set_mode and set_state
    expected = {"joint_state": 1000, "wrench_force": 500, "wrench_torque": 500, "motor_telemetry": 100,
                "heartbeat": 10 + 2, "diagnostics": 1}
    for name, n in expected.items():
        assert abs(counts[name] - n) <= 1, (name, counts[name], n)
    assert counts["position_command"] == 1000 and node.counters["rx"] == 1002  # 1000 set-points + 2 requests
    # the client got every telemetry frame the tap saw, and no counter skipped
    for name, ring in client.rings.items():
        assert ring.count - rings[name] == counts[name], name
    assert set(client.gaps) >= {"heartbeat", "wrench_force", "wrench_torque"}
    assert sum(client.gaps.values()) == 0
    assert node.counters["rx_errors"] == 0 and node.counters["rejected"] == 0


# --- 2. modes ----------------------------------------------------------------------------------------------------
def test_velocity_mode_reaches_its_command(wire):
    node, client = lockstep(wire)
    enable(node, client, "velocity")
    tick(node, client, 600, each=lambda: client.velocity(0.5))
    _, v = client.series("telemetry.velocity_rad_s")
    # the last 0.2 s (the step response is over after ~0.1 s): every sample within 2 % of 0.5 rad/s (the
    # estimate's ripple is ~1.6 %, the telemetry resolution 0.001 rad/s = 0.2 %)
    assert np.all(np.abs(v[-200:] - 0.5) <= 0.02 * 0.5)
    assert v[-200:].mean() == pytest.approx(0.5, rel=0.005)


@pytest.mark.parametrize("torque_nm", [30.0, -30.0])
def test_torque_mode_accelerates_with_the_sign_of_the_command(wire, torque_nm):
    # 30 N·m: above the reducer's breakaway torque (static friction 0.15 N·m at the motor x ratio 100 = 15 N·m at
    # the output), so the knee (1.39 kg·m² with the rotor) speeds up towards (30 - 11.5) / 16 = 1.16 rad/s against
    # its Coulomb and viscous (16 N·m·s/rad) friction, with a time constant of 0.09 s
    node, client = lockstep(wire)
    since = client.clock.now()
    enable(node, client, "torque")
    tick(node, client, 200, each=lambda: client.torque(torque_nm))
    _, v = client.series("telemetry.velocity_rad_s", since)
    grows = np.sign(torque_nm) * v[[50, 100, 150, -1]]
    assert np.all(np.diff(grows) > 0) and grows[-1] > 0.5  # ~1 rad/s after 0.2 s
    assert np.sign(position(node)) == np.sign(torque_nm)


def _refused_commands(client: JointClient) -> list[Callable[[], object]]:
    return [lambda: client.position(0.3), lambda: client.velocity(1.0), lambda: client.torque(30.0),
            lambda: client.impedance(0.3, 0.0, 300.0, 40.0)]


def _send_refused(node: VirtualJointNode, client: JointClient) -> int:
    """100 set-points in idle, then 50 impedance commands in position mode: all refused by the firmware."""
    for send in _refused_commands(client) * 25:
        tick(node, client, each=send)
    enable(node, client, "position")
    tick(node, client, 20, each=lambda: client.position(0.0))
    tick(node, client, 50, each=lambda: client.impedance(0.3, 0.0, 300.0, 40.0))  # < the 0.1 s watchdog
    return 150


def test_commands_refused_by_the_firmware_do_not_move_the_joint(wire):
    node, client = lockstep(wire)
    tick(node, client, 2)
    n = _send_refused(node, client)
    # refused by the node (mode) or by the firmware (state): counted once, by the node
    assert node.counters["rejected"] == n and node.fw.counters["commands"] == 20
    assert node.fw.ref[C.R_POS] == 0.0  # the hold at 0, not 0.3
    # they did not move the joint: it holds 0 within the noise of a held position (~1e-5 rad)
    assert abs(position(node)) < 1e-4
    assert client.state == "closed_loop"


def test_commands_refused_by_the_firmware_are_counted_by_the_node(wire):
    node, client = lockstep(wire)
    tick(node, client, 2)
    n = _send_refused(node, client)
    assert node.counters["rejected"] == n


WRONG_MODE = {  # mode: (a hold command of the mode, a command of another mode that would move the joint)
    "position-velocity_command": ("position", lambda c: c.position(0.1), lambda c: c.velocity(0.5)),
    "position-torque_command": ("position", lambda c: c.position(0.1), lambda c: c.torque(30.0)),
    "velocity-position_command": ("velocity", lambda c: c.velocity(0.0), lambda c: c.position(0.3)),
    "impedance-position_command": ("impedance", lambda c: c.impedance(0.1, 0.0, 300.0, 40.0),
                                   lambda c: c.position(0.3)),
}


@pytest.mark.parametrize("case", WRONG_MODE)
def test_commands_of_another_mode_are_rejected_and_not_applied(wire, case):
    mode, hold, wrong = WRONG_MODE[case]
    node, client = lockstep(wire)
    enable(node, client, mode)
    # 0.6 s: impedance kp 300, kd 40 on the knee (zeta ~1, omega_n ~15 rad/s) settles in ~0.3 s plus friction
    tick(node, client, 600, each=lambda: hold(client))
    ref, commands, before = node.fw.ref.copy(), node.fw.counters["commands"], position(node)
    tick(node, client, 50, each=lambda: wrong(client))  # 50 ms: a rejected stream must not feed the 0.1 s watchdog
    assert node.counters["rejected"] == 50
    assert node.fw.counters["commands"] == commands
    assert np.array_equal(node.fw.ref, ref)
    assert abs(position(node) - before) < 1e-3


# --- 3. impedance ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kp", "kd", "target"), [(300.0, 40.0, 0.3), (300.0, 40.0, -0.2), (0.0, 40.0, 0.3)])
def test_impedance_command_over_the_bus(wire, kp, kd, target):
    node, client = lockstep(wire)
    enable(node, client, "impedance")
    tick(node, client, 1000, each=lambda: client.impedance(target, 0.0, kp, kd))
    # the gains of the frame are the ones acting: kp is a 12-bit field over [0, 1000], one step 0.244 N·m/rad
    assert node.fw.model.c[C.C_IMP_KP] == pytest.approx(kp, abs=0.25)
    assert node.fw.model.c[C.C_IMP_KD] == pytest.approx(kd, abs=0.025)
    assert client.state == "closed_loop" and client.faults == []
    # the knee's gravity (m g l = 9.81 N·m) is cancelled by the gravity feedforward, so the spring pulls the joint
    # to the target; it stops where kp·e falls inside the reducer's friction band, which the controller's Coulomb
    # compensation (active only in motion) mostly removes: 2-3 mrad observed at kp = 300 (worst case without any
    # compensation 13 N·m / 300 = 0.043 rad); 0.01 rad = 3 N·m of spring torque. The 16-bit position field's
    # step (0.38 mrad) is far below that. Without stiffness (kp = 0) the damper holds the joint where it was.
    expected = target if kp else 0.0
    _, received = client.series("telemetry.position_rad")
    assert received[-1] == pytest.approx(expected, abs=0.01)
    assert abs(client.latest()["telemetry.velocity_rad_s"]) < 0.01  # at rest


# --- 4. watchdog -------------------------------------------------------------------------------------------------
SET_POINTS = {
    "position": lambda c, rng: c.position(rng.uniform(-0.05, 0.05)),
    "velocity": lambda c, rng: c.velocity(rng.uniform(-0.5, 0.5)),
    "torque": lambda c, rng: c.torque(rng.uniform(-25.0, 25.0)),
    "impedance": lambda c, rng: c.impedance(rng.uniform(-0.05, 0.05), 0.0, 300.0, 40.0),
}


@pytest.mark.parametrize("trial", range(50))
def test_watchdog_over_the_bus(wire, trial):
    rng = np.random.default_rng(trial)
    timeout_s = float(rng.uniform(0.02, 0.2))
    mode = str(rng.choice(list(SET_POINTS)))
    node, client = lockstep(wire, seed=trial, watchdog_timeout_s=timeout_s)
    fw = node.fw
    enable(node, client, mode)
    tick(node, client, int(rng.integers(5, 50)), each=lambda: SET_POINTS[mode](client, rng))
    last = fw.last_command_t  # joint time of the last command the node handled; none from now on
    for _ in range(1000):
        if fw.stop_until_t >= 0 or fw.state != "closed_loop":
            break
        tick(node, client)
    tripped_s = fw.t_s - last
    # trips = leaves closed-loop control (damped stop begun, or already latched): within the timeout plus one
    # heartbeat period; in fact within one chunk, the supervision period, plus rounding of the chunk times
    assert tripped_s <= timeout_s + HEARTBEAT_PERIOD_S
    assert tripped_s <= timeout_s + 2 * CHUNK_S
    for _ in range(1000):
        if client.state == "fault":
            break
        tick(node, client)
    reported_s = fw.t_s - last
    # the fault latches at the end of the damped stop (or when still) and the next 10 Hz heartbeat reports it
    # (fault latching is not a state request: no immediate heartbeat); plus a chunk for each of the three steps
    assert reported_s <= timeout_s + STOP_TIME_S + HEARTBEAT_PERIOD_S + 3 * CHUNK_S
    assert "watchdog" in client.faults
    assert fw.counters["watchdog_trips"] == 1
    with pytest.raises(FaultError, match="watchdog") as err:
        client.check()
    assert "watchdog" in err.value.faults


# --- 5. bad frames -----------------------------------------------------------------------------------------------
POSITION_0_1 = struct.pack("<ihh", 100_000, 0, 0)  # position 0.1 rad (1e-6 rad/bit), no feedforward
BAD_TO_NODE = {  # name: (frame, rx_errors it adds)
    "wrong_length": (frame(cmd_id("position_command"), POSITION_0_1[:4]), 1),
    "unknown_command_id": (frame(0x1F, bytes(8)), 1),
    # raw 13e6 x 1e-6 = 13 rad, outside the DBC's [-12.5, 12.5]
    "out_of_range": (frame(cmd_id("position_command"), struct.pack("<ihh", 13_000_000, 0, 0)), 1),
    "garbage_set_state": (frame(cmd_id("set_state"), bytes(range(0xA0, 0xA8))), 1),  # state 160: no such value
    "garbage_position": (frame(cmd_id("position_command"), bytes(range(0xA0, 0xA8))), 1),  # -1549 rad
    "nan_gain": (frame(cmd_id("gain_write"), bytes(4) + struct.pack("<f", float("nan"))), 1),
    "extended_id": (frame(cmd_id("position_command"), POSITION_0_1, is_extended_id=True), 1),
    "remote": (frame(cmd_id("position_command"), is_remote_frame=True, dlc=8), 1),
    # the node drops error frames before looking at them (no node id): counted neither in rx nor in rx_errors
    "error_frame": (can.Message(arbitration_id=0, is_error_frame=True, dlc=0), 0),
}


@pytest.mark.parametrize("bad", BAD_TO_NODE)
def test_bad_frames_to_the_node_are_counted_and_ignored(wire, bad):
    msg, errors = BAD_TO_NODE[bad]
    node, client = lockstep(wire)
    enable(node, client, "position")
    tick(node, client, 20, each=lambda: client.position(0.0))
    before, commands = node.counters.copy(), node.fw.counters["commands"]
    wire.host.send(msg)
    tick(node, client)
    assert node.counters["rx_errors"] - before["rx_errors"] == errors
    assert node.counters["rx"] == before["rx"]  # nothing was handled as a command
    assert node.fw.counters["commands"] == commands and node.fw.ref[C.R_POS] == 0.0
    if errors:
        assert node.last_error
    # the joint keeps running and obeys the next valid command
    assert client.state == "closed_loop" and client.faults == []
    tick(node, client, 200, each=lambda: client.position(0.1))
    assert node.fw.ref[C.R_POS] == pytest.approx(0.1, abs=1e-6)
    assert position(node) == pytest.approx(0.1, abs=0.01)  # 0.2 s: past the ~0.16 s settling of the step


def test_bad_frames_to_the_host_are_counted_and_telemetry_flows(wire):
    node, client = lockstep(wire)
    tick(node, client, 10)
    hub = client.hub
    bad = [frame(cmd_id("joint_state"), bytes(4)),  # a joint_state of node 1 with 4 bytes
           frame(cmd_id("heartbeat"), b"\xff" * 8),  # state 255: not in the value table
           frame(0x1F, bytes(8)),  # unknown command id of node 1
           frame(cmd_id("joint_state"), bytes(8), is_extended_id=True),
           frame(cmd_id("joint_state"), is_remote_frame=True, dlc=8)]
    errors, states, rows = hub.counters["rx_errors"], hub.counters["error_frames"], client.rings["joint_state"].count
    for msg in bad:
        wire.joint.send(msg)
        tick(node, client)
    wire.joint.send(can.Message(arbitration_id=0, is_error_frame=True, dlc=0))
    tick(node, client, 200)
    assert hub.counters["rx_errors"] - errors == len(bad)
    assert hub.counters["error_frames"] - states == 1  # error frames have their own count
    assert client.rings["joint_state"].count - rows == len(bad) + 200  # one joint_state per chunk, none lost
    assert client.state == "idle" and client.faults == []  # the garbage heartbeat changed nothing
    assert sum(client.gaps.values()) == 0


# --- 6. parameters, gains, flash -----------------------------------------------------------------------------------
def test_params_and_gains_over_the_bus(wire):
    client = JointClient(wire.host, NODE, with_param("no_such_param", 999))
    with running(wire, client) as (node, client):
        # float32 on the wire: 0.1 comes back as 0.10000000149
        assert client.read_param("watchdog_timeout_s") == pytest.approx(0.1, rel=1e-7)
        assert client.write_param("watchdog_timeout_s", 0.25) == 0.25
        assert client.read_param("watchdog_timeout_s") == 0.25
        assert node.fw.watchdog_timeout_s == 0.25
        for call, status in ((lambda: client.write_param("watchdog_timeout_s", 100.0), "out_of_range"),
                             (lambda: client.write_param("profile_version", 2.0), "read_only"),
                             (lambda: client.read_param("no_such_param"), "unknown_param")):
            with pytest.raises(ConfigError, match=status):
                call()
        assert client.read_param("watchdog_timeout_s") == 0.25  # the refused write changed nothing
        assert client.read_param("profile_version") == 1.0
        client.write_gain("position_kp", 42.5)
        assert client.read_gain("position_kp") == 42.5  # frames are handled in order: the write came first
        assert node.fw.read_gain("position_kp") == 42.5
        rejected = node.counters["rejected"]
        client.write_gain("velocity_kp", -1.0)  # no reply in the protocol: refused and counted by the node
        assert client.read_gain("velocity_kp") == pytest.approx(174.4, rel=1e-6)
        assert node.counters["rejected"] == rejected + 1


def test_save_refused_in_closed_loop_and_accepted_in_idle(wire, tmp_path):
    with running(wire, flash_path=tmp_path / "node1.toml") as (_, client):
        client.write_param("watchdog_timeout_s", 10.0)  # closed loop without commands for the rest of the test
        client.enable("position")
        with pytest.raises(ConfigError, match="read_only"):
            client.save()
        assert client.state == "closed_loop" and not (tmp_path / "node1.toml").exists()
        client.disable()
        client.wait_state("idle")
        assert client.save() == 1
        assert client.save() == 2
    assert (tmp_path / "node1.toml").is_file()


def test_params_survive_a_restart_of_the_virtual_joint(wire, tmp_path):
    flash = tmp_path / "node1.toml"
    written = {"watchdog_timeout_s": 0.25, "rate_motor_telemetry_hz": 50.0, "torque_max_nm": 40.0,
               "gain.velocity_ki": 3.5}
    with running(wire, flash_path=flash) as (_, client):
        for name, value in written.items():
            assert client.write_param(name, value) == value
        client.write_gain("position_kp", 42.5)
        assert client.save() == 1
    with running(wire, client, flash_path=flash) as (node, client):  # a new firmware booting from the flash file
        assert node.fw.counters["flash_saves"] == 0
        assert client.read_param("flash_saves") == 0.0
        assert {name: client.read_param(name) for name in written} == written
        assert client.read_gain("position_kp") == 42.5


def test_sensor_settings_over_the_bus_change_what_the_joint_reports(wire):
    """The drive's Kt and F/T compensation (``virtual_joint.sensor_settings``, ids 43, 48-99) written over the bus
    (float32 on the wire), refused out of range, and applied to the torque and wrench the joint reports: Fx with
    K_11 = 0.5 and a bias of 2 N is 0.5 (raw - 2), raw the tool's 9.81 N at the hanging pose; the mean of the 0.2 s
    (100 frames at 500 Hz) reported within 5 sd of its noise (0.5 x 0.12 N / sqrt(100)) and the frames' 0.05 N step."""
    node, client, clock = clocked(wire)
    kt = node.fw.params.torque_constant_nm_per_a
    assert client.read_param("motor.torque_constant_nm_per_a") == pytest.approx(kt, rel=1e-7)
    assert client.write_param("motor.torque_constant_nm_per_a", 1.05 * kt) == pytest.approx(1.05 * kt, rel=1e-7)
    assert node.fw.model.c[C.C_TORQUE_PER_A] == pytest.approx(1.05 * kt * node.fw.params.reducer.ratio, rel=1e-7)
    for name, value in (("motor.torque_constant_nm_per_a", 10.0 * kt), ("ft.compensation_12", 0.9),
                        ("ft.compensation_11", 3.0), ("ft.bias_fx_n", 1e4)):
        with pytest.raises(ConfigError, match="out_of_range"):
            client.write_param(name, value)
    assert client.write_param("ft.bias_fx_n", 2.0) == 2.0
    assert client.write_param("ft.compensation_11", 0.5) == 0.5
    assert node.fw.read_param("ft.compensation_12") == 0.0  # the refused write changed nothing
    since = clock.now()
    clock.sleep(0.2)
    _, fx = client.series("telemetry.force_x_n", since)
    weight = node.fw.params.ft_sensor.tool_mass_kg * node.fw.params.load.gravity_m_s2
    assert fx.size >= 90
    assert float(np.mean(fx)) == pytest.approx(0.5 * (weight - 2.0), abs=5 * 0.5 * 0.12 / 10 + 0.05)


# --- 7. fault injection ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("injection", "fault"), [("over_temperature", "over_temperature"),
                                                   ("encoder_loss", "encoder_fault")])
def test_injected_fault_reaches_the_heartbeat(wire, injection, fault):
    node, client = lockstep(wire)
    enable(node, client, "position")
    tick(node, client, 20, each=lambda: client.position(0.0))
    injected = node.fw.t_s
    node.inject(injection)
    for _ in range(300):
        if client.faults:
            break
        tick(node, client)
    # the model flags it in the next chunk; the next 10 Hz heartbeat (plus a chunk) reports it
    assert node.fw.t_s - injected <= HEARTBEAT_PERIOD_S + 2 * CHUNK_S
    assert client.faults == [fault] and client.state == "fault"
    with pytest.raises(FaultError, match=fault) as err:
        client.check()
    assert err.value.faults == (fault,)
    with pytest.raises(FaultError):
        client.position(0.0)  # motion commands check first


def test_ft_saturation_is_reported(wire):
    node, client = lockstep(wire)
    tick(node, client, 5)
    node.inject("ft_saturation", 2.0)
    tick(node, client, 110)  # one heartbeat period and then some
    assert "ft_saturation" in client.faults
    assert client.latest()["telemetry.ft_saturated"] > 0  # the per-axis flags of wrench_force
    with pytest.raises(FaultError, match="ft_saturation"):
        client.check()


def test_ft_saturation_is_reported_only_while_present(wire):
    node, client = lockstep(wire)
    tick(node, client, 5)
    node.inject("ft_saturation", 2.0)
    tick(node, client, 110)
    assert "ft_saturation" in client.faults
    node.inject("ft_saturation", 0.0)
    tick(node, client, 210)  # two heartbeats later
    assert client.latest()["telemetry.ft_saturated"] == 0  # the sensor is back in range
    assert "ft_saturation" not in client.faults


def test_bus_silence_loses_the_joint(wire):
    node, client, clock = clocked(wire)
    assert client.alive
    client.check()
    silenced = clock.now()
    node.inject("bus_silence", 10.0)
    client.wait_for(lambda: not client.alive, 1.0, "loss of the heartbeat")
    lost = clock.now()
    last_heartbeat = client.heartbeat_t
    with pytest.raises(JointTimeoutError, match="no heartbeat"):
        client.check()
    # lost after 3 heartbeat periods without one, seen at the first chunk (1 ms) past them; the last heartbeat came
    # at most one period before the silence, so the loss is seen 2..3 periods after it
    assert 3 * HEARTBEAT_PERIOD_S < lost - last_heartbeat <= 3 * HEARTBEAT_PERIOD_S + CHUNK_S + 1e-9
    assert 2 * HEARTBEAT_PERIOD_S < lost - silenced <= 3 * HEARTBEAT_PERIOD_S + CHUNK_S + 1e-9
    assert node.counters["silenced"] > 0


def test_drop_frames_shows_in_the_sequence_gaps(wire):
    node, client = lockstep(wire)
    tick(node, client, 3)
    node.inject("drop_frames", 0.5)
    rows = client.rings["wrench_force"].count
    tick(node, client, 1000)  # 500 wrench_force frames sent, each dropped with p = 0.5
    received = client.rings["wrench_force"].count - rows
    gaps = client.gaps["wrench_force"]
    # binomial(500, 0.5): sd 11 frames; 0.5 +- 0.1 of 500 is +-4.5 sd
    assert abs(gaps / 500 - 0.5) <= 0.1
    # every frame is received or counted as a gap, but for drops after the last received one (a run of 10 has
    # p = 0.001; the 8-bit counter would alias only after 256 drops in a row); +-1 for the window's ends
    assert 500 - 10 <= received + gaps <= 500 + 1
    assert node.counters["dropped"] > 0


DELAY_S = 0.1


def _answer_time(node: VirtualJointNode, client: JointClient, mode: str) -> float:
    """A state request's round trip in joint time: set_mode until the heartbeat reports the mode (the node answers
    at once). Joint time, because the node delays by joint time and a paced runner that lags catches up faster
    than wall time (up to MAX_LAG_S)."""
    t0 = node.fw.t_s
    client.set_mode(mode)
    client.wait_for(lambda: client.mode == mode, 1.0, f"heartbeat in mode {mode}")
    return node.fw.t_s - t0


def test_delay_frames_delays_the_joints_answers(wire):
    node, client, _ = clocked(wire)
    base = _answer_time(node, client, "velocity")
    node.inject("delay_frames", DELAY_S)
    delayed = _answer_time(node, client, "torque")
    # the request reaches the node at its next chunk, which answers at once; delayed, the answer is released by the
    # first chunk at or past its due time
    assert base <= CHUNK_S + 1e-9
    assert DELAY_S - CHUNK_S <= delayed <= DELAY_S + CHUNK_S + 1e-9
    assert node.counters["delayed"] > 0


def _median_rtt(client: JointClient, clock: LockStepClock, n: int = 40) -> float:
    start = client.rtt.count
    for _ in range(n):
        client.position(0.0)
        clock.sleep(0.005)
    return float(np.median(client.rtt.view(start)[:, 1]))


def test_rtt_grows_by_the_frame_delay(wire):
    node, client, clock = clocked(wire, watchdog_timeout_s=10.0)
    client.enable("position")
    base = _median_rtt(client, clock)
    node.inject("delay_frames", DELAY_S)
    clock.sleep(2 * DELAY_S)
    delayed = _median_rtt(client, clock)
    # the base is one chunk: the command is taken at the next chunk and the joint_state at its end answers it;
    # the delay adds 100 ms, released at the first chunk at or past the due time
    assert base == pytest.approx(CHUNK_S, abs=1e-9)
    assert delayed - base == pytest.approx(DELAY_S, abs=CHUNK_S + 1e-9)


# --- 8. clamping -------------------------------------------------------------------------------------------------
def test_position_command_is_clamped_to_the_profile_range(wire):
    node, client = lockstep(wire, tracking_limit_rad=5.0)  # a 2.5 rad step must not latch tracking_error at once
    enable(node, client, "position")
    tap = wire.open()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.position(5.0)
        client.position(5.0)  # warned once per signal, counted every time
    clamp = [w for w in caught if issubclass(w.category, ClampWarning)]
    assert len(clamp) == 1 and "[-2.5, 2.5]" in str(clamp[0].message)
    assert client.counters["clamped"] == 2 and client.counters["commands"] == 2
    sent = [PROFILE.decode(m) for m in iter(lambda: tap.recv(0), None)]
    assert [d.name for d in sent] == ["position_command"] * 2
    assert [d.signals["position"] for d in sent] == [pytest.approx(2.5, abs=1e-6)] * 2
    tick(node, client)
    assert node.fw.ref[C.R_POS] == pytest.approx(2.5, abs=1e-6)  # inside the knee's own limit: not clamped again
    assert node.fw.counters["clamped"] == 0


# --- 9. e-stop -----------------------------------------------------------------------------------------------------
def test_estop_latches_until_cleared(wire):
    node, client = lockstep(wire)
    enable(node, client, "position")
    tick(node, client, 20, each=lambda: client.position(0.05))
    tap = wire.open()
    client.estop()
    tick(node, client)
    sent = frames_by_name(tap)
    assert sent["estop"] == 1 and sent["heartbeat"] == 1  # one frame; the node answers at once
    assert client.state == "estop" and "estop" in client.faults
    with pytest.raises(FaultError, match="estop"):
        client.position(0.05)
    client.set_state("closed_loop")  # refused while latched
    tick(node, client)
    assert client.state == "estop" and node.counters["rejected"] == 1
    client.clear_faults()
    tick(node, client)
    assert client.state == "idle" and client.faults == []
    enable(node, client, "position")
    tick(node, client, 100, each=lambda: client.position(0.05))
    assert client.state == "closed_loop" and client.faults == []
    assert position(node) == pytest.approx(0.05, abs=0.005)
