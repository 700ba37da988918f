"""A small profile shaped like an ODrive CANSimple axis (firmware 0.5.x, ``tools/odrive-cansimple.dbc`` of
odriverobotics/ODrive): a heartbeat with Axis_Error (a set of AxisError bits: MOTOR_FAILED 0x40,
WATCHDOG_TIMER_EXPIRED 0x800, ...) and Axis_State, a counter byte, and one position command; for the tests of bit
fields and capabilities (a profile that maps only part of the toolkit's semantic names)."""

from __future__ import annotations

from pathlib import Path

import can

DBC = '''VERSION ""
BS_:
BU_: axis host
BO_ 1 Heartbeat: 8 axis
 SG_ Axis_Error : 0|32@1+ (1,0) [0|4294967295] "" host
 SG_ Axis_State : 32|8@1+ (1,0) [0|13] "" host
 SG_ Counter : 56|8@1+ (1,0) [0|255] "" host
BO_ 12 Set_Input_Pos: 8 host
 SG_ Input_Pos : 0|32@1- (1E-06,0) [-100|100] "rad" axis
VAL_ 1 Axis_Error 1 "INVALID_STATE" 64 "MOTOR_FAILED" 256 "ENCODER_FAILED" 2048 "WATCHDOG_TIMER_EXPIRED" ;
VAL_ 1 Axis_State 0 "UNDEFINED" 1 "IDLE" 8 "CLOSED_LOOP_CONTROL" ;
'''
SIDECAR = '''[profile]
name = "axis_subset"
[addressing]
node_shift = 5
node_min = 0
node_max = 63
[semantic]
"status.state" = { message = "Heartbeat", signal = "Axis_State" }
"status.faults" = { message = "Heartbeat", signal = "Axis_Error"%s }
"status.counter" = { message = "Heartbeat", signal = "Counter" }
"command.position_rad" = { message = "Set_Input_Pos", signal = "Input_Pos", unit = "rad" }
'''


def write(folder: Path, bitfield: bool = True, dbc: str = DBC) -> Path:
    """axis.dbc and axis.toml in ``folder`` (Axis_Error a bit field or not); the DBC's path."""
    (folder / "axis.dbc").write_text(dbc, encoding="utf-8")
    (folder / "axis.toml").write_text(SIDECAR % (", bitfield = true" if bitfield else ""), encoding="utf-8")
    return folder / "axis.dbc"


def heartbeat(errors: int, state: int = 8, node: int = 3) -> can.Message:
    return can.Message(arbitration_id=node << 5 | 1, data=errors.to_bytes(4, "little") + bytes([state, 0, 0, 0]),
                       is_extended_id=False)
