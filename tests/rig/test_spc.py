"""Statistical process control (firmware_iface.rig.spc): Western Electric rules on hand-built sequences, the range
constants against the published tables, the capability intervals' coverage on synthetic normal data, and CUSUM
drift alarms over time and by rig."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_iface.rig import spc, spc_report


def _alternating(n: int) -> np.ndarray:
    """Small values of alternating sign: no rule can fire on them."""
    return 0.3 * (-1.0) ** np.arange(n)


def test_each_western_electric_rule_fires_exactly_where_its_pattern_completes() -> None:
    z = _alternating(40)
    z[5] = 3.5                      # rule 1 (and nothing else: one point beyond 2 is not two)
    z[9] = -3.2                     # rule 1 on the low side
    z[13], z[15] = 2.5, 2.2         # rule 2 at 15: 13 and 15 beyond 2 on one side (14 is -0.3)
    z[18], z[19] = 2.5, -2.5        # opposite sides: not rule 2
    z[22:27] = [1.5, 1.2, 0.2, 1.3, 1.1]  # rule 3 at 26: four of the five ending there beyond 1, one side
    z[27] = -0.3
    z[30:39] = 0.5                  # rule 4 at 37 and 38: the 8 ending at each on one side
    z[39] = -0.5
    assert spc.western_electric(z) == {1: [5, 9], 2: [15], 3: [26], 4: [37, 38]}
    # the mirror image fires at the same points
    assert spc.western_electric(-z) == {1: [5, 9], 2: [15], 3: [26], 4: [37, 38]}


def test_western_electric_needs_the_completing_point_in_the_zone() -> None:
    z = _alternating(12)
    z[3], z[4] = 2.5, 2.5           # rule 2 completes at 4; point 5 (back to small) does not re-fire it
    z[5] = 0.1
    z[8] = 0.0                      # a point on the centre line breaks nothing else and fires nothing
    assert spc.western_electric(z) == {1: [], 2: [4], 3: [], 4: []}


@pytest.mark.parametrize(("n", "d2", "d3"), [(2, 1.128, 0.853), (5, 2.326, 0.864), (10, 3.078, 0.797),
                                             (25, 3.931, 0.708)])
def test_range_constants_match_the_tables(n: int, d2: float, d3: float) -> None:
    # Montgomery, appendix VI (three decimals): the computed constants round to them
    assert spc.d2(n) == pytest.approx(d2, abs=6e-4)
    assert spc.d3(n) == pytest.approx(d3, abs=6e-4)


def test_individuals_and_xbar_r_limits_from_the_ranges() -> None:
    x = np.array([10.0, 11.0, 10.0, 12.0, 11.0, 10.0, 11.0, 12.0, 10.0, 11.0])
    ind = spc.individuals_chart(x)
    mr_bar = np.mean(np.abs(np.diff(x)))  # 1.111: sigma = MR-bar / 1.128
    assert ind["sigma"] == pytest.approx(mr_bar / 1.1284, rel=1e-4)
    assert ind["ucl"] - ind["centre"] == pytest.approx(3 * ind["sigma"])
    assert ind["mr_ucl"] == pytest.approx(3.267 * mr_bar, rel=1e-3)  # D4(2) = 3.267
    groups = [np.arange(0, 5), np.arange(5, 10)]
    xr = spc.xbar_r_chart(x, groups)
    r_bar = np.mean([2.0, 2.0])
    assert xr["sigma"] == pytest.approx(r_bar / 2.326, rel=1e-3)
    assert xr["ucl"][0] - xr["grand_mean"] == pytest.approx(0.577 * r_bar, rel=2e-3)  # A2(5) = 0.577
    assert xr["r_ucl"][0] == pytest.approx(2.114 * r_bar, rel=2e-3)                 # D4(5) = 2.114
    assert xr["r_lcl"][0] == 0.0                                                     # D3(5) = 0


def test_capability_intervals_cover_the_true_index() -> None:
    """2000 samples of 50 from a normal process with Cp = 1.333, Cpk = 1.0: the 95 % intervals cover the true
    indices in 95 % of them. Tolerance: 3 binomial standard errors of 2000 trials (0.015), plus 0.01 for Bissell's
    approximation at n = 50 (Kushler & Hurley, JQT 24 (1992): its coverage is within a point of nominal from
    n = 30); the chi-square interval of Cp is exact, so 0.015 alone."""
    rng = np.random.default_rng(7)
    mu, sigma = 10.0, 1.0
    lsl, usl = mu - 3.0 * sigma, mu + 5.0 * sigma  # Cpk = 3 sigma / 3 sigma = 1.0, Cp = 8 sigma / 6 sigma = 1.333
    cp_true, cpk_true = (usl - lsl) / (6 * sigma), 1.0
    cover_cp = cover_cpk = 0
    trials = 2000
    for _ in range(trials):
        c = spc.capability_ci(rng.normal(mu, sigma, 50), lsl, usl)
        cover_cp += c["cp_ci"][0] <= cp_true <= c["cp_ci"][1]
        cover_cpk += c["cpk_ci"][0] <= cpk_true <= c["cpk_ci"][1]
    assert cover_cp / trials == pytest.approx(0.95, abs=0.015)
    assert cover_cpk / trials == pytest.approx(0.95, abs=0.025)


def test_cusum_finds_a_shift_within_a_bounded_delay_and_not_before() -> None:
    """A 1.5-sigma shift from run 120 of 200: k 0.5, h 5 finds it in about 6 runs on average (Montgomery table
    9.3: ARL 5.75 at 1.5 sigma with known parameters; the 100-run baseline's error adds a little); 20 runs is over
    three times that. Before the shift (ARL0 465 with known parameters) no alarm in this seeded sequence."""
    rng = np.random.default_rng(11)
    x = 5.0 + 0.2 * rng.standard_normal(200)
    x[120:] += 1.5 * 0.2
    d = spc.drift(x)
    first = d["alarms"][0]
    assert first["direction"] == "up"
    assert 120 <= first["index"] <= 120 + 20, d["alarms"]
    assert d["baseline_runs"] == 100 and d["sigma"] == pytest.approx(0.2, rel=0.2)  # MR-bar of 100 runs: 3 sd 20 %


def _run(i: int, value: float, rig: str, serial: str | None = None) -> dict:
    return {"id": i + 1, "serial": serial or f"SN-{i:04d}", "verdict": "pass", "rig": {"rig_id": rig},
            "checks": {"k": {"value": value, "min": 0.0, "max": 10.0, "unit": "N·m", "verdict": "pass"}}}


def test_a_rig_that_drifts_alone_alarms_by_rig() -> None:
    """Two rigs take turns; from run 100 rig B reads 2 sigma high. Rig B's own CUSUM (against the common baseline of
    the first 100 runs) alarms within 10 of its runs (ARL 4.0 at 2 sigma, Montgomery table 9.3) and, restarting
    after each alarm, about every 4 of its 100 shifted runs (>= 15 alarms asked). Rig A stays in control: with an
    estimated baseline its in-control ARL is well under 465 but over 60 runs, so its 100 runs after the shift hold
    a few false alarms at most (<= 3 asked). The rigs' ANOVA finds the difference (p < 1e-3)."""
    rng = np.random.default_rng(5)
    x = 5.0 + 0.2 * rng.standard_normal(300)
    rigs = ["A" if i % 2 == 0 else "B" for i in range(300)]
    x[100:][np.array(rigs[100:]) == "B"] += 2 * 0.2
    c = spc_report.check_figures("k", [_run(i, v, r) for i, (v, r) in enumerate(zip(x, rigs, strict=True))], 5)
    after = {rig: [a["run_id"] - 1 for a in v["alarms"] if a["run_id"] - 1 >= 100] for rig, v in c["by_rig"].items()}
    assert 100 <= after["B"][0] <= 100 + 2 * 10, after["B"]
    assert len(after["B"]) >= 15 and len(after["A"]) <= 3, after
    assert all(a["direction"] == "up" for a in c["by_rig"]["B"]["alarms"] if a["run_id"] > 100)
    assert c["rig_anova"]["p_value"] < 1e-3
    assert c["xbar_r"]["grouping"] == "consecutive groups of 5 runs" and c["xbar_r"]["subgroups"] == 60


