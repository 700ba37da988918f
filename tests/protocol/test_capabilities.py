"""Every semantic name of a profile is optional; a command needing a capability the profile lacks says which, before
anything is sent (issue 15, item 1). The partial profile here is an ODrive-like axis heartbeat (state and a bit-field
error word) and one position command, nothing else."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import can
import pytest

from actuator.errors import ProtocolError
from firmware_iface.cli import main
from firmware_iface.client import BusHub, JointClient
from firmware_iface.experiments.bus import needs, step_test
from firmware_iface.protocol import Profile, load_native
from firmware_iface.protocol.capabilities import CAPABILITIES, provided, require, table

DBC = '''VERSION ""
BS_:
BU_: axis host
BO_ 1 Heartbeat: 8 axis
 SG_ Axis_Error : 0|32@1+ (1,0) [0|4294967295] "" host
 SG_ Axis_State : 32|8@1+ (1,0) [0|13] "" host
 SG_ Counter : 56|8@1+ (1,0) [0|255] "" host
BO_ 12 Set_Input_Pos: 8 host
 SG_ Input_Pos : 0|32@1- (1E-06,0) [-100|100] "rad" axis
VAL_ 1 Axis_Error 64 "MOTOR_FAILED" 2048 "WATCHDOG_TIMER_EXPIRED" ;
VAL_ 1 Axis_State 1 "IDLE" 8 "CLOSED_LOOP_CONTROL" ;
'''
SIDECAR = '''[profile]
name = "axis_subset"
[addressing]
node_shift = 5
node_min = 0
node_max = 63
[semantic]
"status.state" = { message = "Heartbeat", signal = "Axis_State" }
"status.faults" = { message = "Heartbeat", signal = "Axis_Error", bitfield = true }
"status.counter" = { message = "Heartbeat", signal = "Counter" }
"command.position_rad" = { message = "Set_Input_Pos", signal = "Input_Pos", unit = "rad" }
'''
_channels = itertools.count()


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    (tmp_path / "axis.dbc").write_text(DBC, encoding="utf-8")
    (tmp_path / "axis.toml").write_text(SIDECAR, encoding="utf-8")
    return tmp_path / "axis.dbc"


def test_the_native_profile_provides_every_capability():
    assert all(provided(load_native()).values())


def test_a_partial_profile_provides_what_it_maps(subset: Path):
    profile = Profile.load(subset, subset.with_suffix(".toml"))
    have = {name for name, ok in provided(profile).items() if ok}
    assert have == {"heartbeat", "faults", "position_command"}
    rows = {r["capability"]: r for r in table(profile)}
    assert rows["state_machine"]["missing"] == ["command.state"]
    assert rows["estop"]["missing"] == ["message estop"]
    assert set(rows) == set(CAPABILITIES)
    with pytest.raises(ProtocolError, match=r"step: profile axis_subset has no state_machine capability .*it needs "
                                            r"command.state\): nothing was sent"):
        require(profile, *needs([]), command="step")


def test_commands_a_profile_cannot_carry_fail_before_anything_is_sent(subset: Path, monkeypatch):
    profile = Profile.load(subset, subset.with_suffix(".toml"))
    channel = f"jointkit-caps-{next(_channels)}"
    bus = can.Bus(interface="virtual", channel=channel)
    sent: list[can.Message] = []
    monkeypatch.setattr(BusHub, "send", lambda self, msg: sent.append(msg))
    try:
        client = JointClient(bus, 3, profile)  # every semantic name the native client read is optional here
        assert (client.state, client.mode, client.faults) == (None, None, [])
        for call, capability in ((lambda: client.enable("position"), "state_machine"),
                                 (client.estop, "estop"), (client.clear_faults, "clear_faults"),
                                 (lambda: client.velocity(0.1), "velocity_command"),
                                 (lambda: client.read_param("profile_version"), "parameters"),
                                 (lambda: client.write_gain("position_kp", 1.0), "gains"),
                                 (lambda: step_test(client, "position", 0.1), "state_machine")):
            with pytest.raises(ProtocolError, match=f"node 3: .*has no {capability} capability"):
                call()
    finally:
        BusHub.of(bus, start=False).close()
        bus.shutdown()
    assert sent == []


def test_dbc_check_prints_the_capability_table(subset: Path, capsys):
    assert main(["dbc", "check", str(subset)]) == 0
    out = capsys.readouterr().out
    assert "  yes  position_command   position set-points" in out
    assert "  no   state_machine      enable and disable (idle, closed loop)  (missing: command.state)" in out
    assert main(["dbc", "check", str(subset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["capability"]: r["provided"] for r in report["capabilities"]}["heartbeat"] is True
