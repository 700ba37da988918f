"""A step from the GUI gives the figures of ``jointkit step --node`` on the same joint, and of the in-process
``jointkit step --preset knee`` (issue 19 item 4): one protocol, one configuration, times from the joint's stamps.

The GUI's simulated knee runs in the GUI's process (``Connection(in_process=True)``: paced to the wall clock on a
python-can ``virtual`` channel), so the CLI, run through argv in this process, opens its own bus on that channel and
reaches the same joint as it would a real one.

Starting state. The in-process executor's joint has never moved: at rest at 0, idle. The GUI's step is the first
thing the GUI's joint does, so it starts from that very state. The CLI's step comes after it: the joint is brought
back through the GUI (enabled, moved to 0, held, disabled) and left idle at rest, and the CLI steps it from where it
rests (the default of both, ``experiments.bus.step_test``). A joint stepped from rest where it is starts the step in
the same state whatever it did before, but for the reducer's hysteresis, which remembers the way it came back (see
``TOLERANCES``).

Tolerances (the four figures of ``actuator.analysis.step``, from the reported position: the output encoder):
* quantisation: the output encoder's LSB, 2 pi / 2^20 = 6.0e-6 rad (the frame's 1e-6 rad resolution is finer);
* time: the joint reports its state at 1 kHz (``TELEMETRY_S``) stamped with its own clock in ms. A bus run is put on
  the joint's clock from its set-point echo, then interpolated onto the 1 kHz grid, whose phase against the joint's
  ticks is that of the first echo: each interpolated crossing may sit up to half a period from the in-process one's
  (samples at the joint's own ticks), and the step's instant (from which settling counts) up to one period. Rise
  (two crossings) within one period plus 2 LSB over the slope; settling within 1.5 periods plus 1 LSB over the slope;
* the paced clock and a busy host: every set-point before the step is the same hold where the joint rests, so a
  late one only makes that hold longer (0.3 to 1.0 s of it give the same figures to the microsecond on the
  in-process executor); after the step every set-point is the step's; the step's own, if late, moves the step's
  instant, which the joint's echo times on its own clock, as it times the response (an echo is placed at the start
  of the tick that applied it, as the in-process executor pairs set-point and state: ``grid.joint_times``). A paced
  joint that stalls resynchronises to the wall clock without running the time it lost: the executor holds the last
  set-point until the joint's clock has run the whole protocol (``bus._hold_to_the_end``), so the hold after the
  step, over whose last tenth the steady-state error is taken, is the protocol's on the joint's clock. A host that
  stalls reads the stall's frames in a burst: the segments are placed by the frames' bus stamps, not by when the
  host read them (``grid.on_joint_clock``). So the host's lateness moves none of the figures; a stall past the
  joint's watchdog would fault the run, not shift a figure;
* history: the CLI's run starts after a step and a move back, the reducer's Dahl hysteresis no longer virgin. What it
  keeps is bounded by its hysteresis loss, 3.69 tau_hmax / K1 (``mechanics``; 2.9e-4 rad, the catalogue's arcmin, on
  the knee): within the one-second record the loop's integrator has not removed all of it from the final position,
  so it bounds the overshoot's and the steady-state error's difference (seen: under 1e-4 rad on the in-process
  executor, 66.31 against 66.33 ms rise). The times are not widened for it.
"""

from __future__ import annotations

import json
import math

import pytest
from PySide6 import QtCore, QtWidgets

from actuator.analysis.tuning import default_controller
from actuator.control.config import gain_of
from actuator.params import load_preset
from firmware_iface.cli import main
from firmware_iface.defaults import STEP_AMPLITUDE, STEP_AT_S, STEP_DURATION_S
from gui.gains import read_all
from gui.session import Connection
from gui.window import MainWindow

CONNECT_MS = 120_000  # a safety net only: a cold Numba cache on a busy machine compiles for a minute
# heartbeat periods before a joint counts as lost, GUI and CLI: the joint is paced in this process and stalls with it
# on a saturated machine (test_window's reason); a wall-clock verdict of no concern to the figures
MISSED_HEARTBEATS = 30
FIGURES = ("rise_time_s", "overshoot_pct", "settling_time_s", "steady_state_error_rad")
KNEE = load_preset("knee")
LSB_RAD = 2 * math.pi / 2 ** KNEE.encoders.output.bits
TELEMETRY_S = 1e-3
HYSTERESIS_RAD = 3.69 * KNEE.reducer.hysteresis_torque_nm / KNEE.reducer.k1_nm_per_rad
# the slowest the response crosses its 10 %, 90 % and 2 % levels: a 0.1 rad step rising in 66 ms crosses them at
# over 0.3 rad/s (a tenth of its mean 10-90 % slope, a margin for the curve's ends)
SLOPE_RAD_S = 0.3
TOLERANCES = {"rise_time_s": TELEMETRY_S + 2 * LSB_RAD / SLOPE_RAD_S,
              "settling_time_s": 1.5 * TELEMETRY_S + LSB_RAD / SLOPE_RAD_S,
              "overshoot_pct": 100 * (HYSTERESIS_RAD + 2 * LSB_RAD) / STEP_AMPLITUDE,
              "steady_state_error_rad": HYSTERESIS_RAD + 2 * LSB_RAD}
