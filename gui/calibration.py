"""The calibration panel: any routine of ``experiments.calibrations.ROUTINES`` on the current joint, run as a job on
the session's worker with the options its fields give (the routine's own, from the one table
``experiments.calibration_options`` that ``jointkit calibrate``'s options come from; empty: the routine's default),
its result shown as the routine's certificates (judged by its default limits, the same judging
as ``jointkit calibrate``), its figures and its plot panels; the gains it sets saved to a gains file, and the motor's
result (which the drive applies at once) kept in the drive's flash. A result the joint keeps (the F/T bias and tool
load, the F/T compensation matrix, Kt: joint parameters; the friction feed-forwards: gains) is written to the joint
with Write to joint (``calibrations.write_to_joint``, what ``jointkit calibrate --write`` calls: each value read back)
and kept in its flash with Save to flash (the joint's ``save``, what ``--save`` adds); offered only where the
joint's profile has what they write (``write_refusal``), and Write once a result: the F/T bias is composed with the
joint's present one, so a second write would add it again.

What a routine needs of the joint is checked here before anything is sent (``refusal``): a joint selected and
heard, in a state the routine starts from (the drive calibrates its motor from idle; a protocol enables an idle
joint itself or takes over one in closed loop), and the rig's fixture for a routine that loads the output. A routine
that stops (``CalibrationError``, ``FaultError``, ...) shows in the window's status bar and dialog; the joint is left
idle, as the routine leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from actuator.analysis.tuning import default_controller
from actuator.control.config import GAINS, ControllerConfig
from actuator.errors import JointkitError
from actuator.params import load_preset
from firmware_iface.experiments.calibration_options import options_of, parse
from firmware_iface.experiments.calibrations import (
    ROUTINES,
    Routine,
    config_of,
    gains_with,
    joint_gains,
    judged,
    run_on_client,
    write_to_joint,
)
from firmware_iface.files import save_gains
from firmware_iface.protocol.capabilities import missing
from firmware_iface.rig.report import format_value
from gui.gains import read_all

if TYPE_CHECKING:
    from firmware_iface.client import JointClient
    from firmware_iface.experiments.panels import Panel
    from firmware_iface.experiments.segments import Outcome
    from firmware_iface.protocol.profile import Profile
    from gui.context import PanelContext

# a certificate's or a run's verdict; anything else (not checked): no colour. Calibrations give pass and fail, the
# rig's runs also error and incomplete (the sequence panel)
VERDICT_COLORS = {"pass": "#c8e6c9", "fail": "#ffcdd2", "error": "#ffe0b2", "incomplete": "#fff9c4"}
VALUE_ROLE = QtCore.Qt.ItemDataRole.UserRole  # a cell's number as its source has it (the text is rounded)


def row_button(row: QtWidgets.QHBoxLayout, text: str, name: str, slot: Any) -> QtWidgets.QPushButton:
    """A push button named ``name`` (what the tests find it by) at the end of ``row``, calling ``slot``."""
    b = QtWidgets.QPushButton(text, objectName=name)
    b.clicked.connect(slot)
    row.addWidget(b)
    return b


def results_table(name: str, columns: tuple[str, ...]) -> QtWidgets.QTableWidget:
    """A read-only table of results (the calibration's certificates and figures, a sequence's steps and runs)."""
    t = QtWidgets.QTableWidget(0, len(columns), objectName=name)
    t.setHorizontalHeaderLabels(list(columns))
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setStretchLastSection(True)
    return t
CERT_COLUMNS = ("quantity", "value", "uncertainty (k = 1)", "unit", "verdict")
FIGURE_COLUMNS = ("figure", "value", "limits", "verdict")
PLOT_COLORS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f")


@dataclass(frozen=True)
class Calibrated:
    """A routine's result on one joint: the outcome and its judging (``calibrations.judged``)."""

    routine: Routine
    node: int
    outcome: Outcome
    verdict: dict[str, Any]


def states_needed(routine: Routine) -> tuple[str, ...]:
    # the drive's own calibration is entered from idle only; a protocol's walk enables an idle joint in its first
    # segment's mode, or carries on from closed loop
    return ("idle",) if routine.config is None else ("idle", "closed_loop")


