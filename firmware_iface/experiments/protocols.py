"""The experiments' only definitions: what a test makes the joint do, and how its figures are computed.

A protocol is a list of ``Segment``: a time span with a control mode (or the drive idle), a set-point function and
a fixture load. The same segments are executed by every executor of this package: ``bus`` (one joint over its bus,
real or simulated: the CLI's ``--node`` tests, the GUI's tests, the rig's steps), ``batch`` (many simulated joints at
once, the production batch), ``inprocess`` (one simulated joint's firmware called directly, no bus: the CLI's tests
without ``--node``, the tuner's identification and verification); and ``replay`` rebuilds the signals of a step from
a recording. The same ``analyze`` turns the recorded signals into figures, so a production batch, a rig, the tuner
and an engineer at the GUI judge a joint by one definition, under one set of names. What a caller asks of a step or a
Bode test is checked once, by ``step_config`` and ``bode_config``.

Signals (``Signals``: name -> array on a 1 kHz grid, sample-and-hold of what the joint reported) are
``t_s`` (from the step's start), ``segment`` (index), ``reference``, ``load_nm`` (fixture), ``position_rad``,
``velocity_rad_s``, ``torque_nm`` (drive torque at the output, Kt N iq), ``iq_a``, ``winding_temp_c``,
``housing_temp_c`` (the motor housing's sensor, where the reducer's grease is; NaN where a profile does not report it),
``force_n`` (n, 3), ``moment_nm`` (n, 3), ``ft_saturated`` (the sensor's saturation flag: 1 while a channel clips;
NaN where a profile does not report it), ``motor_encoder_rad`` (at the motor) and ``output_encoder_rad``. The
position is what the joint reports: its output encoder's reading (quantised, with its nonlinearity and latency), as a
rig measures it. A simulated joint's executors (``inprocess``, ``batch``) add the model's true output angle and speed,
``true_position_rad`` and ``true_velocity_rad_s``, which no bus carries.

Step types and figures (units in the names):
* ``friction``: velocity mode, +v then -v over the same travel; friction_torque_nm = (mean torque forward - mean
  torque backward) / 2 (gravity, symmetric over the same positions, cancels); encoder_mismatch_rad = mean of
  motor / ratio - output over both plateaus (the twist from friction changes sign with the direction and cancels,
  the motor encoder's once-per-turn error averages out over the turns): a mis-mounted or mis-calibrated encoder.
* ``backdrive``: drive idle, the fixture ramps a torque on the output; backdrive_torque_nm = the load when the
  output first moves faster than ``moving_rad_s``. The fixture lets go at that moment (``Segment.release_rad_s``:
  the load falls to 0 over ``RELEASE_S``), so the idle link moves under a hundredth of a radian (knee, 20 N·m/s)
  instead of being pushed on by the ramp to its top (``max_load_nm``, now the ceiling for a joint that never moves).
* ``stiffness``: position hold, fixture load levels approached in one direction (the reducer's hysteresis then
  adds one offset, not a loop); stiffness_nm_per_rad = least-squares slope of load against twist (sign: a positive
  load gives a positive stiffness).
* ``step``: a step of the position (default), impedance or velocity loop (``loop``; amplitude_rad, or
  amplitude_rad_s for velocity; the move home takes ``move_s``, default 0.6 s); the figures of
  ``actuator.analysis.step.step_figures`` (rise_time_s, overshoot_pct, settling_time_s, steady_state_error_rad or
  _rad_s, peak_torque_nm, peak_current_a), from the reported position (the output encoder) or velocity. Where the
  signals hold the true state (a simulated joint) the same four motion figures of the true output follow, prefixed
  ``true_`` (true_rise_time_s, true_overshoot_pct, true_settling_time_s, true_steady_state_error_rad or _rad_s): what
  the measurement hides (the encoder's quantisation, nonlinearity and latency; the velocity estimate's filter). They
  are not among the figures a sequence's limits may name (``Protocol.figures``): a rig has no true state.
* ``bode``: the periodic chirp of ``actuator.signals.periodic_chirp`` on the position (default) or velocity loop,
  first sweep discarded; bandwidth_hz (-3 dB of reference -> output).
* ``identify``: torque mode, a multisine torque (``identify_config``); the rigid body fitted by
  ``actuator.analysis.identify.identify_rigid_body``: inertia_kg_m2, coulomb_nm, viscous_nm_s_per_rad (the fit, with
  its uncertainties, in ``Outcome.fit``).
* ``ft_zero``: position hold with no load; ft_force_offset_n, ft_moment_offset_nm (largest |mean - expected| over
  the axes; expected is the tool's known static load), ft_force_noise_n, ft_moment_noise_nm (largest std).
* ``ft_calibrate``: position holds at several output poses (``ft_calibration.ft_calibrate_config``); the F/T sensor's
  biases and the tool's mass and centre of mass by least squares over the pose means, with their uncertainties and
  certificates (``Outcome.certificates``): ``experiments.ft_calibration``. Raises ``CalibrationError`` for a pose not
  reached, a sensor that saturated or poses too close together for the fit.
* ``ft_crosstalk_calibrate``: position hold at one pose while the rig's wrench fixture loads each axis of the
  sensor frame in turn (``ft_crosstalk.ft_crosstalk_config``, ``Segment.wrench``); the sensor's 6x6 sensitivity and
  crosstalk matrix and its compensation by least squares, with uncertainties and certificates:
  ``experiments.ft_crosstalk``. Raises ``CalibrationError`` for a pose not held, a sensor that saturated, loads that
  do not determine the matrix or a sensor that does not see them.
* ``friction_calibrate``: velocity plateaus at several speeds, +v and -v over the same travel
  (``friction_calibration.friction_calibrate_config``); Coulomb, static, Stribeck velocity and viscous friction by a
  least-squares Stribeck fit, with uncertainties and certificates: ``experiments.friction_calibration``. Raises
  ``CalibrationError`` for a plateau that did not move, too few plateaus or a fit that did not converge.
* ``cogging_calibrate``: one slow constant speed over whole motor revolutions each way
  (``cogging_calibration.cogging_calibrate_config``); the cogging map over one motor revolution and its harmonics at
  multiples of N_c by least squares against the motor encoder, with uncertainties and certificates, for the
  controller's ``[cogging_compensation]``: ``experiments.cogging_calibration``. Raises ``CalibrationError`` for a
  joint that did not move or a cogging not above the noise. ``cogging_ripple``: the same sweep over whole cogging
  periods; the velocity ripple in bands at the cogging's harmonics and in all (before/after the compensation).
* ``encoder_calibrate``: three slow velocity sweeps, +v, -v and +v over the joint's range
  (``encoder_calibration.encoder_calibrate_config``); the encoders' ratio and mismatch, the reducer's kinematic
  error (harmonics of the motor angle) by least squares, the output encoder's zero from the gravity torque, with
  uncertainties and certificates: ``experiments.encoder_calibration``. Raises ``CalibrationError`` for a sweep that
  did not move, an encoder that froze, a fit that cannot tell the harmonics from the baseline or no gravity.
* ``friction_temperature_calibrate``: the ``friction_calibrate`` map several times, the joint heating itself between
  maps (a position hold loaded by the fixture); beta of the grease's exp(-beta (T - T_ref)) and Fc, Fs at T_ref by
  a weighted fit over the maps' housing temperatures: ``experiments.friction_temperature``. Raises
  ``CalibrationError`` as the map does, and for temperatures too close together or none reported.
* ``kt_calibrate``: velocity plateaus +v and -v over the same travel under several fixture loads
  (``kt_calibration.kt_calibrate_config``); the torque constant from the slope of the plateaus' mean current against
  the load, and the mesh efficiency, with uncertainties and certificates: ``experiments.kt_calibration``. Raises
  ``CalibrationError`` for a plateau that did not move, a saturated current or loads that cannot determine the slope.
* ``thermal``: position hold with a fixture load for a time; thermal_rise_k = winding temperature at the end minus
  at the start (means over ``average_s``); thermal_rise_at_load_k, the same scaled by load² / mean(drive torque²)
  over the loaded hold (the rise had the drive carried the whole load: it follows the winding resistance, not how
  much of the load friction happened to carry); max_winding_temp_c over the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from actuator.analysis.frequency import bandwidth_hz, frequency_response
from actuator.analysis.identify import excitation_torque, identify_rigid_body
from actuator.analysis.loops import LOOPS
from actuator.analysis.step import step_figures, step_metrics
from actuator.errors import ConfigError
from actuator.params import JointParams
from actuator.signals import chirp_period_s, periodic_chirp
from firmware_iface.defaults import STEP_AMPLITUDE, STEP_AT_S, STEP_DURATION_S
from firmware_iface.experiments import cogging_calibration as cog
from firmware_iface.experiments import encoder_calibration as ecal
from firmware_iface.experiments import friction_calibration as fcal
from firmware_iface.experiments import friction_temperature as ftemp
from firmware_iface.experiments import ft_calibration as ftc
from firmware_iface.experiments import ft_crosstalk as ftx
from firmware_iface.experiments import kt_calibration as ktc
from firmware_iface.experiments.panels import Panel, Series
from firmware_iface.experiments.segments import (
    RATE_HZ,
    RELEASE_S,
    Outcome,
    Segment,
    Signals,
    hold,
    move_to,
    ramp,
)
from firmware_iface.experiments.segments import go_home as _go_home
from firmware_iface.experiments.segments import mean_or_nan as _mean
from firmware_iface.experiments.segments import tagged as _tagged


def released(load_nm: float | np.ndarray, since_s: float | np.ndarray) -> float | np.ndarray:
    """The load of a fixture that let go ``since_s`` ago with ``load_nm`` on (``Segment.release_rad_s``); exactly 0
    from RELEASE_S on, also where the step times' rounding leaves since_s a few ulp short of it."""
    left = np.clip(1.0 - np.asarray(since_s) / RELEASE_S, 0.0, 1.0)
    return load_nm * np.where(left > 1e-9, left, 0.0)


