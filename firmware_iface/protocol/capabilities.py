"""What a profile lets the toolkit do with a joint: its capabilities, each a set of semantic names (and, for commands
that carry no signal, messages) the profile must map.

Every semantic name of a sidecar is optional: a joint of another vendor has its own subset. A command that needs a
capability the profile lacks raises ``ProtocolError`` naming the capability and what it needs, before anything is
sent (``require``); ``jointkit dbc check`` prints the table (``table``). Messages that carry no signal (an E-stop, a
save to flash) are found by their role: the sidecar's ``[messages]`` maps a role to the profile's message name, and a
role it does not map is the message of that name, where the DBC has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from actuator.errors import ProtocolError
from firmware_iface.protocol.profile import Profile

_PARAMS = ("command.param_read_id", "command.param_id", "command.param_value", "reply.param_id", "reply.param_status",
           "reply.param_value")


@dataclass(frozen=True)
class Capability:
    what: str
    names: tuple[str, ...] = ()      # semantic names the profile must map
    messages: tuple[str, ...] = ()   # message roles the profile must have
    raw: tuple[str, ...] = ()        # special frames ([raw_frames]) the profile must have
    states: tuple[str, ...] = ()     # values command.state must name (CiA 402: clear_faults, a controlword sequence)
    params: tuple[str, ...] = ()     # prefixes of [params] names the profile must have (gains as parameters)
    # another way to provide it (MIT mode: a reply to every command for a heartbeat, special frames to enable)
    instead: Capability | None = None


CAPABILITIES: dict[str, Capability] = {
    "heartbeat": Capability("a periodic status frame, or a status reply to a query: the joint is alive, and "
                            "confirmed before any write", ("status.state",),
                            instead=Capability("", messages=("status_reply",), raw=("query",))),
    "state_machine": Capability("enable and disable (idle, closed loop)", ("status.state", "command.state"),
                                instead=Capability("", messages=("status_reply",), raw=("enable", "disable"))),
    # a joint that does not report its mode (ODrive's heartbeat) is taken to be in the mode it was last sent
    "modes": Capability("control modes chosen", ("command.mode",)),
    "mode_report": Capability("the control mode reported", ("status.mode",)),
    "faults": Capability("fault bits reported", ("status.faults",)),
    "clear_faults": Capability("faults cleared on request", (), ("clear_faults",),
                               instead=Capability("", ("command.state",), states=("clear_faults",))),
    "estop": Capability("an emergency stop frame", (), ("estop",),
                        instead=Capability("", ("command.state",), states=("estop",))),
    "position_telemetry": Capability("position and velocity reported",
                                     ("telemetry.position_rad", "telemetry.velocity_rad_s")),
    "torque_telemetry": Capability("drive torque reported", ("telemetry.torque_nm",)),
    "current_telemetry": Capability("q-axis current reported", ("telemetry.iq_a",)),
    "wrench": Capability("six-axis force/torque reported", tuple(
        f"telemetry.{k}" for k in ("force_x_n", "force_y_n", "force_z_n", "torque_x_nm", "torque_y_nm",
                                   "torque_z_nm"))),
    "encoders": Capability("motor and output encoders reported",
                           ("telemetry.motor_encoder_rad", "telemetry.output_encoder_rad")),
    "setpoint_echo": Capability("the tracked set-point reported on the joint's clock",
                                ("telemetry.setpoint_position_rad", "telemetry.joint_time_ms")),
    "position_command": Capability("position set-points", ("command.position_rad",)),
    "velocity_command": Capability("velocity set-points", ("command.velocity_rad_s",)),
    "torque_command": Capability("torque set-points", ("command.torque_nm",)),
    "impedance": Capability("impedance set-points (position, velocity, kp, kd, torque)", tuple(
        f"command.impedance_{k}" for k in ("position_rad", "velocity_rad_s", "kp_nm_per_rad", "kd_nm_s_per_rad",
                                           "torque_ff_nm"))),
    "gains": Capability("controller gains written live", ("command.gain_id", "command.gain_value"),
                        instead=Capability("", _PARAMS, params=("gain.",))),  # CANopen: gains are SDO objects
    "parameters": Capability("parameters read and written, with a reply", _PARAMS),
    "flash": Capability("parameters saved to flash", _PARAMS, ("save_to_flash",)),
}
# the capability a control mode's set-points need
MODE_COMMANDS = {"position": "position_command", "velocity": "velocity_command", "torque": "torque_command",
                 "impedance": "impedance", "admittance": "position_command"}


def message_of(profile: Profile, role: str) -> str | None:
    """The profile's message for a role (``[messages]`` of the sidecar, else the message named like the role)."""
    name = profile.sidecar.messages.get(role, role)
    return name if name in profile.messages else None


def missing(profile: Profile, capability: str) -> list[str]:
    """What the profile lacks for ``capability``: semantic names, message roles as ``message <role>`` and special
    frames as ``raw frame <role>`` (nothing when its other way, ``instead``, is complete)."""
    cap = CAPABILITIES[capability]
    lacking = _lacking(profile, cap)
    if lacking and cap.instead is not None and not _lacking(profile, cap.instead):
        return []
    return lacking


def _lacking(profile: Profile, cap: Capability) -> list[str]:
    semantic = profile.sidecar.semantic
    return [n for n in cap.names if n not in semantic] + [
        f"message {role}" for role in cap.messages if message_of(profile, role) is None] + [
        f"raw frame {role}" for role in cap.raw if role not in profile.sidecar.raw_frames] + [
        f"command.state {state}" for state in cap.states if state not in _state_names(profile)] + [
        f"parameters {prefix}*" for prefix in cap.params
        if not any(p.startswith(prefix) for p in profile.sidecar.params)]


def _state_names(profile: Profile) -> set[str]:
    sem = profile.sidecar.semantic.get("command.state")
    return set(sem.names) if sem is not None else set()


def provided(profile: Profile) -> dict[str, bool]:
    return {name: not missing(profile, name) for name in CAPABILITIES}


def require(profile: Profile, *capabilities: str, command: str) -> None:
    """``ProtocolError`` naming the first capability ``command`` needs that the profile lacks (nothing is sent)."""
    for name in capabilities:
        lacking = missing(profile, name)
        if lacking:
            raise ProtocolError(f"{command}: profile {profile.name} has no {name} capability "
                                f"({CAPABILITIES[name].what}; it needs {', '.join(lacking)}): nothing was sent")


def table(profile: Profile) -> list[dict[str, object]]:
    """One row per capability: name, what it is, provided, and what is missing."""
    rows = []
    for name, cap in CAPABILITIES.items():
        lacking = missing(profile, name)
        rows.append({"capability": name, "what": cap.what, "provided": not lacking, "missing": lacking})
    return rows


def status_message(profile: Profile) -> str | None:
    """The message that tells the joint's state: its heartbeat (status.state's), else the reply it answers every
    command with (``[messages] status_reply``, MIT mode), else None."""
    sem = profile.sidecar.semantic.get("status.state")
    return sem.message if sem is not None else message_of(profile, "status_reply")


def replies_only(profile: Profile) -> bool:
    """A joint that sends nothing unless spoken to: no heartbeat, a reply to every command (MIT mode)."""
    return "status.state" not in profile.sidecar.semantic and message_of(profile, "status_reply") is not None