REST_RAD = 1e-3  # "at 0" for the return: a hundredth of the step (gravity and the encoder's error alike there)
STILL_RAD_S = 2e-3  # "at rest": slower than this the joint moves under an LSB a 3 ms


@pytest.fixture
def window(qtbot):
    w = MainWindow(Connection(sim=True, preset="knee", nodes=(1,), missed_heartbeats=MISSED_HEARTBEATS,
                              in_process=True))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session is not None and w.session.clients[1].alive, timeout=CONNECT_MS)
    yield w
    w.close()


def click(qtbot, w: QtWidgets.QWidget, name: str) -> None:
    qtbot.mouseClick(w.findChild(QtWidgets.QPushButton, name), QtCore.Qt.MouseButton.LeftButton)


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def back_to_rest_at_zero(qtbot, w: MainWindow) -> None:
    """Through the GUI: enable, move to 0, hold until still, disable, and wait for the idle joint to rest."""
    c = w.session.clients[1]
    w.control.mode.setCurrentText("position")
    click(qtbot, w, "enable")
    qtbot.waitUntil(lambda: c.state == "closed_loop", timeout=30_000)
    w.control.move_target.setValue(0.0)
    click(qtbot, w, "move")

    def still_at_zero() -> bool:
        now = c.latest()
        return abs(now["telemetry.position_rad"]) < REST_RAD and abs(now["telemetry.velocity_rad_s"]) < STILL_RAD_S

    qtbot.waitUntil(still_at_zero, timeout=30_000)
    qtbot.wait(500)  # held a while: the move's last set-points reached, the loop done with it
    click(qtbot, w, "disable")
    qtbot.waitUntil(lambda: c.state == "idle", timeout=30_000)
    qtbot.wait(300)
    qtbot.waitUntil(still_at_zero, timeout=30_000)


def test_a_gui_step_gives_the_figures_of_jointkit_step_on_the_same_joint(qtbot, window, capsys):
    c = window.session.clients[1]
    channel = window.session.rig.info["channel"]
    # the joint's gains are the in-process joint's (the preset's), and neither the GUI nor the test changes them
    gains = window.session.submit(read_all, c).result(60)
    expected = default_controller(KNEE)
    assert gains and all(v == pytest.approx(gain_of(expected, n), rel=1e-6) for n, v in gains.items())

    # the GUI: the joint idle at rest at 0, never moved, as the in-process executor's; the panel's defaults
    assert c.state == "idle" and window.tests.amplitude.value() == STEP_AMPLITUDE
    click(qtbot, window, "step")
    qtbot.waitUntil(lambda: window.tests.last_metrics is not None or bool(window.errors), timeout=120_000)
    assert window.tests.last_metrics is not None, window.errors
    gui = window.tests.last_metrics
    _, run, cfg = window.tests.last_step
    assert run.echoed  # timed by the joint's stamps
    assert (cfg["amplitude_rad"], cfg["duration_s"], cfg["pre_s"]) == (STEP_AMPLITUDE, STEP_DURATION_S, STEP_AT_S)
    assert cfg["home_rad"] == 0.0  # where the joint was: it never moved

    # the CLI on the same joint and bus, from rest at 0 again, with its defaults
    back_to_rest_at_zero(qtbot, window)
    bus = ("--interface", "virtual", "--channel", channel)
    cli = cli_json(capsys, "step", "--node", "1", *bus, "--missed-heartbeats", str(MISSED_HEARTBEATS))
    assert cli["clock"] == "joint" and cli["amplitude"] == STEP_AMPLITUDE and abs(cli["start_rad"]) < REST_RAD

    # the in-process executor (lock-step with its own joint, no bus, no host clock)
    inproc = cli_json(capsys, "step", "--preset", "knee")
    # one configuration (the CLI's start is where the joint rests, within REST_RAD of the others' 0)
    assert inproc["config"] == cfg == {**cli["config"], "home_rad": 0.0}

    runs = {"gui": gui, "cli --node": cli, "in-process": inproc}
    with capsys.disabled():
        for name, f in runs.items():
            print(f"\n{name:>10}: rise {f['rise_time_s'] * 1e3:.3f} ms, overshoot {f['overshoot_pct']:.4f} %, "
                  f"settling {f['settling_time_s'] * 1e3:.3f} ms, error {f['steady_state_error_rad'] * 1e6:.1f} urad",
                  end="")
        print()
    for a, b in (("gui", "cli --node"), ("gui", "in-process"), ("cli --node", "in-process")):
        for name in FIGURES:
            assert abs(runs[a][name] - runs[b][name]) <= TOLERANCES[name], (a, b, name, runs[a][name], runs[b][name])
    # and each is the knee's step: the figures are of a response, not of NaN
    assert all(math.isfinite(f[name]) for f in runs.values() for name in FIGURES)