STEP_LOOPS = LOOPS  # every loop a step can close
BODE_LOOPS = ("position", "velocity")
BODE_PERIODS = 4  # chirp sweeps, the first dropped as the transient (a joint that fell behind may lose one more)
# the chirp sized to a joint: J (2 pi f1)^2 A (J 2 pi f1 V for velocity) at this fraction of the torque limit, the
# closed loop's own roll-off ignored (conservative), so that the loop stays linear up to f1
CHIRP_TORQUE_FRACTION = 0.5


# --- configurations: what a caller asks of the step and bode protocols, checked once for every executor -----------
MOVE_RAD_S = 0.5  # speed of a test's move to its start position
MIN_MOVE_S = 0.3  # and its shortest: what a move of nothing lasts, a hold


def move_duration_s(distance_rad: float) -> float:
    """How long a test's move of ``distance_rad`` to its start takes (at ``MOVE_RAD_S``), on every executor."""
    return max(MIN_MOVE_S, abs(distance_rad) / MOVE_RAD_S)


def step_config(loop: str = "position", amplitude: float = STEP_AMPLITUDE, duration_s: float = STEP_DURATION_S,
                at_s: float = STEP_AT_S, home_rad: float = 0.0, move_s: float = 0.6) -> dict[str, Any]:
    """A step of ``amplitude`` (rad, or rad/s for velocity) ``at_s`` into the hold, held ``duration_s`` after it;
    position and impedance steps first move to ``home_rad`` over ``move_s``, a velocity step starts from rest."""
    if loop not in STEP_LOOPS:
        raise ConfigError(f"loop = {loop!r} is not allowed for a step: choose one of {', '.join(STEP_LOOPS)}")
    if not (math.isfinite(amplitude) and amplitude != 0.0):
        raise ConfigError(f"amplitude = {amplitude!r} is not allowed: a finite, non-zero step")
    if not (math.isfinite(duration_s) and duration_s > 0 and math.isfinite(at_s) and at_s > 0):
        raise ConfigError(f"duration_s = {duration_s!r}, at_s = {at_s!r}: both must be finite and > 0")
    cfg: dict[str, Any] = {"loop": loop, "pre_s": at_s, "duration_s": duration_s}
    if loop == "velocity":
        cfg["amplitude_rad_s"] = amplitude
    else:
        cfg.update(home_rad=home_rad, amplitude_rad=amplitude, move_s=move_s)
    return cfg


