"""The calibration panel on a simulated knee in lock-step with the GUI (``Connection(lockstep=True)``: a routine's job
owns the joints' clock, so its figures do not depend on the wall clock; with the joint paced to wall time, the
friction run stopped once on a saturated machine, 'plateau 1 did not move'), driven through its widgets with
pytest-qt, offscreen.

The motor routine (the drive's own) and the F/T routine run from the panel as jobs and come back as certificates
in its table, checked against the knee's known values; Save to flash after the motor's; the friction routine's gains
saved to a file that ``load_gains`` reads back; refusals (no joint selected, no fixture for kt, a joint in closed
loop for the motor) shown without losing the window. Waits are by condition, generous for a loaded machine.
"""

from __future__ import annotations

import tomllib

import pytest
from PySide6 import QtCore, QtWidgets

from actuator.control.config import load_gains
from actuator.params import load_preset
from tests.gui.test_calibration_lockstep import window  # noqa: F401 - the fixture: the knee in lock-step
from tests.gui.test_window import button, click, enable_position

RUN_MS = 120_000  # a routine's run on a loaded machine: a safety net, nothing is timed


def run_routine(qtbot, w, name: str) -> None:
    panel = w.calibration
    panel.select(name)
    done = len(w.errors), panel.result
    click(qtbot, w, "calib_run")
    assert panel.running == f"calibrate {name}" and not button(w, "calib_run").isEnabled()
    assert panel.status.text().startswith("running ")
    qtbot.waitUntil(lambda: panel.running is None, timeout=RUN_MS)
    assert (len(w.errors), panel.result) != done and w.errors[done[0]:] == [], w.errors[done[0]:]
    assert panel.result.routine.name == name and button(w, "calib_run").isEnabled()


def test_motor_calibration_from_the_panel(qtbot, window, tmp_path) -> None:  # noqa: F811 - the fixture
    w, knee = window, load_preset("knee")
    qtbot.waitUntil(lambda: w.session.clients[1].state == "idle", timeout=30_000)
    run_routine(qtbot, w, "motor")
    certs, figures = w.calibration.certificate_values(), w.calibration.figure_values()
    assert set(certs) == {"motor_resistance_ohm", "motor_inductance_h", "motor_pole_pairs",
                          "motor_electrical_offset_rad"}
    assert certs["motor_pole_pairs"][0] == "10"
    assert float(figures["motor_resistance_ref_ohm"]) == pytest.approx(knee.motor.phase_resistance_ohm, rel=0.01)
    assert knee.motor.resistance_ref_temp_c == 25.0 and knee.motor.phase_resistance_ohm == 0.1
    assert {v[3] for v in certs.values()} <= {"pass", "not checked"} and w.calibration.verdict.text() == "PASS"
    assert w.calibration.certificates.item(0, 0).toolTip().startswith("drive's own")  # the method
    assert not button(w, "calib_save_gains").isEnabled()  # the motor sets no gains section: the drive keeps it
    assert button(w, "calib_save_flash").isEnabled()
    # the GUI's simulated joint has no flash file: its refusal is shown, and the window carries on
    click(qtbot, w, "calib_save_flash")
    qtbot.waitUntil(lambda: bool(w.errors), timeout=RUN_MS)
    assert w.errors == ["save to flash: node 1: save_to_flash refused by the joint: read_only"]
    assert button(w, "calib_save_flash").isEnabled()
    flash = tmp_path / "node1.toml"
    w.session.rig.nodes[1].fw.flash_path = flash  # now it has one, as a real drive does
    click(qtbot, w, "calib_save_flash")
    qtbot.waitUntil(lambda: "saved to flash" in w.statusBar().currentMessage(), timeout=RUN_MS)
    assert "(save 1)" in w.statusBar().currentMessage() and len(w.errors) == 1
    drive = tomllib.loads(flash.read_text(encoding="utf-8"))["drive"]
    assert drive["pole_pairs"] == 10 and drive["phase_resistance_ohm"] == pytest.approx(float(certs[
        "motor_resistance_ohm"][0]), rel=1e-3)


