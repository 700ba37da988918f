"""Set-point streaming (``firmware_iface.client.streamer``) and ``JointClient.setpoint``, the one mode chain, on a
lock-step simulated rig: every count and time below is joint time."""

from __future__ import annotations

import pytest

from actuator.errors import ConfigError
from firmware_iface.client.streamer import MOVE_V_MAX_RAD_S, Streamer
from firmware_iface.rig.rig import sim_rig


@pytest.fixture
def rig():
    r = sim_rig([1], "knee")
    r.client(1).wait_alive(10.0)
    yield r
    r.safe_stop()
    r.close()


@pytest.mark.parametrize(("mode", "message"), [("position", "position_command"), ("admittance", "position_command"),
                                               ("velocity", "velocity_command"), ("torque", "torque_command"),
                                               ("impedance", "impedance_command")])
def test_setpoint_sends_the_message_of_its_mode(rig, mode, message):
    c = rig.client(1)
    sent = []
    rig.hub.add_listener(type("Tap", (), {"on_message_received": lambda self, m: None,
                                          "on_decoded": lambda self, d, t: sent.append(d)})())
    c.setpoint(mode, 0.25, impedance_gains=(100.0, 2.0))
    commands = [d for d in sent if d.name.endswith("_command")]
    assert [d.name for d in commands] == [message]
    assert next(iter(commands[0].signals.values())) == pytest.approx(0.25, abs=1e-3)


def test_setpoint_refuses_what_it_cannot_send(rig):
    c = rig.client(1)
    with pytest.raises(ConfigError, match="impedance set-point needs its gains"):
        c.setpoint("impedance", 0.0)
    with pytest.raises(ConfigError, match="no set-point for mode 'current': allowed position"):
        c.setpoint("current", 0.0)


def test_a_stream_feeds_the_watchdog_at_its_rate_and_follows_a_move(rig):
    c, fw = rig.client(1), rig.nodes[1].fw
    streamer = Streamer(rig.clients, 200.0, clock=rig.clock)
    try:
        rig.keepalive.stop()
        here = float(c.latest()["telemetry.position_rad"])
        c.enable("position")
        streamer.start_stream(1, "position", here)
        before = fw.counters["commands"]
        rig.clock.sleep(1.0)  # ten watchdog timeouts
        # 200 Hz for 1 s of joint time: 200 set-points (one more or less at the ends), and no trip
        assert fw.counters["commands"] - before == pytest.approx(200, abs=1)
        assert c.state == "closed_loop" and fw.counters["watchdog_trips"] == 0
        assert streamer.watchdog_margin_s() == pytest.approx(0.1 - 0.005, abs=0.0051)
        duration = streamer.move_to(1, here + 0.3, here)
        assert 0.3 / MOVE_V_MAX_RAD_S < duration < 1.0  # an S-curve slower than the speed limit alone
        rig.clock.sleep(duration + 0.5)  # the move and the loop's settling (0.16 s)
        assert float(c.latest()["telemetry.position_rad"]) == pytest.approx(here + 0.3, abs=0.01)
        assert streamer.streams[1].ring.count >= round((duration + 1.5) * 200) - 2  # every set-point kept
    finally:
        streamer.stop()
    n = fw.counters["commands"]
    rig.clock.sleep(0.3)
    assert fw.counters["commands"] == n and "watchdog" in c.faults  # stopped: nothing sent, the watchdog trips
