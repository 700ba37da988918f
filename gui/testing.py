"""The tests panel: step and chirp tests over the bus (``firmware_iface.client.experiments``), their results
plotted with their metrics, a Bode plot, and auto-tune showing the predicted response of the proposed gains
against the joint's measured one, applied only when the user accepts.

A test runs as a job (it streams its own 1 kHz set-points for seconds), the set-point streamer leaves that joint
alone meanwhile, and the joint is idle afterwards, as the bus tests leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from actuator.analysis.experiments import chirp_amplitude
from actuator.analysis.step import StepMetrics
from actuator.control.config import CASCADE_GAINS, gain_of
from actuator.params import load_preset
from firmware_iface.client.experiments import BusRun, bus_bode_test, bus_step_test

if TYPE_CHECKING:
    from actuator.analysis.frequency import FrequencyResponse
    from actuator.analysis.tuning import TuneResult
    from firmware_iface.client import JointClient
    from gui.window import MainWindow

COHERENT = 0.9  # Bode bins shown: coherence above this (the rest is noise or leakage)


def format_metrics(m: StepMetrics, unit: str) -> str:
    return (f"rise {m.rise_time_s * 1e3:.1f} ms · overshoot {m.overshoot_pct:.1f} % · "
            f"settling {m.settling_time_s * 1e3:.0f} ms · error {m.steady_state_error:.2g} {unit}")


@dataclass
class Proposal:
    """An auto-tune proposal: the designed gains, their predicted closed loop, and the joint's measured one."""

    result: TuneResult
    gains: dict[str, float]
    measured: FrequencyResponse
    measured_bandwidth_hz: float
    run: BusRun | None = None  # the chirp as it went over the bus (with the set-points the joint tracked)


def propose(client: JointClient, preset: str, bandwidth_hz: float) -> Proposal:
    """Design on the preset's model (verified in simulation), and measure the joint's loop as it is now."""
    from actuator.analysis.tuning import tune_model

    params = load_preset(preset)
    result = tune_model(params, bandwidth_hz)
    f1 = min(250.0, 3.0 * bandwidth_hz)
    fr, bw, run = bus_bode_test(client, "position", max(0.5, 0.2 * bandwidth_hz), f1,
                                amplitude=chirp_amplitude(params, f1, "position"))
    return Proposal(result, {n: gain_of(result.config, n) for n in CASCADE_GAINS}, fr, bw, run)


class BodePlot(pg.GraphicsLayoutWidget):
    """Magnitude (dB) and phase (deg) against log frequency; ``show`` replaces the curves of a name."""

    def __init__(self) -> None:
        super().__init__()
        self.mag = self.addPlot(row=0, col=0, title="closed loop")
        self.phase = self.addPlot(row=1, col=0)
        for p, label in ((self.mag, "dB"), (self.phase, "deg")):
            p.setLogMode(x=True, y=False)
            p.showGrid(x=True, y=True, alpha=0.3)
            p.setLabel("left", label)
        self.phase.setLabel("bottom", "frequency", "Hz")
        self.phase.setXLink(self.mag)
        self.mag.addLegend(offset=(-5, 5))
        self.curves: dict[str, tuple[Any, Any]] = {}

    def show_response(self, name: str, f_hz: np.ndarray, mag_db: np.ndarray, phase_deg: np.ndarray | None,
                      color: str) -> None:
        old = self.curves.pop(name, None)
        if old is not None:
            self.mag.removeItem(old[0])
            if old[1] is not None:
                self.phase.removeItem(old[1])
        mag = self.mag.plot(f_hz, mag_db, pen=pg.mkPen(color, width=2), name=name)
        ph = None if phase_deg is None else self.phase.plot(f_hz, phase_deg, pen=pg.mkPen(color, width=2))
        self.curves[name] = (mag, ph)