def bode_config(loop: str = "position", f0_hz: float = 1.0, f1_hz: float = 20.0, amplitude: float = 0.002,
                periods: int = BODE_PERIODS, home_rad: float = 0.0, move_s: float = 0.3) -> dict[str, Any]:
    """``periods`` sweeps of the periodic chirp f0..f1 of ``amplitude`` (rad, or rad/s for velocity, about rest)
    about ``home_rad``; f1 at most a quarter of the 1 kHz set-point rate."""
    if loop not in BODE_LOOPS:
        raise ConfigError(f"loop = {loop!r} is not allowed for a Bode test: choose {' or '.join(BODE_LOOPS)}")
    if not 0 < f0_hz < f1_hz <= RATE_HZ / 4:
        raise ConfigError(f"f0_hz = {f0_hz!r}, f1_hz = {f1_hz!r}: need 0 < f0_hz < f1_hz <= {RATE_HZ / 4:g}")
    if not (math.isfinite(amplitude) and amplitude > 0):
        raise ConfigError(f"amplitude = {amplitude!r} is not allowed: a finite chirp amplitude > 0")
    if int(periods) != periods or periods < 2:
        raise ConfigError(f"periods = {periods!r}: a whole number >= 2 (the first sweep is dropped)")
    cfg: dict[str, Any] = {"loop": loop, "f0_hz": f0_hz, "f1_hz": f1_hz, "amplitude_rad": amplitude,
                           "periods": int(periods)}
    if loop == "position":
        cfg.update(home_rad=home_rad, move_s=move_s)
    return cfg


