"""End-of-line anomaly detection (firmware_iface.rig.anomaly) on synthetic normal data, where the truth is known: the
false-alarm rate of the threshold, a unit unusual only jointly, the decomposition of its T^2, the robust fit's
resistance to defective units among the training ones, and the model file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from actuator.errors import ConfigError
from firmware_iface.rig import anomaly

NAMES = [f"step.f{j}" for j in range(6)]


def _cov(rho: float = 0.95) -> np.ndarray:
    """Six figures: f0 and f1 correlated rho (friction and back-drive torque move together), four independent."""
    c = np.eye(6)
    c[0, 1] = c[1, 0] = rho
    return c


def _rows(x: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(NAMES, row.tolist(), strict=True)) for row in x]


def test_false_alarm_rate_is_alpha_on_good_units() -> None:
    """Five training sets of 200 good units (8 figures, a random correlation each), 4000 new good units each: the
    share flagged at alpha = 0.01 averages 0.01. Tolerance 0.004: the Monte Carlo error of 20000 units (sd 0.0007),
    the spread of the rate between training sets (sd about 0.002 / sqrt(5)) and the trimming's 0.1 % of good units
    left out of the estimate, each well inside it."""
    rng = np.random.default_rng(3)
    rates = []
    for _ in range(5):
        a = rng.standard_normal((8, 8))
        cov = a @ a.T / 8 + 0.2 * np.eye(8)
        train = rng.multivariate_normal(np.zeros(8), cov, 200)
        model = anomaly.fit([{f"v{j}": v for j, v in enumerate(row)} for row in train], "s", alpha=0.01)
        assert model.n_fit >= 197  # the trimming keeps the good units (0.1 % expected out)
        new = rng.multivariate_normal(np.zeros(8), cov, 4000)
        rates.append(np.mean(anomaly.t2(model, new) > model.threshold()))
    assert np.mean(rates) == pytest.approx(0.01, abs=0.004), rates


def test_a_unit_inside_every_range_but_jointly_unusual_is_flagged_and_decomposed() -> None:
    rng = np.random.default_rng(4)
    model = anomaly.fit(_rows(rng.multivariate_normal(np.zeros(6), _cov(), 300)), "eol")
    unit = dict(zip(NAMES, [1.5, -1.5, 0.2, -0.3, 0.1, 0.0], strict=True))  # 1.5 sd each, opposite ways
    s = anomaly.score(model, unit)
    # against the true covariance T^2 = 2 x 1.5^2 / (1 - 0.95) ... = 90: far over the threshold (about 18)
    assert s["flagged"] and s["t2"] > 3 * s["threshold"]
    assert all(abs(f["z"]) < 2.0 for f in s["figures"])  # no figure alone is out of the ordinary
    assert set(s["drivers"][:2]) == {"step.f0", "step.f1"}
    assert sum(f["contribution"] for f in s["figures"]) == pytest.approx(s["t2"], rel=1e-9)
    # the conditional term of f0 is what T^2 loses when f0 is left out (the marginal model of the other figures)
    cov, loc = np.array(model.covariance), np.array(model.location)
    d = (np.array([unit[n] for n in NAMES]) - model.shift) / model.scale - loc
    rest = np.arange(1, 6)
    t2_rest = d[rest] @ np.linalg.solve(cov[np.ix_(rest, rest)], d[rest])
    assert s["figures"][0]["conditional_t2"] == pytest.approx(s["t2"] - t2_rest, rel=1e-9)
    # and a unit along the correlation, as far out on each figure, is not flagged
    along = anomaly.score(model, dict(zip(NAMES, [1.5, 1.5, 0.2, -0.3, 0.1, 0.0], strict=True)))
    assert not along["flagged"] and along["t2"] < along["threshold"]


def test_defective_units_in_the_training_set_do_not_mask_the_defect() -> None:
    """300 good units and 30 with the jointly unusual defect (f0 +1.5 sd, f1 -1.5 sd) train the model: the robust
    start leaves the 30 out of the estimate (their T^2 against the good units' covariance is about 90), so new units
    with the defect are still flagged (>= 95 % of 200: their T^2 is far over the threshold); a classical covariance of
    all 330 widens across the correlation to take the 30 in, and its test flags fewer than half of them."""
    rng = np.random.default_rng(5)
    good = rng.multivariate_normal(np.zeros(6), _cov(), 300)
    shift = np.array([1.5, -1.5, 0, 0, 0, 0])
    bad = rng.multivariate_normal(np.zeros(6), _cov(), 30) + shift
    model = anomaly.fit(_rows(np.vstack([good, bad])), "eol")
    assert 330 - model.n_fit >= 30 and model.n_fit >= 297
    new_bad = rng.multivariate_normal(np.zeros(6), _cov(), 200) + shift
    assert np.mean(anomaly.t2(model, new_bad) > model.threshold()) >= 0.95
    train = np.vstack([good, bad])
    d = new_bad - train.mean(axis=0)
    classical = np.einsum("ij,ij->i", d, np.linalg.solve(np.cov(train, rowvar=False), d.T).T)
    assert np.mean(classical > model.threshold()) < 0.5


def test_quantised_and_missing_figures_are_left_out_with_the_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    rows = _rows(rng.multivariate_normal(np.zeros(6), _cov(), 60))
    for i, r in enumerate(rows):
        r["step.counts"] = float(i % 3)           # three values: an overshoot read in encoder counts
        r["step.rare"] = 1.0 if i < 30 else None  # measured in half the runs
    model = anomaly.fit(rows, "eol")
    assert model.variables == NAMES
    assert model.excluded == {"step.counts": "quantised: 3 distinct values in training (< 10)",
                              "step.rare": "measured in 30 of 60 training runs (< 90%)"}
    s = anomaly.score(model, {**rows[0], "step.f3": None})
    assert s["t2"] is None and s["flagged"] is None and s["reason"] == "not measured: step.f3"
    path = tmp_path / "model.json"
    anomaly.save(model, path)
    again = anomaly.load(path)
    assert again == model and anomaly.score(again, rows[1])["t2"] == anomaly.score(model, rows[1])["t2"]
    with pytest.raises(ConfigError, match="needed"):
        anomaly.fit(rows[:10], "eol")  # 10 runs for 6 figures: at least 14 are needed


def test_a_bad_model_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema": "jointkit.results/1"}))
    with pytest.raises(ConfigError, match=r"m\.json: schema = 'jointkit.results/1': allowed 'jointkit.anomaly/1'"):
        anomaly.load(path)
    rng = np.random.default_rng(8)
    model = anomaly.fit(_rows(rng.standard_normal((40, 6))), "eol")
    data = {**anomaly.asdict(model), "location": [0.0]}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="inconsistent shapes"):
        anomaly.load(path)
