"""``JointClient``: the host's handle on one joint over CAN, real or simulated, through a protocol profile.

Commands are built from the profile's semantic names and clamped to the ranges the sidecar gives them (a
``ClampWarning`` once per signal, and a count). Telemetry lands in preallocated ring buffers with receive times (on
the hub's clock: ``time.perf_counter``, or a simulated rig's lock-step time) and the bus's own timestamps
(``bus_t_s``: the adapter's, or the sender's clock on virtual and remote buses); counters in frames give sequence-
gap counts. Heartbeats are supervised: the joint is lost after ``missed_heartbeats`` periods without one, counted
over the time the hub was listening (``BusHub.deaf_s``: a stalled host does not blame the joint). A joint
reporting faults makes the motion commands and ``check`` raise ``FaultError`` with the fault names; an unanswered
request raises ``TimeoutError``; a parameter the joint refuses raises ``ConfigError`` with its reply status.

Round trip (``rtt``): the time from a command to the first joint-state frame stamped after it was sent, i.e.
sampled by the joint after the command could reach it (up to one telemetry period of the joint's cycle
included). This needs bus timestamps on the host's wall clock, as the virtual and remote buses give; where
an adapter stamps with its own clock the first joint-state frame received after the command is taken.
"""

from __future__ import annotations

import math
import queue
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import can
import numpy as np

from actuator.errors import ConfigError, FaultError, IdentityError, ProtocolError, TimeoutError
from firmware_iface.client.clock import Clock
from firmware_iface.client.hub import BusHub
from firmware_iface.client.rings import Ring
from firmware_iface.defaults import MISSED_HEARTBEATS
from firmware_iface.protocol.capabilities import message_of, provided, replies_only, require, status_message
from firmware_iface.protocol.profile import Decoded, Profile, allowed_range

FAULT_STATES = ("fault", "estop")
RAW_STATES = {"closed_loop": "enable", "idle": "disable"}  # the special frames of a profile without command.state
# telemetry rates for several joints sharing one 1 Mbit/s bus, by rate parameter: the wrench off, the rest at the
# joint's defaults (the native joint's 1111 frames/s a joint: six joints need 83 % of the bus with their 1 kHz
# commands, where the defaults need 158 %). Applied where a joint's profile has the parameter.
SHARED_BUS_RATES_HZ = {"rate_wrench_hz": 0.0}


class ClampWarning(UserWarning):
    """A command was clamped to the profile's range before sending."""


