"""The loop gain of a closed cascade, measured on the joint's model at the drive's input: an experiment no bus can
run (the host cannot inject at the drive), for the margins of a design (``jointkit bode``, the tuner's verification).
The experiments a joint can be put through over its bus (step, bode, identify, ...) are defined once, as protocols,
in ``firmware_iface.experiments.protocols``.

The loop gain (for the gain and phase margins): a periodic chirp current is added at the drive's input (reference
held), and L = -tau_c / (tau_c + d) is estimated by H1 from the total torque (controller + disturbance) to minus the
controller's torque, ``PERIODS`` sweeps after one discarded settling sweep, one sweep per Welch segment. Static
friction defeats this measurement when the disturbance cannot break the joint loose (see ``_loop_gain_measurable``).
"""

from __future__ import annotations

import math

import numpy as np

from actuator.analysis.frequency import FrequencyResponse, frequency_response, in_band, margins_above_crossover
from actuator.control.config import ControllerConfig
from actuator.control.reference import Chirp, reference_rows
from actuator.errors import ConfigError
from actuator.params import JointParams
from actuator.signals import chirp_period_s
from actuator.simulation import simulate

PERIODS = 4
RECORD_EVERY = 10  # 4 kHz rows at the 40 kHz model step
DISTURBANCE_FRACTION = 0.1  # the chirp torque added at the drive's input, of the torque limit


def loop_gain_test(params: JointParams, cfg: ControllerConfig, f0_hz: float, f1_hz: float,
                   seed: int = 0) -> tuple[FrequencyResponse, float, float]:
    """The position cascade's loop gain over f0..f1 (the chirp's band: the bins past it are noise, which gave the
    quasi-direct drive a crossing at 83 Hz and a 0.07 deg phase margin) and its (gain margin dB, phase margin deg)
    above crossover; the margins are NaN where static friction held the joint (``_loop_gain_measurable``)."""
    if not 0 < f0_hz < f1_hz:
        raise ConfigError(f"f0_hz = {f0_hz!r}, f1_hz = {f1_hz!r}: need 0 < f0_hz < f1_hz")
    cfg = cfg.with_mode("position")
    period_s = chirp_period_s(f0_hz)
    kt_n = params.torque_constant_nm_per_a * params.reducer.ratio
    n = round(period_s * (PERIODS + 1) / params.dt_s)
    amp_nm = DISTURBANCE_FRACTION * params.limits.torque_max_nm
    d_nm = reference_rows(Chirp(amp_nm, f0_hz, f1_hz, period_s), n, params.dt_s, "torque")[:, 2]
    trace = simulate(params, duration_s=n * params.dt_s, controller=cfg, current_a=d_nm / kt_n, seed=seed,
                     record_every=RECORD_EVERY)
    tau_c = trace.torque_cmd_nm
    d_rows = d_nm[::RECORD_EVERY][: tau_c.size]
    tau_c = tau_c[: d_rows.size]
    dt_row = params.dt_s * RECORD_EVERY
    seg = round(period_s / dt_row)
    fr = in_band(frequency_response(tau_c[seg:] + d_rows[seg:], -tau_c[seg:], 1.0 / dt_row, nperseg=seg),
                 f0_hz, f1_hz)
    gm, pm = margins_above_crossover(fr) if _loop_gain_measurable(fr) else (math.nan, math.nan)
    return fr, gm, pm


def _loop_gain_measurable(lfr: FrequencyResponse) -> bool:
    """A position cascade's loop gain is far above 0 dB at the bottom of the band (its double integrator);
    a measurement that is not (below 10 dB in the lowest coherent bins) saw the joint held by static
    friction, where the disturbance never moves it and L is not the linear loop's. Margins are then not
    measurable here and are reported as NaN rather than as wrong numbers."""
    ok = lfr.coherence > 0.9
    return bool(ok.any() and np.median(lfr.magnitude_db[ok][:5]) > 10.0)
