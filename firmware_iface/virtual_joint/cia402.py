"""The virtual joint as a CANopen CiA 402 servo drive: ``JointFirmware`` behind a canopen ``LocalNode`` built from
``dbc/cia402_joint.eds``, on any python-can bus, run by a ``NodeRunner``'s single thread.

This module owns the CANopen side of the wire: NMT, the SDO server (canopen's ``LocalNode``), PDOs, SYNC, heartbeat
producer and consumer, EMCY, and the routing of frames to nodes (``Cia402Runner``). The CiA 402 device control
(state machine, statusword, modes, profile position, fault codes) is ``cia402_drive.Cia402Drive``. canopen's own
notifier and periodic-send threads are never started: ``handle(msg)`` feeds SDO requests to ``Network.notify`` and
the node sends its periodic frames (heartbeat, TPDOs) from ``tick()``, in joint time.

Units: position in increments of the OUTPUT shaft, 2**20 per revolution (2**20 / 2 pi = 166886.05 per rad);
velocity increments/s; acceleration increments/s^2; torque per mille of the rated torque 0x6076 (mN m, the
joint's rated torque from its preset). See ``cia402_drive`` and the EDS comments.

Supported:

* NMT: boot-up (0x700+id, 0x00) at the first tick, pre-operational -> operational / stopped, reset node (object
  dictionary to the EDS defaults, faults cleared, joint limits restored) and reset communication (0x1000-0x1FFF);
  PDOs only in operational, SDO in pre-operational and operational, only NMT and heartbeats in stopped.
* SDO expedited and segmented transfers (canopen's server); the PDO mappings can be rewritten (byte-aligned entries
  of mappable objects, at most 8 bytes; refused with abort 0x06040041/0x06040042 otherwise).
* RPDOs: types 0-240 take effect at the next SYNC, 254/255 at once. TPDOs: types 1-240 every n-th SYNC (0 is taken
  as 1), 254/255 at the event timer or, with no timer, on change no more often than the inhibit time.
* Default mapping: RPDO1 (0x200+id) controlword + target position + modes of operation, RPDO2 (0x300+id) target
  velocity, RPDO3 (0x400+id) target torque, RPDO4 (off) velocity + torque offsets; TPDO1 (0x180+id) statusword +
  position actual + modes display, TPDO2 (0x280+id) velocity + torque actual, both at every SYNC; TPDO3/4 (off).
  RPDOs are type 255 so that canopen's BaseNode402 sends the controlword at once; the mode is in RPDO1 only, since
  a second RPDO mapping it would overwrite the mode with whatever that frame carries.
* SYNC (COB-ID from 0x1005): TPDOs sampled and sent first, then synchronous RPDOs, then the cyclic modes' targets
  (0x607A, 0x60FF, 0x6071, with 0x60B1/0x60B2 as feedforward) go to the firmware. Each SYNC and each RPDO is a
  keep-alive of the firmware's own watchdog in the cyclic modes.
* CiA 402 state machine, modes 1 PP, 8 CSP, 9 CSV, 10 CST, and 0 (enabled, holding), statusword bits 0-13. Enabling
  holds the present position until the first SYNC; from then CSP follows 0x607A as it stands, so a master sets the
  target to the actual position before enabling (as with any CSP drive).
* Heartbeat producer (0x1017 ms) and consumer (0x1016: monitoring starts at the producer's first heartbeat; a
  miss is a fault, EMCY 0x8130). SYNC loss: with 0x1006 non-zero, in OPERATION ENABLED with a cyclic mode, no SYNC
  for 0x2000 (default 3) x 0x1006 since the later of the last SYNC and the enable is a fault, EMCY 0x8700. Both
  quick-stop an enabled joint (velocity 0 for at most 0.3 s) and then latch the firmware's watchdog fault; the NMT
  state then follows 0x1029:01 (0 pre-operational, 1 no change - the default, 2 stopped).
* EMCY (0x080+id) on entering FAULT, with 0x603F and 0x1001; EMCY 0x0000 on fault reset. Codes: 0x2310
  over-current, 0x3210 over-voltage, 0x3220 under-voltage, 0x4310 over-temperature, 0x7305 encoder, 0x8611
  following (tracking) error, 0x8250 the firmware's own watchdog (no set-point), 0x8130 heartbeat, 0x8700 SYNC
  loss, 0x9000 e-stop, 0x6100 diverged state. Manufacturer bytes: the firmware's fault bits (UNSIGNED16).
* Limits: 0x6072 max torque and 0x607D software position limits write the firmware's limits.
* ``inject``: the joint model's injections, ``over_temperature``, ``encoder_loss`` and ``bus_silence``.

Not supported: LSS, SDO block transfers (canopen's server falls back or aborts), node guarding and RTR, the SYNC
counter and SYNC start value, TIME, SRDO, store/restore (0x1010/0x1011), homing, interpolated position,
profile velocity/torque modes, the factor group (units are fixed), quick stop option codes (0x605A: the drive
always stays in QUICK STOP ACTIVE after stopping), PP's buffered set-points (bit 5 is ignored: a new set-point
takes over at once, smoothly from the present velocity), the warning-only F/T saturation EMCY (it sets statusword
bit 7 only), and a changed mapping is not required to be disabled first.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import can
import canopen
from canopen.objectdictionary import ODVariable
from canopen.sdo import SdoAbortedError

from actuator.control import cascade as C
from actuator.control.config import GAINS
from actuator.errors import ConfigError
from actuator.model import layout as L
from actuator.paths import DBC_DIR
from actuator.simulation import INJECTIONS
from firmware_iface.virtual_joint.cia402_drive import (
    COUNTS_PER_RAD,
    CYCLIC_MODES,
    EMCY_HEARTBEAT,
    EMCY_SYNC_LOSS,
    ENABLED,
    INT16,
    Cia402Drive,
    counts_to_rad,
    rad_to_counts,
)
from firmware_iface.virtual_joint.firmware import JointFirmware, ParamError
from firmware_iface.virtual_joint.node import NodeRunner, transmit

EDS_PATH = DBC_DIR / "cia402_joint.eds"
INITIALISING, STOPPED, OPERATIONAL, PRE_OPERATIONAL = 0, 4, 5, 127
NMT_NEXT = {0x01: OPERATIONAL, 0x02: STOPPED, 0x80: PRE_OPERATIONAL}
NMT_RESET_NODE, NMT_RESET_COMMUNICATION = 0x81, 0x82
PDO_INVALID = 1 << 31
ABORT_RANGE, ABORT_NOT_MAPPABLE, ABORT_PDO_LENGTH = 0x06090030, 0x06040041, 0x06040042
GAINS_INDEX = 0x2100  # the controller gains (REAL32), sub-index i the i-th of GAIN_NAMES
GAIN_NAMES = tuple(GAINS)
NODE_INJECTIONS = ("over_temperature", "encoder_loss", "bus_silence")
# objects whose writes set the drive's settings: index -> (settings field, factor to SI units)
SETTINGS = {0x6081: ("profile_velocity_rad_s", 1 / COUNTS_PER_RAD),
            0x6083: ("profile_acceleration_rad_s2", 1 / COUNTS_PER_RAD),
            0x6084: ("profile_deceleration_rad_s2", 1 / COUNTS_PER_RAD),
            0x6065: ("following_window_rad", 1 / COUNTS_PER_RAD), 0x6067: ("position_window_rad", 1 / COUNTS_PER_RAD),
            0x6068: ("position_window_time_s", 1e-3)}
# objects read from the telemetry in increments: index -> [(telemetry key, sign)], summed
TELEMETRY_COUNTS = {0x6062: [("setpoint_position_rad", 1)], 0x6064: [("position_rad", 1)],
                    0x606C: [("velocity_rad_s", 1)], 0x60F4: [("setpoint_position_rad", 1), ("position_rad", -1)]}


class CanopenAddressing:
    """Where a tool asks a node for its profile: CANopen's COB-ID = function code (bits 7-10) | node id (bits 0-6)."""

    name = "cia402"

    @staticmethod
    def split_id(arbitration_id: int) -> tuple[int, int]:
        """(node id, function code) of a COB-ID."""
        return arbitration_id & 0x7F, arbitration_id & 0x780

    @staticmethod
    def check_node(node_id: int) -> int:
        if isinstance(node_id, bool) or not isinstance(node_id, int) or not 1 <= node_id <= 127:
            raise ConfigError(f"CANopen node id {node_id!r} is outside 1..127")
        return node_id


