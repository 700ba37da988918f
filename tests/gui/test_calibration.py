"""The calibration panel on a simulated knee, driven through its widgets with pytest-qt, offscreen.

The motor routine (the drive's own) and the F/T routine run from the panel as jobs and come back as certificates
in its table, checked against the knee's known values; Save to flash after the motor's; the friction routine's gains
saved to a file that ``load_gains`` reads back; refusals (no joint selected, no fixture for kt, a joint in closed
loop for the motor) shown without losing the window. Waits are by condition, generous for a loaded machine.
"""

from __future__ import annotations

import time
import tomllib

import pytest
from PySide6 import QtCore, QtWidgets

from actuator.control.config import load_gains
from actuator.params import load_preset
from tests.gui.test_window import button, click, enable_position, window  # noqa: F401 - the fixture

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
    assert cfg.position.kp == pytest.approx(w.session.clients[1].read_gain("position_kp"))


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


# --- kt, encoders, cogging and friction over temperature from the panel, with short options typed into its fields --
# The GUI's joint is paced to the wall clock; a paced node that falls behind by more than 50 ms resynchronises and
# drops that joint time (virtual_joint.node.MAX_LAG_S). On a saturated machine (load 11 on 2 cores where these were
# written) it dropped seconds: the sweeps came up short of their range, plateaus and heats shorter, and the figures
# off (Kt -1.4 %, cogging at a third, beta 0.057). A run whose joint lost time says nothing of the routine: skipped,
# naming how much was lost (the joint's own clock against the wall's: the verdict itself uses neither).
LOST_S = 0.05


def run_with_options(qtbot, w, name: str, **options: str) -> dict:
    """The routine with ``options`` typed into its fields (the panel shows the routine's own: the CLI's table);
    returns its figures."""
    w.calibration.select(name)
    assert set(options) <= set(w.calibration.option_fields), sorted(w.calibration.option_fields)
    for key, text in options.items():
        w.calibration.set_option(key, text)
    fw = w.session.rig.nodes[1].fw
    joint0, wall0 = fw.t_s, time.perf_counter()
    run_routine(qtbot, w, name)
    lost = (time.perf_counter() - wall0) - (fw.t_s - joint0)
    if lost > LOST_S:
        pytest.skip(f"the paced joint fell {lost:.2f} s behind the wall clock during the {name} routine and dropped "
                    "that time (a saturated machine): its figures are not the routine's")
    return w.calibration.result.outcome.figures


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


def test_kt_from_the_panel(qtbot, window) -> None:  # noqa: F811 - the fixture
    """Three fixture loads (the routine's least) of +-40 N·m. Kt = 1.5 p lambda = 0.11717 N·m/A within the issue's
    3 % (in-process +0.1 %; over the GUI's paced bus on a loaded machine -1.2 .. -1.4 % seen, not explained yet); its
    standard uncertainty under 0.5 %."""
    knee = load_preset("knee")
    f = run_with_options(qtbot, window, "kt", loads="-40,0,40", average_s="0.4", settle_s="0.2")
    assert f["kt_levels"] == 3 and f["kt_load_span_nm"] == pytest.approx(80.0)
    assert f["kt_nm_per_a"] == pytest.approx(knee.torque_constant_nm_per_a, rel=0.03)
    assert f["kt_relative_u"] < 0.005
    assert window.calibration.certificate_values()["kt_nm_per_a"][3] == "pass"


