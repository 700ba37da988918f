"""The F/T sensor's sensitivity and crosstalk matrix against the wrench fixture (issue 17, item 5:
``experiments.ft_crosstalk``, protocol ``ft_crosstalk_calibrate``): the knee's injected crosstalk recovered, the same
over a population of 20 joints drawn from seeds/spread.toml each with its own crosstalk (the batch executor); the
compensation and the bias written to the joint and its reported wrench at a known load right afterwards, and after a
reboot from flash; the refusals (``CalibrationError``) of a run that cannot give a result.

The tolerance of a recovered entry S_ij, from the sensor's noise and the load set (``predicted_u``): with the +-a_j
design S_ij = (y_i(+a_j) - y_i(-a_j)) / (2 a_j), each mean of N = average_s x 1 kHz independent samples (the sensor
samples at 8 kHz, each 1 ms row holds a fresh one) of sd sigma_i, and the bias's random walk (walk_i per sqrt(s))
moving between the two averages by walk_i sqrt(dt), dt = ramp_s + settle_s + average_s from one average's middle to
the next: u(S_ij) = sqrt(sigma_i^2 / N + walk_i^2 dt / 2) / (sqrt(2) a_j). The tests take 5 u: over the 36 x 21
entries checked, a normal error beyond 5 sd has a chance of 4e-4 in all (the runs are seeded: the figures are
reproducible, the bound is what makes them meaningful).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import can
import numpy as np
import pytest

from actuator.errors import CalibrationError, ConfigError
from actuator.model import layout as L
from actuator.params import JointParams, load_preset
from firmware_iface.client.joint import JointClient
from firmware_iface.experiments.batch import run_batch
from firmware_iface.experiments.calibrations import ROUTINES, judged, run_on_client, write_to_joint
from firmware_iface.experiments.ft_calibration import ft_calibrate_config
from firmware_iface.experiments.ft_crosstalk import fit_crosstalk, ft_crosstalk_config
from firmware_iface.experiments.inprocess import run_protocol, run_segments
from firmware_iface.experiments.segments import go_home
from firmware_iface.protocol.load import load_native
from firmware_iface.rig.spread import draw, load_spread
from firmware_iface.virtual_joint.firmware import JointFirmware
from firmware_iface.virtual_joint.sensor_settings import BIAS_PARAMS, COMPENSATION_PARAMS

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
SHORT = dict(settle_s=0.15, average_s=0.25, ramp_s=0.1, move_s=0.3)  # 7.6 s of joint time, 14 load cases
K_SIGMA = 5.0
BIAS = [3.0, -2.0, 5.0, 0.2, -0.1, 0.05]  # N and N·m: a sensor zeroed elsewhere, well inside its range


def crosstalk_of(p: JointParams) -> np.ndarray:
    return np.array(p.ft_sensor.crosstalk)


def predicted_u(p: JointParams, cfg: dict) -> np.ndarray:
    """u(S_ij) from the sensor's noise and walk and the load set (module docstring)."""
    ft = p.ft_sensor
    sigma = np.array([*ft.noise_force_n, *ft.noise_torque_nm])
    walk = np.array([*ft.bias_walk_force_n_per_sqrt_s, *ft.bias_walk_torque_nm_per_sqrt_s])
    n = cfg["average_s"] * 1000.0
    dt = cfg["ramp_s"] + cfg["settle_s"] + cfg["average_s"]
    a = np.max(np.abs(np.array(cfg["wrenches"])), axis=0)
    return np.sqrt(sigma ** 2 / n + walk ** 2 * dt / 2.0)[:, None] / (np.sqrt(2.0) * a[None, :])


@pytest.fixture(scope="module")
def knee() -> JointParams:
    return load_preset("knee")


@pytest.fixture(scope="module")
def calibrated(knee):
    """The knee with a bias, its crosstalk calibrated (short run) and the compensation written: (joint, outcome)."""
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("ft_bias_step", BIAS)
    out, _ = run_protocol(fw, "ft_crosstalk_calibrate", ft_crosstalk_config(knee, **SHORT))
    return fw, out


def test_recovers_the_knee_crosstalk(knee, calibrated) -> None:
    _, out = calibrated
    f = out.figures
    cfg = ft_crosstalk_config(knee, **SHORT)
    true = np.eye(6) + crosstalk_of(knee)
    s = np.array(f["ft_sensitivity"]).reshape(6, 6)
    u_pred = predicted_u(knee, cfg)
    assert np.all(np.abs(s - true) <= K_SIGMA * u_pred), (s - true) / u_pred
    # the fit's own uncertainty is the noise's and the walk's: within a factor 3 of the prediction (7 degrees of
    # freedom per row: its residual sd lies within 0.3..1.8 of the true one with 98 % probability)
    ratio = np.array(f["ft_sensitivity_u"]).reshape(6, 6) / u_pred
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    # the compensation is its inverse, and what it leaves is the noise's: under the default 0.1 % FS
    assert np.allclose(np.array(f["ft_compensation"]).reshape(6, 6) @ s, np.eye(6), atol=1e-12)
    assert f["ft_crosstalk_after_max_fs"] < 1e-3
    # the knee's raw crosstalk in full-scale terms: Mz from Fz, 0.004 x 1160 / 20 N·m
    assert f["ft_crosstalk_max_fs"] == pytest.approx(0.004 * 1160 / 20, rel=0.01)
    assert f["ft_xt_cases"] == 14 and f["ft_xt_condition_number"] < 2
    assert [c.quantity for c in out.certificates] == ["ft_sensitivity", "ft_compensation"]
    verdict = judged(ROUTINES["ft-crosstalk"], out)
    assert verdict["verdict"] == "pass", verdict["failed"]


