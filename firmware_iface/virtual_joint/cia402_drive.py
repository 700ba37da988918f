"""The CiA 402 drive logic of the simulated joint, apart from CANopen: the device control state machine driven by the
controlword, the statusword, the modes of operation mapped onto ``JointFirmware``'s modes, the profile-position
trajectory, the fault reaction and the fault codes (EMCY codes of CiA 301 / CiA 402 and the error register).

The CANopen node (``cia402.py``) owns the wire: NMT, SDO, PDOs, SYNC, heartbeats, EMCY frames. It hands this class
controlwords, modes and set-points, calls ``before_chunk``/``after_chunk`` around each chunk of joint time, and
reads the statusword and fault codes back.

Units (also stated in ``dbc/cia402_joint.eds``): position in increments of the OUTPUT shaft, ``COUNTS_PER_REV`` =
2**20 per revolution (``COUNTS_PER_RAD`` = 2**20 / 2 pi = 166886.05 per rad); velocity in increments/s;
acceleration in increments/s^2; torque in per mille of the rated torque (0x6076, mN m at the output).

States and the firmware: OPERATION ENABLED = ``closed_loop`` in the mode's firmware mode; QUICK STOP ACTIVE and
FAULT REACTION ACTIVE = ``closed_loop`` in velocity mode at 0 (the velocity loop brakes); FAULT = the firmware's
``fault``; every other state = ``idle`` (drive off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from actuator.control import cascade as C
from actuator.control.supervisor import FAULT_ESTOP, FAULT_TRACKING, FAULT_UNSTABLE, FAULT_WATCHDOG
from actuator.model import layout as L
from firmware_iface.virtual_joint.firmware import JointFirmware

COUNTS_PER_REV = 1 << 20
COUNTS_PER_RAD = COUNTS_PER_REV / (2.0 * math.pi)
INT32 = (-(1 << 31), (1 << 31) - 1)
INT16 = (-(1 << 15), (1 << 15) - 1)

# device control states, named as canopen's BaseNode402 names them
NOT_READY, SWITCH_ON_DISABLED, READY, SWITCHED_ON = ("NOT READY TO SWITCH ON", "SWITCH ON DISABLED",
                                                     "READY TO SWITCH ON", "SWITCHED ON")
ENABLED, QUICK_STOP, FAULT_REACTION, FAULT = ("OPERATION ENABLED", "QUICK STOP ACTIVE", "FAULT REACTION ACTIVE",
                                              "FAULT")
STATUS_BITS = {NOT_READY: 0x0000, SWITCH_ON_DISABLED: 0x0040, READY: 0x0021, SWITCHED_ON: 0x0023, ENABLED: 0x0027,
               QUICK_STOP: 0x0007, FAULT_REACTION: 0x000F, FAULT: 0x0008}
SW_VOLTAGE, SW_WARNING, SW_REMOTE, SW_TARGET_REACHED = 0x0010, 0x0080, 0x0200, 0x0400
SW_LIMIT, SW_OP_12, SW_OP_13 = 0x0800, 0x1000, 0x2000
CW_FAULT_RESET, CW_NEW_SET_POINT, CW_RELATIVE, CW_HALT = 0x0080, 0x0010, 0x0040, 0x0100

# modes of operation (0x6060) -> the firmware's mode; 0 (no mode): the enabled joint holds its position
MODE_NONE, MODE_PP, MODE_CSP, MODE_CSV, MODE_CST = 0, 1, 8, 9, 10
FIRMWARE_MODES = {MODE_NONE: "position", MODE_PP: "position", MODE_CSP: "position", MODE_CSV: "velocity",
                  MODE_CST: "torque"}
CYCLIC_MODES = (MODE_CSP, MODE_CSV, MODE_CST)

# EMCY codes (CiA 301 / CiA 402) and error register bits (0x1001): firmware fault bit -> (code, register bits)
ERR_GENERIC, ERR_CURRENT, ERR_VOLTAGE, ERR_TEMPERATURE, ERR_COMMUNICATION, ERR_PROFILE, ERR_MANUFACTURER = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x80)
EMCY_HEARTBEAT = 0x8130   # CiA 301: life guard error or heartbeat error (heartbeat consumer)
EMCY_SYNC_LOSS = 0x8700   # CiA 402: sync controller error (no SYNC within the monitoring window)
EMCY_CODES = {  # in priority order: the first active one is reported
    L.FAULT_OVERCURRENT: (0x2310, ERR_CURRENT),          # continuous over-current
    L.FAULT_OVERVOLTAGE: (0x3210, ERR_VOLTAGE),          # DC link over-voltage
    L.FAULT_UNDERVOLTAGE: (0x3220, ERR_VOLTAGE),         # DC link under-voltage
    L.FAULT_OVERTEMPERATURE: (0x4310, ERR_TEMPERATURE),  # excess temperature drive (winding)
    L.FAULT_ENCODER: (0x7305, ERR_GENERIC),              # incremental sensor 1 fault
    FAULT_TRACKING: (0x8611, ERR_PROFILE),               # following error
    FAULT_WATCHDOG: (0x8250, ERR_COMMUNICATION),         # RPDO timeout: no set-point for the firmware's watchdog
    FAULT_ESTOP: (0x9000, ERR_GENERIC),                  # external error
    FAULT_UNSTABLE: (0x6100, ERR_MANUFACTURER),          # internal software (the state diverged)
}
COMM_REGISTER = {EMCY_HEARTBEAT: ERR_COMMUNICATION, EMCY_SYNC_LOSS: ERR_COMMUNICATION}
REACTION_S = 0.3          # longest quick stop of a fault reaction before the drive is switched off
STILL_RAD_S = 0.02        # a quick stop ends when the joint is slower than this


def rad_to_counts(rad: float) -> int:
    return int(min(max(round(rad * COUNTS_PER_RAD), INT32[0]), INT32[1]))


def counts_to_rad(counts: float) -> float:
    return counts / COUNTS_PER_RAD


def emcy_of(fault_bits: int) -> tuple[int, int]:
    """(EMCY code, error register) of the firmware's fault bits; (0, 0) when none latched."""
    for bit, (code, register) in EMCY_CODES.items():
        if fault_bits & bit:
            return code, register | ERR_GENERIC
    return 0, 0


