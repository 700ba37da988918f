"""A test sequence run on joints of the shipped profiles (issue 15): the lock-step simulated rig emulates the profile,
the runner drives it through the profile, and the recordings read back. A sequence that needs what a profile lacks
(gains on an ODrive) is refused before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from asammdf import MDF

from actuator.errors import ConfigError
from firmware_iface.protocol.load import load_named
from firmware_iface.rig.rig import sim_rig
from firmware_iface.rig.runner import run_sequence
from firmware_iface.rig.sequence import load_sequence

BRINGUP = """
[sequence]
name = "bringup"
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
limits.rise_time_s = { max = 0.10 }
limits.overshoot_pct = { max = 5.0 }

[[steps]]
type = "disable"
"""


@pytest.mark.parametrize("name", ["odrive", "cia402"])
def test_a_bringup_sequence_runs_on_the_profile_and_records_it(name, tmp_path: Path):
    profile = load_named(name)
    path = tmp_path / "bringup.toml"
    path.write_text(BRINGUP)
    seq = load_sequence(path, profile)
    rig = sim_rig([1], "knee", profile=profile)
    try:
        results = run_sequence(seq, rig, tmp_path / "out")
    finally:
        rig.close()
    assert results["verdict"] == "pass", results.get("error")
    step = next(s for s in results["steps"] if s["type"] == "step")
    assert 0.05 < step["figures"]["rise_time_s"] < 0.08  # the knee's 0.068 s (tests/rig/test_tune_verified.py)
    position = {"odrive": "n1.Get_Encoder_Estimates.Pos_Estimate", "cia402": "n1.TPDO1.Position_Actual"}[name]
    with MDF(tmp_path / "out" / "signals.mf4") as mdf:
        samples = mdf.get(position).samples
    assert samples.size > 500 and abs(samples.max() - 0.1) < 0.01  # radians: the profile's unit conversion
    state = {"odrive": "n1.Heartbeat.Axis_State", "cia402": "n1.TPDO1.Statusword"}[name]
    with MDF(tmp_path / "out" / "signals.mf4") as mdf:
        states = set(mdf.get(state, raw=True).samples.tolist())
    assert {"odrive": {1, 8}, "cia402": {0x27}}[name] <= states  # IDLE, CLOSED_LOOP_CONTROL / operation enabled


def test_a_sequence_the_profile_cannot_run_is_refused_before_anything_is_sent(tmp_path: Path):
    profile = load_named("odrive")
    path = tmp_path / "gains.toml"
    path.write_text(BRINGUP + '\n[[steps]]\ntype = "gains"\nfile = "' + str(
        Path(__file__).parents[2] / "seeds" / "gains" / "knee.toml") + '"\n')
    seq = load_sequence(path, profile)
    rig = sim_rig([1], "knee", profile=profile)
    try:
        with pytest.raises(ConfigError, match=r"cannot run it, nothing was sent: step gains \(gains\) needs gains"):
            run_sequence(seq, rig, tmp_path / "out")
        assert rig.hub.counters["tx"] == 0
    finally:
        rig.close()
