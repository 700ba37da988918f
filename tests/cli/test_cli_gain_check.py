"""`jointkit param set gain.X --preset P`: the host checks a cascade gain on the preset's linear model before it
sends it (issue 13, item 2). An unstable set is refused (exit 2, the loop and its margin named, nothing sent);
`--force` sends it, and the joint's own guard latches `unstable` instead of going silent."""

from __future__ import annotations

import pytest

from firmware_iface.client.gain_check import UnstableGainsError, check_gains
from tests.cli.cliutil import run_cli, run_json
from tests.cli.test_cli_bus import joints  # noqa: F401  (the fixture: two paced joints on a virtual channel)

KNEE_VELOCITY_KP = 174.4


def test_an_unstable_gain_is_refused_before_it_is_sent(capsys, joints):  # noqa: F811
    code, out, err = run_cli(capsys, "param", "set", "gain.velocity_kp", "0.001", "--preset", "knee", "--node", "1",
                             *joints.bus)
    assert code == 2 and out == ""
    assert "velocity_kp = 0.001: the cascade is unstable on knee's linear model" in err
    assert "velocity loop: phase margin -1.4" in err  # -1.4 deg on the knee's two-mass model (its gear viscous damping)
    assert joints.nodes[1].fw.read_gain("velocity_kp") == pytest.approx(KNEE_VELOCITY_KP)


def test_a_stable_gain_passes_the_check(capsys, joints):  # noqa: F811
    out = run_json(capsys, "param", "set", "gain.velocity_kp", "150", "--preset", "knee", "--node", "1", *joints.bus)
    assert out["value"] == 150.0 and "warnings" not in out


def test_force_sends_it_and_the_joint_faults_instead_of_going_silent(capsys, joints):  # noqa: F811
    out = run_json(capsys, "param", "set", "gain.velocity_kp", "0.001", "--preset", "knee", "--force", "--node", "1",
                   *joints.bus)
    assert out["value"] == pytest.approx(0.001) and any("unstable" in w for w in out["warnings"])


def test_the_check_names_the_margin_of_a_low_margin_set():
    # twice the knee's velocity gain: stable, but the velocity loop's phase margin drops below 30 deg
    check = check_gains("knee", {"velocity_kp": 2 * KNEE_VELOCITY_KP})
    for m in check.margins:
        assert m.stable
    low = [m for m in check.margins if m.phase_margin_deg < 30 or m.gain_margin_db < 6]
    assert len(check.warnings) == len(low)
    with pytest.raises(UnstableGainsError, match="position loop: phase margin"):
        check_gains("knee", {"velocity_kp": 1e-3}, where="test")