@dataclass
class _Pdo:
    """One PDO as configured: COB-ID, transmission type, mapped (index, subindex, bytes), and its run-time state."""

    cob_id: int
    enabled: bool
    trans_type: int
    entries: list[tuple[int, int, int]]
    inhibit_s: float = 0.0
    event_s: float = 0.0
    syncs: int = 0
    due_s: float = 0.0
    last: bytes = b""
    last_s: float = -math.inf
    pending: bytes | None = None


@dataclass
class _Config:
    """The communication objects the node acts on, read once after each change."""

    sync_cob: int
    cycle_s: float
    loss_cycles: int
    heartbeat_s: float
    consumers: dict[int, float]
    on_comm_error: int
    rpdos: dict[int, _Pdo] = field(default_factory=dict)
    tpdos: list[_Pdo] = field(default_factory=list)


class _NoTask:
    """What canopen gets for a periodic send: nothing (the node sends its periodic frames from ``tick``)."""

    def stop(self) -> None:
        pass

    def update(self, data: bytes) -> None:
        pass


class _NodeNetwork(canopen.Network):
    """A canopen network without a notifier: frames out go through the node's ``send``."""

    def __init__(self, node: Cia402JointNode) -> None:
        super().__init__(None)
        self._node = node

    def send_message(self, can_id: int, data: bytes, remote: bool = False) -> None:
        self._node.send(can.Message(arbitration_id=can_id, data=bytes(data), is_extended_id=False,
                                    is_remote_frame=remote))

    def send_periodic(self, can_id: int, data: bytes, period: float, remote: bool = False) -> _NoTask:
        return _NoTask()