def identify_config(params: JointParams, duration_s: float = 20.0, seed: int = 0) -> dict[str, Any]:
    """Open-loop identification of the rigid body: a Schroeder multisine torque at twice the output breakaway torque
    (at least 5 % of the torque limit, so the joint slides most of the time), 0.2-1.5 Hz. Speeds where the kinematic
    error rings the flexspline (above 0.8 sqrt(k1 / J_L) / 2N, twice per motor turn) are left out of the fit."""
    r = params.reducer
    return {"duration_s": duration_s, "seed": seed, "f_low_hz": 0.2, "f_high_hz": 1.5,
            "peak_nm": max(2.0 * r.static_friction_nm * r.ratio, 0.05 * params.limits.torque_max_nm),
            "max_speed_rad_s": 0.8 * math.sqrt(r.k1_nm_per_rad / params.load.inertia_kg_m2) / (2.0 * r.ratio)}


def chirp_amplitude(params: JointParams, f1_hz: float, loop: str) -> float:
    """The largest chirp amplitude that keeps J w^2 A (J w V for velocity) at f1 under CHIRP_TORQUE_FRACTION of the
    torque limit, J the output-side inertia (load and motor side reflected)."""
    w = 2 * math.pi * f1_hz
    inertia = params.load.inertia_kg_m2 + params.motor_side_inertia_kg_m2 * params.reducer.ratio ** 2
    torque = CHIRP_TORQUE_FRACTION * params.limits.torque_max_nm
    return torque / (inertia * w) if loop == "velocity" else torque / (inertia * w * w)


# --- protocols ----------------------------------------------------------------------------------------------------
def friction_segments(c: dict) -> list[Segment]:
    v, travel, ramp_s = c["velocity_rad_s"], c["travel_rad"], c["ramp_s"]
    plateau_s = travel / v
    return [*_go_home(c["home_rad"]),
            Segment(ramp_s, "velocity", ramp(0.0, v, ramp_s)),
            Segment(plateau_s, "velocity", ramp(v, v, 1.0), tag="forward"),
            Segment(2 * ramp_s, "velocity", ramp(v, -v, 2 * ramp_s)),
            Segment(plateau_s, "velocity", ramp(-v, -v, 1.0), tag="backward"),
            Segment(ramp_s, "velocity", ramp(-v, 0.0, ramp_s))]


def backdrive_segments(c: dict) -> list[Segment]:
    """The ramp stops at the first motion (the fixture lets go, see ``Segment.release_rad_s``): the last segment's
    ramp down from the top only acts on a joint that never moved."""
    rate, top, moving = c["load_rate_nm_s"], c["max_load_nm"], c["moving_rad_s"]
    up_s = top / rate
    return [*_go_home(c["home_rad"]),
            Segment(0.2, None),
            Segment(up_s, None, load_nm=lambda t: rate * t, tag="ramp", release_rad_s=moving),
            Segment(0.5, None, load_nm=lambda t: top * max(0.0, 1.0 - t / 0.5))]


def stiffness_segments(c: dict) -> list[Segment]:
    segs = _go_home(c["home_rad"])
    previous = 0.0
    for i, load in enumerate(c["loads_nm"]):
        start, settle = previous, c["settle_s"]
        segs.append(Segment(settle, "position", hold(c["home_rad"]),
                            load_nm=lambda t, a=start, b=load, s=settle: a + (b - a) * min(t / (0.5 * s), 1.0)))
        segs.append(Segment(c["average_s"], "position", hold(c["home_rad"]), load_nm=load, tag=f"level{i}"))
        previous = load
    segs.append(Segment(0.3, "position", hold(c["home_rad"]), load_nm=lambda t, a=previous: a * max(0.0, 1 - t / 0.3)))
    return segs


