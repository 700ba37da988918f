"""The linear model's stiffness at an operating torque against a plain-Python reference, its resonance against the
simulated plant measured about a sliding state, and the drive's back-EMF inertia against the simulated drive (issue 16,
item 6).

The reference for the stiffness is the model's own flexspline law written out here (actuator/model/mechanics.py):
tau_fs = K(phi) - D(phi) + tau_h, K the catalogue's piecewise curve, D(phi) = tau_hmax (1 - exp(-sigma |phi| /
tau_hmax)) sgn(phi), the Dahl state centred on zero in motion; small motions see K'(phi0) + sigma - D'(phi0), and
where the twist travels about phi0, that slope's mean over the travel.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import ideal_reducer, variant
from scipy.optimize import brentq

from actuator.analysis.catalogue import bench_params, plant_resonance
from actuator.analysis.linear import (
    TwoMass,
    back_emf_inertia,
    operating_twist_rad,
    small_signal_stiffness_nm_per_rad,
)
from actuator.errors import ConfigError
from actuator.model.layout import current_loop_design
from actuator.params import JointParams
from actuator.simulation import simulate


def reference_curve(p: JointParams, phi: float) -> tuple[float, float]:
    """(K(phi) - D(phi), its slope) for phi >= 0 on the preset's piecewise catalogue curve."""
    r = p.reducer
    phi1 = r.t1_nm / r.k1_nm_per_rad
    phi2 = phi1 + (r.t2_nm - r.t1_nm) / r.k2_nm_per_rad
    if phi <= phi1:
        k, slope = r.k1_nm_per_rad * phi, r.k1_nm_per_rad
    elif phi <= phi2:
        k, slope = r.t1_nm + r.k2_nm_per_rad * (phi - phi1), r.k2_nm_per_rad
    else:
        k, slope = r.t2_nm + r.k3_nm_per_rad * (phi - phi2), r.k3_nm_per_rad
    e = math.exp(-r.hysteresis_stiffness_nm_per_rad * phi / r.hysteresis_torque_nm)
    return k - r.hysteresis_torque_nm * (1.0 - e), slope - r.hysteresis_stiffness_nm_per_rad * e


@pytest.mark.parametrize("name", ["knee", "wrist"])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 1.0, 2.0, 3.0])  # of T1: in each segment of the curve, past T2
def test_operating_twist_and_stiffness_follow_the_flexspline_law(request, name: str, fraction: float) -> None:
    p = request.getfixturevalue(name)
    torque = fraction * p.reducer.t1_nm
    phi = brentq(lambda x: reference_curve(p, x)[0] - torque, 0.0, 1e-2, xtol=1e-16, rtol=1e-14)
    assert operating_twist_rad(p, torque) == pytest.approx(phi, rel=1e-9)
    assert operating_twist_rad(p, -torque) == pytest.approx(-phi, rel=1e-9)  # odd
    # the Dahl state's mean slope over a small cycle is sigma: it adds sigma - D'(phi0) to the curve's slope
    expected = reference_curve(p, phi)[1] + p.reducer.hysteresis_stiffness_nm_per_rad
    assert small_signal_stiffness_nm_per_rad(p, torque) == pytest.approx(expected, rel=1e-6)
    assert small_signal_stiffness_nm_per_rad(p, -torque) == pytest.approx(expected, rel=1e-6)


def test_no_load_is_k1_and_a_load_past_the_dahl_width_adds_sigma(knee: JointParams) -> None:
    r = knee.reducer
    assert TwoMass.from_params(knee).stiffness_nm_per_rad == r.k1_nm_per_rad  # every no-load figure unchanged
    assert TwoMass.from_params(knee, 0.0) == TwoMass.from_params(knee)
    # T1 / 2 twists 2.9e-4 rad, 3.7 Dahl widths (tau_hmax / sigma = 7.9e-5 rad): exp(-3.7) of sigma is missing
    k = small_signal_stiffness_nm_per_rad(knee, 0.5 * r.t1_nm)
    assert k == pytest.approx(r.k1_nm_per_rad + r.hysteresis_stiffness_nm_per_rad, rel=0.03)


def travel_reference(p: JointParams, torque: float, rms: float, n: int = 20000) -> float:
    """The stiffness's mean over a sinusoidal travel of rms ``rms`` about the operating twist, by a fine rule."""
    phi0 = brentq(lambda x: reference_curve(p, x)[0] - abs(torque), 0.0, 1e-2, xtol=1e-16) if torque else 0.0
    phases = (np.arange(n) + 0.5) * 2.0 * math.pi / n
    sigma = p.reducer.hysteresis_stiffness_nm_per_rad
    return float(np.mean([reference_curve(p, abs(x))[1] + sigma for x in phi0 + math.sqrt(2) * rms * np.sin(phases)]))