def transition(state: str, cw: int, previous_cw: int) -> str:
    """The state a controlword leads to from ``state`` (CiA 402 transitions 2-12, 15, 16; 0, 1, 13, 14 are the
    drive's own). Bit 7 set: only its rising edge counts, as fault reset (15)."""
    if state == FAULT:
        return SWITCH_ON_DISABLED if cw & CW_FAULT_RESET and not previous_cw & CW_FAULT_RESET else FAULT
    if state in (NOT_READY, FAULT_REACTION) or cw & CW_FAULT_RESET:
        return state
    if not cw & 0x02:                                  # disable voltage: 7, 9, 10, 12
        return SWITCH_ON_DISABLED
    if not cw & 0x04:                                  # quick stop: 11 from enabled, 7 and 10 otherwise
        return QUICK_STOP if state in (ENABLED, QUICK_STOP) else SWITCH_ON_DISABLED
    if state == QUICK_STOP:                            # 16 on enable operation, else stay
        return ENABLED if cw & 0x0F == 0x0F else QUICK_STOP
    if not cw & 0x01:                                  # shutdown: 2, 6, 8
        return READY
    if state == SWITCH_ON_DISABLED:                    # switch on needs shutdown first
        return state
    return ENABLED if cw & 0x08 else SWITCHED_ON       # enable operation 4 (3 + 4 from ready), switch on 3 / 5


@dataclass
class Settings:
    """The drive's parameters from the object dictionary, in SI units (the node converts on write)."""

    rated_torque_nm: float = 50.0
    profile_velocity_rad_s: float = 1.0
    profile_acceleration_rad_s2: float = 10.0
    profile_deceleration_rad_s2: float = 10.0
    position_window_rad: float = 0.002
    position_window_time_s: float = 0.010
    following_window_rad: float = 0.1


