"""Tuning a joint over its bus, one definition for the CLI (``jointkit tune --node``), the rig's ``tune`` step and the
GUI's auto-tune: the design on the preset's model (``actuator.analysis.tuning.tune_model``, verified and corrected
in simulation), the gains written live when asked (not saved: ``jointkit param save`` keeps them), and the joint's
closed loop measured by the ``bode`` protocol on the bus executor over ``tune_band_hz``, with the chirp sized to
the preset (``chirp_amplitude``: J (2 pi f1)^2 A at half the torque limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuator.analysis.experiments import chirp_amplitude
from actuator.analysis.tuning import TuneResult, tune_band_hz, tune_model
from actuator.control.config import CASCADE_GAINS, gain_of
from actuator.params import JointParams
from firmware_iface.client.joint import JointClient
from firmware_iface.experiments import bus
from firmware_iface.experiments.protocols import Outcome, Signals

TUNE_PERIODS = 4  # chirp sweeps of the measurement, the first dropped (a joint that fell behind may lose one more)


@dataclass
class JointTune:
    """A design, the gains it wrote (None: not applied) and the joint's loop as measured afterwards."""

    result: TuneResult
    gains: dict[str, float]
    written: dict[str, float] | None
    measured: Outcome  # the bode protocol's outcome: bandwidth_hz, and the response for a plot
    signals: Signals
    run: bus.BusRun
    cfg: dict[str, Any]  # the bode protocol's configuration as measured

    @property
    def measured_bandwidth_hz(self) -> float:
        return float(self.measured.figures["bandwidth_hz"])

    def figures(self) -> dict[str, Any]:
        return {"requested_bandwidth_hz": self.result.requested_bandwidth_hz,
                "simulated_bandwidth_hz": self.result.measured_bandwidth_hz,
                "measured_bandwidth_hz": self.measured_bandwidth_hz}


def design(client: JointClient, params: JointParams, bandwidth_hz: float) -> TuneResult:
    """The design on the model; the joint idles meanwhile (seconds with no commands would trip its watchdog)."""
    if client.state == "closed_loop":
        client.disable()
        client.wait_state("idle", 1.0)
    return tune_model(params, bandwidth_hz)


def tune_joint(client: JointClient, params: JointParams, bandwidth_hz: float, *, apply: bool,
               result: TuneResult | None = None) -> JointTune:
    """Design for ``bandwidth_hz`` (unless ``result`` is the design already made), write the gains when ``apply``,
    and measure the joint's loop as it then is (with its present gains when not applied)."""
    result = result or design(client, params, bandwidth_hz)
    gains = {name: gain_of(result.config, name) for name in CASCADE_GAINS}
    written = None
    if apply:
        for name, value in gains.items():
            client.write_gain(name, value)
        written = {name: client.read_gain(name) for name in CASCADE_GAINS}
    f0, f1 = tune_band_hz(bandwidth_hz)
    measured, signals, run, cfg = bus.bode_test(client, "position", f0, f1, chirp_amplitude(params, f1, "position"),
                                                TUNE_PERIODS)
    return JointTune(result, gains, written, measured, signals, run, cfg)
