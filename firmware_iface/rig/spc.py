"""Statistical process control of the check figures of a production line: the statistics, no I/O.

This module owns, for one check's values in run order:

* the individuals / moving-range chart (:func:`individuals_chart`): centre = mean, sigma = mean moving range / d2(2)
  (the short-term sigma, which a drift does not inflate as it inflates the overall standard deviation); MR chart
  limits d2(2) sigma +- 3 d3(2) sigma;
* the X-bar / R chart over subgroups (:func:`xbar_r_chart`): sigma = mean over subgroups of R_i / d2(n_i); X-bar
  limits grand mean +- 3 sigma / sqrt(n_i), R limits d2(n_i) sigma +- 3 d3(n_i) sigma (floored at 0): per-subgroup
  limits, so unequal subgroups (batches of different sizes) are charted correctly. d2, d3 are computed from the
  normal range distribution (:func:`d2`, :func:`d3`), so any subgroup size is covered, not only a table's 2-25;
* the Western Electric rules (:func:`western_electric`, Western Electric Statistical Quality Control Handbook, 1956;
  Montgomery, Introduction to Statistical Quality Control, 5.3.6) on standardised points;
* process capability with confidence intervals (:func:`capability_ci`): the point estimates are
  ``results_db.capability``'s (the one definition of Cp/Cpk), the intervals chi-square for Cp and Bissell's normal
  approximation for Cpk;
* drift alarms (:func:`cusum`, :func:`drift`): a two-sided tabular CUSUM on the standardised values, k = 0.5,
  h = 5 (Montgomery 9.1: in-control ARL 465 runs, a 1-sigma shift found in 10.4 runs on average), centre and sigma
  from a baseline of the first runs;
* rig differences (:func:`rig_anova`): one-way ANOVA of the rigs' means.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import integrate, stats

from firmware_iface.rig.results_db import capability

CUSUM_K = 0.5          # reference value, in sigmas: tuned to a 1-sigma shift (half of it)
CUSUM_H = 5.0          # decision interval, in sigmas: ARL0 = 465 with k = 0.5 (Montgomery, table 9.3)
# the first runs estimate the centre and sigma a drift is judged against (at most half the runs). With estimated
# parameters the in-control ARL falls short of 465 (Jones, Champ & Rigdon, Technometrics 46 (2004)): from 30 runs a
# centre 0.2 sigma off gave a false alarm every ~60 runs here; 100 runs keep the error near 0.1 sigma
BASELINE_RUNS = 100
CONFIDENCE = 0.95      # of the capability intervals
WE_RULES = {
    1: "one point beyond 3 sigma",
    2: "2 of 3 consecutive points beyond 2 sigma, same side",
    3: "4 of 5 consecutive points beyond 1 sigma, same side",
    4: "8 consecutive points on one side of the centre line",
}


# ---------------------------------------------------------------------------------------------------- range constants


@functools.cache
def d2(n: int) -> float:
    """Mean of the range of n standard normal values: the integral of 1 - Phi^n - (1 - Phi)^n."""
    if n < 2:
        raise ValueError(f"subgroup size {n}: a range needs at least 2 values")
    f = lambda x: 1.0 - stats.norm.cdf(x) ** n - stats.norm.sf(x) ** n  # noqa: E731
    return float(integrate.quad(f, -12.0, 12.0, limit=200)[0])


@functools.cache
def d3(n: int) -> float:
    """Standard deviation of that range: E[R^2] = 2 * integral of r (1 - F_R(r)) dr with the range's distribution
    F_R(r) = n * integral of phi(x) (Phi(x + r) - Phi(x))^(n-1) dx, both by the trapezoidal rule on smooth
    integrands (grids of step 0.02; d3(2) = sqrt(2 - 4/pi) = 0.85250 to 1e-4)."""
    if n < 2:
        raise ValueError(f"subgroup size {n}: a range needs at least 2 values")
    x = np.linspace(-9.0, 9.0, 901)
    r = np.linspace(0.0, 14.0, 701)
    cdf = stats.norm.cdf(x)[None, :]
    inner = stats.norm.pdf(x)[None, :] * (stats.norm.cdf(x[None, :] + r[:, None]) - cdf) ** (n - 1)
    survival = 1.0 - n * integrate.trapezoid(inner, x, axis=1)
    second = 2.0 * integrate.trapezoid(r * survival, r)
    return float(math.sqrt(second - d2(n) ** 2))


# ---------------------------------------------------------------------------------------------------- rules


def western_electric(z: np.ndarray) -> dict[int, list[int]]:
    """The points where each Western Electric rule fires, for standardised points ``z`` ((x - centre) / sigma).

    A rule fires at point i when the window that ends at i holds the pattern and point i itself is one of the
    points that make it (so a point is flagged where the pattern is completed, not before it): rule 1 |z_i| > 3;
    rule 2 two of the three points ending at i beyond 2 on the side of z_i, z_i among them; rule 3 four of five
    beyond 1 likewise; rule 4 the eight points ending at i on one side (a point on the centre line is on neither).
    A sustained pattern fires at every point that extends it."""
    z = np.asarray(z, dtype=float)
    out: dict[int, list[int]] = {r: [] for r in WE_RULES}
    for i in range(z.size):
        side = np.sign(z[i])
        if abs(z[i]) > 3:
            out[1].append(i)
        if side == 0:
            continue
        for rule, (window, need, zone) in {2: (3, 2, 2.0), 3: (5, 4, 1.0)}.items():
            w = z[max(0, i - window + 1):i + 1]
            if side * z[i] > zone and w.size == window and np.sum(side * w > zone) >= need:
                out[rule].append(i)
        if i >= 7 and np.all(side * z[i - 7:i + 1] > 0):
            out[4].append(i)
    return out


# ---------------------------------------------------------------------------------------------------- charts


def individuals_chart(x: np.ndarray) -> dict[str, Any]:
    """Individuals and moving-range chart of ``x`` (run order), with the Western Electric flags of the points."""
    x = np.asarray(x, dtype=float)
    if x.size < 3:
        return {"n": int(x.size), "reason": "fewer than 3 values"}
    mr = np.abs(np.diff(x))
    mr_bar = float(mr.mean())
    sigma = mr_bar / d2(2)
    centre = float(x.mean())
    out = {"n": int(x.size), "centre": centre, "sigma": sigma, "ucl": centre + 3 * sigma, "lcl": centre - 3 * sigma,
           "mr_bar": mr_bar, "mr_ucl": mr_bar + 3 * d3(2) * sigma, "reason": None}
    if sigma == 0:
        out.update(reason="no variation between successive runs (sigma = 0)", rules={r: [] for r in WE_RULES},
                   mr_beyond_ucl=[])
        return out
    out["rules"] = western_electric((x - centre) / sigma)
    out["mr_beyond_ucl"] = [int(i) + 1 for i in np.flatnonzero(mr > out["mr_ucl"])]  # index of the later point
    return out


def xbar_r_chart(x: np.ndarray, groups: list[np.ndarray]) -> dict[str, Any]:
    """X-bar and R chart of ``x`` over the subgroups ``groups`` (index arrays into x, each of at least 2 points)."""
    x = np.asarray(x, dtype=float)
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 2:
        return {"subgroups": len(groups), "reason": "fewer than 2 subgroups of 2 or more values"}
    sizes = np.array([len(g) for g in groups])
    means = np.array([x[g].mean() for g in groups])
    ranges = np.array([np.ptp(x[g]) for g in groups])
    sigma = float(np.mean(ranges / np.array([d2(int(n)) for n in sizes])))
    grand = float(np.sum(means * sizes) / sizes.sum())
    half = 3 * sigma / np.sqrt(sizes)
    r_centre = np.array([d2(int(n)) for n in sizes]) * sigma
    r_half = 3 * np.array([d3(int(n)) for n in sizes]) * sigma
    out = {"subgroups": len(groups), "sizes": sizes.tolist(), "means": means.tolist(), "ranges": ranges.tolist(),
           "grand_mean": grand, "sigma": sigma, "ucl": (grand + half).tolist(), "lcl": (grand - half).tolist(),
           "r_centre": r_centre.tolist(), "r_ucl": (r_centre + r_half).tolist(),
           "r_lcl": np.maximum(r_centre - r_half, 0.0).tolist(), "reason": None}
    if sigma == 0:
        out.update(reason="no variation within subgroups (sigma = 0)", rules={r: [] for r in WE_RULES},
                   r_beyond_ucl=[])
        return out
    out["rules"] = western_electric((means - grand) / (sigma / np.sqrt(sizes)))
    out["r_beyond_ucl"] = [int(i) for i in np.flatnonzero(ranges > r_centre + r_half)]
    return out


# ---------------------------------------------------------------------------------------------------- capability


def capability_ci(values: np.ndarray, lsl: float | None, usl: float | None,
                  confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``results_db.capability``'s figures with two-sided ``confidence`` intervals (``cp_ci``, ``cpk_ci``).

    Cp: (n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom, so Cp lies in
    [Cp sqrt(chi2_{a/2, n-1} / (n-1)), Cp sqrt(chi2_{1-a/2, n-1} / (n-1))] (Montgomery, 8.3.5; NIST/SEMATECH
    e-Handbook 6.1.6). Cpk: Bissell's approximation (Bissell, Journal of Applied Statistics 17 (1990) 485-489),
    Cpk +- z_{1-a/2} sqrt(1 / (9 n) + Cpk^2 / (2 (n - 1))); for a one-sided limit the same with Cpu or Cpl.
    Both assume normal, independent values from a process in control."""
    values = np.asarray(values, dtype=float)
    out = dict(capability(values, lsl, usl))
    out.update(lsl=lsl, usl=usl, confidence=confidence, cp_ci=None, cpk_ci=None)
    n, a = out["n"], 1.0 - confidence
    if out["cp"] is not None:
        lo, hi = stats.chi2.ppf([a / 2, 1 - a / 2], n - 1)
        out["cp_ci"] = [out["cp"] * math.sqrt(lo / (n - 1)), out["cp"] * math.sqrt(hi / (n - 1))]
    if out["cpk"] is not None:
        half = stats.norm.ppf(1 - a / 2) * math.sqrt(1 / (9 * n) + out["cpk"] ** 2 / (2 * (n - 1)))
        out["cpk_ci"] = [out["cpk"] - half, out["cpk"] + half]
    return out


