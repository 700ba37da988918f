"""The virtual joint as a CAN bus node: ``JointFirmware`` behind a protocol profile on any python-can bus.

The node owns the joint's side of the wire. Between chunks of joint time (1 ms by default) it takes the frames
addressed to it, turns them into firmware calls, and sends the telemetry that is due at the firmware's rates.
Everything goes through the profile: commands are decoded and telemetry encoded by the DBC through the
sidecar's semantic names, so the node knows messages only by what they mean.

Frames for this node that cannot be decoded (wrong length, out-of-range value, unknown command id, garbage)
are counted in ``counters["rx_errors"]`` with the last reason in ``last_error``; they never stop the node.
Frames for other nodes, and other nodes' telemetry, are ignored.

Frames carry the joint's own time stamp (``time_origin`` + joint time); open the node's ``virtual`` bus with
``preserve_timestamps=True`` so that it reaches the host (``JointClient.rtt`` and the bus tests use it).

Time: ``run_for(duration_s)`` advances the joint as fast as it can in the caller's thread (free-running, what
CI and in-process tests use); ``start()`` runs a thread that is paced to wall time (``paced=True``) or free-
running. A paced node that falls behind by more than ``MAX_LAG_S`` resynchronises and counts an overrun.

Fault injection (``inject``): the joint model's own injections (``actuator.simulation.INJECTIONS``) and the
node's: ``over_temperature`` (winding this many degrees over its limit), ``encoder_loss``, ``ft_saturation``
(a wrench this many times the sensor's range), ``bus_silence`` (send nothing for this many seconds of joint
time), ``drop_frames`` (drop each sent frame with this probability), ``delay_frames`` (send each frame this
many seconds late).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import can
import numpy as np
from cantools.database.can import Message as DbcMessage

from actuator.control.supervisor import FAULT_ESTOP, FAULT_NAMES, FAULT_WATCHDOG
from actuator.errors import ConfigError, FaultError, ProtocolError
from actuator.model import layout as L
from actuator.simulation import INJECTIONS
from firmware_iface.protocol.capabilities import message_of, replies_only, status_message
from firmware_iface.protocol.frame import Frame
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile
from firmware_iface.virtual_joint.firmware import RATES, JointFirmware, ParamError

MAX_LAG_S = 0.05
# firmware state -> the heartbeat's state value
STATE_VALUES = {"idle": "idle", "calibrating": "calibrate", "closed_loop": "closed_loop", "fault": "fault"}
REQUESTS = {"idle": "idle", "closed_loop": "closed_loop", "calibrate": "calibrating"}
PARAM_STATUS = ("ok", "unknown_param", "read_only", "out_of_range")
# the firmware's telemetry under the profile's semantic names (named once: the node reads them at every tick)
TELEMETRY_KEYS = tuple((f"telemetry.{key}", key) for key in (
    "position_rad", "velocity_rad_s", "torque_nm", "iq_a", "id_a", "bus_voltage_v", "winding_temp_c", "housing_temp_c",
    "motor_encoder_rad", "output_encoder_rad", "setpoint_position_rad", "setpoint_velocity_rad_s", "joint_time_ms"))
WRENCH_KEYS = tuple(f"telemetry.{key}" for key in ("force_x_n", "force_y_n", "force_z_n", "torque_x_nm", "torque_y_nm",
                                                   "torque_z_nm"))
NODE_INJECTIONS = {
    "over_temperature": (0.0, 200.0, 5.0, "winding temperature this many °C above its limit"),
    "encoder_loss": (0.0, 1.0, 1.0, "1: both encoders stop updating, 0: restored"),
    "ft_saturation": (0.0, 100.0, 2.0, "an external wrench this many times the sensor's range, 0: removed"),
    "bus_silence": (0.0, math.inf, math.inf, "send nothing for this many seconds of joint time"),
    "drop_frames": (0.0, 1.0, 0.5, "probability of dropping each sent frame"),
    "delay_frames": (0.0, 1.0, 0.005, "send every frame this many seconds late"),
}


class _Signal(NamedTuple):
    """One telemetry signal compiled once: the toolkit's value of ``semantic`` -> the wire's."""

    name: str
    semantic: str | None
    lo: float  # the DBC's range, wire units
    hi: float
    choices: dict[str, int]  # value name (the toolkit's where the profile maps names) -> raw value
    modulus: int  # a counter's modulus, else 0
    scale: float  # toolkit = wire * scale + offset
    offset: float
    constant: float | None  # the node id where the node is in the payload


@dataclass
class _Telemetry:
    """One telemetry message compiled once: its DBC message, bus id, and its signals."""

    name: str
    message: DbcMessage
    arbitration_id: int
    signals: list[_Signal]
    period_s: float = 0.0
    due_s: float = 0.0


class VirtualJointNode:
    """A simulated joint on a python-can bus, speaking ``profile`` (the native one by default)."""

    def __init__(self, bus: can.BusABC, node_id: int, firmware: JointFirmware | None = None, *,
                 profile: Profile | None = None, preset: str = "knee", paced: bool = True, seed: int = 0,
                 **firmware_options: object) -> None:
        self.profile = profile or load_native()
        self.node_id = self.profile.check_node(node_id)
        self.fw = firmware or JointFirmware(preset, seed=seed, **firmware_options)
        self.bus = bus
        self.paced = paced
        self.counters = collections.Counter(rx=0, tx=0, rx_errors=0, tx_errors=0, rejected=0, dropped=0,
                                            delayed=0, overruns=0)
        self.last_error = ""
        self._rng = np.random.default_rng(seed + 7919)
        self._lock = threading.RLock()
        self._delayed: collections.deque[tuple[float, can.Message]] = collections.deque()
        self._silent_until_s = -1.0
        self._drop_p = 0.0
        self._delay_s = 0.0
        self._loop_us = [0.0, 0, 0.0]  # sum, count, max of the control-loop time per model step since diagnostics
        self._seq: collections.Counter[str] = collections.Counter()
        # wall-clock time of joint time 0: frames carry origin + joint time as their timestamp, the instant they
        # would have been on the bus had the simulation kept wall time (a bus created with
        # preserve_timestamps=True passes it on), so a host measures in the joint's time even when a loaded
        # machine makes the simulation stutter
        self.time_origin = time.time() - self.fw.t_s
        self._rx_names = set(self.profile.sidecar.always).union(*self.profile.sidecar.modes.values(),
                                                                self.profile.sidecar.raw_frames)
        self._commands = self._command_semantics()
        self._fd = self.profile.sidecar.fd
        self._telemetry = self._compile_telemetry()
        self._rate_params = {m: param for param, messages in RATES.items() for m in messages}
        sems = self.profile.sidecar.semantic
        self._diagnostics = sems["diagnostics.loop_time_us"].message if "diagnostics.loop_time_us" in sems else None
        self._setpoints = set().union(*self.profile.sidecar.modes.values())
        self._heartbeat = next(tm for tm in self._telemetry if tm.name == status_message(self.profile))
        self._replies_only = replies_only(self.profile)  # MIT: a reply to every command, no heartbeat
        modes = tuple(self.profile.sidecar.modes)
        if len(modes) == 1 and "command.mode" not in sems:
            self.fw.set_mode(modes[0])  # the one mode of the protocol (MIT: impedance)
        self._estop, self._clear = message_of(self.profile, "estop"), message_of(self.profile, "clear_faults")
        self._status_requests = {sems[k].message for k in ("command.state", "command.mode") if k in sems} | {
            self._estop, self._clear}
        # the firmware's fault bits -> the profile's (by name: an ODrive reports an over-current as MOTOR_FAILED), or
        # where status.faults is one code (MIT), the name of the code of the first that has one
        self._fault_bits = [(bit, self.profile.sidecar.faults[name]) for bit, name in FAULT_NAMES.items()
                            if name in self.profile.sidecar.faults]
        self._fault_code_names = {}
        if self.profile.fault_codes:
            sem = sems["status.faults"]
            self._fault_code_names = {int(k): str(v) for k, v in self.profile.signal(sem.message,
                                                                                     sem.signal).choices.items()}

    # --- compiled protocol tables ------------------------------------------------------------------------
    def _command_semantics(self) -> dict[str, list[tuple[str, str]]]:
        """message -> [(semantic suffix, signal)] for every command the profile maps."""
        out: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for name, sem in self.profile.sidecar.semantic.items():
            if name.startswith("command."):
                out[sem.message].append((name[len("command."):], sem.signal))
        return out

    def _compile_telemetry(self) -> list[_Telemetry]:
        sems = self.profile.sidecar.semantic
        by_signal = {(s.message, s.signal): name for name, s in sems.items()}
        out = []
        for name in self.profile.telemetry:
            message = self.profile.message(name)
            node_signal = self.profile.sidecar.node_in_payload.get(name)
            signals = []
            for s in message.signals:
                sem = by_signal.get((name, s.name))
                entry = sems.get(sem) if sem else None
                lo = s.minimum if s.minimum is not None else -math.inf
                hi = s.maximum if s.maximum is not None else math.inf
                choices = {}
                if s.choices and not (entry and entry.bitfield):
                    choices = {str(v): k for k, v in s.choices.items()}
                    # the toolkit's names first, so that where several map to one value the value is found
                    choices = {ours: choices[theirs] for ours, theirs in (entry.names if entry else {}).items()
                               if theirs in choices} | choices
                counter = (s.name == "counter" and sem is None) or sem == "status.counter"
                signals.append(_Signal(s.name, sem, lo, hi, choices, 1 << s.length if counter else 0,
                                       entry.scale if entry else 1.0, entry.offset if entry else 0.0,
                                       float(self.node_id) if s.name == node_signal else None))
            out.append(_Telemetry(name, message, self.profile.arbitration_id(name, self.node_id), signals))
        return out

    def run_for(self, duration_s: float) -> None:
        """Advance ``duration_s`` of joint time in this thread, as fast as possible, handling frames between chunks."""
        NodeRunner(self.bus, [self]).run_for(duration_s)

    def start(self, paced: bool | None = None) -> NodeRunner:
        """Run this node alone on its bus in a daemon thread; ``stop()`` the returned runner (or use ``with``)."""
        return NodeRunner(self.bus, [self], paced=self.paced if paced is None else paced).start()

    # --- frames in ----------------------------------------------------------------------------------------------
    def handle(self, msg: can.Message) -> None:
        """Act on one received frame (ignored unless it is a command for this node)."""
        if msg.is_error_frame:
            return
        node = self.profile.node_of(msg)
        if node is not None and node != self.node_id:
            return
        try:
            decoded = self.profile.decode(msg)
        except ProtocolError as e:
            self._rx_error(str(e))
            return
        if decoded.name not in self._rx_names:
            return  # our own telemetry id seen through a bus that echoes
        self.counters["rx"] += 1
        values = {sem: decoded.signals[sig] for sem, sig in self._commands.get(decoded.name, ())}
        with self._lock:
            try:
                self._dispatch(decoded.name, values)
            except (ConfigError, FaultError) as e:
                self.counters["rejected"] += 1
                self.last_error = f"{decoded.name}: {e}"
            if decoded.name in self._status_requests or self._replies_only:
                self._send_heartbeat()  # answer a state change at once, as drives do, not at the next 10 Hz beat

    def _rx_error(self, reason: str) -> None:
        self.counters["rx_errors"] += 1
        self.last_error = reason

    def _dispatch(self, name: str, v: dict) -> None:
        fw = self.fw
        if name in self.profile.sidecar.raw_frames:
            self._raw(name)
        elif name == self._estop:
            fw.estop()
        elif name == self._clear:
            fw.clear_faults()
        elif "state" in v:
            if v["state"] not in REQUESTS:
                raise ConfigError(f"state {v['state']!r} is not one the simulated joint enters: allowed "
                                  f"{', '.join(REQUESTS)}")
            fw.set_state(REQUESTS[v["state"]])
        elif "mode" in v:
            fw.set_mode(v["mode"])
        elif name in self._setpoints:
            if not self.profile.accepts(fw.mode, name):  # a set-point of another mode must not move the joint
                raise ConfigError(f"{name} is not accepted in mode {fw.mode}")
            self._setpoint(v)
        elif "gain_id" in v:
            fw.write_gain(str(v["gain_id"]), float(v["gain_value"]))
        elif "param_value" in v:
            self._param(int(v["param_id"]), float(v["param_value"]))
        elif "param_read_id" in v:
            self._param(int(v["param_read_id"]), None)
        elif name == "save_to_flash":
            self._save()

    def _raw(self, role: str) -> None:
        """MIT mode's special frames: enable enters closed loop (leaving a watchdog stop first, as a motor that timed
        out is simply re-entered), disable and query leave it; zero is not emulated (counted as rejected)."""
        fw = self.fw
        if role == "enable":
            if fw.state == "fault" and fw.faults == FAULT_WATCHDOG:
                fw.clear_faults()
            fw.set_state("closed_loop")
        elif role in ("disable", "query"):
            if fw.state != "fault":
                fw.set_state("idle")
        else:
            raise ConfigError(f"special frame {role} is not emulated by the simulated joint")

    def _setpoint(self, v: dict) -> None:
        fw = self.fw
        if "impedance_position_rad" in v:
            ok = fw.impedance(v["impedance_position_rad"], v.get("impedance_velocity_rad_s", 0.0),
                              v["impedance_kp_nm_per_rad"], v["impedance_kd_nm_s_per_rad"],
                              v.get("impedance_torque_ff_nm", 0.0))
        elif "position_rad" in v:
            ok = fw.command(fw.mode, v["position_rad"], v.get("position_velocity_ff_rad_s", 0.0),
                            v.get("position_torque_ff_nm", 0.0))
        elif "velocity_rad_s" in v:
            ok = fw.command(fw.mode, 0.0, v["velocity_rad_s"], v.get("velocity_torque_ff_nm", 0.0))
        else:
            ok = fw.command(fw.mode, 0.0, 0.0, v["torque_nm"])
        if not ok:  # the firmware refused it (not in closed loop, or stopping)
            self.counters["rejected"] += 1

    def _param(self, param_id: int, value: float | None) -> None:
        name = self.profile.param_name(param_id)
        status = "ok"
        try:
            if name is None:
                raise ParamError("unknown_param", f"param id {param_id} is unknown")
            if value is not None:
                self.fw.write_param(name, value)
            now = self.fw.read_param(name)
        except ParamError as e:
            status, now = e.status, 0.0
            self.last_error = str(e)
        self._reply(param_id, status, now)

    def _save(self) -> None:
        status = "ok"
        if self.fw.state != "idle" or self.fw.flash_path is None:
            status = "read_only"
        else:
            self.fw.save_to_flash()
        self._reply(self.profile.param_id("flash_saves"), status, self.fw.read_param("flash_saves"))

    def _reply(self, param_id: int, status: str, value: float) -> None:
        msg_name, _ = self.profile.semantic("reply.param_value")
        id_sig = self.profile.semantic("reply.param_id")[1]
        status_sig = self.profile.semantic("reply.param_status")[1]
        value_sig = self.profile.semantic("reply.param_value")[1]
        value = float(np.clip(value, *self._range(msg_name, value_sig)))
        self.send(self.profile.encode(msg_name, self.node_id, **{id_sig: param_id, status_sig: status,
                                                                  value_sig: value}))

    def _range(self, message: str, signal: str) -> tuple[float, float]:
        s = self.profile.signal(message, signal)
        return (s.minimum if s.minimum is not None else -3e38), (s.maximum if s.maximum is not None else 3e38)

    # --- frames out -----------------------------------------------------------------------------------------------
    def send(self, msg: can.Message) -> None:
        """Send through the active bus faults (silence, drop, delay); bus errors are counted, never raised.
        The frame is stamped when it is made: a delayed frame keeps the time its data was sampled."""
        msg.timestamp = self.time_origin + self.fw.t_s
        if self.fw.t_s < self._silent_until_s:
            self.counters["silenced"] += 1
            return
        if self._drop_p and self._rng.random() < self._drop_p:
            self.counters["dropped"] += 1
            return
        if self._delay_s:
            self.counters["delayed"] += 1
            self._delayed.append((self.fw.t_s + self._delay_s, msg))
            return
        self._transmit(msg)

    def _transmit(self, msg: can.Message) -> None:
        self.last_error = transmit(self.bus, msg, self.counters) or self.last_error

    def tick(self) -> None:
        """One chunk of joint time, then the telemetry that is due."""
        with self._lock:
            t0 = time.perf_counter()
            self.fw.advance(self.fw.chunk_steps * self.fw.model.dt_s)
            step_us = (time.perf_counter() - t0) * 1e6 / self.fw.chunk_steps
            loop = self._loop_us
            loop[0] += step_us
            loop[1] += 1
            loop[2] = max(loop[2], step_us)
            while self._delayed and self._delayed[0][0] <= self.fw.t_s:
                self._transmit(self._delayed.popleft()[1])
            self._send_due()

    def _send_due(self) -> None:
        t = self.fw.t_s
        values: dict | None = None
        for tm in self._telemetry:
            rate = self._rate(tm.name)
            period = 1.0 / rate if rate > 0 else 0.0
            if period != tm.period_s:  # a new rate takes effect now, not at the old rate's next due time
                tm.period_s, tm.due_s = period, min(tm.due_s, t)
            if rate <= 0 or t + 1e-9 < tm.due_s:
                continue
            tm.due_s = tm.due_s + period if tm.due_s + period > t else t + period
            values = values or self.semantic_values()
            self.send(self._encode(tm, values))
            if tm.name == self._diagnostics:
                self._loop_us = [0.0, 0, 0.0]

    def _send_heartbeat(self) -> None:
        self.send(self._encode(self._heartbeat, self.semantic_values()))

    def _rate(self, message: str) -> float:
        param = self._rate_params.get(message)
        return self.fw.rates_hz[param] if param else self.profile.telemetry.get(message, 0.0)

    def _encode(self, tm: _Telemetry, values: dict) -> can.Message:
        data = {}
        seq = self._seq[tm.name]
        for name, semantic, lo, hi, choices, modulus, scale, offset, constant in tm.signals:  # unpacked: per frame
            if modulus:
                data[name] = seq % modulus
                continue
            if constant is not None:
                data[name] = constant
                continue
            value = values.get(semantic, 0.0)
            if choices:
                value = choices.get(str(value), 0)
            value = (float(value) - offset) / scale
            if value != value:  # NaN has no encoding: send 0 and count it rather than stop transmitting
                self.counters["nonfinite"] += 1
                value = 0.0
            data[name] = min(max(value, lo), hi)  # a real firmware saturates what its field cannot carry
        self._seq[tm.name] = seq + 1
        payload = tm.message.encode(data, scaling=True, padding=False, strict=False)
        return Frame(arbitration_id=tm.arbitration_id, data=payload, is_extended_id=False, is_fd=self._fd)

    def semantic_values(self) -> dict[str, float | str]:
        """The joint's telemetry under the profile's semantic names."""
        tel = self.fw.telemetry()
        state = STATE_VALUES[tel["state"]]
        if tel["fault_bits"] & FAULT_ESTOP:
            state = "estop"
        wrench = tel["wrench"]
        total, n, worst = self._loop_us
        faults = 0
        for bit, theirs in self._fault_bits:
            if tel["fault_bits"] & bit:
                faults |= theirs
                if self._fault_code_names:  # one code: the first
                    break
        if self._fault_code_names:
            faults = self._fault_code_names.get(faults, self._fault_code_names.get(0, 0))
        out = {"status.state": state, "status.mode": tel["mode"], "status.faults": faults,
               "status.limits_active": tel["limits_active"], "telemetry.ft_saturated": tel["ft_saturated"],
               "telemetry.ft_temp_c": tel["housing_temp_c"],
               "diagnostics.rx_errors": min(self.counters["rx_errors"], 255),
               "diagnostics.tx_errors": min(self.counters["tx_errors"], 255),
               "diagnostics.watchdog_misses": self.fw.counter("watchdog_trips"),
               "diagnostics.loop_time_us": total / n if n else 0.0, "diagnostics.loop_time_max_us": worst}
        for semantic, key in TELEMETRY_KEYS:
            out[semantic] = tel[key]
        for i, semantic in enumerate(WRENCH_KEYS):
            out[semantic] = wrench[i]
        return out

    # --- fault injection -----------------------------------------------------------------------------------------
    def inject(self, name: str, value: float | None = None) -> None:
        """Apply a fault injection now (see the module docstring); ``ConfigError`` names what is allowed."""
        with self._lock:
            if name in INJECTIONS:
                if value is None:
                    raise ConfigError(f"injection {name} needs a value ({INJECTIONS[name][4]})")
                self.fw.model.inject(name, value)
                return
            if name not in NODE_INJECTIONS:
                raise ConfigError(f"unknown injection {name!r}: allowed {', '.join([*NODE_INJECTIONS, *INJECTIONS])}")
            lo, hi, default, what = NODE_INJECTIONS[name]
            value = default if value is None else float(value)
            if not lo <= value <= hi:
                raise ConfigError(f"injection {name} = {value!r} is out of range: allowed [{lo:g}, {hi:g}] ({what})")
            self._inject_node(name, value)

    def _inject_node(self, name: str, value: float) -> None:
        model = self.fw.model
        if name == "over_temperature":
            model.x[L.X_TW] = model.p[L.P_TH_LIMIT] + value
        elif name == "encoder_loss":
            model.inject("encoder_dropout", 1.0 if value else 0.0)
            model.inject("output_encoder_dropout", 1.0 if value else 0.0)
        elif name == "ft_saturation":
            # along the sensor's z (axial force and torque about x): saturates it without torque about the joint
            # axis (Mz + d Fy), so the joint does not run away and trip over-current instead
            ft = self.fw.params.ft_sensor
            model.inject("external_wrench", [0.0, 0.0, value * ft.range_force_n[2], value * ft.range_torque_nm[0],
                                             0.0, 0.0])
        elif name == "bus_silence":
            self._silent_until_s = self.fw.t_s + value
        elif name == "drop_frames":
            self._drop_p = value
        elif name == "delay_frames":
            self._delay_s = value


def transmit(bus: can.BusABC, msg: can.Message, counters: collections.Counter) -> str | None:
    """Send a simulated joint's frame: a bus error is counted (``tx_errors``) and returned as text, never raised (a
    joint goes on whatever its bus does)."""
    try:
        bus.send(msg)
    except (can.CanError, OSError, ValueError) as e:
        counters["tx_errors"] += 1
        return f"bus send: {e}"
    counters["tx"] += 1
    return None


class NodeRunner:
    """Runs virtual joint nodes that share one bus, in one thread: frames to their node, then a chunk of each.

    One bus for all the nodes of a process keeps a python-can ``virtual`` channel at two endpoints (joints and
    host), so every frame is copied once, not once per node.
    """

    def __init__(self, bus: can.BusABC, nodes: list[VirtualJointNode], *, paced: bool = True) -> None:
        if not nodes:
            raise ConfigError("a node runner needs at least one node")
        ids = [n.node_id for n in nodes]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"node ids must differ on one bus: {ids}")
        self.bus, self.nodes, self.paced = bus, {n.node_id: n for n in nodes}, paced
        self.profile = nodes[0].profile
        self.counters = collections.Counter(overruns=0, bus_errors=0, tick_errors=0, foreign=0)
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    @property
    def chunk_s(self) -> float:
        fw = next(iter(self.nodes.values())).fw
        return fw.chunk_steps * fw.model.dt_s

    def start(self) -> NodeRunner:
        """Run the nodes in a daemon thread. The first start ticks each node once here, before the thread: that
        compiles (or loads from Numba's cache) the joint's kernels, up to a minute on a cold clone, before the first
        heartbeat announces the joint, so no host waits out its connect timeout on the compiler and a paced loop
        does not start a minute behind."""
        if not self._started:
            self._started = True
            self._tick()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"virtual-joints-{'-'.join(map(str, self.nodes))}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> NodeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_for(self, duration_s: float) -> None:
        """Advance ``duration_s`` of joint time in this thread, as fast as possible, handling frames between chunks."""
        for _ in range(max(1, round(duration_s / self.chunk_s))):
            self.step()

    def step(self) -> None:
        """One chunk in the caller's thread: the frames waiting for the nodes, then a chunk of each (the lock-step
        clock's unit of time; the runner must not also run its thread)."""
        self._receive(0.0)
        self._tick()

    def _tick(self) -> None:
        for node in self.nodes.values():
            try:
                node.tick()
            except Exception as e:  # a model error must not take the other joints or the bus down
                self.last_error = f"node {node.node_id} tick: {e!r}"
                self.counters["tick_errors"] += 1

    def _run(self) -> None:
        wall0, ticks = time.perf_counter(), 0
        for node in self.nodes.values():
            node.time_origin = time.time() - node.fw.t_s
        while not self._stop.is_set():
            if self.paced:
                deadline = wall0 + ticks * self.chunk_s
                self._receive_until(deadline)
                lag = time.perf_counter() - deadline
                if lag > MAX_LAG_S:  # the machine stalled us: resynchronise instead of racing to catch up
                    wall0 += lag
                    self.counters["overruns"] += 1
                    for node in self.nodes.values():
                        node.time_origin += lag
            else:
                self._receive(0.0)
            self._tick()
            ticks += 1

    def _receive_until(self, deadline: float) -> None:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self._receive(0.0)
                return
            if not self._receive_one(remaining):
                return

    def _receive(self, timeout_s: float) -> None:
        while self._receive_one(timeout_s):
            pass

    def _receive_one(self, timeout_s: float) -> bool:
        try:
            msg = self.bus.recv(timeout_s)
        except (can.CanError, OSError, ValueError) as e:
            self.last_error = f"bus receive: {e}"
            self.counters["bus_errors"] += 1
            self._stop.wait(0.01)  # a broken bus must not spin this thread
            return False
        if msg is None:
            return False
        self._route(msg)
        return True

    def _route(self, msg: can.Message) -> None:
        """Hand a frame to the node it is for (by the profile's addressing), or to every node for a broadcast."""
        located = self.profile.addressing.locate(msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
        if located is not None and located.name in self.profile.sidecar.broadcast:
            for node in self.nodes.values():  # NMT, SYNC: for every node
                node.handle(msg)
            return
        # an id of no message goes to the node its node field names, which counts it as a bad frame
        node = self.nodes.get(located.node_id if located is not None else self.profile.split_id(msg.arbitration_id)[0])
        if node is None:
            self.counters["foreign"] += 1
        else:
            node.handle(msg)