def step_segments(c: dict) -> list[Segment]:
    """Home, hold ``pre_s``, step, hold ``duration_s``; a velocity step starts from rest where the joint is."""
    loop = c.get("loop", "position")
    if loop == "velocity":
        amp = c["amplitude_rad_s"]
        return [Segment(c["pre_s"], loop, hold(0.0), tag="step"), Segment(c["duration_s"], loop, hold(amp), tag="step")]
    home, amp = c["home_rad"], c["amplitude_rad"]
    return [*_go_home(home, c.get("move_s", 0.6), mode=loop), Segment(c["pre_s"], loop, hold(home), tag="step"),
            Segment(c["duration_s"], loop, hold(home + amp), tag="step")]


def bode_segments(c: dict) -> list[Segment]:
    f0, f1, amp = c["f0_hz"], c["f1_hz"], c["amplitude_rad"]
    period_s = chirp_period_s(f0)
    if c.get("loop", "position") == "velocity":  # about rest: amplitude_rad is then rad/s
        return [Segment(c["periods"] * period_s, "velocity", lambda t, q0: float(periodic_chirp(t, f0, f1, period_s,
                                                                                              amp)), tag="chirp")]
    home = c["home_rad"]
    return [*_go_home(home, c.get("move_s", 0.6)), Segment(c["periods"] * period_s, "position",
                                     lambda t, q0: home + float(periodic_chirp(t, f0, f1, period_s, amp)),
                                     tag="chirp")]


def identify_segments(c: dict) -> list[Segment]:
    """Torque mode, the multisine as the set-point, held per 1 ms tick (the joint's drive torque is measured, not
    assumed: the analysis takes Kt N iq)."""
    torque = excitation_torque(c["duration_s"], 1.0 / RATE_HZ, c["peak_nm"], c["f_low_hz"], c["f_high_hz"],
                               seed=c["seed"])
    last = torque.size - 1
    return [Segment(c["duration_s"], "torque", lambda t, q0: float(torque[min(round(t * RATE_HZ), last)]),
                    tag="excite")]


def ft_zero_segments(c: dict) -> list[Segment]:
    return [*_go_home(c["home_rad"]), Segment(c["duration_s"], "position", hold(c["home_rad"]), tag="still")]


def ft_calibrate_segments(c: dict) -> list[Segment]:
    """Home on the first pose, then at each pose (``ft_calibration.ft_calibrate_config``) a cosine move, a settle
    and the average (tagged ``pose{i}``) the fit takes."""
    segs = _go_home(c["home_rad"], c["move_s"], c["settle_s"])
    for i, q in enumerate(c["poses_rad"]):
        segs += [Segment(c["move_s"], "position", move_to(q, c["move_s"])),
                 Segment(c["settle_s"], "position", hold(q)),
                 Segment(c["average_s"], "position", hold(q), tag=f"pose{i}")]
    return segs


def thermal_segments(c: dict) -> list[Segment]:
    home, load, avg = c["home_rad"], c["load_nm"], c["average_s"]
    return [*_go_home(home), Segment(avg, "position", hold(home), tag="before"),
            Segment(0.5, "position", hold(home), load_nm=lambda t: load * min(t / 0.5, 1.0)),
            Segment(c["duration_s"] - avg, "position", hold(home), load_nm=load),
            Segment(avg, "position", hold(home), load_nm=load, tag="after"),
            Segment(0.5, "position", hold(home), load_nm=lambda t: load * max(0.0, 1.0 - t / 0.5))]


# --- analyses -----------------------------------------------------------------------------------------------------
def window(s: Signals, segments: list[Segment], tag: str) -> Signals:
    """The samples of the segments tagged ``tag`` (a step's hold and step, without the move home), ``t_s`` from the
    first of them."""
    sel = _tagged(s, segments, tag)
    out = {name: values[sel] for name, values in s.items()}
    if out["t_s"].size:
        out["t_s"] = out["t_s"] - out["t_s"][0]
    return out


def _twist(s: Signals, ratio: float) -> np.ndarray:
    return s["motor_encoder_rad"] / ratio - s["output_encoder_rad"]


def _motion_panels(s: Signals, extra: list[Panel] | None = None) -> list[Panel]:
    t = s["t_s"]
    return [Panel("position (rad)", [Series("position", t, s["position_rad"]), Series("set-point", t, s["reference"],
                                                                                     "--")]),
            Panel("torque (N·m)", [Series("drive torque", t, s["torque_nm"]), Series("fixture load", t, s["load_nm"],
                                                                                    ":")]),
            *(extra or [])]