@pytest.mark.parametrize("torque_t1, rms", [(0.0, 2e-6), (0.0, 1.3e-5), (0.0, 6e-5), (0.5, 6e-6), (0.5, 3e-4)])
def test_a_travelling_twist_averages_the_slope_over_its_travel(knee: JointParams, torque_t1: float, rms: float) -> None:
    """Within 0.05 % of the fine rule (256 phases against 20000; a knee of the curve in the travel converges as 1 / n,
    the last case crosses T1's), and the closed form near zero: k1 + sigma (2 / pi) a / w for a travel of amplitude a
    well inside the Dahl width w."""
    torque = torque_t1 * knee.reducer.t1_nm
    k = small_signal_stiffness_nm_per_rad(knee, torque, rms)
    assert k == pytest.approx(travel_reference(knee, torque, rms), rel=5e-4)
    r = knee.reducer
    if torque == 0.0 and rms < 5e-6:  # a / w = 0.036: the exponential's second term is 1.2 % of the first
        w = r.hysteresis_torque_nm / r.hysteresis_stiffness_nm_per_rad
        a = math.sqrt(2) * rms
        assert k - r.k1_nm_per_rad == pytest.approx(r.hysteresis_stiffness_nm_per_rad * 2 / math.pi * a / w, rel=0.02)
    assert TwoMass.from_params(knee, torque, rms).stiffness_nm_per_rad == k


@pytest.mark.parametrize("rms", [-1e-6, math.nan, math.inf])
def test_a_travel_that_is_no_length_is_refused_by_name(knee: JointParams, rms: float) -> None:
    with pytest.raises(ConfigError, match="twist_rms_rad"):
        small_signal_stiffness_nm_per_rad(knee, 0.0, rms)


@pytest.mark.parametrize("name", ["knee", "wrist", "qdd"])
@pytest.mark.parametrize("t1_fraction", [0.5, -1.0, 0.0])  # driving the load, driven by it, and no load
def test_resonance_in_motion_is_the_linear_models_within_5_percent(request, name: str, t1_fraction: float) -> None:
    """The issue's 5 %, the model at the twist's travel measured there. Measured: knee -0.1 % at T1 / 2, +0.1 % at
    -T1 and -0.5 % at no load; wrist -0.9, -0.7 and -1.3 %; quasi-direct drive -1.9, -1.1 and -0.8 %. Before the
    model took the back-EMF's inertia and the mesh coupling: -1.4 / -4.2, -1.5 / -1.2 and -4.0 / -12.0 % (the quasi-
    direct drive then with a Dahl hysteresis); before it took the travel, +6.2 % and +3.8 % at no load."""
    p = request.getfixturevalue(name)
    torque = t1_fraction * p.reducer.t1_nm
    bench = bench_params(p, load_inertia_kg_m2=p.load.inertia_kg_m2)  # what plant_resonance measures
    measured = plant_resonance(p, torque)
    model = TwoMass.from_params(bench, torque, measured.twist_rms_rad)
    assert measured.resonance_hz == pytest.approx(model.resonance_hz, rel=0.05)
    if torque == 0.0:
        return
    # the twist measured in motion is where the model puts the operating point (the Dahl state centred on zero)
    assert measured.twist_mean_rad == pytest.approx(operating_twist_rad(bench, torque), rel=0.03)
    if p.reducer.hysteresis_torque_nm > 0.0:  # loaded, far above the no-load model: the stiffening the model takes
        assert model.resonance_hz > 1.3 * TwoMass.from_params(bench).resonance_hz


@pytest.mark.parametrize("name, ke_fraction, ke_scale, excitation", [
    ("knee", 0.25, 1.0, 1.0), ("knee", 0.05, 1.0, 1.0), ("knee", 0.25, 0.0, 1.0), ("knee", 0.25, 1.0, 0.1),
    ("knee", 0.25, 1.0, 3.0), ("wrist", 0.05, 1.0, 1.0), ("wrist", 0.25, 0.0, 1.0), ("wrist", 0.25, 1.0, 0.1)])
def test_no_load_resonance_follows_the_twists_travel(request, name: str, ke_fraction: float, ke_scale: float,
                                                     excitation: float) -> None:
    """About zero twist the hysteretic flexspline stiffens with the twist's travel (from k1 towards k1 + sigma within
    tau_hmax / sigma), so the no-load resonance depends on how fast the joint slides, on its kinematic error and on
    the excitation. The model at the measured travel holds within 5 % at the bench's speed and a fifth of it, without
    the kinematic error, and from a tenth to three times the bench's excitation. Measured, in the order above: knee
    -0.5, -0.9, -0.6, +3.5, -4.1 %; wrist -0.9, +0.6, -1.4 %. At k1 alone the knee's default is 6.2 % high and its
    tenth 9.0 %. Outside 5 %: the knee at a tenth of the excitation without kinematic error (+5.5 %)."""
    p = request.getfixturevalue(name)
    ke = tuple(ke_scale * a for a in p.reducer.kinematic_error_amplitudes_rad)
    p = variant(p, reducer={"kinematic_error_amplitudes_rad": ke})
    bench = bench_params(p, load_inertia_kg_m2=p.load.inertia_kg_m2)
    measured = plant_resonance(p, 0.0, ke_fraction, excitation)
    model = TwoMass.from_params(bench, 0.0, measured.twist_rms_rad)
    assert measured.resonance_hz == pytest.approx(model.resonance_hz, rel=0.05)
    if (name, ke_fraction, ke_scale, excitation) == ("knee", 0.25, 1.0, 1.0):  # the check above can fail
        assert measured.resonance_hz > 1.05 * TwoMass.from_params(bench).resonance_hz


