"""The friction map over temperature (issue 17, item 4, ``experiments.friction_temperature``, protocol
``friction_temperature_calibrate``): the grease's beta and the Coulomb and static friction at the reference
temperature recovered on the simulated knee and over a population of 20 joints drawn from seeds/spread.toml (the
batch executor: each run is minutes of joint time), and the refusals.

The known values (seeds/joints/knee.toml): beta = 0.043/K (reducer.lubricant_temp_coeff_per_k, the same in every
unit: the spread does not vary it), T_ref = 25 °C, Fc(T_ref) = 11.5 N·m, Fs(T_ref) = 15 N·m at the output. The
default run (3 maps of 8 speeds, two 240 s heats at 0.85 x 150 N·m: 555 s of joint time) takes the housing over about
15 K (25.0, 33.1, 39.8 °C seen); measured on the nominal knee: beta 0.04278 (-0.5 %), u(beta) 0.00037 (0.9 %),
Fc(T_ref) 11.45 N·m, Fs(T_ref) 15.25 N·m. Bounds:
* beta within 3 % of 0.043: the biases of the module docstring (the non-grease share of the map's Fc, 0.04 N·m of
  9 N·m, -0.5 %; the housing cooling over a map after a heat) and 3 standard uncertainties of the fit (0.9 % each;
  a population run with shorter heats, 150 s, spans about 10 K: about 1.3 %);
* Fc(T_ref) within 0.4 N·m and Fs(T_ref) within 1.0 N·m of the truth, the friction map's own bounds
  (tests/rig/test_friction_calibration.py), a population joint's scaled by Kt_nominal / Kt_joint as there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actuator.errors import CalibrationError, ConfigError
from actuator.params import load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.friction_temperature import (
    analyze_friction_temperature,
    fit_temperature,
    friction_temperature_config,
    friction_temperature_segments,
)
from firmware_iface.experiments.inprocess import run_segments
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.firmware import JointFirmware

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
BETA, BETA_REL, FC_TOL_NM, FS_TOL_NM = 0.043, 0.03, 0.4, 1.0
# the population's run: 6 speeds, 150 s heats (about 10 K), 340 s of joint time per joint
POPULATION = dict(heat_s=150.0, speeds_rad_s=[0.02, 0.05, 0.15, 0.4, 1.0, 2.5], plateau_s=0.3)


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def _assert_recovered(f: dict, fc: float, fs: float) -> None:
    assert f["friction_beta_per_k"] == pytest.approx(BETA, rel=BETA_REL)
    assert abs(f["friction_coulomb_ref_nm"] - fc) < FC_TOL_NM
    assert abs(f["friction_static_ref_nm"] - fs) < FS_TOL_NM


def test_recovers_the_knee_beta(knee) -> None:
    assert knee.reducer.lubricant_temp_coeff_per_k == BETA and knee.reducer.lubricant_ref_temp_c == 25.0
    cfg = friction_temperature_config(knee)
    out = run_batch([knee], [{}], [("friction_temperature_calibrate", cfg)], firmware=knee)
    assert out.faults == [[]]
    o = out[0][0]
    f = o.figures
    _assert_recovered(f, 11.5, 15.0)
    assert f["friction_temp_span_k"] > 10.0 and f["friction_temp_maps"] == 3
    temps = f["friction_map_temps_c"]
    assert temps[0] == pytest.approx(25.0, abs=0.1) and temps[0] < temps[1] < temps[2]
    # each map's Coulomb friction falls with its temperature as the grease's law says, to the map's bound
    for t, fc in zip(temps, f["friction_map_coulomb_nm"], strict=True):
        assert abs(fc - 11.5 * np.exp(-BETA * (t - 25.0))) < FC_TOL_NM
    assert f["friction_beta_u_per_k"] < BETA_REL * BETA / 3  # the fit's own scatter leaves room for the biases
    assert [c.quantity for c in o.certificates] == ["friction_beta_per_k", "friction_coulomb_ref_nm",
                                                    "friction_static_ref_nm"]
    assert "friction_temp_coeff_per_k = beta" in o.certificates[0].method


def test_a_population_of_20_joints_recovers_beta(knee) -> None:
    drawn = draw(knee, load_spread(SPREAD), 20, seed=5)
    cfg = friction_temperature_config(knee, **POPULATION)
    out = run_batch([p for p, _ in drawn], [inj for _, inj in drawn], [("friction_temperature_calibrate", cfg)],
                    firmware=knee, panels=False)
    assert out.faults == [[]] * 20
    for (p, _), joint in zip(drawn, out, strict=True):
        scale = knee.torque_constant_nm_per_a / p.torque_constant_nm_per_a  # torque reported with the nominal Kt
        r = p.reducer
        _assert_recovered(joint[0].figures, scale * r.ratio * r.coulomb_friction_nm,
                          scale * r.ratio * r.static_friction_nm)


def test_the_weighted_fit_is_exact_on_the_law() -> None:
    t = np.array([25.0, 32.0, 40.0])
    values = np.column_stack([11.5 * np.exp(-BETA * (t - 25.0)), 15.0 * np.exp(-BETA * (t - 25.0))])
    noise = np.array([[1e-3, -2e-3], [-1e-3, 1e-3], [2e-3, 0.0]])
    x, u, _ = fit_temperature(t, values * (1 + noise), np.full((3, 2), 0.02), 25.0)
    assert np.exp(x[:2]) == pytest.approx([11.5, 15.0], rel=3e-3) and x[2] == pytest.approx(BETA, rel=0.01)
    assert 0 < u[2] < 1e-3


def test_maps_too_close_in_temperature_and_no_temperature_are_refused(knee) -> None:
    """Two short maps around a 2 s heat: the housing moves by hundredths of a kelvin."""
    cfg = friction_temperature_config(knee, maps=2, heat_s=2.0, speeds_rad_s=[0.05, 0.1, 0.2, 0.4, 0.8],
                                      plateau_s=0.2, settle_s=0.1)
    segs = friction_temperature_segments(cfg)
    s = run_segments(JointFirmware(knee, seed=1), segs)
    with pytest.raises(CalibrationError, match=r"span of .* K under 3 K") as e:
        analyze_friction_temperature(s, segs, cfg)
    assert e.value.reason == "ill_conditioned"
    with pytest.raises(CalibrationError, match="no housing temperature") as e:
        analyze_friction_temperature({**s, "housing_temp_c": np.full_like(s["t_s"], np.nan)}, segs, cfg)
    assert e.value.reason == "no_temperature"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(maps=1), "maps = 1"),
    (dict(heat_load_nm=140.0), "above 0.9 of the drive"),
    (dict(speeds_rad_s=[0.1, 0.2]), "at least 5"),
])
def test_bad_configurations_are_refused_before_anything_moves(knee, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        friction_temperature_config(knee, **kwargs)
