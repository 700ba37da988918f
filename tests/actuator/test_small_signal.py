"""The linear model's stiffness at an operating torque against a plain-Python reference, and its resonance against
the simulated plant measured about a sliding state (issue 16, item 6).

The reference for the stiffness is the model's own flexspline law written out here (actuator/model/mechanics.py):
tau_fs = K(phi) - D(phi) + tau_h, K the catalogue's piecewise curve, D(phi) = tau_hmax (1 - exp(-sigma |phi| /
tau_hmax)) sgn(phi), the Dahl state centred on zero in motion; small motions see K'(phi0) + sigma - D'(phi0).
"""

from __future__ import annotations

import math

import pytest
from scipy.optimize import brentq

from actuator.analysis.catalogue import bench_params, plant_resonance_hz
from actuator.analysis.linear import TwoMass, operating_twist_rad, small_signal_stiffness_nm_per_rad
from actuator.params import JointParams


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


@pytest.mark.parametrize("name", ["knee", "wrist"])
@pytest.mark.parametrize("t1_fraction", [0.5, -1.0])  # driving the load, and driven by it
def test_resonance_in_motion_is_the_linear_models_within_5_percent(request, name: str, t1_fraction: float) -> None:
    """The issue's 5 %. Measured: knee -1.4 % at T1 / 2 and -4.2 % at -T1, wrist -1.5 % and -1.2 %. Most of the
    knee's gap is the drive's: its current loop against the back-EMF acts as 16 % more motor inertia, which the
    linear model leaves out; and the mesh loss couples the flexspline to the motor by 1 / eta driving, 2 - 1 / eta
    driven. Together they would bring both knee points within 0.6 %. Not at no load: there the stiffness rises
    from k1 to 1.15 k1 within 1.3e-5 rad of twist, so the twist the kinematic error cycles moves it."""
    p = request.getfixturevalue(name)
    torque = t1_fraction * p.reducer.t1_nm
    bench = bench_params(p, load_inertia_kg_m2=p.load.inertia_kg_m2)  # what plant_resonance_hz measures
    measured_hz, twist = plant_resonance_hz(p, torque)
    model = TwoMass.from_params(bench, torque)
    assert measured_hz == pytest.approx(model.resonance_hz, rel=0.05)
    # the twist measured in motion is where the model puts the operating point (the Dahl state centred on zero)
    assert twist == pytest.approx(operating_twist_rad(bench, torque), rel=0.03)
    # loaded, the resonance is far above the no-load model's: the stiffening the model now takes
    assert model.resonance_hz > 1.3 * TwoMass.from_params(bench).resonance_hz