class JointClient:
    """One joint on a bus. ``threaded=False`` leaves reception to ``hub.poll()`` in the caller's thread."""

    def __init__(self, bus: can.BusABC, node_id: int, profile: Profile | None = None, *, capacity: int = 30000,
                 missed_heartbeats: int = MISSED_HEARTBEATS, heartbeat_period_s: float | None = None,
                 threaded: bool = True) -> None:
        self.hub = BusHub.of(bus, profile, start=threaded)
        self.profile = self.hub.profile
        self.node_id = self.profile.check_node(node_id)
        self._status_message = status_message(self.profile)
        # the frame that says the joint is alive: the hub's heartbeat (CANopen's NMT heartbeat beside the statusword)
        self._alive_message = self.hub.heartbeat_message
        self._sync = self.profile.sidecar.messages.get("sync")  # CANopen: SYNC after set-points and while waiting
        # a joint that only answers (MIT mode) has no heartbeat to miss: it is alive while it answers
        self._replies_only = replies_only(self.profile)
        rate = self.profile.telemetry.get(self._alive_message, 10.0) if self._alive_message else 10.0
        self.heartbeat_period_s = heartbeat_period_s or (math.inf if self._replies_only or rate <= 0 else 1.0 / rate)
        self.missed_heartbeats = missed_heartbeats
        self.rings = self._make_rings(capacity)
        self._ring_signals = {name: (ring, ring.fields[2:]) for name, ring in self.rings.items()}  # (ring, signals)
        self._by_semantic = {k: (v.message, v.signal) for k, v in self.profile.sidecar.semantic.items()}
        # every semantic name is optional (``protocol.capabilities``): what the profile lacks is None here
        self.state_message = self._by_semantic.get("telemetry.position_rad", (None,))[0]
        self._state_signal = self._by_semantic.get("status.state", (None, None))[1]
        self._faults_message, self._faults_signal = self._by_semantic.get("status.faults", (None, None))
        self._reported_faults: list[str] = []  # from a fault message of its own (CANopen's EMCY)
        self._reply_message = self._by_semantic.get("reply.param_value", (None,))[0]
        self._capabilities = provided(self.profile)
        self._latest_names = [(k, v) for k, v in self._by_semantic.items()
                              if k.startswith(("telemetry.", "diagnostics.")) and v[0] in self.rings]
        self.status: dict[str, Any] = {}
        self.heartbeat_t: float | None = None
        self._deaf_at_heartbeat_s = 0.0  # the hub's deafness when the last heartbeat came
        self.heartbeat_bus_t: float | None = None  # the newest heartbeat's bus timestamp
        self.last_bus_t: float | None = None  # the bus timestamp of the newest frame (the adapter's or sender's clock)
        self.gaps: Counter[str] = Counter()
        self.counters: Counter[str] = Counter(commands=0, clamped=0, frames=0)
        self.rtt = Ring(("rtt_s",), 100_000)
        self._last_seq: dict[str, int] = {}
        self._pending_command_t: tuple[float, float] | None = None  # (clock, wall clock) of the send
        self.last_command_t: float | None = None  # the clock at the send of the latest set-point
        self._replies: queue.Queue[dict] = queue.Queue()
        # one request at a time: replies carry only the parameter's id, and each request drains the replies left over,
        # so two threads asking at once (a GUI job and the GUI thread) could take or drop each other's answer
        self._request_lock = threading.Lock()
        self._warned: set[str] = set()
        self._ranges: dict[str, tuple[float, float]] = {}  # semantic name -> the range set-points are clamped to
        self._mode_sent: str | None = None
        # replies only: the state the host last set, and the one waiting for a reply sent after it (state, time)
        self._state_set: str = "idle"
        # the values sent beside others in one message (_fill): the last state's wire value, a mode's "none"
        self._carried = {m: [k for k, v in self._by_semantic.items() if v[0] == m and k.startswith("command.")]
                         for m in {v[0] for v in self._by_semantic.values()}}
        idle = self.profile.sidecar.semantic.get("command.state")
        idle_names = idle.names.get("idle", "idle") if idle is not None else "idle"
        self._state_wire: Any = idle_names[0] if isinstance(idle_names, tuple) else idle_names
        mode_sem = self.profile.sidecar.semantic.get("command.mode")
        choices = self.profile.signal(mode_sem.message, mode_sem.signal).choices if mode_sem else None
        self._no_mode: Any = str(choices[0]) if choices and 0 in choices else 0
        self._state_pending: tuple[str, float] | None = None
        self.hub.register(self.node_id, self._on_frame)

    def _make_rings(self, capacity: int) -> dict[str, Ring]:
        """A ring per telemetry message of its number signals: messages of value-table (or masked) signals only where
        they carry telemetry too (MIT's reply, its error code beside the position; CANopen's TPDO1)."""
        sems = self.profile.sidecar.semantic.values()
        carriers = {s.message for s in sems if s.name.startswith(("telemetry.", "diagnostics."))}
        bitfields = {(s.message, s.signal) for s in sems if s.bitfield}
        named = {(s.message, s.signal) for s in sems if s.masks}  # decoded to names (CiA 402's statusword)
        rings = {}
        for name in self.profile.telemetry:
            signals = self.profile.message(name).signals
            numbers = [s.name for s in signals if (not s.choices or (name, s.name) in bitfields)
                       and (name, s.name) not in named]
            if name in carriers or len(numbers) == len(signals):
                rings[name] = Ring(("bus_t_s", *numbers), capacity)
        return rings

    def close(self) -> None:
        self.hub.unregister(self.node_id)

    # --- reception (hub thread) ------------------------------------------------------------------------------
    def _on_frame(self, d: Decoded, t: float, bus_t: float) -> None:
        self.counters["frames"] += 1
        self.last_bus_t = bus_t
        sig = d.signals
        if "counter" in sig:
            self._count_gap(d.name, int(sig["counter"]))
        if d.name == self._alive_message:
            self._deaf_at_heartbeat_s = self.hub.deaf_s()
            self.heartbeat_t, self.heartbeat_bus_t = t, bus_t
        if d.name == self._faults_message and d.name != self._status_message:
            self._reported_faults = self.profile.faults_of(sig[self._faults_signal])
        if d.name == self._status_message:
            status = dict(sig)
            status["fault_names"] = self.profile.faults_of(sig[self._faults_signal]) \
                if self._faults_message == d.name else []
            pending = self._state_pending
            if pending is not None and t >= pending[1]:  # the reply to (or after) the state's special frame
                self._state_set, self._state_pending = pending[0], None
            self.status = status
        elif d.name == self._reply_message:
            self._replies.put(sig)
        ring = self._ring_signals.get(d.name)
        if ring is not None:
            ring[0].append(t, [bus_t, *[float(sig[f]) for f in ring[1]]])
        if d.name == self.state_message and self._pending_command_t is not None:
            sent, sent_wall = self._pending_command_t
            wall_clocked = abs(bus_t - sent_wall) < 1.0
            if not wall_clocked or bus_t >= sent_wall:
                self.rtt.append(t, [t - sent])
                self._pending_command_t = None

    def _count_gap(self, name: str, counter: int) -> None:
        bits = self.profile.signal(name, "counter").length
        last = self._last_seq.get(name)
        if last is not None:
            self.gaps[name] += (counter - last - 1) % (1 << bits)
        self._last_seq[name] = counter

    @property
    def clock(self) -> Clock:
        """The hub's clock: every stamp, deadline and wait of this client."""
        return self.hub.clock

    # --- supervision ---------------------------------------------------------------------------------------------
    def heartbeat_age_s(self) -> float:
        """Seconds the hub has listened since the last heartbeat (inf before the first): the wall time since it, less
        the time the host was kept from the bus."""
        if self.heartbeat_t is None:
            return math.inf
        return self.clock.now() - self.heartbeat_t - (self.hub.deaf_s() - self._deaf_at_heartbeat_s)

    @property
    def alive(self) -> bool:
        return self.heartbeat_age_s() <= self.missed_heartbeats * self.heartbeat_period_s

    @property
    def state(self) -> str | None:
        """The state the heartbeat reports; for a joint that only answers, the state the host set once a reply came
        after it (``fault`` while the reply reports a fault), None before its first reply."""
        if self._state_signal is None:
            if self.heartbeat_t is None:
                return None
            return "fault" if self.faults else self._state_set
        return self.status.get(self._state_signal)

    @property
    def mode(self) -> str | None:
        """The mode the joint reports, or where its profile has no mode report, the mode last sent to it."""
        if "status.mode" not in self._by_semantic:
            return self._mode_sent
        return self.status.get(self._by_semantic["status.mode"][1])

    @property
    def faults(self) -> list[str]:
        """The faults the joint reports: its status's, or while in fault those of its own fault message (EMCY)."""
        if self._faults_message != self._status_message:
            return list(self._reported_faults) if self.state in FAULT_STATES else []
        return list(self.status.get("fault_names", []))

    def check(self) -> None:
        """Raise ``FaultError`` if the joint reports faults, ``TimeoutError`` if its heartbeat was lost."""
        if self.heartbeat_t is not None and not self.alive:
            age = self.heartbeat_age_s()
            raise TimeoutError(f"node {self.node_id}: joint lost, no heartbeat for {age * 1e3:.0f} ms of listening "
                               f"(limit {self.missed_heartbeats} x {self.heartbeat_period_s * 1e3:.0f} ms)")
        if self.state in FAULT_STATES or self.faults:
            names = self.faults or [str(self.state)]
            raise FaultError(f"node {self.node_id}: joint in {self.state} with fault(s) {', '.join(names)}",
                             faults=tuple(names))

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait (polling the hub if it has no thread) until ``predicate()``; ``TimeoutError`` naming ``what``."""
        end = self.clock.now() + timeout_s
        while not predicate():
            self.hub.check_lost()
            if self.clock.now() > end:
                raise TimeoutError(f"node {self.node_id}: no {what} within {timeout_s:g} s")
            if self._sync is not None and self.identified:
                self.sync()  # a CANopen drive reports (TPDOs) and acts at SYNC: the waiting host produces it
            self.clock.idle(self.hub, 0.001)

    def wait_alive(self, timeout_s: float = 1.0) -> dict[str, Any]:
        """Wait for a heartbeat (a joint that only answers is asked: ``identify``); the joint's status."""
        if self._replies_only and not self.identified:
            self.identify(max(timeout_s, 0.5))
        self.wait_for(lambda: self.heartbeat_t is not None, timeout_s, "heartbeat")
        return self.status

    def wait_state(self, state: str, timeout_s: float = 1.0) -> None:
        """Wait until the heartbeat reports ``state``; a fault on the way raises ``FaultError``."""
        def reached() -> bool:
            if self.state != state and self.state in FAULT_STATES:
                self.check()
            return self.state == state
        self.wait_for(reached, timeout_s, f"heartbeat in state {state}")

    @property
    def identified(self) -> bool:
        """Whether the joint's heartbeats have confirmed it as a joint of this client's profile (``BusHub``)."""
        return self.node_id in self.hub.confirmed

    def identify(self, timeout_s: float | None = None) -> None:
        """Wait until the node is confirmed as a joint of the profile (at most ``timeout_s``; default five heartbeat
        periods and at least 2 s: two heartbeats are needed, and a simulated joint on a loaded machine can stall for a
        second); ``IdentityError`` naming what was heard instead. Every write waits for this first:
        a frame of this profile may be a command in a foreign node's protocol."""
        timeout_s = max(2.0, 5.0 * self.heartbeat_period_s) if timeout_s is None else timeout_s
        if self._replies_only and not self.identified:
            timeout_s = 2.0 if math.isinf(timeout_s) else timeout_s
            # the one write before confirmation: the profile's query, the frame that moves nothing (MIT: exit
            # motor mode), without which a joint that only answers is never heard
            self._state_pending = ("idle", self.hub.send(self.profile.encode_raw("query", self.node_id)))
        try:
            self.wait_for(lambda: self.identified, timeout_s, f"confirmation as a {self.profile.name} joint")
        except TimeoutError:
            sent = "nothing but the query was" if self._replies_only else "nothing was"
            raise IdentityError(f"node {self.node_id} is not confirmed as a {self.profile.name} joint within "
                                f"{timeout_s:g} s ({self.hub.identity(self.node_id)}), so {sent} sent to it: "
                                "check the node id, or choose its profile with --profile") from None

    # --- state and mode -------------------------------------------------------------------------------------------
    def _send(self, name: str, **signals: Any) -> float:
        if not self.identified:
            self.identify()
        return self.hub.send(self.profile.encode(name, self.node_id, **signals))

    def _send_semantic(self, values: dict[str, Any]) -> float:
        """Send the message carrying these semantic names (all of one message); the other names the message carries
        are filled (``_fill``: CANopen's RPDO1 has the controlword, target position and mode in one frame)."""
        messages = {self._by_semantic[k][0] for k in values}
        if len(messages) != 1:
            raise ConfigError(f"semantic names {sorted(values)} are not all in one message: {sorted(messages)}")
        message = messages.pop()
        sems = self.profile.sidecar.semantic
        signals = {self._by_semantic[k][1]: v for k, v in values.items()}
        for name in values:  # the signals that go with a name (an SDO's command specifier)
            signals.update(sems[name].with_)
        for name in self._carried.get(message, ()):
            if self._by_semantic[name][1] not in signals:  # one signal may carry several names (an SDO's object)
                signals[self._by_semantic[name][1]] = self._fill(name)
        if "command.state" in values:
            self._state_wire = values["command.state"]
        return self._send(message, **signals)

    def _fill(self, semantic: str) -> Any:
        """A value for a semantic name sent beside others: the state and mode last sent (kept as they are), where
        the joint is for a position (held), else 0."""
        if semantic == "command.state":
            return self._state_wire
        if semantic == "command.mode":
            return self._mode_sent or self._no_mode
        if semantic.startswith("command.") and semantic.endswith("position_rad"):
            return self.latest().get("telemetry.position_rad", 0.0)
        return 0.0

    def sync(self) -> float:
        """Send the profile's SYNC (CANopen: the drives sample, report and apply targets at it)."""
        return self._send(self._sync)

    def need(self, *capabilities: str, command: str) -> None:
        """``ProtocolError`` before anything is sent when the profile lacks a capability ``command`` needs (looked up
        in the profile's table, made once: set-points ask at 1 kHz)."""
        if not all(self._capabilities[c] for c in capabilities):
            require(self.profile, *capabilities, command=f"node {self.node_id}: {command}")

    def set_mode(self, mode: str) -> None:
        self.need("modes", command=f"set mode {mode}")
        self._send_semantic({"command.mode": mode})
        self._mode_sent = mode

    def set_state(self, state: str) -> None:
        self.need("state_machine", command=f"set state {state}")
        if "command.state" in self._by_semantic:
            sequence = self.profile.sidecar.semantic["command.state"].names.get(state)
            for wire in sequence if isinstance(sequence, tuple) else (state,):  # CiA 402: controlwords in turn
                self._send_semantic({"command.state": wire})
            if self._sync is not None:
                self.sync()  # the drive reports its new state at the SYNC, as a native joint answers at once
            return
        role = RAW_STATES.get(state)  # MIT: the special frames, answered by a reply
        if role is None:
            raise ConfigError(f"node {self.node_id}: profile {self.profile.name} enters only "
                              f"{', '.join(RAW_STATES)}, not {state!r}")
        if not self.identified:
            self.identify()
        self._state_pending = (state, self.hub.send(self.profile.encode_raw(role, self.node_id)))

    def enable(self, mode: str | None = None, *, wait: bool = True, timeout_s: float = 1.0) -> None:
        """Select ``mode`` (if given) and enter closed loop; with ``wait`` until the heartbeat says so."""
        # a profile of one mode and no mode command (MIT: impedance) is in that mode
        single = mode is not None and "command.mode" not in self._by_semantic and tuple(self.profile.sidecar.modes) \
            == (mode,)
        self.need("state_machine", *(("modes",) if mode is not None and not single else ()), command="enable")
        start = self.profile.sidecar.messages.get("start")
        if start is not None:
            self._send(start)  # CANopen: NMT start, PDOs flow only in OPERATIONAL
        if single:
            self._mode_sent = mode
        elif mode is not None:
            self.set_mode(mode)
        self.set_state("closed_loop")
        if wait:
            self.wait_state("closed_loop", timeout_s)
            if mode is not None and self._capabilities["mode_report"]:
                self.wait_for(lambda: self.mode == mode, timeout_s, f"heartbeat in mode {mode}")

    def disable(self) -> None:
        self.set_state("idle")

    def clear_faults(self) -> None:
        self.need("clear_faults", command="clear faults")
        self._role_or_state("clear_faults")

    def estop(self) -> None:
        """One frame, no handshake, no checks (but the node's identity): always sent."""
        self.need("estop", command="estop")
        self._role_or_state("estop")

    def _role_or_state(self, role: str) -> None:
        """The message of ``role``, or where the state machine has it, that state's frames (CiA 402's controlwords)."""
        message = message_of(self.profile, role)
        if message is not None:
            self._send(message)
        else:
            self.set_state(role)

    # --- set-points --------------------------------------------------------------------------------------------
    def _clamp(self, semantic: str, value: float) -> float:
        bounds = self._ranges.get(semantic)
        if bounds is None:  # looked up once per name: set-points ask at 1 kHz
            info = self.profile.semantic_info(semantic)
            bounds = self._ranges[semantic] = info.range_ or allowed_range(self.profile.signal(info.message,
                                                                                              info.signal))
        lo, hi = bounds
        if not math.isfinite(value):
            raise ConfigError(f"{semantic} = {value!r} is not a finite number")
        if lo <= value <= hi:
            return value
        self.counters["clamped"] += 1
        if semantic not in self._warned:
            self._warned.add(semantic)
            warnings.warn(f"node {self.node_id}: {semantic} clamped to the profile's range [{lo:g}, {hi:g}]",
                          ClampWarning, stacklevel=3)
        return min(max(value, lo), hi)

    def _command(self, capability: str, values: dict[str, float]) -> float:
        self.need(capability, command=capability.replace("_", " "))
        self.check()
        # feed-forwards the profile does not map are left out when zero: a joint without them takes none
        unmapped = [k for k, v in values.items() if k not in self._by_semantic and v != 0.0]
        if unmapped:
            raise ProtocolError(f"node {self.node_id}: profile {self.profile.name} has no {', '.join(unmapped)}: "
                                "send it as 0, nothing was sent")
        t = self._send_semantic({k: self._clamp(k, float(v)) for k, v in values.items() if k in self._by_semantic})
        if self._sync is not None:
            self.sync()
        self.counters["commands"] += 1
        self.last_command_t = t
        if self._pending_command_t is None:
            self._pending_command_t = (t, self.clock.wall())
        return t

    def position(self, position_rad: float, velocity_ff_rad_s: float = 0.0, torque_ff_nm: float = 0.0) -> float:
        """Position set-point (position and admittance modes); returns the send time."""
        return self._command("position_command", {"command.position_rad": position_rad,
                              "command.position_velocity_ff_rad_s": velocity_ff_rad_s,
                              "command.position_torque_ff_nm": torque_ff_nm})

    def velocity(self, velocity_rad_s: float, torque_ff_nm: float = 0.0) -> float:
        return self._command("velocity_command", {"command.velocity_rad_s": velocity_rad_s,
                                                  "command.velocity_torque_ff_nm": torque_ff_nm})

    def torque(self, torque_nm: float) -> float:
        return self._command("torque_command", {"command.torque_nm": torque_nm})

    def impedance(self, position_rad: float, velocity_rad_s: float, kp_nm_per_rad: float, kd_nm_s_per_rad: float,
                  torque_ff_nm: float = 0.0) -> float:
        return self._command("impedance", {"command.impedance_position_rad": position_rad,
                              "command.impedance_velocity_rad_s": velocity_rad_s,
                              "command.impedance_kp_nm_per_rad": kp_nm_per_rad,
                              "command.impedance_kd_nm_s_per_rad": kd_nm_s_per_rad,
                              "command.impedance_torque_ff_nm": torque_ff_nm})

    def setpoint(self, mode: str, value: float, *, impedance_gains: tuple[float, float] | None = None) -> float:
        """The set-point of ``mode`` (the one mode-to-command chain): a position (position and admittance modes), a
        velocity or a torque, with zero feed-forward; in impedance mode a position with zero velocity and the
        stiffness and damping ``impedance_gains`` (kp N·m/rad, kd N·m·s/rad), which it needs. The send time."""
        if mode in ("position", "admittance"):
            return self.position(value)
        if mode == "velocity":
            return self.velocity(value)
        if mode == "torque":
            return self.torque(value)
        if mode == "impedance":
            if impedance_gains is None:
                raise ConfigError(f"node {self.node_id}: an impedance set-point needs its gains (kp, kd)")
            return self.impedance(value, 0.0, *impedance_gains)
        raise ConfigError(f"node {self.node_id}: no set-point for mode {mode!r}: allowed position, admittance, "
                          "velocity, torque, impedance")

    # --- gains and parameters ----------------------------------------------------------------------------------
    def write_gain(self, name: str, value: float) -> None:
        """Write one gain live (no reply in the native protocol: read it back with ``read_gain``); where the profile
        has gains as parameters only (CANopen's SDO objects), as the parameter ``gain.NAME``."""
        self.need("gains", command=f"write gain {name}")
        if "command.gain_id" not in self._by_semantic:
            self.write_param(f"gain.{name}", value)
            return
        self._send_semantic({"command.gain_id": name, "command.gain_value": float(value)})

    def read_gain(self, name: str, timeout_s: float = 0.5) -> float:
        return self.read_param(f"gain.{name}", timeout_s)

    def impedance_gains(self) -> tuple[float, float]:
        """(kp N·m/rad, kd N·m·s/rad) for impedance set-points: the joint's own, read back, or where it keeps none
        (MIT: they travel with every command) the profile's ``[impedance]`` defaults."""
        own = self.profile.sidecar.impedance
        if not self._capabilities["parameters"] and {"kp_nm_per_rad", "kd_nm_s_per_rad"} <= own.keys():
            return own["kp_nm_per_rad"], own["kd_nm_s_per_rad"]
        return self.read_gain("impedance_kp"), self.read_gain("impedance_kd")

    def read_param(self, name: str, timeout_s: float = 0.5) -> float:
        self.need("parameters", command=f"read {name}")
        pid = self.profile.param_id(name)
        return self._request(name, pid, lambda: self._send_semantic({"command.param_read_id": pid}), timeout_s)

    def write_param(self, name: str, value: float, timeout_s: float = 0.5) -> float:
        """Write a parameter; the value the joint now holds (``ConfigError`` if it refuses)."""
        self.need("parameters", command=f"write {name}")
        pid = self.profile.param_id(name)
        send = lambda: self._send_semantic({"command.param_id": pid, "command.param_value": float(value)})  # noqa: E731
        return self._request(name, pid, send, timeout_s, value)

    def save(self, timeout_s: float = 2.0) -> int:
        """Store the joint's parameters and gains in its flash (idle only); the number of saves since boot."""
        self.need("flash", command="save to flash")
        pid = self.profile.param_id("flash_saves")
        message = message_of(self.profile, "save_to_flash")
        return int(self._request("save_to_flash", pid, lambda: self._send(message), timeout_s))

    def _request(self, name: str, pid: int, send: Callable[[], float], timeout_s: float, value: Any = None) -> float:
        if not self._request_lock.acquire(timeout=max(timeout_s, 0.0)):
            raise TimeoutError(f"node {self.node_id}: no reply to {name} within {timeout_s:g} s (another request of "
                               "this client was still waiting for its own)")
        try:
            return self._request_locked(name, pid, send, timeout_s, value)
        finally:
            self._request_lock.release()

    def _request_locked(self, name: str, pid: int, send: Callable[[], float], timeout_s: float,
                        value: Any = None) -> float:
        while not self._replies.empty():  # a late answer to an earlier request is not this one's
            self._replies.get_nowait()
        send()
        id_sig, status_sig, value_sig = (self._by_semantic[f"reply.param_{k}"][1] for k in ("id", "status", "value"))
        end = self.clock.now() + timeout_s
        while True:
            remaining = end - self.clock.now()
            if remaining <= 0:
                raise TimeoutError(f"node {self.node_id}: no reply to {name} within {timeout_s:g} s")
            try:
                if self.hub.threaded:
                    reply = self._replies.get(timeout=min(remaining, 0.01))
                else:  # this thread brings the frames: let time pass (a lock-step step, or a poll) first
                    reply = self._replies.get_nowait()
            except queue.Empty:
                self.hub.check_lost()
                if not self.hub.threaded:
                    self.clock.idle(self.hub, 0.0)
                continue
            if int(reply[id_sig]) != pid:
                continue
            status = reply[status_sig]
            if status == "written":  # a reply without the value (an SDO download's): ask for it
                return self._request_locked(name, pid, lambda: self._send_semantic({"command.param_read_id": pid}),
                                            timeout_s)
            if status != "ok":
                shown = "" if value is None else f" = {value!r}"
                raise ConfigError(f"node {self.node_id}: {name}{shown} refused by the joint: {status}")
            return float(reply[value_sig])

    # --- telemetry ----------------------------------------------------------------------------------------------
    def latest(self) -> dict[str, float]:
        """The newest value of every semantic telemetry name received so far."""
        rows = {name: ring.last() for name, ring in self.rings.items()}
        out = {}
        for sem, (message, signal) in self._latest_names:
            row = rows.get(message)
            if row is not None:
                out[sem] = float(row[self.rings[message].index[signal]])
        return out

    def series(self, semantic: str, since_t: float = -math.inf) -> tuple[Any, Any]:
        """(receive times, values) of one semantic telemetry name received at or after ``since_t``; empty where the
        profile does not report it (an ODrive's torque): a plot of it stays empty."""
        message, signal = self._by_semantic.get(semantic, (None, None))
        if message not in self.rings:
            return np.empty(0), np.empty(0)
        rows = self.rings[message].window(since_t, columns=("t_s", signal))  # copies only the two columns
        return rows[:, 0], rows[:, 1]
