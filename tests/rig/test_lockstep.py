"""The lock-step simulated rig (issue 14, item 5): the host's clock advances the virtual joints, so a run is
deterministic, independent of the machine's load, and its figures agree with the joint's own time.

Checked here: two lock-step runs of a sequence with the same seed give the same figures bit for bit (and a third,
with a thread burning the interpreter beside it, the same again: load changes the wall time, not one figure); the
host's clock is the joints' time (the joint's own time stamps on its frames advance with it, 1 ms a chunk); the
host loop of a protocol step never overruns; the rig's keep-alive holds a joint in closed loop while the host waits
on the clock between steps (its watchdog does not trip), and without it the watchdog trips after its 0.1 s of joint
time, however long that takes on the wall clock.
"""

from __future__ import annotations

import io
import math
import threading
from pathlib import Path

from rich.console import Console

from firmware_iface.client.clock import LockStepClock
from firmware_iface.rig.rig import sim_rig
from firmware_iface.rig.runner import run_sequence
from firmware_iface.rig.sequence import load_sequence

SEQUENCE = """
[sequence]
name = "lockstep"
node = 1
preset = "knee"
ratio = 100.0

[[steps]]
type = "connect"
timeout_s = 10.0

[[steps]]
type = "enable"
mode = "position"

[[steps]]
type = "step"
amplitude_rad = 0.1

[[steps]]
type = "bode"
f0_hz = 2.0
f1_hz = 20.0
amplitude_rad = 0.002
periods = 2

[[steps]]
type = "wait"
duration_s = 0.5

[[steps]]
type = "fault_reaction"
command_s = 0.2

[[steps]]
type = "disable"
"""


def _run(tmp_path: Path, name: str, injections: tuple = ()) -> tuple[dict, float]:
    path = tmp_path / "lockstep.toml"
    path.write_text(SEQUENCE)
    seq = load_sequence(path)
    rig = sim_rig(seq.nodes, "knee", list(injections))
    try:
        assert isinstance(rig.clock, LockStepClock) and not rig.hub.threaded
        results = run_sequence(seq, rig, tmp_path / name, serial="LS", console=Console(file=io.StringIO()))
        joint_t = rig.nodes[1].fw.t_s
        # the host's clock is the joints' time: at most one chunk (1 ms) ahead of the joint's last chunk
        assert 0.0 <= rig.clock.now() - joint_t <= rig.clock.step_s + 1e-9
    finally:
        rig.close()
    return results, joint_t


def _figures(results: dict) -> dict:
    return {f"{s['name']}.{k}": v for s in results["steps"] for k, v in s["figures"].items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(v, float) and math.isnan(v) and math.isnan(b[k])) or v == b[k] for k, v in a.items())


def test_two_lockstep_runs_are_identical_and_load_does_not_change_them(tmp_path):
    first, t1 = _run(tmp_path, "a")
    second, t2 = _run(tmp_path, "b")
    assert first["verdict"] == "pass", [s["error"] for s in first["steps"]]
    figures = _figures(first)
    assert len(figures) >= 8 and _same(figures, _figures(second)) and t1 == t2
    stop = threading.Event()

    def burn() -> None:  # takes the interpreter lock from the run as a busy machine takes the CPU
        while not stop.is_set():
            sum(range(10_000))

    hog = threading.Thread(target=burn, daemon=True)
    hog.start()
    try:
        loaded, t3 = _run(tmp_path, "c")
    finally:
        stop.set()
        hog.join()
    assert _same(figures, _figures(loaded)) and t3 == t1
    # a joint with 5 % more friction moves the figures: the comparison above can fail
    other, _ = _run(tmp_path, "d", (("friction_scale", 1.05),))
    assert not _same(figures, _figures(other))


def test_fault_reaction_is_the_watchdog_timeout_in_joint_time(tmp_path):
    results, _ = _run(tmp_path, "w")
    reaction = _figures(results)["fault_reaction.watchdog_reaction_s"]
    # the joint trips 0.1 s (its watchdog_timeout_s) after the last set-point, seen at the next heartbeat (the step
    # raises the heartbeat to 100 Hz: 10 ms) one chunk later at most
    assert 0.1 <= reaction <= 0.1 + 0.01 + 0.002


def test_keepalive_holds_a_joint_while_the_host_waits_on_the_clock():
    rig = sim_rig([1], "knee")
    try:
        c = rig.client(1)
        c.wait_alive(10.0)
        with rig.keepalive.paused():  # as the runner runs a step: on leaving, the joint is held where it is
            c.enable("position")
        rig.clock.sleep(2.0)  # twenty watchdog timeouts of joint time with no step sending set-points
        assert c.state == "closed_loop" and rig.nodes[1].fw.counters["watchdog_trips"] == 0
        with rig.keepalive.paused():
            t_last = c.last_command_t
            c.wait_for(lambda: "watchdog" in c.faults, 1.0, "watchdog fault")
            # tripped 0.1 s of joint time after the last hold, reported by the next 10 Hz heartbeat (and a chunk)
            assert 0.1 <= c.heartbeat_t - t_last <= 0.2 + 0.002
        assert rig.nodes[1].fw.counters["watchdog_trips"] == 1
    finally:
        rig.safe_stop()
        rig.close()