@dataclass
class Trajectory:
    """The profile-position set-point generator: a discrete trapezoid (accelerate to the profile velocity, cruise,
    decelerate so as to stop at the target) that starts from the present set-point position and velocity, so a new
    target takes over smoothly mid-move."""

    position_rad: float = 0.0
    velocity_rad_s: float = 0.0

    def step(self, target_rad: float, v_max: float, acc: float, dec: float, dt_s: float) -> bool:
        """Advance ``dt_s``; returns True once at the target and at rest."""
        e = target_rad - self.position_rad
        lands = abs(e) <= abs(self.velocity_rad_s) * dt_s or abs(e) < 1e-12
        if lands and abs(self.velocity_rad_s) <= 2.0 * dec * dt_s:  # at the target this step: snap
            self.position_rad, self.velocity_rad_s = target_rad, 0.0
            return True
        # the speed from which steps of dec * dt_s stop exactly at the target: v (v + dec dt) / (2 dec) = |e|
        a = dec * dt_s
        v_want = math.copysign(min(v_max, (math.sqrt(a * a + 8.0 * dec * abs(e)) - a) / 2.0), e)
        v = self.velocity_rad_s
        rate = acc if abs(v_want) > abs(v) and v_want * v >= 0.0 else dec
        self.velocity_rad_s = v + min(max(v_want - v, -rate * dt_s), rate * dt_s)
        self.position_rad += self.velocity_rad_s * dt_s
        return False


