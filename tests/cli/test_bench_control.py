"""``jointkit bench control``: the figures are there and sane (speed is asserted by the benchmark, not here)."""

from __future__ import annotations

import json
import math

import pytest

from firmware_iface.cli import main

POSITIVE = ("pid_ns_per_step", "closed_loop_realtime_factor", "closed_loop_steps_per_s", "open_loop_steps_per_s",
            "step_s", "cores")


def test_bench_control_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "control", "--quick", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    b = json.loads(out)
    assert b["preset"] == "knee"
    for key in POSITIVE:
        assert isinstance(b[key], int | float) and math.isfinite(b[key]) and b[key] > 0, key
    overhead = b["controller_overhead_pct"]
    assert isinstance(overhead, int | float) and math.isfinite(overhead)
    assert b["closed_loop_realtime_factor"] == pytest.approx(b["closed_loop_steps_per_s"] * b["step_s"], rel=1e-9)
    assert 0.0 < b["pid_saturated_fraction"] < 1.0  # the output limits are hit part of the time
