"""Tuning, one definition for every path: ``tune_model`` and ``tune_relay`` design the position cascade with
``actuator.analysis.tuning`` and verify (and correct) the design by the step and bode protocols on the simulated
joint (``experiments.inprocess``), so the CLI's ``tune``, the rig's ``tune`` step and the GUI's auto-tune judge a
design by the same protocols as a joint; ``tune_joint`` then writes the gains to a joint over its bus when asked (not
saved: ``jointkit param save`` keeps them) and measures its closed loop by the ``bode`` protocol on the bus over
``tune_band_hz``, with the chirp sized to the preset (``protocols.chirp_amplitude``).

The verification of a design: the bode protocol over ``tune_band_hz`` (the measured bandwidth), the loop gain at the
drive's input on the model (``actuator.analysis.loop_gain.loop_gain_test``: the margins, which no bus can measure)
and a step of ``VERIFY_STEP_CHIRPS`` times the chirp's amplitude (the linear range: the chirp is sized to half the
torque limit at 3x the bandwidth, where a step of that size needs far less).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from actuator.analysis.linear import TwoMass, predict
from actuator.analysis.loop_gain import loop_gain_test
from actuator.analysis.tuning import (
    TuneResult,
    check_gain_margin,
    default_controller,
    design_cascade,
    next_position_gain,
    relay_test,
    tune_band_hz,
    with_position_gain,
)
from actuator.control.config import CASCADE_GAINS, ControllerConfig, gain_of
from actuator.errors import ConfigError
from actuator.params import JointParams
from firmware_iface.client.joint import JointClient
from firmware_iface.experiments import bus, inprocess
from firmware_iface.experiments.protocols import BODE_PERIODS, Outcome, Signals, chirp_amplitude

VERIFY_STEP_CHIRPS = 2.0  # the verification step's size, in chirp amplitudes


def verify(params: JointParams, cfg: ControllerConfig, bandwidth_hz: float) -> tuple[float, dict, Outcome]:
    """The measured bandwidth of ``cfg`` on the simulated joint, the verification's figures (the step's, the
    bandwidth, the loop gain's margins) and the bode protocol's outcome (its response, for a plot)."""
    f0, f1 = tune_band_hz(bandwidth_hz)
    bode, _, chirp = inprocess.bode_test(params, cfg, "position", f0, f1)
    _, gm, pm = loop_gain_test(params, cfg, f0, f1)
    amp = VERIFY_STEP_CHIRPS * chirp["amplitude_rad"]
    step, _, _ = inprocess.step_test(params, cfg, "position", amp, duration_s=max(0.5, 12.0 / bandwidth_hz))
    measured = float(bode.figures["bandwidth_hz"])
    figures = {**step.figures, "step_amplitude_rad": amp, "bandwidth_hz": measured, "gain_margin_db": gm,
               "phase_margin_deg": pm}
    return measured, figures, bode


def tune_model(params: JointParams, bandwidth_hz: float, *, zeta: float = 1.0, velocity_ratio: float | None = None,
               tolerance: float = 0.05, max_iterations: int = 6, base: ControllerConfig | None = None,
               identify: bool = True) -> TuneResult:
    """Model-based tuning (``actuator.analysis.tuning``'s docstring) verified and corrected on the simulated joint:
    the position gain is scaled until the measured bandwidth is within ``tolerance`` of the request (at most
    ``max_iterations`` verifications); the closest is kept."""
    model = TwoMass.from_params(params)
    notes: list[str] = []
    identified = None
    if identify:
        identified = inprocess.identification_test(params, base or default_controller(params)).fit
        model = model.with_rigid_body(identified.inertia_kg_m2.value, identified.viscous_nm_s_per_rad.value,
                                      identified.coulomb_nm.value)
        notes.append(f"identified in simulation: J {identified.inertia_kg_m2} kg·m², "
                     f"B {identified.viscous_nm_s_per_rad} N·m·s/rad, Fc {identified.coulomb_nm} N·m")
    design = design_cascade(params, bandwidth_hz, zeta=zeta, velocity_ratio=velocity_ratio, base=base, model=model)
    cfg = design.config
    notes += design.notes
    history: list[tuple[float, float]] = []
    best = None
    for it in range(1, max_iterations + 1):
        measured, figures, bode = verify(params, cfg, bandwidth_hz)
        if not math.isfinite(measured):
            raise ConfigError(f"the tuned loop's bandwidth could not be measured (kp = {cfg.position.kp:.4g})")
        error = abs(measured / bandwidth_hz - 1)
        if best is None or error < best[0]:
            best = (error, cfg, measured, figures, bode, it)
        if error <= tolerance or it == max_iterations:
            break
        history.append((math.log(cfg.position.kp), math.log(measured)))
        kp_next = next_position_gain(history, bandwidth_hz)
        notes.append(f"iteration {it}: measured {measured:.4g} Hz, position kp x {kp_next / cfg.position.kp:.3f}")
        cfg = with_position_gain(cfg, kp_next)
    _, cfg, measured, figures, bode, it = best
    amplitude = figures["step_amplitude_rad"] / VERIFY_STEP_CHIRPS
    notes.append(f"kept iteration {it} (closest to the request); predicted at the chirp's {amplitude:.3g} rad, with "
                 "the gear's Coulomb friction as its describing function (it lowers a small test's bandwidth)")
    return TuneResult(cfg, bandwidth_hz, predict(model, cfg, amplitude=amplitude), measured, figures, bode.response,
                      it, "model", notes, identified)


def tune_relay(params: JointParams, *, gain_margin: float = 4.0, relay_rad_s: float | None = None,
               base: ControllerConfig | None = None) -> TuneResult:
    """Relay auto-tune of the position gain (``actuator.analysis.tuning.relay_test``) around the velocity loop of
    ``base`` (default: the velocity loop of ``design_cascade``), verified on the simulated joint."""
    cfg = base or design_cascade(params).config
    h = relay_rad_s or 0.05 * params.limits.velocity_max_rad_s
    ku, fu = relay_test(params, cfg, h)
    cfg = with_position_gain(cfg, ku / check_gain_margin(gain_margin))
    measured, figures, bode = verify(params, cfg, max(fu / 4, 0.5))
    notes = [f"relay: K_u = {ku:.4g} (rad/s)/rad, f_u = {fu:.4g} Hz; kp = K_u / {gain_margin:g}"]
    amplitude = figures["step_amplitude_rad"] / VERIFY_STEP_CHIRPS
    return TuneResult(cfg, math.nan, predict(TwoMass.from_params(params), cfg, amplitude=amplitude), measured,
                      figures, bode.response, 1, "relay", notes)


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
                                                BODE_PERIODS)
    return JointTune(result, gains, written, measured, signals, run, cfg)
