"""The sequence panel: a rig sequence (a shipped one of seeds/sequences or any file) run on the selected joint with
the runner of ``jointkit run`` (``gui.sequence_run``), its progress and each step's verdict as they come, the run's
verdict, its report, and the results database it is appended to with that database's yield and latest runs.

Progress comes from DIR/results.json, which the runner rewrites whole after every step: the panel reads it on a
timer while the run's job is on the session's worker. The set-point streamer leaves the joint alone while the
sequence runs (the runner streams its own set-points and holds the joint between steps). Stop interrupts as Ctrl-C
interrupts ``jointkit run``: the run is stored ``incomplete`` and the joint disabled.

The database is ``jointkit gui --db FILE|URL``, else results.db next to the output folder (``jointkit run``'s
default). It is appended to and read on a thread of the panel's own, never the GUI's; a database that cannot be used
shows in a dialog naming it (a password as ***) and the session goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtGui, QtWidgets

from actuator.errors import ConfigError, JointkitError
from actuator.paths import SEEDS_DIR
from firmware_iface.rig.report import format_value
from firmware_iface.rig.results_db import display
from firmware_iface.rig.runner import default_out_dir
from firmware_iface.rig.sequence import Sequence, load_sequence
from gui.calibration import VERDICT_COLORS, result_item, results_table, row_button
from gui.sequence_run import RunRequest, StopClock, read_results, run_on_session, store

if TYPE_CHECKING:
    from firmware_iface.rig.rig import Rig
    from gui.context import PanelContext

PROGRESS_MS = 200  # results.json read this often while a run goes on: a step lasts a second or more
STEP_COLUMNS = ("step", "type", "verdict", "duration (s)")
CHECK_COLUMNS = ("check", "value", "verdict", "limits", "unit")  # the verdict where a narrow dock shows it
RUN_COLUMNS = ("id", "verdict", "serial", "sequence", "started (UTC)")
OPEN_OTHER = "Open…"


def shipped_sequences() -> list[Path]:
    return sorted((SEEDS_DIR / "sequences").glob("*.toml"))


def _fill(table: QtWidgets.QTableWidget, rows: list[list[QtWidgets.QTableWidgetItem]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, item in enumerate(row):
            table.setItem(r, c, item)
    table.resizeColumnsToContents()  # a narrow dock: names and verdicts whole, the table scrolls sideways
    table.resizeRowsToContents()


def _limits_text(check: dict) -> str:
    lo, hi = check.get("min"), check.get("max")
    if lo is None:
        return "" if hi is None else f"<= {hi:.4g}"
    return f">= {lo:.4g}" if hi is None else f"{lo:.4g} .. {hi:.4g}"


def yield_text(summary: dict) -> str:
    """The database's runs per verdict, and each sequence's yield as ``results_db.summary`` gives it."""
    totals = ", ".join(f"{n} {k}" for k, n in summary["verdicts"].items())
    lines = [f"{summary['runs']} runs ({totals})"]
    for g in summary["sequences"]:
        y = f"{100.0 * g['yield']:.1f} %" if g["yield"] is not None else f"none ({g['yield_reason']})"
        lines.append(f"{g['sequence']}: yield {y} over {g['runs']} runs")
    return "\n".join(lines)


class SequencePanel(QtWidgets.QGroupBox):
    """Sequence file, serial number, output folder, Run and Stop; the steps, the checks, the verdict, Open report;
    the database's yield and latest runs."""

    def __init__(self, ctx: PanelContext, rig: Callable[[], Rig | None], db: str | Path | None = None) -> None:
        super().__init__("Sequence")
        self.ctx, self._rig, self.db = ctx, rig, db
        self.stop_clock: StopClock | None = None
        self.request: RunRequest | None = None
        self.results: dict | None = None  # the last run's results.json
        self.view: dict | None = None  # the database's summary and runs, as last read
        self.open_url: Callable[[QtCore.QUrl], Any] = QtGui.QDesktopServices.openUrl  # injectable (tests)
        self._stale_start: str | None = None  # the started_utc of a results.json already in the folder
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-results-db")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(self._build_form())
        row = QtWidgets.QHBoxLayout()
        self.run_btn = row_button(row, "Run", "seq_run", self.run)
        self.stop_btn = row_button(row, "Stop", "seq_stop", self.stop)
        self.report_btn = row_button(row, "Open report", "seq_report", self.open_report)
        layout.addLayout(row)
        self.status = QtWidgets.QLabel("no run yet", objectName="seq_status")
        self.status.setWordWrap(True)
        self.progress = QtWidgets.QProgressBar(objectName="seq_progress")
        self.verdict = QtWidgets.QLabel("", objectName="seq_verdict")
        for w in (self.status, self.progress, self.verdict):
            layout.addWidget(w)
        self.steps = results_table("seq_steps", STEP_COLUMNS)
        self.checks = results_table("seq_checks", CHECK_COLUMNS)
        self.db_label = QtWidgets.QLabel("", objectName="seq_db")
        self.db_label.setWordWrap(True)
        self.runs = results_table("seq_runs", RUN_COLUMNS)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        for w in (self.steps, self.checks, self.db_label, self.runs):
            split.addWidget(w)
        layout.addWidget(split, 1)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(PROGRESS_MS)
        self._timer.timeout.connect(self.poll_progress)
        self._enable_buttons()
        self._show_db_target()
        ctx.jobs.changed.connect(self._jobs_changed)
        if db is not None:  # the database asked for: its figures at once, or why it cannot be used
            self.refresh_view()

    def _build_form(self) -> QtWidgets.QFormLayout:
        form = QtWidgets.QFormLayout()
        self.file_box = QtWidgets.QComboBox(objectName="seq_file")
        for path in shipped_sequences():
            self.file_box.addItem(path.stem, str(path))
        self.file_box.addItem(OPEN_OTHER, None)
        self.file_box.activated.connect(self._file_chosen)
        self.serial = QtWidgets.QLineEdit(objectName="seq_serial", placeholderText="none")
        self.out_dir = QtWidgets.QLineEdit(objectName="seq_out", placeholderText="out/run-SERIAL (or out/run-TIME)")
        self.out_dir.textChanged.connect(self._show_db_target)
        self.serial.textChanged.connect(self._show_db_target)
        form.addRow("sequence", self.file_box)
        form.addRow("serial number", self.serial)
        form.addRow("output folder", self.out_dir)
        return form

    # --- choices --------------------------------------------------------------------------------------------
    def set_sequence_file(self, path: str | Path) -> None:
        """Choose ``path`` (added to the list when it is not a shipped sequence)."""
        index = self.file_box.findData(str(path))
        if index < 0:
            index = self.file_box.count() - 1  # before Open…
            self.file_box.insertItem(index, Path(path).name, str(path))
        self.file_box.setCurrentIndex(index)

    def _file_chosen(self, index: int) -> None:
        if self.file_box.itemData(index) is not None:
            return
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Sequence file", str(SEEDS_DIR / "sequences"),
                                                        "sequences (*.toml);;all files (*)")
        if path:
            self.set_sequence_file(path)
        else:
            self.file_box.setCurrentIndex(0)

    def run_dir(self) -> Path:
        text = self.out_dir.text().strip()
        return Path(text) if text else default_out_dir(self.serial.text().strip() or None)

    def db_target(self) -> str | Path:
        """``--db`` when given, else results.db next to the output folder (``jointkit run``'s default)."""
        return self.db if self.db is not None else self.run_dir().parent / "results.db"

    def _show_db_target(self) -> None:
        if self.view is None:
            self.db_label.setText(f"database: {display(self.db_target())}")

    # --- run ------------------------------------------------------------------------------------------------
    def load(self) -> Sequence:
        path = self.file_box.currentData()
        if path is None:
            raise ConfigError("no sequence file chosen")
        client = self.ctx.current_client()
        return load_sequence(path, client.profile if client is not None else None)

    def run(self) -> None:
        client, session_rig = self.ctx.current_client(), self._rig()
        try:
            if client is None or session_rig is None:
                raise JointkitError("no joint selected (not connected?)")
            seq = self.load()  # a bad file is refused before anything is sent, naming file, step and key
        except JointkitError as e:
            self.status.setText(f"sequence refused: {e}")
            self.ctx.show_error("sequence", e, dialog=True)
            return
        out_dir = self.run_dir()
        self.request = RunRequest(seq, client.node_id, out_dir, self.serial.text().strip() or None, self.db_target())
        self.stop_clock = StopClock()
        old = read_results(out_dir)
        self._stale_start = old.get("started_utc") if old else None
        self.results = None
        self._show_steps([{"name": s.name, "type": s.type, "status": "pending", "duration_s": None}
                          for s in seq.steps])
        self.checks.setRowCount(0)
        self.progress.setRange(0, len(seq.steps))
        self.progress.setValue(0)
        self.verdict.setText("")
        self.verdict.setStyleSheet("")
        self.status.setText(f"running {seq.name} on node {client.node_id} into {out_dir}…")
        self.ctx.actions.hand_over(client.node_id)  # the runner streams its own set-points
        self._timer.start()
        self._enable_buttons()
        try:
            self.ctx.jobs.run(self._job_name(), run_on_session, session_rig, self.request, self.stop_clock,
                              on_done=self.finished, on_error=self._failed)
        except (JointkitError, RuntimeError) as e:  # the session closed meanwhile: its worker takes no job
            self._failed(e)

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def _job_name(self) -> str:
        return f"sequence {self.request.sequence.name}" if self.request is not None else ""

    def _jobs_changed(self) -> None:
        # a job cancelled with its session (disconnect) reports nothing: Run comes back all the same
        if self.running and self._job_name() not in self.ctx.jobs.busy:
            self._timer.stop()
            self.status.setText("the sequence ended without a result (the session closed)")
            self._enable_buttons()

    def stop(self) -> None:
        if self.stop_clock is not None and self.running:
            self.stop_clock.stop()
            self.status.setText("stopping: the joint is disabled and the run stored incomplete…")

    def _failed(self, error: BaseException) -> None:
        self._timer.stop()
        self.status.setText(f"sequence not run: {error}")
        self._enable_buttons()
        self.ctx.show_error("sequence", error, dialog=True)

    def poll_progress(self) -> None:
        """The steps as far as results.json says (a file of an earlier run in the same folder is not this run's)."""
        if self.request is None:
            return
        results = read_results(self.request.out_dir)
        if results is None or results.get("started_utc") == self._stale_start:
            return
        steps = results["steps"]
        done = sum(s["status"] not in ("pending", "running") for s in steps)
        self.progress.setValue(done)
        current = next((s["name"] for s in steps if s["status"] in ("pending", "running")), None)
        if current is not None and not self.stop_clock.requested:
            self.status.setText(f"step {done + 1}/{len(steps)}: {current}")
        self._show_steps(steps)

    def finished(self, results: dict) -> None:
        """The run ended (passed, failed, errored or stopped): results.json shown as written, then stored."""
        self._timer.stop()
        shown = read_results(self.request.out_dir) or results
        self.results = shown
        self._show_steps(shown["steps"])
        self.progress.setValue(sum(s["status"] not in ("pending", "running") for s in shown["steps"]))
        self._show_checks(shown)
        v = shown["verdict"]
        failed = f": failed {', '.join(shown['failed_checks'])}" if shown["failed_checks"] else ""
        self.verdict.setText(f"{v.upper()}{failed}")
        self.verdict.setStyleSheet(f"background: {VERDICT_COLORS.get(v, '#eeeeee')}; font-weight: bold; padding: 2px")
        error = f" ({shown['error']})" if shown.get("error") else ""
        self.status.setText(f"{shown['sequence']['name']} on node {self.request.node}: {v}{error}; "
                            f"report in {self.request.out_dir}")
        self.ctx.status(f"sequence {shown['sequence']['name']}: {v}")
        self._enable_buttons()
        self.refresh_view(results)

    def _show_steps(self, steps: list[dict]) -> None:
        rows = []
        for s in steps:
            status = s["status"]
            duration = "" if s.get("duration_s") is None else f"{s['duration_s']:.2f}"
            name = result_item(s["name"], status)
            if s.get("error"):
                name.setToolTip(s["error"])
            rows.append([name, result_item(s["type"]), result_item(status, status), result_item(duration)])
        _fill(self.steps, rows)

    def _show_checks(self, results: dict) -> None:
        rows = [[result_item(c["name"]), result_item(format_value(c["value"]), value=c["value"]),
                 result_item(c["verdict"], c["verdict"]), result_item(_limits_text(c)),
                 result_item(c.get("unit") or "")]
                for s in results["steps"] for c in s["checks"]]
        _fill(self.checks, rows)

    def _enable_buttons(self) -> None:
        idle = not self.running
        for w in (self.run_btn, self.file_box, self.serial, self.out_dir):
            w.setEnabled(idle)
        self.stop_btn.setEnabled(not idle)
        self.report_btn.setEnabled(idle and self.report_path() is not None)

    # --- report ---------------------------------------------------------------------------------------------
    def report_path(self) -> Path | None:
        if self.request is None or self.results is None:
            return None
        path = self.request.out_dir / self.results["outputs"]["report"]
        return path if path.is_file() else None

    def report_url(self) -> QtCore.QUrl | None:
        path = self.report_path()
        return None if path is None else QtCore.QUrl.fromLocalFile(str(path.resolve()))

    def open_report(self) -> None:
        url = self.report_url()
        if url is not None:
            self.open_url(url)

    # --- results database -----------------------------------------------------------------------------------
    def refresh_view(self, results: dict | None = None) -> None:
        """Append ``results`` (a run just ended) to the database and read back its yield and latest runs, on the
        panel's database thread."""
        db = self.request.db if results is not None and self.request is not None else self.db_target()
        if db is None:
            return
        self.view = None  # until read again
        self.db_label.setText(f"database: {display(db)}: {'storing the run' if results else 'reading'}…")
        self.ctx.jobs.run("results database", store, db, results, on_done=self.show_view,
                          on_error=lambda e: self._db_failed(db, e), submit=self._db_thread.submit)

    def _db_failed(self, db: str | Path, error: BaseException) -> None:
        self.db_label.setText(f"database: {display(db)}: not usable")
        # the store's errors name the database already; any other is named here
        what = "results database" if isinstance(error, JointkitError) else f"results database {display(db)}"
        self.ctx.show_error(what, error, dialog=True)

    def show_view(self, view: dict) -> None:
        self.view = view
        self.db_label.setText(f"database: {view['db']}: {yield_text(view['summary'])}")
        _fill(self.runs, [[result_item(str(r["id"])), result_item(r["verdict"], r["verdict"]),
                           result_item(r["serial"] or ""), result_item(r["sequence"]),
                           result_item((r["started_utc"] or "")[:19])] for r in view["runs"]])

    def close_threads(self) -> None:
        self.stop()
        self._db_thread.shutdown(wait=False, cancel_futures=True)


