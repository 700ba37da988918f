"""The rig a sequence runs on: a bus with joint clients, and optionally a fixture and simulated joints.

``sim_rig`` builds the simulated rig: virtual joints (``VirtualJointNode``) on an in-process python-can ``virtual``
channel, the host's clients on another endpoint of it, and a ``SimFixture`` per joint. By default the rig runs in
lock-step (``firmware_iface.client.clock.LockStepClock``): the joints advance only when the host waits, in the
host's thread, so a run is deterministic and as fast as the machine computes it; ``lockstep=False`` paces the joints
to wall time in a thread of their own (the GUI's rig, and ``jointkit run --sim --realtime``).
``bus_rig`` opens a real bus (any python-can interface) with clients; it has no fixture, so steps that load
the output report that they cannot run. Defect injections (``--inject NAME=VALUE``) are the model's injections,
with the short names a production engineer uses (``friction`` for ``friction_scale``, ...).
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import can

from actuator.errors import ConfigError
from actuator.simulation import INJECTIONS
from firmware_iface.client import BusHub, JointClient
from firmware_iface.client.clock import WALL, Clock, LockStepClock
from firmware_iface.client.streamer import Streamer
from firmware_iface.experiments.bus import Fixture, SimFixture
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile
from firmware_iface.virtual_joint.emulation import joint_node, node_runner
from firmware_iface.virtual_joint.node import VirtualJointNode

SAFE_STOP_CONFIRM_S = 1.0  # a joint answers a state request with a heartbeat at once; 1 s covers a slow bus
DRIVE_OFF_STATES = ("idle", "fault", "estop")
CLIENT_RING_ROWS = 30_000  # JointClient's default: 30 s of 1 kHz telemetry
ALIASES = {"friction": "friction_scale", "stiffness": "stiffness_scale", "ft_noise": "ft_noise_scale",
           "resistance": "resistance_scale", "winding_resistance": "resistance_scale"}


def parse_injection(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` (or ``NAME`` for 1.0) -> (model injection name, value); ConfigError naming what is allowed."""
    name, _, value = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    allowed = sorted({*ALIASES, *INJECTIONS})
    if name not in INJECTIONS or INJECTIONS[name][1] != 1:
        raise ConfigError(f"--inject {text!r}: unknown defect {name!r}; allowed: {', '.join(allowed)} (one value each)")
    try:
        v = float(value) if value else 1.0
    except ValueError:
        raise ConfigError(f"--inject {text!r}: value {value!r} is not a number") from None
    lo, hi = INJECTIONS[name][2], INJECTIONS[name][3]
    if not lo <= v <= hi:
        raise ConfigError(f"--inject {text!r}: {name} = {v:g} is out of range [{lo:g}, {hi:g}] ({INJECTIONS[name][4]})")
    return name, v


KEEPALIVE_HZ = 50.0  # between steps: a set-point every 20 ms, a fifth of the native joint's 100 ms watchdog