def refusal(routine: Routine, client: JointClient | None, fixture: Any) -> str | None:
    """Why ``routine`` cannot start on ``client``'s joint now (None: it can): checked before anything is sent."""
    if client is None:
        return "no joint selected (not connected?)"
    state = client.state if client.alive else None
    need = states_needed(routine)
    if state not in need:
        hint = "; disable it first" if state == "closed_loop" else ""
        return (f"node {client.node_id} is {state or 'silent'}: the {routine.name} routine starts from "
                f"{' or '.join(need)}{hint}")
    if routine.needs_fixture and fixture is None:
        return (f"the {routine.name} routine loads the joint's output: this session has no fixture on node "
                f"{client.node_id} (a rig's load; simulated joints have one, a bus has none)")
    return None


def write_refusal(result: Calibrated, profile: Profile) -> str | None:
    """Why ``result`` cannot be written to a joint of ``profile`` (None: it can): its routine sets joint parameters
    the profile has all of (read and written with a reply), or gains the profile writes live."""
    routine = result.routine
    if routine.joint_params is not None:
        lacking = [n for n in routine.params if n not in profile.sidecar.params] or missing(profile, "parameters")
        if lacking:
            return (f"profile {profile.name} has no {lacking[0]} ({len(lacking)} missing) for the {routine.name} "
                    "result")
        return None
    if joint_gains(routine, result.outcome.figures, profile.gain_names):
        return None
    return f"the {routine.name} result sets no parameter or gain profile {profile.name} writes"


def write_result(client: JointClient, result: Calibrated) -> dict[str, float]:
    """The result's parameters and gains written to the joint, what it reports holding (not saved)."""
    return write_to_joint(client, result.routine, result.outcome.figures, client.profile.gain_names)


def calibrate(client: JointClient, routine: Routine, preset: str, cfg: dict, fixture: Any) -> Calibrated:
    """The routine on the joint and its judging (on the job thread: it waits on the bus for seconds)."""
    outcome = run_on_client(client, routine, load_preset(preset), cfg, fixture)
    return Calibrated(routine, client.node_id, outcome, judged(routine, outcome))


def joint_gains_config(client: JointClient | None, preset: str) -> ControllerConfig:
    """The preset's default gains with the joint's current ones (those its profile reads) on top."""
    cfg = default_controller(preset)
    if client is None:
        return cfg
    sections: dict[str | None, dict[str, float]] = {}
    for name, value in read_all(client).items():
        section, key = GAINS[name]
        sections.setdefault(section, {})[key] = value
    for section, values in sections.items():
        cfg = cfg.replace(section, **values)
    return cfg


def write_gains_file(client: JointClient | None, preset: str, result: Calibrated, path: Path) -> Path:
    """The joint's gains (or the preset's) with the sections the result sets, to the gains file ``path``."""
    save_gains(gains_with(joint_gains_config(client, preset), result.routine, result.outcome.figures), path)
    return path


def result_item(text: str, verdict: str | None = None, *, tooltip: str = "", value: Any = None
                ) -> QtWidgets.QTableWidgetItem:
    """A read-only cell of a results table, coloured by ``verdict``, with the exact ``value`` behind rounded text."""
    item = QtWidgets.QTableWidgetItem(text)
    item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
    if tooltip:
        item.setToolTip(tooltip)
    if verdict in VERDICT_COLORS:
        item.setBackground(QtGui.QBrush(QtGui.QColor(VERDICT_COLORS[verdict])))
    if value is not None:
        item.setData(VALUE_ROLE, value)
    return item


def _limits_text(lo: float | None, hi: float | None) -> str:
    if lo is None:
        return "" if hi is None else f"<= {hi:.4g}"
    return f">= {lo:.4g}" if hi is None else f"{lo:.4g} .. {hi:.4g}"