def test_encoders_from_the_panel(qtbot, window) -> None:  # noqa: F811 - the fixture
    """Sweeps over +-0.8 rad at 0.3 rad/s (25 motor turns: +-0.5 rad's 12 leave the fit ill-conditioned). KE_2 =
    1.45e-4 rad: magnified by the flexspline by 1 / (1 - (2 N v / w_n)^2) = +6.2 % at 0.3 rad/s
    (tests/rig/test_encoder_calibration.py: w_n = 249 rad/s; +4.0 % seen in-process), so within 0..+9 %; the motor
    encoder's INL / N (8.7e-5 rad) at k = 1 within 5 % (-0.8 % seen); the GUI's joint has no encoder offset, so the
    output zero is 0 within 3 standard uncertainties (over 1.6 rad gravity's cos term is weakly told from a constant:
    3.8e-3 rad seen, bounded at 1e-2 rad)."""
    knee = load_preset("knee")
    f = run_with_options(qtbot, window, "encoders", range="-0.8,0.8", speed="0.3", settle_s="0.2")
    assert 0.0 < f["ke_amplitudes_rad"][1] / 1.45e-4 - 1.0 < 0.09
    inl = knee.encoders.motor.nonlinearity_rad / knee.reducer.ratio
    assert f["ke_amplitudes_rad"][0] == pytest.approx(inl, rel=0.05)
    assert f["output_zero_u_rad"] < 1e-2 and abs(f["output_zero_rad"]) < 3 * f["output_zero_u_rad"]
    assert f["encoder_ratio"] == pytest.approx(100.0, rel=2e-4)
    assert set(window.calibration.certificate_values()) == {"ke_amplitudes_rad", "ke_phases_rad", "output_zero_rad",
                                                             "motor_zero_rad"}


def test_cogging_from_the_panel(qtbot, window) -> None:  # noqa: F811 - the fixture
    """One motor revolution each way at a cogging frequency of 20 Hz (0.7 rad/s at the motor; at 30 Hz the drive
    torque shows 15 % less of it, at 40 Hz 55 % less: the velocity loop no longer follows). The knee's cogging,
    0.0116 N·m at the motor, within 5 % (the routine's population bound, tests/rig/test_cogging_calibration.py)."""
    f = run_with_options(qtbot, window, "cogging", cogging_hz="20", revolutions="1")
    assert f["cogging_amplitude_nm"] == pytest.approx(load_preset("knee").motor.cogging_harmonics_nm[0], rel=0.05)
    assert f["cogging_periods_per_rev"] == 180


@pytest.fixture
def quick_heat_window(qtbot, tmp_path):
    """The knee with a fortieth of its housing's and a quarter of its winding's thermal mass: two short heats warm
    its grease past the routine's 3 K least span in seconds of the GUI's paced time. The friction law under test,
    beta = 0.043/K and Fc(25 °C) = 11.5 N·m at the output, is the knee's."""
    from actuator.params import PRESETS_DIR
    from gui.session import Connection
    from gui.window import MainWindow
    from tests.gui.test_window import CONNECT_MS

    text = ((PRESETS_DIR / "knee.toml").read_text(encoding="utf-8")
            .replace("housing_capacity_j_per_k = 512.0", "housing_capacity_j_per_k = 12.8")
            .replace("winding_capacity_j_per_k = 16.3", "winding_capacity_j_per_k = 4.0"))
    preset = tmp_path / "knee_quick_heat.toml"
    preset.write_text(text, encoding="utf-8")
    w = MainWindow(Connection(sim=True, preset=str(preset), nodes=(1,), missed_heartbeats=30))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session is not None and w.session.clients[1].alive, timeout=CONNECT_MS)
    yield w
    w.close()


def test_friction_temperature_from_the_panel(qtbot, quick_heat_window) -> None:
    """Two maps of five speeds around one 8 s heat. Fc(T_ref) = 11.5 N·m within 0.3 N·m (the friction map's
    own scatter at 0.2 s plateaus, 0.016 N·m, and the mesh loss's share it carries, +0.1); beta = 0.043/K within 3 of
    its standard uncertainties, which this short run's span gives, bounded at a third of beta."""
    f = run_with_options(qtbot, quick_heat_window, "friction-temperature", maps="2", heat_s="8",
                         speeds="0.05,0.15,0.5,1,1.5", average_s="0.2", settle_s="0.2")
    assert f["friction_temp_span_k"] >= 3.0
    assert f["friction_coulomb_ref_nm"] == pytest.approx(11.5, abs=0.3)
    u = f["friction_beta_u_per_k"]
    assert u < 0.043 / 3 and abs(f["friction_beta_per_k"] - 0.043) < 3 * u
