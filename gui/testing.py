"""The tests panel: the step and bode protocols on the bus executor (``firmware_iface.experiments.bus``), their
results plotted with their figures, a Bode plot, and auto-tune (``firmware_iface.experiments.tune``) showing the
predicted response of the proposed gains against the joint's measured one, applied only when the user accepts.

A test runs as a job (it streams its own 1 kHz set-points for seconds), the set-point streamer leaves that joint
alone meanwhile, and the joint is idle afterwards, as the bus tests leave it. The step is ``jointkit step --node``'s:
the same executor and protocol, what the panel has no field for (the hold after the step, the hold before it, where
it starts: where the joint is) left to the defaults they share (``firmware_iface.defaults``), so the panel and the
command give one figure on one joint (tests/gui/test_step_parity.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from actuator.params import load_preset
from firmware_iface.defaults import STEP_AMPLITUDE
from firmware_iface.experiments import bus
from firmware_iface.experiments.protocols import PROTOCOLS, Outcome, Signals, chirp_amplitude
from firmware_iface.experiments.tune import JointTune, tune_joint

if TYPE_CHECKING:
    from firmware_iface.client import JointClient
    from gui.context import PanelContext

COHERENT = 0.9  # Bode bins shown: coherence above this (the rest is noise or leakage)


def format_metrics(figures: dict[str, Any], unit: str) -> str:
    error = figures.get("steady_state_error_rad", figures.get("steady_state_error_rad_s", float("nan")))
    return (f"rise {figures['rise_time_s'] * 1e3:.1f} ms · overshoot {figures['overshoot_pct']:.1f} % · "
            f"settling {figures['settling_time_s'] * 1e3:.0f} ms · error {error:.2g} {unit}")


def propose(client: JointClient, preset: str, bandwidth_hz: float) -> JointTune:
    """Design on the preset's model (verified in simulation), and measure the joint's loop as it is now."""
    return tune_joint(client, load_preset(preset), bandwidth_hz, apply=False)


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
    gains_applied = QtCore.Signal(dict)  # the values read back after tuned gains were written

    def __init__(self, ctx: PanelContext) -> None:
        super().__init__("Tests")
        self.ctx = ctx
        self.last_metrics: dict[str, Any] | None = None  # the latest step's figures
        # the latest step: its signals (on the joint's clock), the run as sent and the protocol's configuration
        self.last_step: tuple[Signals, bus.BusRun, dict] | None = None
        self.last_bandwidth_hz: float | None = None
        # the latest chirp: its signals (on the joint's clock), the protocol's configuration, the run as sent
        self.last_chirp: tuple[Signals, dict, bus.BusRun] | None = None
        self.proposal: JointTune | None = None
        layout = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QFormLayout()
        self.loop = QtWidgets.QComboBox(objectName="test_loop")
        self.loop.addItems(("position", "velocity"))
        self.amplitude = QtWidgets.QDoubleSpinBox(objectName="step_amplitude", decimals=3, minimum=-2.0, maximum=2.0,
                                                  value=STEP_AMPLITUDE, singleStep=0.05)
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
        client = self.ctx.current_client()
        if client is not None:
            self.ctx.actions.hand_over(client.node_id)  # the test streams its own set-points
        return client

    # --- step ------------------------------------------------------------------------------------------------
    def step(self) -> None:
        client = self._client()
        if client is None:
            return
        loop, amplitude = self.loop.currentText(), self.amplitude.value()
        self.metrics.setText(f"step test of {amplitude:g} on node {client.node_id} running…")
        self.ctx.jobs.run("step test", bus.step_test, client, loop, amplitude,
                          on_done=lambda r: self.show_step(r[0], r[1], r[2], r[3], client.node_id))

    def show_step(self, outcome: Outcome, signals: Signals, run: bus.BusRun, cfg: dict, node: int) -> None:
        figures = outcome.figures
        self.last_metrics, self.last_step = figures, (signals, run, cfg)
        loop = cfg["loop"]
        unit = "rad/s" if loop == "velocity" else "rad"
        amplitude = cfg["amplitude_rad_s"] if loop == "velocity" else cfg["amplitude_rad"]
        final = amplitude + (0.0 if loop == "velocity" else cfg["home_rad"])
        y = signals["velocity_rad_s"] if loop == "velocity" else signals["position_rad"]
        t0 = sum(seg.duration_s for seg in PROTOCOLS["step"].segments(cfg)[:-1])  # the step's time
        self.step_plot.clear()
        self.step_plot.plot(signals["t_s"] - t0, signals["reference"], pen=pg.mkPen("#9e9e9e", width=2),
                            name="set-point")
        self.step_plot.plot(signals["t_s"] - t0, y, pen=pg.mkPen("#1565c0", width=2), name="response")
        band = 0.02 * abs(amplitude)
        for level in (final - band, final + band):
            self.step_plot.addLine(y=level, pen=pg.mkPen("#2e7d32", style=pg.QtCore.Qt.PenStyle.DashLine))
        self.step_plot.addLine(x=figures["rise_time_s"], pen=pg.mkPen("#ef6c00"), label="rise",
                               labelOpts={"position": 0.1})
        self.step_plot.addLine(x=figures["settling_time_s"], pen=pg.mkPen("#6a1b9a"), label="settled",
                               labelOpts={"position": 0.2})
        self.step_plot.setXRange(-0.05, max(0.3, 1.5 * figures["settling_time_s"]))
        live_plot = self.ctx.board.plot("velocity" if loop == "velocity" else "position")
        live_plot.set_overlay(f"{node}:test", run.command_t_s + run.start_s, run.reference, f"n{node} test set-point")
        start = "" if loop == "velocity" else f" from {cfg['home_rad']:.3f} rad"
        text = f"step {amplitude:g} {unit}{start}: " + format_metrics(figures, unit)
        self.metrics.setText(text)
        self.ctx.status(text)

    # --- chirp -----------------------------------------------------------------------------------------------
    def chirp(self) -> None:
        client = self._client()
        if client is None:
            return
        loop, f0, f1 = self.loop.currentText(), self.f0.value(), self.f1.value()
        amplitude = chirp_amplitude(load_preset(self.ctx.preset()), f1, loop)
        self.metrics.setText(f"chirp {f0:g}-{f1:g} Hz on node {client.node_id} running…")
        self.ctx.jobs.run("chirp test", bus.bode_test, client, loop, f0, f1, amplitude,
                             on_done=lambda r: self.show_bode(r[0], (r[1], r[3], r[2])))

    def show_bode(self, outcome: Outcome, chirp: tuple[Signals, dict, bus.BusRun] | None = None) -> None:
        self.last_chirp = chirp
        fr, bw = outcome.response, outcome.figures["bandwidth_hz"]
        self.last_bandwidth_hz = bw
        if fr is None:
            self.metrics.setText("the chirp was too short to measure a response")
            return
        ok = fr.coherence > COHERENT
        self.bode.show_response("measured", fr.freq_hz[ok], fr.magnitude_db[ok], fr.phase_deg[ok], "#1565c0")
        self.metrics.setText(f"closed-loop bandwidth (-3 dB) {bw:.2f} Hz over {int(ok.sum())} coherent bins")

    # --- auto-tune -------------------------------------------------------------------------------------------
    def autotune(self) -> None:
        client = self._client()
        if client is None:
            return
        self.metrics.setText(f"designing for {self.bandwidth.value():g} Hz and measuring node {client.node_id}…")
        self.ctx.jobs.run("auto-tune", propose, client, self.ctx.preset(), self.bandwidth.value(),
                             on_done=self.show_proposal)

    def show_proposal(self, p: JointTune) -> None:
        self.proposal = p
        fr = p.measured.response
        if fr is not None:
            ok = fr.coherence > COHERENT
            self.bode.show_response("measured (current gains)", fr.freq_hz[ok], fr.magnitude_db[ok], fr.phase_deg[ok],
                                    "#1565c0")
        # predicted: the proposed gains on the joint model, simulated (the linear model leaves out friction and
        # limits, and tune corrects its design until the simulation gives the bandwidth asked for)
        sim = p.result.response
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
        self.ctx.open_dialog(box)

    def _decided(self, box: QtWidgets.QMessageBox, p: JointTune) -> None:
        if box.clickedButton() is box.button(QtWidgets.QMessageBox.StandardButton.Apply):
            self.accept_proposal(p)
        else:
            self.ctx.status("auto-tune: proposal discarded, gains unchanged")

    def accept_proposal(self, p: JointTune) -> None:
        from gui.gains import write_some

        client = self.ctx.current_client()
        if client is None:
            return
        self.ctx.jobs.run("apply tuned gains", write_some, client, p.gains, on_done=self._tuned_applied)

    def _tuned_applied(self, values: dict[str, float]) -> None:
        self.gains_applied.emit(values)
        self.ctx.status("tuned gains applied (not saved)")