def test_population_batches_are_the_subgroups() -> None:
    runs = [_run(i, 1.0 + 0.01 * i, "A", serial=f"POP-20261206T010203-s{i // 4}-{i % 4 + 1:04d}") for i in range(12)]
    grouping, groups, labels = spc_report.subgroups(runs, 5)
    assert grouping == "batch" and [g.tolist() for g in groups] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert labels == [f"POP-20261206T010203-s{s}" for s in range(3)]


def test_a_constant_check_and_a_batch_of_one_are_charted_with_the_reason() -> None:
    """A figure read on a coarse grid can be the same on every unit (a watchdog reaction in whole ticks): no sigma,
    so no limits or rules, and the reason says so; a batch of one run has no range and is left out of X-bar/R."""
    serials = [f"POP-20261206T010203-s{0 if i < 6 else 1 if i < 11 else 2}-{i:04d}" for i in range(12)]
    c = spc_report.check_figures("k", [_run(i, 0.3, "A", serial=serials[i]) for i in range(12)], 5)
    assert c["individuals"]["reason"] == "no variation between successive runs (sigma = 0)"
    assert c["individuals"]["rules"] == {"1": [], "2": [], "3": [], "4": []}
    assert c["xbar_r"]["labels"] == ["POP-20261206T010203-s0", "POP-20261206T010203-s1"]
    assert c["xbar_r"]["reason"] == "no variation within subgroups (sigma = 0)"
    assert c["capability"]["cpk"] is None and c["capability"]["cpk_reason"] == "std = 0"
    assert c["drift"]["alarms"] == [] and c["drift"]["reason"] is not None
    spc_report.chart_png(c)  # the chart is drawn all the same