@pytest.mark.parametrize("name", ["knee", "wrist", "qdd"])
def test_back_emf_weighs_on_the_motor_side_as_the_model_says(request, name: str) -> None:
    """The drive's current loop fights the back-EMF: a torque command moves the rigid body and J_e = Kt p lambda /
    (R w_c). On a loss-free copy (no friction, kinematic error, cogging or ripple) the output's velocity per commanded
    torque, a multisine at 2-20 Hz, is the model's within 0.5 % (measured 0.06 %) and 2 degrees (the current loop's
    first-order lag is 1.1 degrees at 20 Hz; the plant leaves it to the loop). Without J_e the model is 2.3 % (quasi-
    direct drive) to 11.8 % (knee) off."""
    p = request.getfixturevalue(name)
    b = bench_params(p, load_inertia_kg_m2=p.load.inertia_kg_m2, gear_only=True)
    flat_ke = (0.0,) * len(b.reducer.kinematic_error_amplitudes_rad)
    b = variant(b, reducer=ideal_reducer(b, kinematic_error_amplitudes_rad=flat_ke))
    n = round(1.0 / b.dt_s)  # a one-second period; the second one is analysed
    t = np.arange(2 * n) * b.dt_s
    lines = np.array([2, 3, 5, 8, 13, 20])
    u = sum(0.02 * b.reducer.rated_torque_nm * np.sin(2 * math.pi * f * t + 0.7 * k) for k, f in enumerate(lines))
    v = np.asarray(simulate(b, duration_s=2.0, torque_nm=u)["velocity_rad_s"])[n:]
    measured = np.fft.rfft(v)[lines] / np.fft.rfft(u[n:])[lines]
    model = TwoMass.from_params(b)
    s = 2j * math.pi * lines
    ratio = measured / (s * model.plant(s)[1])
    np.testing.assert_allclose(np.abs(ratio), 1.0, rtol=0.005)
    assert np.all(np.abs(np.degrees(np.angle(ratio))) < 2.0)
    without = measured / (s * replace(model, emf_inertia_kg_m2=0.0).plant(s)[1])
    assert np.all(np.abs(np.abs(without) - 1.0) > 0.02)  # the check above can fail


def test_back_emf_inertia_is_the_current_loops_closed_form(knee: JointParams) -> None:
    """J_e = 1.5 (p lambda)² / (R w_c), w_c the designed loop's; corners R / L and w_c."""
    m = knee.motor
    wc = current_loop_design(m.phase_resistance_ohm, m.q_inductance_h, knee.dt_s, knee.drive.current_loop_bandwidth_hz)
    j_e, (c1, c2) = back_emf_inertia(knee)
    ke = m.pole_pairs * m.flux_linkage_wb
    assert j_e == pytest.approx(1.5 * ke * ke / (m.phase_resistance_ohm * wc), rel=1e-12)
    assert j_e / knee.motor_side_inertia_kg_m2 == pytest.approx(0.209, abs=0.001)  # 21 % of the rotor and generator
    assert (c1, c2) == (m.phase_resistance_ohm / m.q_inductance_h, wc)
    model = TwoMass.from_params(knee)
    assert model.emf_inertia_kg_m2 == pytest.approx(j_e * knee.reducer.ratio ** 2, rel=1e-12)
    assert model.apparent_inertia_kg_m2 == pytest.approx(model.total_inertia_kg_m2 + j_e * knee.reducer.ratio ** 2)


@pytest.mark.parametrize("torque, coupling", [(1.0, "driving"), (-1.0, "driven"), (0.0, "rest")])
def test_mesh_coupling_follows_the_power_flow(knee: JointParams, torque: float, coupling: str) -> None:
    """The mesh loss scales the flexspline torque the motor carries: 1 / eta driving, 2 - 1 / eta driven (the
    simulated gear's forward and back-driving efficiencies, actuator/model/mechanics.py), 1 with no torque."""
    eta = knee.reducer.efficiency
    expected = {"driving": 1.0 / eta, "driven": 2.0 - 1.0 / eta, "rest": 1.0}[coupling]
    model = TwoMass.from_params(knee, torque * knee.reducer.t1_nm)
    assert model.mesh_coupling == pytest.approx(expected, rel=1e-12)
    # the undamped plant's pole is the closed form sqrt(k (m / J1' + 1 / J2)), J1' with the back-EMF's real part
    w = 2 * math.pi * model.resonance_hz
    j1 = model.motor_inertia_kg_m2 + float(np.real(model.emf_inertia_at(1j * w)))
    assert w == pytest.approx(math.sqrt(model.stiffness_nm_per_rad * (expected / j1 + 1 / model.load_inertia_kg_m2)),
                              rel=1e-9)
