"""Every semantic name of a profile is optional; a command needing a capability the profile lacks says which, before
anything is sent (issue 15, item 1). The partial profile here (tests/protocol/odrive_axis.py) is an ODrive-like axis
heartbeat (state, a bit-field error word, a counter) and one position command, nothing else."""

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
from tests.protocol import odrive_axis

_channels = itertools.count()


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    return odrive_axis.write(tmp_path)


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