class Cia402Drive:
    """CiA 402 device control over one ``JointFirmware``. ``on_fault(code, register, fault_bits)`` is called when
    the drive enters FAULT, ``on_reset()`` when a fault reset leaves it."""

    def __init__(self, fw: JointFirmware, on_fault: Callable[[int, int, int], None],
                 on_reset: Callable[[], None]) -> None:
        self.fw = fw
        self.on_fault, self.on_reset = on_fault, on_reset
        self.settings = Settings(rated_torque_nm=fw.params.limits.torque_rated_nm)
        self.reset()

    def reset(self) -> None:
        """Power-on state (NMT reset node): not ready, no mode, faults cleared, drive off."""
        self.state, self.mode, self.controlword = NOT_READY, MODE_NONE, 0
        self.error_code = self.comm_fault = 0
        self.enabled_since_t = math.inf
        self._reaction_until_t = -1.0
        self._traj = Trajectory()
        self._set_point_rad: float | None = None  # PP: the target being moved to
        self._halt_rad: float | None = None
        self._ack = False
        self._reached_since_t = math.inf
        self.fw.clear_faults()
        self.fw.set_state("idle")

    # --- inputs ------------------------------------------------------------------------------------------------
    def on_controlword(self, cw: int, target_position_counts: int) -> None:
        previous, self.controlword = self.controlword, cw
        new = transition(self.state, cw, previous)
        if new != self.state:
            self._enter(new)
        if self.state == ENABLED and self.mode == MODE_PP:
            self._pp_handshake(cw, previous, target_position_counts)

    def set_mode(self, mode: int) -> bool:
        """Select a mode of operation (False: not supported, nothing changes)."""
        if mode not in FIRMWARE_MODES:
            return False
        if mode != self.mode:
            self.mode = mode
            if self.state == ENABLED:  # the joint holds where it is until the new mode's first set-point
                self.fw.set_mode(FIRMWARE_MODES[mode])
                self._start_pp()
        return True

    def apply_cyclic(self, position_counts: int, velocity_counts_s: int, torque_permille: int,
                     velocity_offset_counts_s: int = 0, torque_offset_permille: int = 0) -> bool:
        """The cyclic modes' targets, at a SYNC: applied in CSP/CSV/CST when enabled (False otherwise)."""
        if self.state != ENABLED or self.mode not in CYCLIC_MODES:
            return False
        rated = self.settings.rated_torque_nm / 1000.0
        torque_ff = torque_offset_permille * rated
        if self.mode == MODE_CSP:
            return self.fw.command("position", counts_to_rad(position_counts),
                                   counts_to_rad(velocity_offset_counts_s), torque_ff)
        if self.mode == MODE_CSV:
            return self.fw.command("velocity", 0.0, counts_to_rad(velocity_counts_s + velocity_offset_counts_s),
                                   torque_ff)
        return self.fw.command("torque", 0.0, 0.0, torque_permille * rated + torque_ff)

    def keep_alive(self) -> None:
        """A SYNC or an RPDO in a cyclic mode: the firmware's present set-point again, which feeds its watchdog."""
        if self.state == ENABLED and self.mode in CYCLIC_MODES:
            ref = self.fw.ref
            self.fw.command(self.fw.mode, float(ref[C.R_POS]), float(ref[C.R_VEL]), float(ref[C.R_TORQUE]))

    def raise_comm_fault(self, code: int) -> None:
        """A communication fault seen by the node (heartbeat, SYNC loss): quick stop when the drive is on, then FAULT
        with ``code``; at once when it is off. Ignored in FAULT or while a reaction is under way."""
        if self.state in (FAULT, FAULT_REACTION):
            return
        self.comm_fault = self.error_code = code
        self.on_fault(code, COMM_REGISTER.get(code, 0) | ERR_GENERIC, self.fw.faults)  # EMCY at detection
        if self.state in (ENABLED, QUICK_STOP):
            self.state = FAULT_REACTION
            self.fw.set_mode("velocity")
            self._reaction_until_t = self.fw.t_s + REACTION_S
        else:
            self._latch()

    # --- around a chunk -------------------------------------------------------------------------------------------
    def before_chunk(self, dt_s: float) -> None:
        """The set-points the drive makes itself: quick stops, the PP trajectory, the hold of no mode."""
        fw = self.fw
        if self.state in (QUICK_STOP, FAULT_REACTION):
            fw.command("velocity", 0.0, 0.0, 0.0)
        elif self.state == ENABLED and self.mode == MODE_PP:
            s = self.settings
            target = self._halt_rad if self._halt_rad is not None else self._set_point_rad
            if target is not None:
                self._traj.step(target, s.profile_velocity_rad_s, s.profile_acceleration_rad_s2,
                                s.profile_deceleration_rad_s2, dt_s)
            fw.command("position", self._traj.position_rad, self._traj.velocity_rad_s, 0.0)
        elif self.state == ENABLED and self.mode == MODE_NONE:
            fw.command("position", float(fw.ref[C.R_POS]), 0.0, 0.0)

    def after_chunk(self) -> None:
        fw = self.fw
        if self.state == NOT_READY:
            self._enter(SWITCH_ON_DISABLED)  # transition 1: self-test passed
        elif self.state == FAULT_REACTION and (fw.t_s >= self._reaction_until_t
                                               or abs(fw.telemetry()["velocity_rad_s"]) < STILL_RAD_S):
            self._latch()
        if fw.state == "fault" and self.state not in (FAULT, FAULT_REACTION):
            self._to_fault()
        self._track_target_reached()

    # --- state changes --------------------------------------------------------------------------------------------
    def _enter(self, new: str) -> None:
        fw, old = self.fw, self.state
        self.state = new
        if new == SWITCH_ON_DISABLED and old == FAULT:
            fw.clear_faults()
            self.error_code = self.comm_fault = 0
            self.on_reset()
        if new == ENABLED:
            if fw.state == "fault":
                self._to_fault()
                return
            fw.set_mode(FIRMWARE_MODES[self.mode])
            if old != QUICK_STOP:
                fw.set_state("closed_loop")  # holds the present position until a set-point
                self.enabled_since_t = fw.t_s
            self._start_pp()
        elif new == QUICK_STOP:
            fw.set_mode("velocity")
        elif new in (SWITCH_ON_DISABLED, READY, SWITCHED_ON) and fw.state != "fault":
            fw.set_state("idle")
        if new not in (ENABLED, QUICK_STOP):
            self.enabled_since_t = math.inf

    def _latch(self) -> None:
        """End of a fault reaction (or a fault while off): the firmware latches its watchdog fault, drive off."""
        self.fw.sup.raise_faults(np.ones(1, dtype=bool), FAULT_WATCHDOG)
        self._to_fault()

    def _to_fault(self) -> None:
        self.state = FAULT
        self.enabled_since_t = math.inf
        if self.comm_fault:  # reported when it was detected
            return
        code, register = emcy_of(self.fw.faults)
        self.error_code = code
        self.on_fault(code, register, self.fw.faults)

    # --- profile position -----------------------------------------------------------------------------------------
    def _start_pp(self) -> None:
        """PP from rest where the joint's set-point is; no move until a new set-point."""
        self._traj = Trajectory(float(self.fw.ref[C.R_POS]), 0.0)
        self._set_point_rad = self._halt_rad = None
        self._reached_since_t = math.inf

    def _pp_handshake(self, cw: int, previous: int, target_position_counts: int) -> None:
        """New set-point on the rising edge of bit 4 (acknowledged in statusword bit 12 until bit 4 falls),
        absolute or relative (bit 6); halt (bit 8) stops on the deceleration ramp, its release resumes."""
        if cw & CW_NEW_SET_POINT and not previous & CW_NEW_SET_POINT:
            target = counts_to_rad(target_position_counts)
            if cw & CW_RELATIVE:
                target += self._set_point_rad if self._set_point_rad is not None else self._traj.position_rad
            self._set_point_rad = target
            self._reached_since_t = math.inf
            self._ack = True
        elif not cw & CW_NEW_SET_POINT:
            self._ack = False
        if cw & CW_HALT and self._halt_rad is None:
            v, dec = self._traj.velocity_rad_s, self.settings.profile_deceleration_rad_s2
            self._halt_rad = self._traj.position_rad + math.copysign(v * v / (2.0 * dec), v)
        elif not cw & CW_HALT:
            self._halt_rad = None

    def _track_target_reached(self) -> None:
        if self.state != ENABLED or self.mode != MODE_PP or self._set_point_rad is None:
            self._reached_since_t = math.inf
            return
        target = self._halt_rad if self._halt_rad is not None else self._set_point_rad
        actual = self.fw.telemetry()["position_rad"]
        done = self._traj.position_rad == target and abs(actual - target) <= self.settings.position_window_rad
        if not done:
            self._reached_since_t = math.inf
        elif self._reached_since_t == math.inf:
            self._reached_since_t = self.fw.t_s

    # --- outputs --------------------------------------------------------------------------------------------------
    def statusword(self, telemetry: dict) -> int:
        sw = STATUS_BITS[self.state] | SW_REMOTE
        if self.state in (READY, SWITCHED_ON, ENABLED, QUICK_STOP, FAULT_REACTION):
            sw |= SW_VOLTAGE
        if telemetry["fault_bits"] & L.FAULT_FT_SATURATION:
            sw |= SW_WARNING
        if self.state == QUICK_STOP and abs(telemetry["velocity_rad_s"]) < STILL_RAD_S:
            sw |= SW_TARGET_REACHED
        if self.state != ENABLED:
            return sw
        if telemetry["limits_active"]:
            sw |= SW_LIMIT
        following = abs(telemetry["setpoint_position_rad"] - telemetry["position_rad"])
        if self.mode == MODE_PP:
            window = self._reached_since_t + self.settings.position_window_time_s - 1e-9
            sw |= (SW_TARGET_REACHED if self.fw.t_s >= window else 0) | (SW_OP_12 if self._ack else 0)
            sw |= SW_OP_13 if following > self.settings.following_window_rad else 0
        elif self.mode in CYCLIC_MODES:
            sw |= SW_OP_12  # the drive follows the command value
            if self.mode == MODE_CSP and following > self.settings.following_window_rad:
                sw |= SW_OP_13
        return sw

    @property
    def error_register(self) -> int:
        """0x1001: the present fault's register bits (0 when not in fault)."""
        if self.state not in (FAULT, FAULT_REACTION):
            return 0
        if self.comm_fault:
            return COMM_REGISTER.get(self.comm_fault, 0) | ERR_GENERIC
        return emcy_of(self.fw.faults)[1]