# ---------------------------------------------------------------------------------------------------- drift


def cusum(z: np.ndarray, k: float = CUSUM_K, h: float = CUSUM_H) -> dict[str, Any]:
    """Two-sided tabular CUSUM of standardised values ``z``: C+ = max(0, z - k + C+), C- = max(0, -z - k + C-);
    an alarm where either exceeds h, after which both restart from 0 (so a lasting shift alarms again)."""
    z = np.asarray(z, dtype=float)
    hi, lo = np.zeros(z.size), np.zeros(z.size)
    alarms: list[dict[str, Any]] = []
    up = down = 0.0
    for i, v in enumerate(z):
        up, down = max(0.0, v - k + up), max(0.0, -v - k + down)
        hi[i], lo[i] = up, down
        if up > h or down > h:
            alarms.append({"index": i, "direction": "up" if up > h else "down"})
            up = down = 0.0
    return {"k": k, "h": h, "c_plus": hi.tolist(), "c_minus": lo.tolist(), "alarms": alarms}


def baseline(x: np.ndarray, runs: int = BASELINE_RUNS) -> tuple[float, float, int]:
    """(centre, sigma, runs used) from the first ``runs`` values (at most half of them): mean and MR-bar / d2(2)."""
    x = np.asarray(x, dtype=float)
    m = min(runs, x.size // 2)
    if m < 3:
        return math.nan, math.nan, m
    return float(x[:m].mean()), float(np.abs(np.diff(x[:m])).mean() / d2(2)), m


def drift(x: np.ndarray, runs: int = BASELINE_RUNS, k: float = CUSUM_K, h: float = CUSUM_H) -> dict[str, Any]:
    """CUSUM drift alarms of ``x`` (run order) against the baseline of its first runs."""
    centre, sigma, m = baseline(x, runs)
    if not m >= 3 or not sigma > 0:
        return {"baseline_runs": m, "centre": centre, "sigma": sigma, "alarms": [],
                "reason": "baseline too short or without variation"}
    out = cusum((np.asarray(x, dtype=float) - centre) / sigma, k, h)
    return {"baseline_runs": m, "centre": centre, "sigma": sigma, "reason": None, **out}


def rig_anova(groups: dict[str, np.ndarray]) -> dict[str, Any]:
    """One-way ANOVA of the rigs' means (F test): are the rigs measuring the same process the same?"""
    usable = {r: np.asarray(v, dtype=float) for r, v in groups.items() if len(v) >= 2}
    if len(usable) < 2:
        return {"rigs": len(usable), "f": None, "p_value": None, "reason": "fewer than 2 rigs with 2 runs or more"}
    if all(np.ptp(v) == 0 for v in usable.values()):
        return {"rigs": len(usable), "f": None, "p_value": None, "reason": "no variation within rigs"}
    res = stats.f_oneway(*usable.values())
    return {"rigs": len(usable), "f": float(res.statistic), "p_value": float(res.pvalue), "reason": None}
