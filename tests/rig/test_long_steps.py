"""A step longer than the client's telemetry rings (issue 13, item 11): the bus executor puts the telemetry on its
grid as the step goes, so nothing is lost when the rings wrap (before, a 300 s soak at 1 kHz against 30,000-row
rings lost its first samples and gave NaN figures on the bus while the batch passed). Here the mechanism is tested
with rings shrunk to 3 s against a 22 s soak, on the simulated knee over its bus, against the batch simulation of the
same protocol (which has no rings)."""

from __future__ import annotations

import math

import can
import numpy as np
import pytest

from actuator.params import load_preset
from firmware_iface.client import BusHub, JointClient
from firmware_iface.experiments import bus as bus_exec
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.bus import run_segments
from firmware_iface.experiments.protocols import PROTOCOLS
from firmware_iface.rig.rig import sim_rig

pytestmark = pytest.mark.slow
CFG = {"home_rad": 0.0, "load_nm": 100.0, "duration_s": 22.0, "average_s": 0.3, "ratio": 100.0}


def test_a_soak_longer_than_the_rings_keeps_its_figures():
    rig = sim_rig([1], "knee", capacity=3000)  # 3 s of joint_state at 1 kHz
    try:
        client = rig.client(1)
        client.wait_alive(30.0)
        segments = PROTOCOLS["thermal"].segments(CFG)
        signals, _ = run_segments(client, segments, rig.fixtures[1])
        bus = PROTOCOLS["thermal"].analyze(signals, segments, CFG).figures
    finally:
        rig.safe_stop()
        rig.close()
    assert np.isfinite(signals["winding_temp_c"]).all()  # the first seconds too: drained before the rings wrapped
    assert signals["t_s"].size == pytest.approx(sum(s.duration_s for s in segments) * 1000, abs=2)
    batch = run_batch([load_preset("knee")], [{}], [("thermal", CFG)], panels=False)[0][0].figures
    # each of the two means is quantised to 0.25 K on the bus (motor_telemetry.winding_temp): 0.3 K as in
    # test_population's bus-against-batch figures
    assert bus["thermal_rise_k"] == pytest.approx(batch["thermal_rise_k"], abs=0.3)
    assert bus["max_winding_temp_c"] == pytest.approx(batch["max_winding_temp_c"], abs=0.3)


def test_a_soak_of_hours_keeps_a_bounded_grid():
    # the walker's arrays for a 10-hour soak: every 61st tick, at most 600,000 rows, whatever the duration
    bus = can.Bus(interface="virtual", channel="jointkit-long-steps")
    try:
        client = JointClient(bus, 1, threaded=False)
        segments = PROTOCOLS["thermal"].segments({**CFG, "duration_s": 36_000.0})
        walker = bus_exec._Walker(client, segments, None)
        assert walker.decim == math.ceil(walker.n / bus_exec.MAX_GRID_ROWS) == 61
        assert walker.t_cmd.size <= bus_exec.MAX_GRID_ROWS
        assert walker.held["winding_temp_c"].size <= bus_exec.MAX_GRID_ROWS
        assert walker.drain_every == 5000  # 5 s of ticks, within 40 % of the client's 30 s rings
    finally:
        BusHub.of(bus, start=False).close()
        bus.shutdown()