def analyze_friction(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    fwd, bwd = _tagged(s, segs, "forward"), _tagged(s, segs, "backward")
    friction = (_mean(s["torque_nm"][fwd]) - _mean(s["torque_nm"][bwd])) / 2.0
    twist = _twist(s, c["ratio"])
    mismatch = (_mean(twist[fwd]) + _mean(twist[bwd])) / 2.0
    t = s["t_s"]
    panels = _motion_panels(s, [Panel("velocity (rad/s)", [Series("velocity", t, s["velocity_rad_s"])]),
                                Panel("motor/ratio - output (rad)", [Series("twist", t, twist)])])
    return Outcome({"friction_torque_nm": friction, "encoder_mismatch_rad": mismatch}, panels)


def analyze_backdrive(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    ramp_ = _tagged(s, segs, "ramp")
    moving = ramp_ & (np.abs(s["velocity_rad_s"]) > c["moving_rad_s"])
    torque = float(s["load_nm"][np.argmax(moving)]) if moving.any() else math.nan
    t = s["t_s"]
    panels = _motion_panels(s, [Panel("velocity (rad/s)", [Series("velocity", t, s["velocity_rad_s"])],
                                      [(c["moving_rad_s"], "moving")])])
    return Outcome({"backdrive_torque_nm": torque}, panels)


def analyze_stiffness(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    twist = _twist(s, c["ratio"])
    loads, twists = [], []
    for i, load in enumerate(c["loads_nm"]):
        sel = _tagged(s, segs, f"level{i}")
        loads.append(load)
        twists.append(_mean(twist[sel]))
    x, y = np.array(twists), np.array(loads)
    ok = np.isfinite(x)
    # twist = motor / ratio - output falls as a load pushes the output ahead: the stiffness is minus the slope
    slope = -float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 and np.ptp(x[ok]) > 0 else math.nan
    t = s["t_s"]
    panels = _motion_panels(s, [Panel("twist (rad)", [Series("motor/ratio - output", t, twist)])])
    return Outcome({"stiffness_nm_per_rad": slope, "twist_at_levels_rad": [float(v) for v in x]}, panels)


def _output(s: Signals, c: dict, prefix: str = "") -> np.ndarray:
    """The loop's output as the joint reports it (``prefix`` "true_": the model's true state)."""
    return s[f"{prefix}velocity_rad_s"] if c.get("loop", "position") == "velocity" else s[f"{prefix}position_rad"]


def step_window(s: Signals, segs: list[Segment], c: dict) -> np.ndarray:
    """The step's samples: its hold and the step. A host stalled across the hold (50 ms; a loaded machine stops a
    process for longer) sent none of the hold's set-points, and the joint's echo of them then starts at the stepped
    value ("reference never steps", seen in the GUI beside two busy loops; the host's schedule placed on the joint's
    clock may also put the echoed step a sample or two before the window). The joint held the hold's value all the
    while (where the move home left it, or rest): the window then opens at the last sample that shows it, at most a
    hold's length before."""
    sel = _tagged(s, segs, "step")
    idx = np.flatnonzero(sel)
    r = s["reference"]
    if idx.size < 2 or idx[0] == 0 or r[idx[0]] != r[idx[-1]]:
        return sel
    dt = float(np.median(np.diff(s["t_s"][idx])))  # the grid's step
    earliest = max(0, idx[0] - 1 - math.ceil(c["pre_s"] / dt))
    j = idx[0] - 1
    while j > earliest and r[j] == r[idx[0]]:
        j -= 1
    held = 0.0 if c.get("loop", "position") == "velocity" else c["home_rad"]
    if np.isfinite(r[j]) and abs(r[j] - held) <= 1e-6 * max(1.0, abs(held)):  # float32 on the wire
        sel = sel.copy()
        sel[j:idx[0]] = True
    return sel


def analyze_step(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    sel = step_window(s, segs, c)
    t, y, r = s["t_s"][sel], _output(s, c)[sel], s["reference"][sel]
    if t.size < 10:
        return Outcome({"rise_time_s": math.nan}, _motion_panels(s))
    # a joint that does not report torque or current (ODrive 0.5.6 sends no torque) has no peak of it
    torque, current = (s[k][sel] if k in s and np.all(np.isfinite(s[k][sel])) else None for k in ("torque_nm", "iq_a"))
    m = step_metrics(t - t[0], y, r, torque=torque, current=current)
    figures = step_figures(m, c.get("loop", "position"))
    if "true_position_rad" in s:  # a simulated joint: the same figures of its true output, beside the measured ones
        true = step_metrics(t - t[0], _output(s, c, "true_")[sel], r)
        figures.update({f"true_{k}": v for k, v in step_figures(true, c.get("loop", "position")).items()})
    name = "velocity (rad/s)" if c.get("loop") == "velocity" else "position (rad)"
    panels = [Panel(name, [Series(name.split()[0], t - t[0], y), Series("set-point", t - t[0], r, "--")])]
    return Outcome(figures, panels)


def analyze_bode(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    sel = _tagged(s, segs, "chirp")
    period = round(chirp_period_s(c["f0_hz"]) * RATE_HZ)
    u, y = s["reference"][sel][period:], _output(s, c)[sel][period:]
    usable = (u.size // period) * period
    if usable < period:
        return Outcome({"bandwidth_hz": math.nan})
    home = 0.0 if c.get("loop") == "velocity" else c["home_rad"]
    fr = frequency_response(u[:usable] - home, y[:usable] - home, RATE_HZ, nperseg=period)
    band = (fr.freq_hz >= c["f0_hz"]) & (fr.freq_hz <= c["f1_hz"])
    panels = [Panel("|output/reference| (dB)", [Series("measured", fr.freq_hz[band], fr.magnitude_db[band], ".-")],
                    [(-3.0, "-3 dB")])]
    return Outcome({"bandwidth_hz": bandwidth_hz(fr)}, panels, response=fr)


def analyze_identify(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    sel = _tagged(s, segs, "excite")
    fit = identify_rigid_body(s["t_s"][sel], s["torque_nm"][sel], s["output_encoder_rad"][sel],
                              max_speed_rad_s=c["max_speed_rad_s"])
    figures = {"inertia_kg_m2": fit.inertia_kg_m2.value, "coulomb_nm": fit.coulomb_nm.value,
               "viscous_nm_s_per_rad": fit.viscous_nm_s_per_rad.value}
    return Outcome(figures, _motion_panels(s), fit=fit)


def analyze_ft_zero(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    sel = _tagged(s, segs, "still")
    f, m = s["force_n"][sel], s["moment_nm"][sel]
    ef, em = np.asarray(c["expected_force_n"]), np.asarray(c["expected_moment_nm"])
    figures = {"ft_force_offset_n": float(np.max(np.abs(f.mean(axis=0) - ef))),
               "ft_moment_offset_nm": float(np.max(np.abs(m.mean(axis=0) - em))),
               "ft_force_noise_n": float(np.max(f.std(axis=0, ddof=1))),
               "ft_moment_noise_nm": float(np.max(m.std(axis=0, ddof=1)))}
    t = s["t_s"][sel]
    panels = [Panel("force (N)", [Series(a, t, f[:, i]) for i, a in enumerate("xyz")]),
              Panel("moment (N·m)", [Series(a, t, m[:, i]) for i, a in enumerate("xyz")])]
    return Outcome(figures, panels)


def analyze_ft_calibrate(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    """The pose means into ``ft_calibration.fit_ft_load``; ``CalibrationError`` for a pose not reached or a sensor
    that saturated (its ``ft_saturated`` flag, where the joint reports one) before any fit."""
    poses = c["poses_rad"]
    sel = [_tagged(s, segs, f"pose{i}") for i in range(len(poses))]
    means = ftc.check_poses([s["position_rad"][k] for k in sel], poses, c["reach_tol_rad"])
    if "ft_saturated" in s:
        ftc.check_saturation([s["ft_saturated"][k] for k in sel], poses)
    force = np.array([s["force_n"][k].mean(axis=0) for k in sel])
    moment = np.array([s["moment_nm"][k].mean(axis=0) for k in sel])
    fit = ftc.fit_ft_load(means + c["hang_offset_rad"], force, moment, c["gravity_m_s2"])
    figures = ftc.figures_of(fit)
    samples = min(int(k.sum()) for k in sel)
    t = s["t_s"]
    panels = [Panel("position (rad)", [Series("position", t, s["position_rad"]), Series("set-point", t,
                                                                                       s["reference"], "--")]),
              Panel("force (N)", [Series(a, t, s["force_n"][:, i]) for i, a in enumerate("xyz")]),
              Panel("moment (N·m)", [Series(a, t, s["moment_nm"][:, i]) for i, a in enumerate("xyz")])]
    return Outcome(figures, panels, fit=fit,
                   certificates=ftc.certificates_of(figures, len(poses), float(np.ptp(means)), samples))


def analyze_thermal(s: Signals, segs: list[Segment], c: dict) -> Outcome:
    before, after = _tagged(s, segs, "before"), _tagged(s, segs, "after")
    rise = _mean(s["winding_temp_c"][after]) - _mean(s["winding_temp_c"][before])
    # copper loss goes with the drive torque squared, and how much of the load static friction carries varies from
    # run to run: the rise is scaled to the drive carrying exactly the load, so it follows the winding resistance
    loaded = np.isin(s["segment"], [i for i, seg in enumerate(segs) if seg.load_nm == c["load_nm"]])
    torque_sq = _mean(s["torque_nm"][loaded] ** 2)
    scaled = rise * c["load_nm"] ** 2 / torque_sq if torque_sq > 0 else math.nan
    t = s["t_s"]
    panels = _motion_panels(s, [Panel("winding (°C)", [Series("winding", t, s["winding_temp_c"])])])
    return Outcome({"thermal_rise_k": rise, "thermal_rise_at_load_k": scaled,
                    "max_winding_temp_c": float(np.nanmax(s["winding_temp_c"]))}, panels)


@dataclass(frozen=True)
class Protocol:
    segments: Callable[[dict], list[Segment]]
    analyze: Callable[[Signals, list[Segment], dict], Outcome]
    figures: tuple[str, ...]  # what ``analyze`` reports (a sequence's limits may name these)
    needs_fixture: bool = False
    needs_encoders: bool = False


STEP_FIGURES = ("rise_time_s", "overshoot_pct", "settling_time_s", "steady_state_error_rad", "peak_torque_nm",
                "peak_current_a")  # step_figures of a position step with torque and current
PROTOCOLS: dict[str, Protocol] = {
    "friction": Protocol(friction_segments, analyze_friction, ("friction_torque_nm", "encoder_mismatch_rad"),
                         needs_encoders=True),
    "backdrive": Protocol(backdrive_segments, analyze_backdrive, ("backdrive_torque_nm",), needs_fixture=True),
    "stiffness": Protocol(stiffness_segments, analyze_stiffness, ("stiffness_nm_per_rad",), needs_fixture=True,
                          needs_encoders=True),
    "step": Protocol(step_segments, analyze_step, STEP_FIGURES),
    "bode": Protocol(bode_segments, analyze_bode, ("bandwidth_hz",)),
    "identify": Protocol(identify_segments, analyze_identify, ("inertia_kg_m2", "coulomb_nm",
                                                               "viscous_nm_s_per_rad"), needs_encoders=True),
    "ft_zero": Protocol(ft_zero_segments, analyze_ft_zero, ("ft_force_offset_n", "ft_moment_offset_nm",
                                                            "ft_force_noise_n", "ft_moment_noise_nm")),
    "ft_calibrate": Protocol(ft_calibrate_segments, analyze_ft_calibrate, ftc.SCALAR_FIGURES),
    "ft_crosstalk_calibrate": Protocol(ftx.ft_crosstalk_segments, ftx.analyze_ft_crosstalk, ftx.SCALAR_FIGURES,
                                       needs_fixture=True),
    "friction_calibrate": Protocol(fcal.friction_calibrate_segments, fcal.analyze_friction_calibrate, fcal.FIGURES),
    "cogging_calibrate": Protocol(cog.cogging_calibrate_segments, cog.analyze_cogging_calibrate, cog.FIGURES,
                                  needs_encoders=True),
    "cogging_ripple": Protocol(cog.cogging_calibrate_segments, cog.analyze_cogging_ripple, cog.RIPPLE_FIGURES),
    "encoder_calibrate": Protocol(ecal.encoder_calibrate_segments, ecal.analyze_encoder_calibrate,
                                  ecal.SCALAR_FIGURES, needs_encoders=True),
    "friction_temperature_calibrate": Protocol(ftemp.friction_temperature_segments,
                                               ftemp.analyze_friction_temperature, ftemp.FIGURES, needs_fixture=True),
    "kt_calibrate": Protocol(ktc.kt_calibrate_segments, ktc.analyze_kt_calibrate, ktc.FIGURES, needs_fixture=True),
    "thermal": Protocol(thermal_segments, analyze_thermal, ("thermal_rise_k", "thermal_rise_at_load_k",
                                                            "max_winding_temp_c"), needs_fixture=True),
}


def duration_s(segments: list[Segment]) -> float:
    return sum(seg.duration_s for seg in segments)
