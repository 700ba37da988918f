"""The tuners that verify a design on the simulated joint (firmware_iface.experiments.tune: tune_model, tune_relay)
and the step protocol on the in-process executor with the presets' default gains: the figures under the protocols'
names, against the acceptance of the tuning issue (bandwidth within 15 % of the request, overshoot <= 10 %) and the
limits of the presets."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest

from actuator.analysis.linear import TwoMass
from actuator.analysis.step import friction_hold_rad
from actuator.analysis.tuning import default_controller, design_cascade, relay_test
from actuator.params import JointParams, load_preset
from firmware_iface.experiments import inprocess
from firmware_iface.experiments.protocols import PROTOCOLS, step_config, window
from firmware_iface.experiments.tune import tune_model, tune_relay
from firmware_iface.virtual_joint.firmware import JointFirmware

TWO_PI = 2.0 * math.pi
TUNES = {"knee": 5.0, "wrist": 20.0, "qdd": 17.9}  # qdd: its default, a tenth of its resonance


def total_inertia(p: JointParams) -> float:
    """Output-side rigid inertia: load plus (rotor + wave generator) N²."""
    return p.load.inertia_kg_m2 + p.motor_side_inertia_kg_m2 * p.reducer.ratio ** 2



# --- tune_model ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=sorted(TUNES))
def tuned(request):
    p = load_preset(request.param)
    return p, tune_model(p, TUNES[request.param])


def test_tune_model_reaches_bandwidth_with_small_overshoot(tuned) -> None:
    p, res = tuned
    request_hz = TUNES[p.name]
    assert res.measured_bandwidth_hz == pytest.approx(request_hz, rel=0.15)
    m = res.measured
    assert m["bandwidth_hz"] == res.measured_bandwidth_hz
    assert m["overshoot_pct"] <= 10.0
    assert math.isfinite(m["rise_time_s"])
    band_rad = 0.02 * abs(m["step_amplitude_rad"])
    if band_rad > 2.0 * math.pi / 2 ** p.encoders.output.bits:
        assert math.isfinite(m["settling_time_s"])
    else:  # qdd: its 14-bit output encoder (3.8e-4 rad) cannot see the 1.3e-4 rad band of a 6.3 mrad step
        assert m["settling_time_s"] is None or not math.isfinite(m["settling_time_s"])
        assert math.isfinite(m["true_settling_time_s"])  # the simulated joint's true output settles
    # inside the 2 % settling band at the end of the step
    assert abs(m["steady_state_error_rad"]) < 0.02 * abs(m["step_amplitude_rad"])
    assert 1 <= res.iterations <= 6 and res.method == "model"
    assert res.requested_bandwidth_hz == request_hz
    assert res.response is not None and res.response.freq_hz.size > 10


def test_tune_model_result_carries_predicted_and_measured_figures(tuned) -> None:
    _, res = tuned
    assert res.predicted is not None
    assert math.isfinite(res.predicted.gain_margin_db) and math.isfinite(res.predicted.phase_margin_deg)
    fig = res.figures()
    assert {"gains", "achieved_bandwidth_hz", "overshoot_pct", "predicted", "measured"} <= fig.keys()
    assert fig["achieved_bandwidth_hz"] == res.measured_bandwidth_hz
    assert fig["overshoot_pct"] == res.measured["overshoot_pct"]
    assert fig["gains"]["position"]["kp"] == res.config.position.kp
    assert fig["gains"]["velocity"] == {"kp": res.config.velocity.kp, "ki": res.config.velocity.ki}
    assert fig["measured"]["bandwidth_hz"] == res.measured_bandwidth_hz
    assert {"rise_time_s", "settling_time_s", "steady_state_error_rad", "peak_current_a", "gain_margin_db",
            "phase_margin_deg"} <= fig["measured"].keys()
    assert fig["predicted"]["bandwidth_hz"] == res.predicted.bandwidth_hz
    assert {"gain_margin_db", "phase_margin_deg", "overshoot_pct", "rise_time_s"} <= fig["predicted"].keys()
    assert fig["identified"]["inertia_kg_m2"]["value"] == res.identified.inertia_kg_m2.value


def test_tune_predicts_the_measured_bandwidth_within_20_percent(tuned, relay_tuned) -> None:
    """Issue 16, item 6: the bandwidth ``tune`` predicts is the one its verification measures, within 20 %: the
    prediction takes the gear's Coulomb friction at the chirp's amplitude (its describing function; the linear
    model alone said 6.6 Hz where the knee's default gains measure 4.4). Measured: knee model 4.83 / 4.88 Hz,
    relay 39.7 / 38.4; wrist model 16.7 / 18.3, relay 24.0 / 19.7; qdd model 18.7 / 18.2, relay 13.5 / 13.1."""
    p, res = tuned
    for r in (res, relay_tuned[p.name]):
        assert r.predicted.bandwidth_hz == pytest.approx(r.measured_bandwidth_hz, rel=0.20), r.method


def test_tune_model_identifies_the_inertia_and_designs_on_it(tuned) -> None:
    p, res = tuned
    j_true = total_inertia(p)  # knee 0.5 + 8.88e-5 * 100² = 1.388, wrist 0.01 + 2.2e-5 * 100² = 0.23
    j_id = res.identified.inertia_kg_m2.value
    # measured: knee 1.4155 +- 0.012 (+2.0 %: the 0.78 mesh efficiency and friction left in the fit),
    # wrist 0.22992 +- 0.0007 (-0.03 %); bound 5 %
    assert j_id == pytest.approx(j_true, rel=0.05)
    assert res.notes[0].startswith("identified in simulation")
    # the velocity PI is placed on the identified inertia, not the nominal one, with the back-EMF's inertia the
    # measured current cannot see: with zeta = 1, kp = 2 J w_v and ki = J w_v², so kp² / (4 ki) = J whatever the
    # velocity loop's ratio
    v = res.config.velocity
    j_emf = TwoMass.from_params(p).emf_inertia_kg_m2
    assert v.kp ** 2 / (4.0 * v.ki) == pytest.approx(j_id + j_emf, rel=1e-9)


# --- relay --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["knee", "wrist"])
def test_relay_ultimate_gain_is_the_simulated_joints(name: str) -> None:
    """A P gain 30 % below the relay's K_u decays on the simulated joint, 40 % above it sustains an oscillation.
    The relay's K_u is a describing-function estimate (Åström & Hägglund 1984) from a limit cycle in which friction
    damps the loop: on the knee (K_u 377 (rad/s)/rad at 32 Hz) the joint still settles at 0.7 K_u and hunts at
    0.9 K_u (tail peak-to-peak over a 4 mrad step 0.003 and 1.51; 1.67 at 1.4 K_u)."""
    p = load_preset(name)
    cfg = design_cascade(p).config
    ku, _ = relay_test(p, cfg, 0.05 * p.limits.velocity_max_rad_s)  # tune_relay's default amplitude
    for factor, stable in ((0.7, True), (1.4, False)):
        gains = replace(cfg, position=replace(cfg.position, kp=factor * ku))
        _, signals, step_cfg = inprocess.step_test(p, gains, "position", 0.004)
        s = window(signals, PROTOCOLS["step"].segments(step_cfg), "step")
        ripple = np.ptp(s["position_rad"][s["t_s"] > 0.85]) / 0.004
        assert (ripple < 0.01) if stable else (ripple > 0.05), (factor, ripple)


@pytest.fixture(scope="module")
def relay_tuned() -> dict:
    return {name: tune_relay(load_preset(name)) for name in ("knee", "wrist", "qdd")}


@pytest.mark.parametrize("name", ["knee", "wrist"])
def test_tune_relay_gives_a_stable_loop(relay_tuned, name: str) -> None:
    res = relay_tuned[name]
    ku, fu = (float(x) for x in re.findall(r"= ([0-9.e+-]+)", res.notes[0])[:2])
    assert ku > 0 and fu > 0
    assert res.config.position.kp == pytest.approx(ku / 4.0, rel=1e-3)  # the note rounds to 4 digits
    assert res.method == "relay" and math.isnan(res.requested_bandwidth_hz)
    assert math.isfinite(res.measured_bandwidth_hz) and res.measured_bandwidth_hz > 0
    m = res.measured
    assert math.isfinite(m["settling_time_s"])  # settles into the 2 % band inside the record
    assert abs(m["steady_state_error_rad"]) < 0.02 * abs(m["step_amplitude_rad"])
    # stable and better damped than the Ziegler-Nichols P rule (K_u / 2, quarter-amplitude decay, ~50 % overshoot);
    # A_m = 2.5 gave 29.1 % on the knee with slowly decaying ~55 Hz ringing, the default A_m = 4 far less
    assert m["overshoot_pct"] <= 20.0


# --- default gains ------------------------------------------------------------------------------------------------

# settling-time bounds: the linear model predicts 0.146 s (knee) and 0.077 s (wrist); the 0.1 rad step saturates the
# torque briefly; about 60 % margin
SETTLING_BOUND_S = {"knee": 0.25, "wrist": 0.15}


@pytest.mark.parametrize("name", ["knee", "wrist"])
def test_default_gains_step(name: str) -> None:
    p = load_preset(name)
    cfg = default_controller(p)
    assert cfg == default_controller(name)  # seeds/gains/NAME.toml, by name or by parameters
    assert cfg.position.kp > 0 and cfg.velocity.kp > 0 and cfg.velocity.ki > 0
    fw = JointFirmware(p, cfg)
    outcome, signals = inprocess.run_protocol(fw, "step", step_config("position", 0.1))
    f = outcome.figures
    assert f["overshoot_pct"] <= 5.0
    assert f["settling_time_s"] < SETTLING_BOUND_S[name]
    # |e_ss| <= 5e-5 rad, or the hold of static friction. The loop closes on the output encoder, which reads
    # q + 1.7e-4 sin q (1.7e-5 rad at 0.1 rad) quantised down to 2π / 2^20 = 6.0e-6 rad, and static friction holds
    # the joint while the velocity integrator charges (actuator.analysis.step.friction_hold_rad; the knee: -7.4e-5)
    hold = friction_hold_rad(p.reducer.ratio * p.reducer.static_friction_nm, cfg.velocity.ki, cfg.position.kp,
                             1.0 - f["settling_time_s"])
    assert abs(f["steady_state_error_rad"]) <= max(5e-5, hold)
    # limits: the drive's current stays within the motor's limit, the output's speed within the joint's
    assert f["peak_current_a"] <= p.motor.current_limit_a
    assert np.max(np.abs(signals["velocity_rad_s"])) <= p.limits.velocity_max_rad_s
    assert fw.faults == 0 and fw.state == "closed_loop"


# --- identify -----------------------------------------------------------------------------------------------------

def test_identify_protocol_recovers_the_rigid_body() -> None:
    knee = load_preset("knee")
    ident = inprocess.identification_test(knee, default_controller(knee)).fit
    assert ident.inertia_kg_m2.within(total_inertia(knee), 0.05)
    # Coulomb at the output: 0.115 N·m x 100 = 11.5 N·m; viscous 1.5e-3 x 100² + 0.5 = 15.5 N·m·s/rad (measured
    # 11.51 +- 0.03 and 15.61 +- 0.04: the mesh loss adds torque-proportional friction the fit does not have)
    assert ident.coulomb_nm.within(knee.reducer.coulomb_friction_nm * knee.reducer.ratio, 0.10)
    r = knee.reducer
    viscous = r.viscous_friction_nm_s_per_rad * r.ratio ** 2 + knee.load.damping_nm_s_per_rad
    assert ident.viscous_nm_s_per_rad.within(viscous, 0.05)