def scalar_figures(figures: dict[str, Any]) -> dict[str, float]:
    """The figures a table row can show: single finite-or-not numbers (maps and tables are for the plots)."""
    return {k: v for k, v in figures.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class CalibrationPlots(pg.GraphicsLayoutWidget):
    """A routine's plot panels (``experiments.panels.Panel``), one plot a panel, stacked."""

    def show_panels(self, panels: list[Panel]) -> None:
        self.clear()
        for row, panel in enumerate(panels):
            plot = self.addPlot(row=row, col=0)
            plot.setLabel("left", panel.ylabel)
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.addLegend(offset=(-5, 5))
            for i, s in enumerate(panel.series):
                color = PLOT_COLORS[i % len(PLOT_COLORS)]
                if any(m in s.style for m in "o.x+s^"):  # matplotlib's markers: points, no line
                    plot.plot(s.t_s, s.values, pen=None, symbol="o", symbolSize=5, symbolBrush=color,
                              symbolPen=None, name=s.label)
                else:
                    style = QtCore.Qt.PenStyle.DashLine if "--" in s.style else QtCore.Qt.PenStyle.SolidLine
                    plot.plot(s.t_s, s.values, pen=pg.mkPen(color, width=1.5, style=style), name=s.label,
                              connect="finite")
            for value, label in panel.hlines:
                plot.addLine(y=value, pen=pg.mkPen("#9e9e9e", style=QtCore.Qt.PenStyle.DashLine), label=label,
                             labelOpts={"position": 0.05})


class CalibrationPanel(QtWidgets.QGroupBox):
    """Routine, Run, the result (certificates, figures, plots), Save gains… and Save to flash."""

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__("Calibration")
        self.ctx = ctx
        self.result: Calibrated | None = None
        self.result_profile: Profile | None = None  # the protocol of the joint the result is of
        self.written: dict[str, float] | None = None  # what the joint reported holding after Write to joint
        self.running: str | None = None  # the job's name while a routine runs
        layout = QtWidgets.QVBoxLayout(self)
        self.routine_box = QtWidgets.QComboBox(objectName="calib_routine")
        for r in ROUTINES.values():
            self.routine_box.addItem(r.title, r.name)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.routine_box, 1)
        self.run_btn = row_button(row, "Run", "calib_run", self.run)
        layout.addLayout(row)
        self.options_form = QtWidgets.QFormLayout()
        self.option_fields: dict[str, QtWidgets.QLineEdit] = {}
        layout.addLayout(self.options_form)
        self.routine_box.currentIndexChanged.connect(self._show_options)
        self._show_options()
        self.status = QtWidgets.QLabel("no calibration yet", objectName="calib_status")
        self.status.setWordWrap(True)
        self.verdict = QtWidgets.QLabel("", objectName="calib_verdict")
        layout.addWidget(self.status)
        layout.addWidget(self.verdict)
        self.certificates = results_table("calib_certificates", CERT_COLUMNS)
        self.figures = results_table("calib_figures", FIGURE_COLUMNS)
        self.plots = CalibrationPlots()
        self.plots.setObjectName("calib_plots")
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        for w in (self.certificates, self.figures, self.plots):
            split.addWidget(w)
        layout.addWidget(split, 1)
        row = QtWidgets.QHBoxLayout()
        self.save_gains_btn = row_button(row, "Save gains…", "calib_save_gains", self._ask_save_gains)
        self.write_btn = row_button(row, "Write to joint", "calib_write", self.write)
        self.save_flash_btn = row_button(row, "Save to flash", "calib_save_flash", self.save_flash)
        self.save_gains_btn.setToolTip("the joint's gains with the sections this result sets, to a gains file")
        self.write_btn.setToolTip("the parameters (F/T bias, F/T compensation, Kt) or feed-forward gains this result "
                                  "sets, written to the joint and read back (jointkit calibrate --write)")
        self.save_flash_btn.setToolTip("keep the motor calibration the drive applied, or the result written to the "
                                       "joint, in its flash (--save)")
        layout.addLayout(row)
        self._enable_buttons()
        ctx.jobs.changed.connect(self._jobs_changed)

    def routine(self) -> Routine:
        return ROUTINES[self.routine_box.currentData()]

    def select(self, name: str) -> None:
        self.routine_box.setCurrentIndex(self.routine_box.findData(name))

    # --- options --------------------------------------------------------------------------------------------
    def _show_options(self) -> None:
        """One field per option of the selected routine (``calib_opt_NAME``), empty: the routine's default."""
        while self.options_form.rowCount():
            self.options_form.removeRow(0)
        self.option_fields = {}
        for option in options_of(self.routine().name):
            field = QtWidgets.QLineEdit(objectName=f"calib_opt_{option.name}")
            field.setPlaceholderText("default")
            field.setToolTip(f"{option.help}" + (f" ({option.unit})" if option.unit else ""))
            label = option.name.replace("_", " ") + (f" ({option.unit})" if option.unit else "")
            self.options_form.addRow(label, field)
            self.option_fields[option.name] = field

    def set_option(self, name: str, text: str) -> None:
        self.option_fields[name].setText(text)

    def options(self) -> dict[str, Any]:
        """The routine's configuration keywords from the fields filled in (``ConfigError`` for a value that is not
        of the option's kind, naming it)."""
        routine = self.routine().name
        out = {}
        for option in options_of(routine):
            text = self.option_fields[option.name].text().strip()
            if text:
                out[option.keys[routine]] = parse(option, text)
        return out

    # --- run ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        routine = self.routine()
        what = f"calibrate {routine.name}"
        client = self.ctx.current_client()
        fixture = self.ctx.fixture(client.node_id) if client is not None else None
        why = refusal(routine, client, fixture)
        self.result_profile = client.profile if client is not None else None
        try:
            if why is not None:
                raise JointkitError(why)
            # checked before anything is sent
            cfg = config_of(routine, load_preset(self.ctx.preset()), **self.options())
        except JointkitError as e:
            self.status.setText(f"{routine.title} refused: {e}")
            self.ctx.show_error(what, e)
            return
        self.ctx.actions.hand_over(client.node_id)  # the routine sends its own set-points
        self.running = what
        self.status.setText(f"running {routine.title} on node {client.node_id}…")
        self._enable_buttons()
        try:
            self.ctx.jobs.run(what, calibrate, client, routine, self.ctx.preset(), cfg, fixture,
                              on_done=self.show_result, on_error=self._failed)
        except (JointkitError, RuntimeError) as e:  # the session closed meanwhile: its worker takes no job
            self._failed(e)

    def _failed(self, error: BaseException) -> None:
        what, self.running = self.running or "calibrate", None
        self.status.setText(f"{what.removeprefix('calibrate ')} stopped: {error}")
        self._enable_buttons()
        self.ctx.show_error(what, error, dialog=True)

    def _jobs_changed(self) -> None:
        # a job cancelled with its session (disconnect) reports nothing: Run comes back all the same
        if self.running is not None and self.running not in self.ctx.jobs.busy:
            self.running = None
            self.status.setText("calibration ended without a result (the session closed)")
        self._enable_buttons()  # Write to joint and Save to flash wait for each other's job

    def _enable_buttons(self) -> None:
        idle, r = self.running is None, self.result
        self.run_btn.setEnabled(idle)
        self.routine_box.setEnabled(idle)
        for field in self.option_fields.values():
            field.setEnabled(idle)
        self.save_gains_btn.setEnabled(idle and r is not None and r.routine.gains is not None)
        profile = self.result_profile
        writable = r is not None and profile is not None and write_refusal(r, profile) is None
        # written once only: the F/T bias is composed with the joint's present one, a second write would add it again
        idle = idle and not {"write to joint", "save to flash"} & set(self.ctx.jobs.busy)
        self.write_btn.setEnabled(idle and writable and self.written is None)
        kept = writable and self.written is not None and not missing(profile, "flash")
        self.save_flash_btn.setEnabled(idle and r is not None and (r.routine.config is None or kept))

    # --- result ---------------------------------------------------------------------------------------------
    def show_result(self, result: Calibrated) -> None:
        self.running, self.result, self.written = None, result, None
        self._enable_buttons()
        v = result.verdict
        self._fill_certificates(v["certificates"])
        self._fill_figures(result.outcome.figures, v["checks"])
        self.plots.show_panels(result.outcome.panels)
        failed = f": failed {', '.join(v['failed'])}" if v["failed"] else ""
        self.verdict.setText(f"{v['verdict'].upper()}{failed}")
        self.verdict.setStyleSheet(f"background: {VERDICT_COLORS[v['verdict']]}; font-weight: bold; padding: 2px")
        where = f"{result.routine.title} on node {result.node}"
        kept = " (applied by the drive: Save to flash keeps it)" if result.routine.config is None else ""
        self.status.setText(f"{where}: {v['verdict']}{kept}")
        self.ctx.status(f"{where}: {v['verdict']}{failed}")

    def _fill_certificates(self, certs: list[dict[str, Any]]) -> None:
        t = self.certificates
        t.setRowCount(len(certs))
        for i, c in enumerate(certs):
            limits = "; ".join(f"{f} {_limits_text(lim['min'], lim['max'])}" for f, lim in (c["limits"] or {}).items())
            tip = c["method"] + (f"\nlimits: {limits}" if limits else "")
            cells = (c["quantity"], format_value(c["value"]), format_value(c["uncertainty"]), c["unit"], c["verdict"])
            for j, text in enumerate(cells):
                t.setItem(i, j, result_item(text, c["verdict"] if j == len(cells) - 1 else None, tooltip=tip))
        t.resizeColumnsToContents()

    def _fill_figures(self, figures: dict[str, Any], checks: dict[str, dict[str, Any]]) -> None:
        # the limited figures first, with their verdicts; then every other single-number figure
        rows = [(n, c["value"], _limits_text(c["min"], c["max"]), c["verdict"]) for n, c in checks.items()]
        rows += [(n, v, "", "") for n, v in scalar_figures(figures).items() if n not in checks]
        t = self.figures
        t.setRowCount(len(rows))
        for i, (name, value, limits, verdict) in enumerate(rows):
            for j, text in enumerate((name, format_value(value), limits, verdict)):
                t.setItem(i, j, result_item(text, verdict if j == 3 else None))
        t.resizeColumnsToContents()

    def certificate_values(self) -> dict[str, tuple[str, str, str, str]]:
        """The certificates table as shown: quantity -> (value, uncertainty, unit, verdict)."""
        return {self.certificates.item(i, 0).text(): tuple(self.certificates.item(i, j).text() for j in range(1, 5))
                for i in range(self.certificates.rowCount())}

    def figure_values(self) -> dict[str, str]:
        """The figures table as shown: figure -> value."""
        return {self.figures.item(i, 0).text(): self.figures.item(i, 1).text() for i in range(self.figures.rowCount())}

    # --- saving ---------------------------------------------------------------------------------------------
    def save_gains_file(self, path: Path) -> None:
        """Write the joint's current gains (the preset's where the joint is not the current one) with the sections
        the result sets to the gains file ``path`` (a job: the joint's gains are read over the bus)."""
        r = self.result
        if r is None or r.routine.gains is None:
            self.ctx.status("calibration: no result that sets gains")
            return
        client = self.ctx.current_client()
        if client is not None and client.node_id != r.node:
            client = None  # another joint's gains are not this result's joint's
        source = f"node {r.node}'s gains" if client is not None else f"the {self.ctx.preset()} preset's gains"
        self.ctx.jobs.run("save calibration gains", write_gains_file, client, self.ctx.preset(), r, Path(path),
                          on_done=lambda p: self.ctx.status(f"{source} with the {r.routine.name} result saved to {p}"),
                          on_error=lambda e: self.ctx.show_error("save calibration gains", e, dialog=True))

    def _ask_save_gains(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save gains", "gains.toml", "Gains (*.toml)")
        if path:
            self.save_gains_file(Path(path))

    def _result_client(self, what: str) -> JointClient | None:
        """The current joint if the result is of it (else None, said in the status bar)."""
        r, client = self.result, self.ctx.current_client()
        if r is None or client is None or client.node_id != r.node:
            self.ctx.status(f"{what}: select the joint the calibration ran on")
            return None
        return client

    def write(self) -> None:
        """Write to joint: the result's parameters or gains, read back (a job)."""
        r, client = self.result, self._result_client("write to joint")
        if r is None or client is None:
            return
        why = write_refusal(r, client.profile)
        if why is not None:
            self.ctx.show_error("write to joint", JointkitError(why))
            return
        self.ctx.jobs.run("write to joint", write_result, client, r,
                          on_done=lambda values: self._written(r, values))

    def _written(self, result: Calibrated, values: dict[str, float]) -> None:
        if result is not self.result:
            return  # a newer result came meanwhile: Save to flash is for that one once written
        self.written = values
        self._enable_buttons()
        self.ctx.status(f"node {result.node}: {result.routine.name} result written to the joint, {len(values)} "
                        "value(s) read back (not saved: Save to flash keeps them)")

    def save_flash(self) -> None:
        r, client = self.result, self._result_client("save to flash")
        if r is None or client is None:
            return
        # the joint's save, as write_to_joint's --save ends: the motor's result the drive applied, or the one written
        what = "motor calibration" if r.routine.config is None else f"{r.routine.name} result"
        self.ctx.jobs.run("save to flash", client.save,
                          on_done=lambda n: self.ctx.status(f"node {r.node}: {what} saved to flash (save {n})"))
