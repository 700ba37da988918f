"""End-of-line anomaly detection: a multivariate model of the check figures of good units, and the score of a unit.

A unit can pass every limit one figure at a time and still be unlike the good units taken together (friction a
little high *and* stiffness a little low, each inside its limits). This module owns

* the model (:func:`fit`): a robust location and covariance of the check figures of the good (``pass``) runs of one
  sequence. The start is the minimum covariance determinant (FAST-MCD of Rousseeuw & Van Driessen, Technometrics
  41 (1999) 212-223, in its minimal form: random (p+1)-subsets, C-steps, the best few iterated to convergence, the
  consistency factor); from it, phase-I trimming to a fixed point: the classical mean and covariance of the units
  kept, keeping every unit under its T^2 threshold at ``TRIM_ALPHA`` = 0.001. MCD's half-sample ignores a few
  defective units that passed their limits (a classical covariance would widen to admit them: masking); the
  trimming then gives back the clean units MCD's own 0.975 reweighting drops (its finite-sample shrinkage made
  good units 3 % false alarms at alpha 1 % with 200 units, 22 % with 60), so the thresholds below hold.
  sklearn's MinCovDet is not a dependency here;
* the score (:func:`score`): Hotelling's T^2 = d' S^-1 d of the unit's figures against the model, the threshold for
  a false-alarm rate ``alpha``, and which figures drive it;
* the model file (:func:`save`, :func:`load`: JSON, schema ``jointkit.anomaly/1``).

Thresholds (Tracy, Young & Mason, J. Quality Technology 24 (1992) 88-95; Montgomery, Introduction to Statistical
Quality Control, ch. 11), m = units kept by the trimming, p = figures:

* a new unit (phase II, ``run --anomaly-model`` and the bench): T^2 ~ p (m+1)(m-1) / (m (m-p)) F(p, m-p);
* a unit that is one of the m (phase I, the report scoring its own training runs): T^2 ~ (m-1)^2 / m
  Beta(p/2, (m-p-1)/2).

Both are exact for a classical estimate on normal data; the trimmed estimate drops about 0.1 % of a clean sample,
so they hold to within that (the false-alarm rate is checked on synthetic normal data in tests/rig/test_anomaly.py).

What drives a flag: with d the deviation and u = S^-1 d, figure j's contribution is d_j u_j (they sum to T^2), and
its conditional term u_j^2 / (S^-1)_jj is how much T^2 falls when figure j is left out: the Mason-Young-Tracy term
of figure j given all the others (large when j is unusual *given* the other figures, even at a small z-score).

Figures: each check's value, named ``step.figure`` as in results.json. A figure enters the model when it is
measured in at least 90 % of the training runs and takes at least ``MIN_DISTINCT`` distinct values there (a
quantised figure, e.g. an overshoot read in encoder counts, makes the half-sample's covariance singular); the
others are listed in the model's ``excluded`` with the reason. Figures are centred on their median and scaled by
their MAD before the fit (they span 1e-4 rad to 4e4 N·m/rad: the covariance would otherwise be ill-conditioned);
T^2 does not depend on that scaling.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from actuator.errors import ConfigError
from firmware_iface.defaults import ANOMALY_ALPHA as DEFAULT_ALPHA

SCHEMA = "jointkit.anomaly/1"
MIN_DISTINCT = 10         # a figure with fewer distinct values in training is quantised: left out of the model
MIN_PRESENT = 0.9         # a figure missing in more than 10 % of the training runs is left out
TRIM_ALPHA = 0.001        # phase-I trimming: a good unit is dropped from the estimate once in a thousand
N_STARTS = 200            # random starts of FAST-MCD (their paper: 500; 200 with 2 C-steps each finds the same
N_BEST = 10               # minimum on these figures); the best N_BEST are iterated to convergence
MAX_C_STEPS = 100
DRIVERS = 3               # figures named as a flag's drivers


@dataclass
class AnomalyModel:
    sequence: str
    variables: list[str]          # check names, step.figure
    shift: list[float]            # per figure: the training median ...
    scale: list[float]            # ... and MAD (x 1.4826): z = (x - shift) / scale
    location: list[float]         # the trimmed location of z
    covariance: list[list[float]]  # the trimmed covariance of z
    n_train: int                  # good runs with every figure
    n_fit: int                    # of them, those kept by the trimming (m)
    alpha: float = DEFAULT_ALPHA
    excluded: dict[str, str] = field(default_factory=dict)
    method: str = "FAST-MCD start, phase-I trimming at 0.001, Hotelling T^2"
    schema: str = SCHEMA

    @property
    def p(self) -> int:
        return len(self.variables)

    def threshold(self, in_fit: bool = False, alpha: float | None = None) -> float:
        """The T^2 above which a unit is flagged at false-alarm rate ``alpha`` (the model's by default)."""
        a = self.alpha if alpha is None else alpha
        m, p = self.n_fit, self.p
        if in_fit:
            return (m - 1) ** 2 / m * float(stats.beta.ppf(1 - a, p / 2, (m - p - 1) / 2))
        return p * (m + 1) * (m - 1) / (m * (m - p)) * float(stats.f.ppf(1 - a, p, m - p))

    def p_value(self, t2: float, in_fit: bool = False) -> float:
        m, p = self.n_fit, self.p
        if in_fit:
            return float(stats.beta.sf(t2 * m / (m - 1) ** 2, p / 2, (m - p - 1) / 2))
        return float(stats.f.sf(t2 * m * (m - p) / (p * (m + 1) * (m - 1)), p, m - p))


# ---------------------------------------------------------------------------------------------------- FAST-MCD


def _fit_subset(z: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    mu = z[idx].mean(axis=0)
    cov = np.atleast_2d(np.cov(z[idx], rowvar=False))
    sign, logdet = np.linalg.slogdet(cov)
    return mu, cov, (logdet if sign > 0 else -math.inf)


def _d2(z: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = z - mu
    return np.einsum("ij,ij->i", d, np.linalg.solve(cov, d.T).T)


def _c_steps(z: np.ndarray, idx: np.ndarray, h: int, steps: int) -> tuple[np.ndarray, float]:
    """Concentration steps: the h units nearest the subset's fit, again, until the subset stays (its determinant
    never grows: Rousseeuw & Van Driessen's theorem 1)."""
    logdet = -math.inf
    for _ in range(steps):
        mu, cov, logdet = _fit_subset(z, idx)
        if logdet == -math.inf:
            return idx, logdet
        new = np.sort(np.argsort(_d2(z, mu, cov))[:h])
        if np.array_equal(new, idx):
            break
        idx = new
    return idx, logdet


def fast_mcd(z: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust location and covariance of the rows of ``z`` (n, p): MCD, then trimmed (location, covariance, mask of
    the rows kept)."""
    n, p = z.shape
    h = (n + p + 1) // 2  # the breakdown-optimal half
    rng = np.random.default_rng(seed)
    trials: list[tuple[float, np.ndarray]] = []
    for _ in range(N_STARTS):
        start = rng.choice(n, size=p + 1, replace=False)
        mu, cov, logdet = _fit_subset(z, start)
        if logdet == -math.inf:  # a degenerate (p+1)-subset: start from a random half instead
            idx = np.sort(rng.choice(n, size=h, replace=False))
        else:
            idx = np.sort(np.argsort(_d2(z, mu, cov))[:h])
        idx, logdet = _c_steps(z, idx, h, 2)
        if logdet > -math.inf:
            trials.append((logdet, idx))
    if not trials:
        raise ConfigError(f"anomaly model: every half-sample of the {n} training units has a singular covariance "
                          f"(the {p} figures are collinear or quantised)")
    trials.sort(key=lambda t: t[0])
    best = min((_c_steps(z, idx, h, MAX_C_STEPS) for _, idx in trials[:N_BEST]), key=lambda t: t[1])
    mu, cov, _ = _fit_subset(z, best[0])
    cov = cov * np.median(_d2(z, mu, cov)) / stats.chi2.ppf(0.5, p)  # consistency at the normal model
    keep = _d2(z, mu, cov) <= stats.chi2.ppf(1 - TRIM_ALPHA, p)
    return _trim(z, keep)


def _trim(z: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase-I trimming from the robust start: the classical estimate of the kept units, then keep every unit
    under its T^2 threshold at TRIM_ALPHA (Beta for a unit in the estimate, F for one outside), to a fixed point."""
    n, p = z.shape
    for _ in range(MAX_C_STEPS):
        m = int(keep.sum())
        if m <= p + 1:
            raise ConfigError(f"anomaly model: {m} of the {n} training units are alike (<= p + 1 = {p + 1})")
        mu, cov = z[keep].mean(axis=0), np.atleast_2d(np.cov(z[keep], rowvar=False))
        d2 = _d2(z, mu, cov)
        inside = (m - 1) ** 2 / m * stats.beta.ppf(1 - TRIM_ALPHA, p / 2, (m - p - 1) / 2)
        outside = p * (m + 1) * (m - 1) / (m * (m - p)) * stats.f.ppf(1 - TRIM_ALPHA, p, m - p)
        new = np.where(keep, d2 <= inside, d2 <= outside)
        if np.array_equal(new, keep):
            break
        keep = new
    return mu, cov, keep


# ---------------------------------------------------------------------------------------------------- fit and score


def figures_of(results: dict) -> dict[str, float | None]:
    """The check values of one results dict (schema jointkit.results/1), by check name."""
    return {c["name"]: c.get("value") for s in results.get("steps", []) for c in s.get("checks", [])}


def _choose_variables(rows: list[dict[str, float | None]]) -> tuple[list[str], dict[str, str]]:
    names = list(dict.fromkeys(k for r in rows for k in r))
    variables, excluded = [], {}
    for name in names:
        values = [r.get(name) for r in rows]
        present = [v for v in values if v is not None and math.isfinite(v)]
        distinct = len(set(present))
        if len(present) < MIN_PRESENT * len(rows):
            excluded[name] = f"measured in {len(present)} of {len(rows)} training runs (< {MIN_PRESENT:.0%})"
        elif distinct < MIN_DISTINCT:
            excluded[name] = f"quantised: {distinct} distinct values in training (< {MIN_DISTINCT})"
        else:
            variables.append(name)
    return variables, excluded


def fit(rows: list[dict[str, float | None]], sequence: str, alpha: float = DEFAULT_ALPHA,
        seed: int = 0) -> AnomalyModel:
    """The model of the good units whose check figures are ``rows`` (one dict per unit, check name -> value)."""
    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"anomaly false-alarm rate alpha = {alpha!r}: allowed 0 < alpha < 0.5")
    variables, excluded = _choose_variables(rows)
    x = np.array([[r.get(v) for v in variables] for r in rows
                  if all(r.get(v) is not None and math.isfinite(r[v]) for v in variables)], dtype=float)
    n, p = x.shape if x.size else (0, len(variables))
    if p == 0:
        raise ConfigError(f"anomaly model of {sequence}: no figure usable ({excluded or 'no checks'})")
    if n < 2 * (p + 1):
        raise ConfigError(f"anomaly model of {sequence}: {n} good runs with all {p} figures; at least "
                          f"{2 * (p + 1)} are needed (2 (p + 1): a half-sample must hold p + 1 units)")
    shift = np.median(x, axis=0)
    scale = 1.4826 * np.median(np.abs(x - shift), axis=0)  # MAD, consistent for the normal sd
    for name, s in zip(variables, scale, strict=True):
        if s <= 0:
            raise ConfigError(f"anomaly model of {sequence}: figure {name} has MAD 0 over the {n} good runs "
                              "(more than half equal): it cannot be scaled")
    loc, cov, keep = fast_mcd((x - shift) / scale, seed)
    return AnomalyModel(sequence=sequence, variables=variables, shift=shift.tolist(), scale=scale.tolist(),
                        location=loc.tolist(), covariance=cov.tolist(), n_train=n, n_fit=int(keep.sum()),
                        alpha=alpha, excluded=excluded)


def t2(model: AnomalyModel, x: np.ndarray) -> np.ndarray:
    """T^2 of each row of ``x`` (n, p: the model's figures in its order), vectorised (the bench, the tests)."""
    d = (np.atleast_2d(np.asarray(x, dtype=float)) - np.array(model.shift)) / np.array(model.scale)
    return _d2(d, np.array(model.location), np.array(model.covariance))


def score(model: AnomalyModel, figures: dict[str, float | None], *, in_fit: bool = False,
          alpha: float | None = None) -> dict[str, Any]:
    """The unit's T^2 against ``model``, the threshold, the flag and the figures that drive it.

    ``in_fit``: the unit is one of the model's own training units (phase I threshold). A unit missing a figure of
    the model is not scored (``t2`` None, ``reason`` names the figures)."""
    missing = [v for v in model.variables if figures.get(v) is None or not math.isfinite(figures[v])]
    threshold = model.threshold(in_fit, alpha)
    out: dict[str, Any] = {"sequence": model.sequence, "alpha": model.alpha if alpha is None else alpha,
                           "threshold": threshold, "phase": "I (in the fit)" if in_fit else "II (new unit)",
                           "t2": None, "p_value": None, "flagged": None, "reason": None, "drivers": [],
                           "figures": []}
    if missing:
        out["reason"] = "not measured: " + ", ".join(missing)
        return out
    x = np.array([figures[v] for v in model.variables], dtype=float)
    cov = np.array(model.covariance)
    d = (x - np.array(model.shift)) / np.array(model.scale) - np.array(model.location)
    u = np.linalg.solve(cov, d)
    t2 = float(d @ u)
    precision_diag = np.diag(np.linalg.inv(cov))
    rows = [{"name": v, "value": float(x[j]), "z": float(d[j] / math.sqrt(cov[j, j])),
             "contribution": float(d[j] * u[j]), "conditional_t2": float(u[j] ** 2 / precision_diag[j])}
            for j, v in enumerate(model.variables)]
    out.update(t2=t2, p_value=model.p_value(t2, in_fit), flagged=bool(t2 > threshold), figures=rows,
               drivers=[r["name"] for r in sorted(rows, key=lambda r: -r["conditional_t2"])[:DRIVERS]])
    return out


# ---------------------------------------------------------------------------------------------------- file


def save(model: AnomalyModel, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(model), indent=1), encoding="utf-8")


def load(path: str | Path) -> AnomalyModel:
    """A model file written by :func:`save` (``jointkit results report`` writes one per sequence)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the anomaly model ({e.strerror})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not an anomaly model JSON file ({e})") from e
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path}: schema = {found!r}: allowed {SCHEMA!r} (a model from jointkit results report)")
    try:
        model = AnomalyModel(**data)
        p = model.p
        shapes = (len(model.shift), len(model.scale), len(model.location), len(model.covariance),
                  *(len(r) for r in model.covariance))
    except TypeError as e:
        raise ConfigError(f"{path}: anomaly model fields: {e}") from e
    if p == 0 or any(s != p for s in shapes) or not model.n_fit > p:
        raise ConfigError(f"{path}: anomaly model with {p} variables has inconsistent shapes {shapes} or "
                          f"n_fit = {model.n_fit} (allowed: every vector and the covariance p long, n_fit > p)")
    if not 0.0 < model.alpha < 0.5:
        raise ConfigError(f"{path}: alpha = {model.alpha!r}: allowed 0 < alpha < 0.5")
    return model


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def annotate(results: dict, model: AnomalyModel, model_path: str | Path,
             model_sha256: str | None = None) -> dict[str, Any] | None:
    """Put the unit's score into ``results["anomaly"]`` (a run of the model's sequence; None otherwise). The verdict
    stays the limits' own: a flag sends a unit that passed for review, it does not fail it. ``model_sha256``: the
    file's, when the caller has it (a batch annotates many units from one file)."""
    if results.get("sequence", {}).get("name") != model.sequence:
        return None
    entry = {"model": str(model_path), "model_sha256": model_sha256 or file_sha256(model_path),
             **score(model, figures_of(results))}
    results["anomaly"] = entry
    return entry