@dataclass
class Rig:
    bus: can.BusABC
    hub: BusHub
    clients: dict[int, JointClient]
    info: dict[str, Any]
    fixtures: dict[int, Fixture] = field(default_factory=dict)
    nodes: dict[int, VirtualJointNode] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    keepalive: Streamer | None = None  # holds joints in closed loop between steps (paused during a step)
    stop_report: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keepalive = Streamer(self.clients, KEEPALIVE_HZ, ring_rows=2, name="rig-keepalive", clock=self.clock)
        self._stack.callback(self.keepalive.stop)

    @property
    def clock(self) -> Clock:
        """The host's clock on this rig (lock-step on a lock-step simulated rig)."""
        return self.hub.clock if self.hub is not None else WALL

    def on_close(self, fn: Any, *args: Any) -> None:
        """Call ``fn(*args)`` when the rig closes (after what it opened itself, in reverse order of registration)."""
        self._stack.callback(fn, *args)

    def client(self, node_id: int) -> JointClient:
        if node_id not in self.clients:
            raise ConfigError(f"node {node_id} is not on this rig: nodes {sorted(self.clients)}")
        return self.clients[node_id]

    def safe_stop(self, confirm_s: float = SAFE_STOP_CONFIRM_S) -> list[str]:
        """Disable every joint (best effort: each failure is reported, none stops the others), then wait up to
        ``confirm_s`` in all for each joint's heartbeat after the disable to say its drive is off (idle, or a fault
        state). ``stop_report`` says per node whether the disable was sent and confirmed; an unconfirmed one is a
        problem too."""
        problems = []
        if self.keepalive is not None:
            self.keepalive.stop()
        sent_at: dict[int, float] = {}
        for node_id, c in self.clients.items():
            try:
                # the time before the send: a joint may answer before disable() returns, and a heartbeat after
                # this time that says the drive is off is the answer (or the state it was already in)
                t_send = self.clock.now()
                c.disable()
                sent_at[node_id] = t_send
            except Exception as e:  # a safe stop must try every joint
                problems.append(f"node {node_id}: {e}")
            with contextlib.suppress(Exception):
                fixture = self.fixtures.get(node_id)
                if fixture is not None:
                    fixture.apply(0.0)
        end = self.clock.now() + confirm_s
        self.stop_report = {}
        for node_id, c in self.clients.items():
            t_sent = sent_at.get(node_id)
            confirmed = False
            if t_sent is not None:
                def off(c: JointClient = c, t_sent: float = t_sent) -> bool:
                    return (c.heartbeat_t or -math.inf) > t_sent and c.state in DRIVE_OFF_STATES
                with contextlib.suppress(Exception):  # a timeout or a lost bus: not confirmed, reported below
                    c.wait_for(off, max(0.0, end - self.clock.now()), "heartbeat with the drive off")
                confirmed = off()
                if not confirmed:
                    problems.append(f"node {node_id}: disable sent, no heartbeat with the drive off within "
                                    f"{confirm_s:g} s (last state {c.state})")
            self.stop_report[str(node_id)] = {
                "disable_sent": t_sent is not None, "idle_confirmed": confirmed, "state": c.state,
                "confirm_s": (c.heartbeat_t - t_sent) if confirmed and c.heartbeat_t and t_sent else None}
        return problems

    def close(self) -> None:
        self._stack.close()


def sim_rig(node_ids: list[int], preset: str, injections: list[tuple[str, float]] = (), *,
            profile: Profile | None = None, seed: int = 0, capacity: int = CLIENT_RING_ROWS,
            lockstep: bool = True) -> Rig:
    """Simulated joints on an in-process virtual bus, each with a fixture: in lock-step with the host (default), or
    paced to wall time in their own thread; ``capacity``: rows of each client's telemetry rings."""
    stack = contextlib.ExitStack()
    try:
        channel = f"jointkit-rig-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        joint_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
        stack.callback(joint_bus.shutdown)
        host_bus = can.Bus(interface="virtual", channel=channel)
        stack.callback(host_bus.shutdown)
        profile = profile or load_native()
        nodes = {n: joint_node(joint_bus, n, profile, preset=preset, seed=seed + n) for n in node_ids}
        for node in nodes.values():
            for name, value in injections:
                node.inject(name, value)
        runner = node_runner(joint_bus, list(nodes.values()), profile, paced=True)
        hub = BusHub.of(host_bus, profile, start=not lockstep)
        stack.callback(hub.close)
        if lockstep:
            hub.clock = LockStepClock(runner, hub)
        clients = {n: JointClient(host_bus, n, profile, capacity=capacity, threaded=not lockstep)
                   for n in node_ids}
        if not lockstep:
            stack.callback(runner.stop)
            runner.start()
        info = {"sim": True, "interface": "virtual", "channel": channel, "preset": preset,
                "injections": dict(injections), "nodes": node_ids, "lockstep": lockstep}
        return Rig(host_bus, hub, clients, info, {n: SimFixture(nd) for n, nd in nodes.items()}, nodes, stack)
    except BaseException:
        stack.close()
        raise


def bus_rig(bus: can.BusABC, node_ids: list[int], profile: Profile | None = None, *,
            capacity: int = CLIENT_RING_ROWS) -> Rig:
    """Joints on an open bus (its owner shuts it down); no fixture."""
    stack = contextlib.ExitStack()
    hub = BusHub.of(bus, profile)
    stack.callback(hub.close)
    clients = {n: JointClient(bus, n, profile, capacity=capacity) for n in node_ids}
    info = {"sim": False, "interface": type(bus).__name__, "channel": str(bus.channel_info), "nodes": node_ids}
    return Rig(bus, hub, clients, info, {}, {}, stack)