def test_a_population_of_20_joints_recovers_its_own_crosstalk(knee) -> None:
    """20 knees of seeds/spread.toml (noise 10 % sd, ...), each with its own crosstalk (the spread file cannot vary a
    matrix: the knee's scaled by 1 + 0.3 z plus 0.003 sd on each off-diagonal entry), through the batch executor:
    each joint's matrix within 5 u of its own."""
    rng = np.random.default_rng(11)
    drawn = []
    for p, inj in draw(knee, load_spread(SPREAD), 20, seed=5):
        e = crosstalk_of(knee) * (1.0 + 0.3 * rng.standard_normal()) + 0.003 * rng.standard_normal((6, 6))
        np.fill_diagonal(e, 0.0)
        drawn.append((replace(p, ft_sensor=replace(p.ft_sensor, crosstalk=tuple(map(tuple, e.tolist())))), inj))
    cfg = ft_crosstalk_config(knee, **SHORT)
    out = run_batch([p for p, _ in drawn], [inj for _, inj in drawn], [("ft_crosstalk_calibrate", cfg)],
                    firmware=knee, panels=False)
    assert out.faults == [[]] * 20
    worst = 0.0
    for (p, _), joint in zip(drawn, out, strict=True):
        s = np.array(joint[0].figures["ft_sensitivity"]).reshape(6, 6)
        worst = max(worst, float(np.max(np.abs(s - np.eye(6) - crosstalk_of(p)) / predicted_u(p, cfg))))
        assert joint[0].figures["ft_crosstalk_after_max_fs"] < 1e-3
    assert worst <= K_SIGMA, worst
    # the joints differ by more than the bound: a routine that returned the knee's matrix would fail
    spread = max(float(np.max(np.abs(crosstalk_of(p) - crosstalk_of(knee)) / predicted_u(p, cfg))) for p, _ in drawn)
    assert spread > 10 * K_SIGMA


def _reported(fw: JointFirmware, wrench: list[float], hold_s: float = 0.3) -> np.ndarray:
    """The mean wrench the joint reports (its telemetry) while the fixture's ``wrench`` is on its tool, the joint
    moved to and held at the hanging pose (0 rad) in position mode."""
    run_segments(fw, go_home(0.0, 0.6, 0.2))
    fw.model.inject("external_wrench", wrench)
    rows = []
    for k in range(100 + round(hold_s * 1000)):  # 0.1 s to settle, then the hold; commanded every 1 ms (watchdog)
        fw.command("position", 0.0, 0.0, 0.0)
        fw.advance(0.001)
        if k >= 100:
            rows.append(fw.telemetry()["wrench"])
    fw.model.inject("external_wrench", [0.0] * 6)
    assert fw.state == "closed_loop", fw.faults
    assert abs(fw.telemetry()["position_rad"]) < 1e-3  # the weight along x: cos 1e-3 = 1 - 5e-7
    return np.mean(rows, axis=0)


