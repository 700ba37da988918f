"""The sequence panel on a simulated knee (in the GUI's process, paced to the wall clock), driven through its widgets
with pytest-qt, offscreen: a short sequence run with ``jointkit run``'s runner, its verdicts and figures against
results.json, the report's URL, the run in the results database (SQLite and a real PostgreSQL server) and in the
panel's results view, Stop (results.json incomplete, the joint disabled by its own heartbeat), a bad sequence file
and an unusable database shown in a dialog while the window carries on.

The simulated joint is paced to the wall clock here, so nothing asserted depends on it: the limits are ones a busy
machine cannot cross (see ``SEQUENCE``), the joint's watchdog is set long enough that a stalled host does not trip it
(``WATCHDOG_S``), and every wait is for a condition, with a generous safety net.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from firmware_iface.rig.results_db import list_runs
from gui.calibration import VALUE_ROLE, VERDICT_COLORS
from gui.sequence import STEP_COLUMNS
from gui.sequence_run import read_results
from gui.session import Connection
from gui.window import MainWindow
from tests.gui.test_window import CONNECT_MS, button, click

RUN_MS = 120_000  # a short sequence on a loaded machine: a safety net, nothing is timed
# the joint's watchdog during these runs: the host's set-points stalled 300 ms on a saturated machine (test_window's
# fixture), and the paced joint then counts the stall as silence; 5 s is 16 times that, and no step here needs the
# watchdog (the sequence has no fault_reaction step)
WATCHDOG_S = 5.0

# connect, enable, a 0.05 rad position step, disable. The knee's position loop rises in tens of milliseconds (its
# default gains: about 5 Hz of bandwidth, 10-90 % rise ~ 0.35 / 5 Hz = 70 ms); a rise of 0.5 s or an overshoot of
# 50 % would need a loop ten times slower or near instability, which no load on the host makes of a joint that runs
# its own loop. The failing variant asks a rise under 1 ms: 0.05 rad in 1 ms is 50 rad/s, beyond the knee's
# velocity limit, so it fails whatever the machine does
SEQUENCE = """
[sequence]
name = "gui_short"
node = 1
preset = "knee"

[[steps]]
type = "connect"
timeout_s = 60.0

[[steps]]
type = "enable"
mode = "position"
timeout_s = 30.0

[[steps]]
type = "step"
amplitude_rad = 0.05
duration_s = 0.5
limits.rise_time_s = {{ max = {rise_max} }}
limits.overshoot_pct = {{ max = 50.0 }}

[[steps]]
type = "disable"
"""

LONG_HOLD = """
[sequence]
name = "gui_long"
node = 1

[[steps]]
type = "connect"
timeout_s = 60.0

[[steps]]
type = "enable"
mode = "position"
timeout_s = 30.0

[[steps]]
type = "hold"
duration_s = 600.0