class TestsPanel(QtWidgets.QGroupBox):
    def __init__(self, window: MainWindow) -> None:
        super().__init__("Tests")
        self.window = window
        self.last_metrics: StepMetrics | None = None
        self.last_bandwidth_hz: float | None = None
        self.last_chirp: BusRun | None = None  # the latest chirp's run: what was sent and what the joint tracked
        self.proposal: Proposal | None = None
        layout = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QFormLayout()
        self.loop = QtWidgets.QComboBox(objectName="test_loop")
        self.loop.addItems(("position", "velocity"))
        self.amplitude = QtWidgets.QDoubleSpinBox(objectName="step_amplitude", decimals=3, minimum=-2.0, maximum=2.0,
                                                  value=0.1, singleStep=0.05)
        self.f0 = QtWidgets.QDoubleSpinBox(objectName="chirp_f0", decimals=2, minimum=0.1, maximum=100, value=1.0,
                                           suffix=" Hz")
        self.f1 = QtWidgets.QDoubleSpinBox(objectName="chirp_f1", decimals=1, minimum=1, maximum=250, value=20.0,
                                           suffix=" Hz")
        self.bandwidth = QtWidgets.QDoubleSpinBox(objectName="tune_bandwidth", decimals=1, minimum=0.5, maximum=50,
                                                  value=4.0, suffix=" Hz")
        form.addRow("loop", self.loop)
        form.addRow("step amplitude", self.amplitude)
        form.addRow("chirp from", self.f0)
        form.addRow("chirp to", self.f1)
        form.addRow("tune bandwidth", self.bandwidth)
        layout.addLayout(form)
        row = QtWidgets.QHBoxLayout()
        for text, name, slot in (("Step", "step", self.step), ("Chirp", "chirp", self.chirp),
                                 ("Auto-tune…", "autotune", self.autotune)):
            b = QtWidgets.QPushButton(text, objectName=name)
            b.clicked.connect(slot)
            row.addWidget(b)
        layout.addLayout(row)
        self.metrics = QtWidgets.QLabel("no test yet", objectName="metrics")
        self.metrics.setWordWrap(True)
        layout.addWidget(self.metrics)
        self.step_plot = pg.PlotWidget(title="step response")
        self.step_plot.setLabel("bottom", "time from step", "s")
        self.step_plot.addLegend(offset=(-5, 5))
        self.step_plot.showGrid(x=True, y=True, alpha=0.3)
        self.step_plot.setMinimumHeight(180)
        layout.addWidget(self.step_plot)
        self.bode = BodePlot()
        self.bode.setMinimumHeight(220)
        layout.addWidget(self.bode)

    def _client(self) -> JointClient | None:
        client = self.window.current_client()
        if client is not None:
            self.window.actions.hand_over(client.node_id)  # the test streams its own set-points
        return client

    # --- step ------------------------------------------------------------------------------------------------
    def step(self) -> None:
        client = self._client()
        if client is None:
            return
        loop, amplitude = self.loop.currentText(), self.amplitude.value()
        start = 0.0 if loop == "velocity" else client.latest().get("telemetry.position_rad", 0.0)
        self.metrics.setText(f"step test of {amplitude:g} on node {client.node_id} running…")
        self.window.jobs.run("step test", bus_step_test, client, loop, amplitude, 1.0, 0.05, start,
                             on_done=lambda r: self.show_step(r[0], r[1], loop, client.node_id))

    def show_step(self, m: StepMetrics, run: BusRun, loop: str, node: int) -> None:
        self.last_metrics = m
        unit = "rad/s" if loop == "velocity" else "rad"
        y = run.velocity_rad_s if loop == "velocity" else run.position_rad
        # time from the stepped command: the run's clock starts before the move to the test's start
        t0 = float(run.command_t_s[np.argmax(run.reference == m.final_reference)])
        self.step_plot.clear()
        self.step_plot.plot(run.command_t_s - t0, run.reference, pen=pg.mkPen("#9e9e9e", width=2), name="set-point")
        self.step_plot.plot(run.t_s - t0, y, pen=pg.mkPen("#1565c0", width=2), name="response")
        band = 0.02 * abs(m.step_size)
        for level in (m.final_reference - band, m.final_reference + band):
            self.step_plot.addLine(y=level, pen=pg.mkPen("#2e7d32", style=pg.QtCore.Qt.PenStyle.DashLine))
        self.step_plot.addLine(x=m.rise_time_s, pen=pg.mkPen("#ef6c00"), label="rise", labelOpts={"position": 0.1})
        self.step_plot.addLine(x=m.settling_time_s, pen=pg.mkPen("#6a1b9a"), label="settled",
                               labelOpts={"position": 0.2})
        self.step_plot.setXRange(-0.05, max(0.3, 1.5 * m.settling_time_s))
        live = self.window.board.plot("velocity" if loop == "velocity" else "position")
        live.set_overlay(f"{node}:test", run.command_t_s + run.start_s, run.reference, f"n{node} test set-point")
        text = f"step {m.step_size:g} {unit}: " + format_metrics(m, unit)
        self.metrics.setText(text)
        self.window.status_message(text)

    # --- chirp -----------------------------------------------------------------------------------------------
    def chirp(self) -> None:
        client = self._client()
        if client is None:
            return
        loop, f0, f1 = self.loop.currentText(), self.f0.value(), self.f1.value()
        amplitude = chirp_amplitude(load_preset(self.window.preset), f1, loop)
        self.metrics.setText(f"chirp {f0:g}-{f1:g} Hz on node {client.node_id} running…")
        self.window.jobs.run("chirp test", bus_bode_test, client, loop, f0, f1, amplitude,
                             on_done=lambda r: self.show_bode(r[0], r[1], r[2]))

    def show_bode(self, fr: FrequencyResponse, bw: float, run: BusRun | None = None) -> None:
        self.last_chirp = run
        self.last_bandwidth_hz = bw
        ok = fr.coherence > COHERENT
        self.bode.show_response("measured", fr.freq_hz[ok], fr.magnitude_db[ok], fr.phase_deg[ok], "#1565c0")
        self.metrics.setText(f"closed-loop bandwidth (-3 dB) {bw:.2f} Hz over {int(ok.sum())} coherent bins")

    # --- auto-tune -------------------------------------------------------------------------------------------
    def autotune(self) -> None:
        client = self._client()
        if client is None:
            return
        self.metrics.setText(f"designing for {self.bandwidth.value():g} Hz and measuring node {client.node_id}…")
        self.window.jobs.run("auto-tune", propose, client, self.window.preset, self.bandwidth.value(),
                             on_done=self.show_proposal)

    def show_proposal(self, p: Proposal) -> None:
        self.proposal = p
        ok = p.measured.coherence > COHERENT
        self.bode.show_response("measured (current gains)", p.measured.freq_hz[ok], p.measured.magnitude_db[ok],
                                p.measured.phase_deg[ok], "#1565c0")
        # predicted: the proposed gains on the joint model, simulated (the linear model leaves out friction and
        # limits, and tune corrects its design until the simulation gives the bandwidth asked for)
        sim = p.result.bode.response
        ok_sim = sim.coherence > COHERENT
        self.bode.show_response("predicted (proposed gains)", sim.freq_hz[ok_sim], sim.magnitude_db[ok_sim],
                                sim.phase_deg[ok_sim], "#ef6c00")
        pred = p.result.predicted
        lines = [f"proposed for {p.result.requested_bandwidth_hz:g} Hz:",
                 "  " + ", ".join(f"{n} {v:.4g}" for n, v in p.gains.items()),
                 f"predicted on the simulated joint: {p.result.measured_bandwidth_hz:.2f} Hz",
                 f"linear model: {pred.bandwidth_hz:.2f} Hz, overshoot {pred.step.overshoot_pct:.1f} %, "
                 f"phase margin {pred.phase_margin_deg:.0f} deg" if pred else "no linear model prediction",
                 f"measured on the joint now (current gains): {p.measured_bandwidth_hz:.2f} Hz",
                 "Apply the proposed gains?"]
        self.metrics.setText("\n".join(lines[:-1]))
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Question, "Auto-tune", "\n".join(lines),
                                    QtWidgets.QMessageBox.StandardButton.Apply
                                    | QtWidgets.QMessageBox.StandardButton.Discard, self)
        box.setObjectName("tune_dialog")
        box.finished.connect(lambda code: self._decided(box, p))
        self.window.dialog = box
        box.open()

    def _decided(self, box: QtWidgets.QMessageBox, p: Proposal) -> None:
        if box.clickedButton() is box.button(QtWidgets.QMessageBox.StandardButton.Apply):
            self.accept_proposal(p)
        else:
            self.window.status_message("auto-tune: proposal discarded, gains unchanged")

    def accept_proposal(self, p: Proposal) -> None:
        from gui.gains import write_some

        client = self.window.current_client()
        if client is None:
            return
        self.window.jobs.run("apply tuned gains", write_some, client, p.gains,
                             on_done=lambda v: (self.window.gains.show_values(v, 1),
                                                self.window.status_message("tuned gains applied (not saved)")))
