"""``jointkit scan``, ``monitor`` and ``param`` through argv against virtual joints on a python-can ``virtual`` channel.

Each test runs its joints on a channel of its own; the CLI opens its own bus on that channel (virtual channels are
shared within one process), so it sees the joints as it would see real ones.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import can
import pytest
from cliutil import run_cli, run_json

import firmware_iface.virtual_joint.node as node_module
from firmware_iface.cli import monitor
from firmware_iface.protocol.load import load_native
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

# The native sidecar's default rates: joint_state 1000 + wrench 2 x 500 + motor 100 + heartbeat 10 + diagnostics 1
FRAMES_PER_S = 2111


@dataclass
class Joints:
    channel: str
    nodes: dict[int, VirtualJointNode]
    flash: Path
    runner: NodeRunner

    @property
    def bus(self) -> tuple[str, ...]:
        return ("--interface", "virtual", "--channel", self.channel)


def unique_channel() -> str:
    return f"jointkit-test-{uuid.uuid4().hex}"


@pytest.fixture
def joints(tmp_path: Path) -> Iterator[Joints]:
    """Knee joints 1 (with a flash file) and 2 (without), paced to wall time on a channel of their own."""
    channel = unique_channel()
    # the joints stamp their frames with their own time, as a served simulated joint does
    bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    flash = tmp_path / "n1.toml"
    nodes = [VirtualJointNode(bus, 1, flash_path=flash), VirtualJointNode(bus, 2)]
    runner = NodeRunner(bus, nodes, paced=True).start()
    try:
        # up before the test's clock starts: the first chunk loads the compiled model, which can take longer than a
        # scan listens on a loaded machine
        deadline = time.monotonic() + 10.0
        while not all(n.counters["tx"] for n in nodes):
            assert time.monotonic() < deadline, f"virtual joints silent: {runner.last_error or runner.counters}"
            time.sleep(0.01)
        yield Joints(channel, {n.node_id: n for n in nodes}, flash, runner)
    finally:
        runner.stop()
        bus.shutdown()


def no_hub_threads() -> bool:
    return not any(t.name == "bus-hub" and t.is_alive() for t in threading.enumerate())


# --- scan ---------------------------------------------------------------------------------------------------------
def test_scan_lists_both_joints_and_sends_nothing(capsys, joints):
    received = {i: n.counters["rx"] for i, n in joints.nodes.items()}
    report = run_json(capsys, "scan", *joints.bus)
    assert [n["node_id"] for n in report["nodes"]] == [1, 2]
    for n in report["nodes"]:
        assert n["state"] == "idle" and n["faults"] == [] and n["mode"] == "position"
        # passive: confirmed by the heartbeats' advancing counter, nothing asked
        assert n["confirmed"] and n["identity"] == "confirmed as jointkit_native" and n["profile_version"] is None
    assert {i: n.counters["rx"] for i, n in joints.nodes.items()} == received
    assert report["bus"] == f"Virtual bus channel {joints.channel}"
    assert no_hub_threads()


def test_scan_query_asks_each_confirmed_joint_its_version(capsys, joints):
    report = run_json(capsys, "scan", *joints.bus, "--query")
    assert [(n["node_id"], n["profile_version"]) for n in report["nodes"]] == [(1, 1.0), (2, 1.0)]
    assert all(joints.nodes[i].counters["rx"] >= 1 for i in (1, 2))


def test_scan_table(capsys, joints):
    code, out, _ = run_cli(capsys, "scan", *joints.bus, "--query")
    assert code == 0
    rows = [line for line in out.splitlines() if "idle" in line]
    assert len(rows) == 2 and all("1.0" in row and "none" in row for row in rows)


def test_scan_of_an_empty_channel(capsys):
    bus = ("--interface", "virtual", "--channel", unique_channel())
    assert run_json(capsys, "scan", *bus, "--listen-s", "0.1")["nodes"] == []
    code, out, _ = run_cli(capsys, "scan", *bus, "--listen-s", "0.1")
    assert code == 0 and out.startswith("no joints found on Virtual bus channel jointkit-test-")


def test_scan_rejects_a_bad_listen_time(capsys):
    code, _, err = run_cli(capsys, "scan", "--interface", "virtual", "--channel", unique_channel(),
                           "--listen-s", "0")
    assert code == 2 and "listen_s = 0.0: must be a positive number" in err


# --- param --------------------------------------------------------------------------------------------------------
def test_param_get_set_get(capsys, joints):
    get = ("param", "get", "watchdog_timeout_s", "--node", "1", *joints.bus)
    assert run_json(capsys, *get)["value"] == 0.1  # the float32 on the wire shown as its shortest decimal
    written = run_json(capsys, "param", "set", "watchdog_timeout_s", "0.25", "--node", "1", *joints.bus)
    assert written["value"] == 0.25 and written["requested"] == 0.25 and written["id"] == 2
    assert run_json(capsys, *get)["value"] == 0.25
    assert joints.nodes[1].fw.watchdog_timeout_s == 0.25 and joints.nodes[2].fw.watchdog_timeout_s == 0.1
    code, out, _ = run_cli(capsys, *get)  # the table form
    assert code == 0 and "watchdog_timeout_s" in out and "0.25" in out


def test_param_set_refused_names_param_value_and_status(capsys, joints):
    code, out, err = run_cli(capsys, "param", "set", "torque_max_nm", "1e5", "--node", "1", *joints.bus)
    assert code == 2 and out == ""
    assert err.startswith("error: node 1: torque_max_nm = 100000.0 refused by the joint: out_of_range")


def test_param_get_unknown_name_lists_the_allowed(capsys, joints):
    code, _, err = run_cli(capsys, "param", "get", "no_such", "--node", "1", *joints.bus)
    assert code == 2 and "no parameter 'no_such'" in err and "watchdog_timeout_s" in err and "gain.position_kp" in err


def test_param_get_of_an_absent_node_sends_nothing(capsys, joints, monkeypatch):
    sent = []
    monkeypatch.setattr("firmware_iface.client.hub.BusHub.send", lambda self, msg: sent.append(msg))
    code, _, err = run_cli(capsys, "param", "get", "watchdog_timeout_s", "--node", "5", "--timeout-s", "0.2",
                           *joints.bus)
    # no heartbeat of node 5: not confirmed as a native joint, so its param_read is never written
    assert code == 2 and "error: node 5 is not confirmed as a jointkit_native joint" in err
    assert "no jointkit_native heartbeat heard from it" in err and "--profile" in err
    assert sent == []
    assert no_hub_threads()


def test_param_save_writes_the_flash(capsys, joints):
    assert not joints.flash.exists()
    report = run_json(capsys, "param", "save", "--node", "1", *joints.bus)
    assert report == {"node": 1, "flash_saves": 1}
    assert joints.flash.is_file() and "watchdog_timeout_s" in joints.flash.read_text()


def test_param_save_refused_without_a_flash(capsys, joints):
    code, _, err = run_cli(capsys, "param", "save", "--node", "2", *joints.bus)
    assert code == 2 and "save_to_flash refused by the joint: read_only" in err and "state idle" in err


def test_param_list_needs_no_bus(capsys):
    report = run_json(capsys, "param", "list")
    assert report["profile"] == "jointkit_native" and report["params"] == load_native().sidecar.params
    code, out, _ = run_cli(capsys, "param", "list")
    assert code == 0 and "watchdog_timeout_s" in out and "gain.velocity_ki" in out


# --- monitor ------------------------------------------------------------------------------------------------------
def test_monitor_json_snapshot(capsys, joints, monkeypatch):
    assert sum(load_native().telemetry.values()) == FRAMES_PER_S
    # a paced joint stalled by a loaded machine catches up on its own clock instead of resynchronising to the wall
    # (which would leave a hole in its time stamps): then what it sent per second of its own time is exact
    monkeypatch.setattr(node_module, "MAX_LAG_S", math.inf)
    report = run_json(capsys, "monitor", *joints.bus, "--duration-s", "0.5")
    assert sorted(report["nodes"]) == ["1", "2"]
    for snap in report["nodes"].values():
        assert math.isfinite(snap["telemetry.position_rad"]) and math.isfinite(snap["telemetry.winding_temp_c"])
        assert snap["state"] == "idle" and snap["faults"] == [] and snap["gaps"] == 0
        # the heartbeat's age is the client's (how long this host has listened since it heard it, a stall of the
        # host left out): within the client's loss limit of 3 periods, past which the monitor shows it lost
        assert 0 <= snap["heartbeat_age_s"] < 3 * 0.1
        # frames per second of the frames' own stamps, over the window between the monitor's first and last sample
        # (at least a few tenths of a second: ~1000 frames): each of the 6 messages may be counted one frame more
        # or less at each end, and a chunk's frames (same stamp) may be split by a sample: 3 %
        assert snap["frames_per_s"] == pytest.approx(FRAMES_PER_S, rel=0.03)
    assert no_hub_threads()


def test_monitor_given_nodes_only(capsys, joints):
    report = run_json(capsys, "monitor", *joints.bus, "--nodes", "2", "--duration-s", "0.2", "--rate-hz", "20")
    assert list(report["nodes"]) == ["2"]


def test_monitor_live_table(capsys, joints, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # rich sizes the table to the terminal: 80 columns when not a terminal
    code, out, _ = run_cli(capsys, "monitor", *joints.bus, "--duration-s", "0.3")
    assert code == 0
    assert "jointkit monitor" in out and "frames/s" in out and "idle" in out


def test_monitor_json_needs_a_duration(capsys, joints):
    code, _, err = run_cli(capsys, "monitor", *joints.bus, "--json")
    assert code == 2 and "monitor --json needs --duration-s" in err


def test_monitor_without_joints_exits_2(capsys):
    code, _, err = run_cli(capsys, "monitor", "--interface", "virtual", "--channel", unique_channel(),
                           "--duration-s", "0.1")
    assert code == 2 and "no joints found on Virtual bus channel" in err and "--nodes" in err


def test_monitor_ctrl_c_exits_0_and_closes_the_bus(capsys, joints, monkeypatch):
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(monitor, "_pause", interrupted)
    code, out, err = run_cli(capsys, "monitor", *joints.bus, "--nodes", "1", "--duration-s", "5", "--json")
    assert code == 0 and err == ""
    assert list(json.loads(out)["nodes"]) == ["1"]  # the snapshot of the time it ran
    assert no_hub_threads()


# --- --profile on the --node tests (issue 15, item 4) -----------------------------------------------------------
def test_step_on_a_joint_whose_profile_cannot_step_sends_nothing(capsys, tmp_path, monkeypatch):
    from tests.protocol import odrive_axis

    dbc = odrive_axis.write(tmp_path)
    channel = unique_channel()
    device = can.Bus(interface="virtual", channel=channel)
    task = device.send_periodic(odrive_axis.heartbeat(0, state=1, node=1), 0.05)  # an idle axis
    sent = []
    monkeypatch.setattr("firmware_iface.client.hub.BusHub.send", lambda self, msg: sent.append(msg))
    try:
        code, _, err = run_cli(capsys, "step", "--node", "1", "--profile", str(dbc), "--interface", "virtual",
                               "--channel", channel)
    finally:
        task.stop()
        device.shutdown()
    # the profile maps a position command but no state machine: the step is refused before its first frame
    assert code == 2 and "has no state_machine capability" in err and "nothing was sent" in err, err
    assert sent == []


def test_profile_without_node_is_refused(capsys):
    code, _, err = run_cli(capsys, "step", "--profile", "dbc/jointkit_native.dbc")
    assert code == 2 and "need --node" in err