[[steps]]
type = "disable"
"""


def write_sequence(tmp_path: Path, text: str, name: str = "short.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def open_window(qtbot, db=None) -> MainWindow:
    # in this process, as test_window's fixture: the test reads the joint's heartbeat state through its client
    w = MainWindow(Connection(sim=True, preset="knee", nodes=(1,), missed_heartbeats=30, in_process=True), db=db)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session is not None and w.session.clients[1].alive, timeout=CONNECT_MS)
    session, c = w.session, w.session.clients[1]
    session.submit(c.write_param, "watchdog_timeout_s", WATCHDOG_S, 30.0).result(60)
    return w


@pytest.fixture
def window_db(qtbot, request):
    w = open_window(qtbot, getattr(request, "param", None))
    yield w
    w.close()


def start(qtbot, w: MainWindow, sequence: Path, out_dir: Path, serial: str) -> None:
    panel = w.sequence
    panel.set_sequence_file(sequence)
    panel.serial.setText(serial)
    panel.out_dir.setText(str(out_dir))
    click(qtbot, w, "seq_run")
    assert panel.running and not button(w, "seq_run").isEnabled() and button(w, "seq_stop").isEnabled()


def run_to_end(qtbot, w: MainWindow, sequence: Path, out_dir: Path, serial: str) -> dict:
    """Run from the panel, wait for the end and for the database view; results.json as written."""
    start(qtbot, w, sequence, out_dir, serial)
    qtbot.waitUntil(lambda: not w.sequence.running, timeout=RUN_MS)
    qtbot.waitUntil(lambda: w.sequence.view is not None or bool(w.errors), timeout=RUN_MS)
    assert w.errors == [], w.errors
    return read_results(out_dir)


def table_column(table: QtWidgets.QTableWidget, header: str, role=QtCore.Qt.ItemDataRole.DisplayRole) -> list:
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    return [table.item(r, headers.index(header)).data(role) for r in range(table.rowCount())]


def test_a_short_sequence_runs_from_the_panel(qtbot, window_db, tmp_path) -> None:
    w, panel = window_db, window_db.sequence
    out = tmp_path / "runs" / "unit-1"
    results = run_to_end(qtbot, w, write_sequence(tmp_path, SEQUENCE.format(rise_max=0.5)), out, "unit-1")
    assert results["verdict"] == "pass" and results["serial"] == "unit-1", [
        (s["name"], s["status"], s.get("error")) for s in results["steps"]]
    assert panel.verdict.text() == "PASS"
    # each step's verdict as results.json has it, and every check's value exactly (the item's data: the text is
    # rounded to 4 digits)
    steps = results["steps"]
    assert table_column(panel.steps, "step") == [s["name"] for s in steps] == ["connect", "enable", "step", "disable"]
    assert table_column(panel.steps, "verdict") == [s["status"] for s in steps] == ["pass"] * 4
    checks = [c for s in steps for c in s["checks"]]
    assert [c["name"] for c in checks] == ["step.rise_time_s", "step.overshoot_pct"]
    assert table_column(panel.checks, "check") == [c["name"] for c in checks]
    assert table_column(panel.checks, "value", VALUE_ROLE) == [c["value"] for c in checks]
    assert table_column(panel.checks, "verdict") == [c["verdict"] for c in checks] == ["pass", "pass"]
    assert panel.progress.value() == panel.progress.maximum() == 4
    # the report, and the URL Open report opens
    report = out / "report.html"
    assert report.is_file() and button(w, "seq_report").isEnabled()
    opened: list[QtCore.QUrl] = []
    panel.open_url = opened.append
    click(qtbot, w, "seq_report")
    assert [u.toLocalFile() for u in opened] == [str(report.resolve())]
    # the database next to the output folder (jointkit run's default), and the results view reading it back
    db = tmp_path / "runs" / "results.db"
    stored = list_runs(db)
    assert [(r["serial"], r["verdict"], r["sequence"]) for r in stored] == [("unit-1", "pass", "gui_short")]
    assert table_column(panel.runs, "serial") == ["unit-1"] and table_column(panel.runs, "verdict") == ["pass"]
    assert "gui_short: yield 100.0 % over 1 runs" in panel.db_label.text()
    # the joint was left as the sequence left it, idle, and the window goes on: it answers a gain read
    assert w.session.clients[1].state == "idle"
    assert w.session.submit(w.session.clients[1].read_gain, "position_kp").result(60) > 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_failing_limit_fails_in_the_panel_and_the_database(qtbot, tmp_path, backend, request) -> None:
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else tmp_path / "line.sqlite"
    w = open_window(qtbot, db)
    try:
        panel = w.sequence
        qtbot.waitUntil(lambda: panel.view is not None or bool(w.errors), timeout=RUN_MS)  # --db: read at once
        assert panel.view["runs"] == [] and panel.runs.rowCount() == 0
        out = tmp_path / "out" / "unit-2"
        results = run_to_end(qtbot, w, write_sequence(tmp_path, SEQUENCE.format(rise_max=0.001)), out, "unit-2")
        assert results["verdict"] == "fail" and results["failed_checks"] == ["step.rise_time_s"]
        assert panel.verdict.text() == "FAIL: failed step.rise_time_s"
        # a check that fails fails its step and the run, and the sequence goes on (a fault or an error stops it)
        assert table_column(panel.steps, "verdict") == [s["status"] for s in results["steps"]] == [
            "pass", "pass", "fail", "pass"]
        # coloured as the calibration panel colours its certificates' verdicts
        assert panel.steps.item(2, STEP_COLUMNS.index("verdict")).background().color().name() == VERDICT_COLORS["fail"]
        assert panel.steps.item(1, STEP_COLUMNS.index("verdict")).background().color().name() == VERDICT_COLORS["pass"]
        rise = next(c for s in results["steps"] for c in s["checks"] if c["name"] == "step.rise_time_s")
        assert rise["value"] > 0.001 and table_column(panel.checks, "verdict")[0] == "fail"
        stored = list_runs(db)
        assert [(r["serial"], r["verdict"], r["failed_checks"]) for r in stored] == [
            ("unit-2", "fail", ["step.rise_time_s"])]
        assert table_column(panel.runs, "id") == [str(stored[0]["id"])]
        assert table_column(panel.runs, "verdict") == ["fail"]
        assert "gui_short: yield 0.0 % over 1 runs" in panel.db_label.text()
        assert not (tmp_path / "out" / "results.db").exists()  # --db, not the default next to the folder
    finally:
        w.close()


def test_stop_mid_run_stores_it_incomplete_and_disables_the_joint(qtbot, window_db, tmp_path) -> None:
    w, panel = window_db, window_db.sequence
    out = tmp_path / "stopped"
    start(qtbot, w, write_sequence(tmp_path, LONG_HOLD, "long.toml"), out, "unit-3")
    c = w.session.clients[1]
    # in the 600 s hold: results.json says enable passed, and the joint is in closed loop
    qtbot.waitUntil(lambda: panel.status.text().startswith("step 3/4: hold"), timeout=RUN_MS)
    qtbot.waitUntil(lambda: c.state == "closed_loop", timeout=RUN_MS)
    assert panel.progress.value() == 2 and panel.progress.maximum() == 4
    assert table_column(panel.steps, "verdict") == ["pass", "pass", "pending", "pending"]  # as results.json has them
    click(qtbot, w, "seq_stop")
    qtbot.waitUntil(lambda: not panel.running, timeout=RUN_MS)
    results = read_results(out)
    assert results["verdict"] == "incomplete" and "interrupted" in results["error"]
    assert [s["status"] for s in results["steps"]] == ["pass", "pass", "running", "pending"]
    assert results["safe_stop"]["1"]["disable_sent"] and results["safe_stop"]["1"]["idle_confirmed"]
    assert panel.verdict.text() == "INCOMPLETE"
    # disabled, by the joint's own heartbeat after the stop
    t_stop = c.heartbeat_t
    qtbot.waitUntil(lambda: c.heartbeat_t > t_stop, timeout=30_000)
    assert c.state == "idle"
    qtbot.waitUntil(lambda: panel.view is not None, timeout=RUN_MS)
    assert table_column(panel.runs, "verdict") == ["incomplete"]


def test_a_bad_sequence_file_is_named_in_a_dialog(qtbot, window_db, tmp_path) -> None:
    w, panel = window_db, window_db.sequence
    bad = write_sequence(tmp_path, SEQUENCE.format(rise_max=0.5).replace('mode = "position"', 'mode = "warp"'),
                         "bad.toml")
    panel.set_sequence_file(bad)
    click(qtbot, w, "seq_run")
    assert not panel.running and button(w, "seq_run").isEnabled()
    text = w.dialog.text()
    assert text.startswith(f"sequence: {bad}: step 2 (enable): mode: 'warp' is not allowed"), text
    assert w.dialog.isVisible() and w.session.clients[1].alive
    # the window goes on: a shipped sequence is still chosen and the joint still answers
    panel.file_box.setCurrentIndex(panel.file_box.findText("demo"))
    assert panel.load().name == "demo"
    assert w.session.submit(w.session.clients[1].read_gain, "position_kp").result(60) > 0


@pytest.mark.parametrize("window_db", ["postgresql://jointkit:s3cret@/jointkit?host=/nonexistent-jointkit"],
                         indirect=True)
def test_an_unusable_database_is_named_and_the_session_goes_on(qtbot, window_db, tmp_path) -> None:
    w, named = window_db, "postgresql://jointkit:***@/jointkit?host=/nonexistent-jointkit"
    qtbot.waitUntil(lambda: bool(w.errors), timeout=RUN_MS)  # read at once: --db was given
    text = w.dialog.text()
    assert named in text and "s3cret" not in text, text
    assert "cannot connect" in text and w.dialog.isVisible()
    assert "not usable" in w.sequence.db_label.text() and w.session.clients[1].alive
    # a run is refused before anything moves, as jointkit run --db refuses it: no results.json, the joint untouched
    out = tmp_path / "refused"
    start(qtbot, w, write_sequence(tmp_path, SEQUENCE.format(rise_max=0.5)), out, "unit-4")
    qtbot.waitUntil(lambda: not w.sequence.running, timeout=RUN_MS)
    assert len(w.errors) == 2 and named in w.errors[1] and "s3cret" not in w.errors[1]
    assert w.dialog.text() == w.errors[1] and w.errors[1].startswith("sequence: ")
    assert not (out / "results.json").exists() and w.session.clients[1].state == "idle"
    assert button(w, "seq_run").isEnabled()