class Cia402JointNode:
    """A simulated joint on a python-can bus speaking CANopen CiA 402 as node ``node_id`` (1-127)."""

    def __init__(self, bus: can.BusABC, node_id: int, firmware: JointFirmware | None = None, *,
                 eds_path: str | Path = EDS_PATH, preset: str = "knee", seed: int = 0,
                 **firmware_options: object) -> None:
        self.profile = CanopenAddressing()
        self.node_id = self.profile.check_node(node_id)
        self.fw = firmware or JointFirmware(preset, seed=seed, **firmware_options)
        self.bus = bus
        self.counters = collections.Counter(rx=0, tx=0, rx_errors=0, tx_errors=0, rejected=0, emcy=0, syncs=0)
        self.last_error = ""
        self.time_origin = time.time() - self.fw.t_s
        self.nmt_state = INITIALISING
        self._lock = threading.RLock()
        try:
            self.od = canopen.import_od(str(eds_path), self.node_id)
        except Exception as e:  # canopen raises what configparser and int() raise
            raise ConfigError(f"{eds_path}: cannot load the EDS: {e}") from e
        self.local = canopen.LocalNode(self.node_id, self.od)
        self.network = _NodeNetwork(self)
        self.network.add_node(self.local)  # subscribes the SDO server
        self.local.add_read_callback(self._on_read)
        self.local.add_write_callback(self._on_write)
        self.drive = Cia402Drive(self.fw, self._emcy, self._emcy_reset)
        lim = self.fw.limits
        self._initial_limits = {"position_min_rad": lim.position_min_rad, "position_max_rad": lim.position_max_rad,
                                "torque_max_nm": lim.torque_max_nm}
        self._config: _Config | None = None
        self._cw_pending: int | None = None
        self._heartbeat_due_s = 0.0
        self._heartbeats_seen: dict[int, float] = {}
        self._last_sync_s = -math.inf
        self._silent_until_s = -1.0
        self._telemetry: tuple[float, dict] = (math.nan, {})

    # --- running ----------------------------------------------------------------------------------------------------
    def run_for(self, duration_s: float) -> None:
        """Advance ``duration_s`` of joint time in this thread, as fast as possible, handling frames between chunks."""
        Cia402Runner(self.bus, [self]).run_for(duration_s)

    def start(self, paced: bool = True) -> Cia402Runner:
        """Run this node alone on its bus in a daemon thread; ``stop()`` the returned runner (or use ``with``)."""
        return Cia402Runner(self.bus, [self], paced=paced).start()

    def tick(self) -> None:
        """One chunk of joint time: the drive's own set-points, the joint, then monitoring and periodic frames."""
        with self._lock:
            if self.nmt_state == INITIALISING:
                self._boot()
            dt_s = self.fw.chunk_steps * self.fw.model.dt_s
            self.drive.before_chunk(dt_s)
            self.fw.advance(dt_s)
            self.drive.after_chunk()
            self._monitor()
            self._produce_heartbeat()
            if self.nmt_state == OPERATIONAL:
                self._event_tpdos()

    # --- frames in ----------------------------------------------------------------------------------------------------
    def handle(self, msg: can.Message) -> None:
        """Act on one received frame: NMT (broadcast or ours), SYNC, our SDO requests and RPDOs, and the heartbeats
        of the nodes we consume; everything else is ignored."""
        if msg.is_error_frame or msg.is_remote_frame or msg.is_extended_id:
            return
        cob, data = msg.arbitration_id, bytes(msg.data)
        with self._lock:
            if cob == 0:
                if len(data) >= 2 and data[1] in (0, self.node_id):
                    self.counters["rx"] += 1
                    self._nmt(data[0])
                return
            if self.nmt_state == INITIALISING:
                return
            if cob & 0x780 == 0x700:
                if cob & 0x7F in self._cfg().consumers:
                    self._heartbeats_seen[cob & 0x7F] = self.fw.t_s
                return
            if self.nmt_state == STOPPED:
                return
            if cob == self._cfg().sync_cob:
                self._on_sync()
            elif cob == 0x600 + self.node_id:
                self.counters["rx"] += 1
                self.network.notify(cob, bytearray(data), msg.timestamp)
                self._apply_controlword()
            elif self.nmt_state == OPERATIONAL and cob in self._cfg().rpdos:
                self._on_rpdo(self._cfg().rpdos[cob], data)

    def _nmt(self, command: int) -> None:
        if command in NMT_NEXT:
            if self.nmt_state != INITIALISING:
                self.nmt_state = NMT_NEXT[command]
                self._config = None  # PDOs as configured now
        elif command in (NMT_RESET_NODE, NMT_RESET_COMMUNICATION):
            store = self.local.data_store
            for index in [i for i in store if command == NMT_RESET_NODE or i < 0x2000]:
                del store[index]
            if command == NMT_RESET_NODE:
                for name, value in self._initial_limits.items():
                    self.fw.write_param(name, value)
                self.drive.reset()
            self.nmt_state = INITIALISING
            self._config = None

    def _boot(self) -> None:
        self.send(can.Message(arbitration_id=0x700 + self.node_id, data=b"\x00", is_extended_id=False))
        self.nmt_state = PRE_OPERATIONAL
        self._heartbeats_seen.clear()
        self._last_sync_s = -math.inf
        self._heartbeat_due_s = self.fw.t_s + self._cfg().heartbeat_s

    def _on_sync(self) -> None:
        """TPDOs sampled now, then the synchronous RPDOs, then the cyclic targets to the joint."""
        self.counters["syncs"] += 1
        self._last_sync_s = self.fw.t_s
        if self.nmt_state != OPERATIONAL:
            return
        cfg = self._cfg()
        for pdo in cfg.tpdos:
            if pdo.enabled and pdo.trans_type <= 240:
                pdo.syncs += 1
                if pdo.syncs >= max(1, pdo.trans_type):
                    pdo.syncs = 0
                    self._send_tpdo(pdo)
        for pdo in cfg.rpdos.values():
            if pdo.pending is not None:
                data, pdo.pending = pdo.pending, None
                self._store_rpdo(pdo, data)
        v = self._value
        if not self.drive.apply_cyclic(v(0x607A), v(0x60FF), v(0x6071), v(0x60B1), v(0x60B2)):
            self.drive.keep_alive()

    def _on_rpdo(self, pdo: _Pdo, data: bytes) -> None:
        self.counters["rx"] += 1
        if len(data) < sum(size for _, _, size in pdo.entries):
            self.counters["rx_errors"] += 1
            self.last_error = f"RPDO 0x{pdo.cob_id:03X}: {len(data)} bytes, shorter than its mapping"
            return
        if pdo.trans_type <= 240:
            pdo.pending = data
        else:
            self._store_rpdo(pdo, data)
        self.drive.keep_alive()

    def _store_rpdo(self, pdo: _Pdo, data: bytes) -> None:
        """Every mapped object written as by SDO (so its write rules apply), then the controlword acted on."""
        offset = 0
        for index, subindex, size in pdo.entries:
            try:
                self.local.set_data(index, subindex, data[offset:offset + size])
            except SdoAbortedError as e:
                self.counters["rejected"] += 1
                self.last_error = f"RPDO 0x{pdo.cob_id:03X} 0x{index:04X}:{subindex}: {e}"
            offset += size
        self._apply_controlword()

    def _apply_controlword(self) -> None:
        if self._cw_pending is not None:
            cw, self._cw_pending = self._cw_pending, None
            self.drive.on_controlword(cw, self._value(0x607A))

    # --- the object dictionary ------------------------------------------------------------------------------------
    def _object(self, index: int, subindex: int = 0) -> ODVariable:
        obj = self.od[index]
        return obj if isinstance(obj, ODVariable) else obj[subindex]

    def _value(self, index: int, subindex: int = 0) -> int:
        """An object's present value (through the read callbacks, as the master would read it)."""
        return self._object(index, subindex).decode_raw(self.local.get_data(index, subindex))

    def _live(self) -> dict:
        """The joint's telemetry, once per chunk of joint time."""
        if self._telemetry[0] != self.fw.t_s:
            self._telemetry = (self.fw.t_s, self.fw.telemetry())
        return self._telemetry[1]

    def _permille(self, torque_nm: float) -> int:
        value = round(torque_nm / self.drive.settings.rated_torque_nm * 1000.0)
        return int(min(max(value, INT16[0]), INT16[1]))

    def _on_read(self, index: int, subindex: int, od: ODVariable) -> int | None:
        """The objects that are the joint's state, computed when read (SDO upload or a TPDO being built)."""
        if index == GAINS_INDEX and 1 <= subindex <= len(GAIN_NAMES):
            return self.fw.read_gain(GAIN_NAMES[subindex - 1])
        if index < 0x6000 and index != 0x1001:
            return None
        drive, lim = self.drive, self.fw.limits
        if index in TELEMETRY_COUNTS:
            tel = self._live()
            return rad_to_counts(sum(sign * tel[key] for key, sign in TELEMETRY_COUNTS[index]))
        if index == 0x6041:
            return drive.statusword(self._live())
        if index in (0x6072, 0x6074, 0x6077):
            return self._permille({0x6072: lim.torque_max_nm, 0x6074: float(self.fw.model.k[C.K_TAU]),
                                   0x6077: self._live()["torque_nm"]}[index])
        if index == 0x607D and subindex in (1, 2):
            return rad_to_counts(lim.position_min_rad if subindex == 1 else lim.position_max_rad)
        if index == 0x6091 and subindex == 1:
            return round(self.fw.params.reducer.ratio)
        return {0x1001: drive.error_register, 0x603F: drive.error_code, 0x6061: drive.mode,
                0x6076: round(drive.settings.rated_torque_nm * 1000.0)}.get(index)

    def _on_write(self, index: int, subindex: int, od: ODVariable, data: bytes) -> None:
        """Act on a write before it is stored; ``SdoAbortedError`` refuses it (nothing stored)."""
        if index < 0x2000:
            if 0x1600 <= index <= 0x17FF or 0x1A00 <= index <= 0x1BFF:
                self._check_mapping(index, subindex, od.decode_raw(data))
            self._config = None
            return
        value = od.decode_raw(data)
        if index == GAINS_INDEX and 1 <= subindex <= len(GAIN_NAMES):
            try:  # live, checked by the firmware: a gain it refuses aborts the transfer, nothing changes
                self.fw.write_gain(GAIN_NAMES[subindex - 1], float(value))
            except (ParamError, ConfigError) as e:
                raise SdoAbortedError(ABORT_RANGE) from e
        elif index == 0x2000:
            self._config = None
        elif index == 0x6040:
            self._cw_pending = value
        elif index == 0x6060:
            if not self.drive.set_mode(value):
                raise SdoAbortedError(ABORT_RANGE)
        elif index == 0x6072:
            self._write_limit("torque_max_nm", value * self.drive.settings.rated_torque_nm / 1000.0)
        elif index == 0x607D and subindex in (1, 2):
            self._write_limit("position_min_rad" if subindex == 1 else "position_max_rad", counts_to_rad(value))
        elif index in SETTINGS:
            name, factor = SETTINGS[index]
            setattr(self.drive.settings, name, value * factor)

    def _write_limit(self, name: str, value: float) -> None:
        try:
            self.fw.write_param(name, value)
        except ParamError as e:
            self.last_error = str(e)
            raise SdoAbortedError(ABORT_RANGE) from e

    def _check_mapping(self, index: int, subindex: int, value: int) -> None:
        """A mapping entry must name a mappable object of its own size in whole bytes; a PDO holds 8 bytes."""
        if subindex == 0:
            bits = sum(self._value(index, s) & 0xFF for s in range(1, value + 1)) if value <= 8 else 65
            if bits > 64:
                raise SdoAbortedError(ABORT_PDO_LENGTH)
            return
        target, sub, bits = value >> 16, (value >> 8) & 0xFF, value & 0xFF
        if target == 0 and bits == 0:
            return
        try:
            obj = self._object(target, sub)
        except KeyError:
            raise SdoAbortedError(ABORT_NOT_MAPPABLE) from None
        if not obj.pdo_mappable or bits != len(obj) or bits % 8:
            raise SdoAbortedError(ABORT_NOT_MAPPABLE)

    def _cfg(self) -> _Config:
        if self._config is None:
            v = self._value
            consumers = {}
            for s in range(1, v(0x1016, 0) + 1):
                entry = v(0x1016, s)
                if entry >> 16 & 0x7F and entry & 0xFFFF:
                    consumers[entry >> 16 & 0x7F] = (entry & 0xFFFF) / 1000.0
            cfg = _Config(v(0x1005) & 0x7FF, v(0x1006) * 1e-6, max(1, v(0x2000)), v(0x1017) / 1000.0, consumers,
                          v(0x1029, 1))
            cfg.rpdos = {p.cob_id: p for p in self._read_pdos(0x1400, 0x1600, tx=False) if p.enabled}
            cfg.tpdos = self._read_pdos(0x1800, 0x1A00, tx=True)
            self._config = cfg
        return self._config

    def _read_pdos(self, com: int, mapping: int, *, tx: bool) -> list[_Pdo]:
        out = []
        for n in range(4):
            v = self._value
            cob = v(com + n, 1)
            entries = [(raw >> 16, raw >> 8 & 0xFF, (raw & 0xFF) // 8)
                       for raw in (v(mapping + n, s) for s in range(1, v(mapping + n, 0) + 1))]
            pdo = _Pdo(cob & 0x7FF, not cob & PDO_INVALID, v(com + n, 2), entries)
            if tx:
                pdo.inhibit_s, pdo.event_s = v(com + n, 3) * 1e-4, v(com + n, 5) * 1e-3
            out.append(pdo)
        return out

    # --- frames out -------------------------------------------------------------------------------------------------
    def send(self, msg: can.Message) -> None:
        """Send a frame stamped with the joint's time; bus errors are counted, never raised."""
        msg.timestamp = self.time_origin + self.fw.t_s
        if self.fw.t_s < self._silent_until_s:
            self.counters["silenced"] += 1
            return
        self.last_error = transmit(self.bus, msg, self.counters) or self.last_error

    def _send_tpdo(self, pdo: _Pdo) -> bytes:
        payload = b"".join(self.local.get_data(index, sub)[:size] for index, sub, size in pdo.entries)
        self.send(can.Message(arbitration_id=pdo.cob_id, data=payload, is_extended_id=False))
        pdo.last, pdo.last_s = payload, self.fw.t_s
        return payload

    def _event_tpdos(self) -> None:
        t = self.fw.t_s
        for pdo in self._cfg().tpdos:
            if not pdo.enabled or pdo.trans_type < 254:
                continue
            if pdo.event_s > 0.0:
                if t + 1e-9 >= pdo.due_s:
                    self._send_tpdo(pdo)
                    pdo.due_s = max(pdo.due_s + pdo.event_s, t)
            elif t - pdo.last_s >= pdo.inhibit_s:
                payload = b"".join(self.local.get_data(i, s)[:size] for i, s, size in pdo.entries)
                if payload != pdo.last:
                    self._send_tpdo(pdo)

    def _produce_heartbeat(self) -> None:
        period = self._cfg().heartbeat_s
        t = self.fw.t_s
        if period > 0.0 and t + 1e-9 >= self._heartbeat_due_s:
            self.send(can.Message(arbitration_id=0x700 + self.node_id, data=bytes([self.nmt_state]),
                                  is_extended_id=False))
            self._heartbeat_due_s = max(self._heartbeat_due_s + period, t)

    def _emcy(self, code: int, register: int, fault_bits: int) -> None:
        if self.nmt_state in (PRE_OPERATIONAL, OPERATIONAL):
            self.local.emcy.send(code, register, (fault_bits & 0xFFFF).to_bytes(2, "little") + bytes(3))
            self.counters["emcy"] += 1

    def _emcy_reset(self) -> None:
        if self.nmt_state in (PRE_OPERATIONAL, OPERATIONAL):
            self.local.emcy.reset()

    # --- watchdogs ---------------------------------------------------------------------------------------------------
    def _monitor(self) -> None:
        """Heartbeat consumer and SYNC loss (see the module docstring for the rules)."""
        cfg, t = self._cfg(), self.fw.t_s
        for node, timeout_s in cfg.consumers.items():
            seen = self._heartbeats_seen.get(node)
            if seen is not None and t - seen > timeout_s:
                del self._heartbeats_seen[node]  # re-armed by its next heartbeat
                self.last_error = f"heartbeat of node {node} missing for {timeout_s * 1e3:g} ms"
                self._comm_fault(EMCY_HEARTBEAT, cfg)
        drive = self.drive
        if cfg.cycle_s > 0.0 and drive.state == ENABLED and drive.mode in CYCLIC_MODES:
            since = max(self._last_sync_s, drive.enabled_since_t)
            if t - since > cfg.loss_cycles * cfg.cycle_s + 1e-6:  # a microsecond for the joint clock's rounding
                self.last_error = f"no SYNC for {(t - since) * 1e3:.1f} ms"
                self._comm_fault(EMCY_SYNC_LOSS, cfg)

    def _comm_fault(self, code: int, cfg: _Config) -> None:
        self.drive.raise_comm_fault(code)
        if cfg.on_comm_error == 0 and self.nmt_state == OPERATIONAL:
            self.nmt_state = PRE_OPERATIONAL
        elif cfg.on_comm_error == 2:
            self.nmt_state = STOPPED

    # --- fault injection ---------------------------------------------------------------------------------------------
    def inject(self, name: str, value: float | None = None) -> None:
        """The model's injections (``actuator.simulation.INJECTIONS``, value required), ``over_temperature`` (°C over
        the winding limit, default 5), ``encoder_loss`` (1 lost, 0 restored) and ``bus_silence`` (seconds)."""
        with self._lock:
            model = self.fw.model
            if name in INJECTIONS:
                if value is None:
                    raise ConfigError(f"injection {name} needs a value ({INJECTIONS[name][4]})")
                model.inject(name, value)
            elif name == "over_temperature":
                model.x[L.X_TW] = model.p[L.P_TH_LIMIT] + (5.0 if value is None else float(value))
            elif name == "encoder_loss":
                for which in ("encoder_dropout", "output_encoder_dropout"):
                    model.inject(which, 1.0 if value is None or value else 0.0)
            elif name == "bus_silence":
                self._silent_until_s = self.fw.t_s + (math.inf if value is None else float(value))
            else:
                raise ConfigError(f"unknown injection {name!r}: allowed {', '.join([*NODE_INJECTIONS, *INJECTIONS])}")


class Cia402Runner(NodeRunner):
    """A ``NodeRunner`` for CANopen nodes: every frame goes to every node, which takes what is addressed to it (NMT
    and SYNC are for all of them; node ids are not in fixed bits of the id as in the native profile)."""

    def _route(self, msg: can.Message) -> None:
        for node in self.nodes.values():
            node.handle(msg)