def test_written_compensation_and_bias_make_the_reported_wrench_right(knee, calibrated, tmp_path) -> None:
    """The compensation (ft-crosstalk) then the bias (ft, run through the compensation) written to the joint; its
    reported wrench at a known load (100 N along x, -60 N along z, 5 N·m about z) is that load plus the tool's weight
    (9.81 N along x at the hanging pose) within 5 sd of the mean of the readings' noise (300 samples; the walk over
    the hold, 0.007 N/sqrt(s) x sqrt(0.3 s) = 0.004 N, is inside it) plus the fits' stated uncertainties. Before the
    write it is off by the bias and the crosstalk (3 N, and -0.2 N·m of My from Fx). A reboot from flash restores
    the same."""
    fw, out = calibrated
    fw.flash_path = tmp_path / "flash.toml"
    load = [100.0, 0.0, -60.0, 0.0, 0.0, 5.0]
    weight = np.zeros(6)
    weight[0] = knee.ft_sensor.tool_mass_kg * knee.load.gravity_m_s2
    expected = np.array(load) + weight
    ft = knee.ft_sensor
    noise = np.array([*ft.noise_force_n, *ft.noise_torque_nm]) / np.sqrt(300)
    before = _reported(fw, load)
    xt = write_to_joint(fw, ROUTINES["ft-crosstalk"], out.figures, ())
    assert set(xt) == set(COMPENSATION_PARAMS)
    ft_out, _ = run_protocol(fw, "ft_calibrate", ft_calibrate_config(params=knee, settle_s=0.2, average_s=0.3,
                                                                     move_s=0.5))
    bias = write_to_joint(fw, ROUTINES["ft"], ft_out.figures, (), save=True)
    assert set(bias) == set(BIAS_PARAMS)
    assert np.allclose([bias[n] for n in BIAS_PARAMS], BIAS, atol=0.1)  # the raw bias, through the compensation
    f = ft_out.figures
    u_bias = np.array([*f["ft_bias_force_u_n"], *f["ft_bias_moment_u_nm"]])
    u_k = np.array(out.figures["ft_compensation_u"]).reshape(6, 6) @ np.abs(load)
    tol = K_SIGMA * np.sqrt(noise ** 2 + u_bias ** 2 + u_k ** 2)
    after = _reported(fw, load)
    assert np.all(np.abs(after - expected) <= tol), (after - expected, tol)
    assert np.any(np.abs(before - expected) > 10 * tol)
    # the tool's centre of mass through the compensation: the crosstalk's apparent 2 mm (ft routine's docstring) gone
    assert f["tool_com_max_m"] < 5e-4
    rebooted = JointFirmware(knee, seed=2, flash_path=fw.flash_path)
    rebooted.model.inject("ft_bias_step", BIAS)
    assert [rebooted.read_param(n) for n in (*BIAS_PARAMS, *COMPENSATION_PARAMS)] == pytest.approx(
        [fw.read_param(n) for n in (*BIAS_PARAMS, *COMPENSATION_PARAMS)], abs=0.0)
    assert np.all(np.abs(_reported(rebooted, load) - expected) <= tol)


def test_a_saturated_sensor_is_refused_and_the_joint_left_unloaded(knee) -> None:
    """A bias of 1000 N on Fz (range 1160 N, clipping at 1.05 x): the +232 N case clips."""
    fw = JointFirmware(knee, seed=1)
    fw.model.inject("ft_bias_step", [0.0, 0.0, 1000.0, 0.0, 0.0, 0.0])
    with pytest.raises(CalibrationError, match=r"saturated at load case 6 \[0.0, 0.0, 232.0") as e:
        run_protocol(fw, "ft_crosstalk_calibrate", ft_crosstalk_config(knee, **SHORT))
    assert e.value.reason == "saturated"
    assert np.all(fw.model.env[L.E_WRENCH:L.E_WRENCH + 6] == 0.0)  # the fixture unloaded
    assert fw.state in ("closed_loop", "fault", "idle") and abs(fw.telemetry()["position_rad"]) < 0.01


def test_a_rig_without_a_wrench_fixture_is_refused_before_anything_is_sent(knee) -> None:
    with can.Bus(interface="virtual", channel="ftx-no-fixture") as host, \
            can.Bus(interface="virtual", channel="ftx-no-fixture") as sniffer:
        client = JointClient(host, 1, load_native())
        try:
            routine = ROUTINES["ft-crosstalk"]
            with pytest.raises(CalibrationError, match="no wrench fixture") as e:
                run_on_client(client, routine, knee, ft_crosstalk_config(knee, **SHORT), fixture=None)
            assert e.value.reason == "no_fixture"
            assert sniffer.recv(timeout=0.05) is None
        finally:
            client.close()


def test_a_fixture_that_applies_nothing_is_refused() -> None:
    """Readings that do not follow the loads (the sensor sees only its bias and noise): no_load."""
    cfg_w = np.array([[0.0] * 6] + [[s * 100.0 if i == j else 0.0 for i in range(6)] for j in range(6)
                                    for s in (1.0, -1.0)] + [[0.0] * 6])
    y = np.random.default_rng(0).normal(0.0, 0.01, cfg_w.shape) + 3.0
    with pytest.raises(CalibrationError, match="do not reach the sensor") as e:
        fit_crosstalk(cfg_w, y)
    assert e.value.reason == "no_load"


def test_loads_that_do_not_determine_the_matrix_are_refused() -> None:
    w = np.zeros((9, 6))
    w[1:, 0] = np.linspace(-100, 100, 8)  # only Fx loaded
    with pytest.raises(CalibrationError) as e:
        fit_crosstalk(w, w @ np.eye(6).T)
    assert e.value.reason == "ill_conditioned"


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(wrenches=[[0.0] * 6] * 3), "at least 8"),
    (dict(force_fraction=0.9), "over 0.8 of the sensor's range"),
    (dict(wrenches=[[0.0, 200.0, 0, 0, 0, 0]] + [[0.0] * 6] * 7), "turns the joint by 80"),
    (dict(home_rad=3.0), "outside the joint's position limits"),
])
def test_bad_configurations_are_refused_before_anything_moves(knee, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ft_crosstalk_config(knee, **kwargs)