def test_ft_calibration_from_the_panel(qtbot, window) -> None:  # noqa: F811 - the fixture
    w = window
    run_routine(qtbot, w, "ft")
    certs = w.calibration.certificate_values()
    value, uncertainty, unit, verdict = certs["tool_mass_kg"]
    assert unit == "kg" and verdict == "pass"
    assert float(value) == pytest.approx(load_preset("knee").ft_sensor.tool_mass_kg, rel=0.02)
    assert float(value) == pytest.approx(1.0, rel=0.02) and float(uncertainty) < 0.02
    assert set(certs) == {"ft_bias_force_n", "ft_bias_moment_nm", "tool_mass_kg", "tool_com_m"}
    assert w.calibration.plots.ci.layout.count() == len(w.calibration.result.outcome.panels)
    qtbot.waitUntil(lambda: w.session.clients[1].state == "idle", timeout=30_000)  # left idle, as the CLI leaves it


def test_friction_gains_saved_to_a_file(qtbot, window, tmp_path) -> None:  # noqa: F811 - the fixture
    w = window
    run_routine(qtbot, w, "friction")
    figures = w.calibration.result.outcome.figures
    assert button(w, "calib_save_gains").isEnabled() and not button(w, "calib_save_flash").isEnabled()
    path = tmp_path / "gains.toml"
    w.calibration.save_gains_file(path)
    qtbot.waitUntil(lambda: "saved to" in w.statusBar().currentMessage(), timeout=RUN_MS)
    cfg = load_gains(path)
    assert cfg.impedance.friction_coulomb_nm == pytest.approx(figures["friction_coulomb_nm"])
    assert cfg.impedance.friction_viscous_nm_s_per_rad == pytest.approx(figures["friction_viscous_nm_s_per_rad"])
    # the rest is the joint's: its position gain as read from it
    assert cfg.position.kp == pytest.approx(w.session.submit(w.session.clients[1].read_gain, "position_kp").result(60))


def test_refusals_show_their_message_and_the_window_keeps_working(qtbot, window, monkeypatch) -> None:  # noqa: F811
    w, panel = window, window.calibration
    monkeypatch.setattr(w.session.rig, "fixtures", {})  # a bus rig: no load on the output
    panel.select("kt")
    click(qtbot, w, "calib_run")
    assert "no fixture" in panel.status.text() and "no fixture" in w.statusBar().currentMessage()
    assert panel.running is None and button(w, "calib_run").isEnabled()
    # the motor's calibration starts from idle: refused on a joint in closed loop
    enable_position(qtbot, w)
    panel.select("motor")
    click(qtbot, w, "calib_run")
    assert "closed_loop" in panel.status.text() and "disable it first" in panel.status.text()
    w.actions.disable()
    qtbot.waitUntil(lambda: w.session.clients[1].state == "idle", timeout=30_000)
    w.joints.setCurrentItem(None)
    assert w.current_node() is None
    click(qtbot, w, "calib_run")
    assert "no joint selected" in panel.status.text()
    assert panel.result is None and not any(isinstance(b, QtWidgets.QMessageBox) and b.isVisible()
                                            for b in [w.dialog])
    # still working: the joint answers a gain read through the gains panel
    w.joints.setCurrentItem(w.joints.topLevelItem(0))
    qtbot.mouseClick(button(w, "read_gains"), QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.gains.table.item(0, 1).text() != "", timeout=30_000)
    assert w.session.clients[1].alive


def test_option_fields_are_the_routines_own_and_a_bad_value_is_refused(qtbot, window) -> None:  # noqa: F811
    w, panel = window, window.calibration
    panel.select("encoders")
    assert set(panel.option_fields) == {"speed", "range", "settle_s"}
    panel.select("friction-temperature")
    assert set(panel.option_fields) == {"speeds", "maps", "heat_s", "settle_s", "average_s"}
    panel.set_option("maps", "2.5")
    click(qtbot, w, "calib_run")
    assert "maps = '2.5' is not allowed: a whole number" in panel.status.text()
    assert panel.running is None and panel.result is None
