"""Benchmark of the end-of-line anomaly detection (``firmware_iface.rig.anomaly``) on simulated populations.

The EOL sequence's measuring steps (``seeds/sequences/eol.toml``, with its limits) run in the batch simulation on
joints drawn from ``seeds/spread.toml``: ``train`` good joints (seed 101) fit the model; ``test`` good joints (seed
202, other units) give the false-alarm rate; ``test`` joints (seed 303) with a subtle compound defect give the
detection rate. The defect at severity k is ``friction_scale`` = 1 + 0.10 k with ``stiffness_scale`` = 1 - 0.07 k
(k = 1 is the issue's example: friction x1.1 with stiffness x0.93, each inside its limit for most units); it is on
top of each unit's own drawn spread. All joints run in one batch (noise streams per joint from seed 0).

Reported, per severity and per false-alarm rate ``alpha`` (the model's threshold at that alpha):

* ``false_alarm_rate``: flagged good test units / good test units that pass every limit (one that fails is rejected
  by its limits, never a false alarm of the model; binomial standard error at alpha beside it);
* ``detection_rate``: flagged defective units / defective units that pass every limit (the units the limits miss,
  which is what the model is for), and ``detection_rate_all`` over every defective unit;
* ``defective_passing_limits``: how many defective units the limits alone pass;
* ``t2_median`` of good and defective test units; the drivers most often named for the defective units.

Two models are fitted on the same training units: ``all`` over every check figure (what ``results report`` fits),
and ``mechanical`` over the figures of the friction, back-drive, stiffness, step and Bode steps only: the figures
this defect can move. The second shows what the first loses to the other figures' dilution (T^2's threshold grows
with the number of figures); choosing figures per failure mode is a line's decision, not the report's.

``--quick``: 60 training and 30 + 30 test joints per severity (noisy rates, a smoke test).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from actuator.params import SEEDS_DIR, load_preset
from firmware_iface.experiments.batch import run_batch
from firmware_iface.rig import anomaly
from firmware_iface.rig.runner import checks_of
from firmware_iface.rig.sequence import PROTOCOL_OF, load_sequence, protocol_config
from firmware_iface.rig.spread import draw, load_spread

SEQUENCE = SEEDS_DIR / "sequences" / "eol.toml"
SEEDS = {"train": 101, "good": 202, "defective": 303}
SEVERITIES = (1.0, 2.0)
ALPHAS = (0.01, 0.05)


def defect(k: float) -> dict[str, float]:
    return {"friction_scale": 1.0 + 0.10 * k, "stiffness_scale": 1.0 - 0.07 * k}


def simulate(preset: str, groups: dict[str, tuple[int, int, dict[str, float]]]) -> tuple[dict[str, list], dict]:
    """Per group (name -> (n, draw seed, extra injections)) one record per joint that did not fault:
    (check figures by name, passed every limit)."""
    seq = load_sequence(SEQUENCE)
    nominal = load_preset(preset)
    measured = [s for s in seq.steps if s.type in PROTOCOL_OF]
    steps = [(PROTOCOL_OF[s.type], protocol_config(s, seq, nominal)) for s in measured]
    spread = load_spread(SEEDS_DIR / "spread.toml").reaching(name for name, _ in steps)
    params, injections, owner = [], [], []
    for name, (n, seed, extra) in groups.items():
        for p, inj in draw(nominal, spread, n, seed):
            params.append(p)
            injections.append({**inj, **extra})
            owner.append(name)
    batch = run_batch(params, injections, steps, seed=0, firmware=nominal, panels=False)
    out: dict[str, list] = {name: [] for name in groups}
    for j, name in enumerate(owner):
        if batch.faults[j]:
            continue
        checks = [c for step, o in zip(measured, batch[j], strict=True) for c in checks_of(step, dict(o.figures))]
        out[name].append(({c["name"]: c["value"] for c in checks}, all(c["verdict"] == "pass" for c in checks)))
    return out, {**batch.timing, "faulted": sum(bool(f) for f in batch.faults)}


MECHANICAL = ("friction.", "backdrive.", "stiffness.", "step.", "bode.")


def _rates(model: anomaly.AnomalyModel, good: list, bad: list, alpha: float) -> dict[str, Any]:
    def flags(units: list) -> list[bool]:
        return [bool(anomaly.score(model, f, alpha=alpha)["flagged"]) for f, _ in units]

    good = [u for u in good if u[1]]
    fa = np.mean(flags(good)) if good else float("nan")
    passing = [u for u in bad if u[1]]
    det = np.mean(flags(passing)) if passing else float("nan")
    return {"alpha": alpha, "threshold": model.threshold(alpha=alpha), "false_alarm_rate": float(fa),
            "false_alarm_se": float(np.sqrt(alpha * (1 - alpha) / max(len(good), 1))),
            "detection_rate": float(det), "detection_rate_all": float(np.mean(flags(bad))) if bad else float("nan")}


def run(preset: str = "knee", quick: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    n_train, n_test = (60, 30) if quick else (200, 100)
    groups = {"train": (n_train, SEEDS["train"], {}), "good": (n_test, SEEDS["good"], {})}
    for k in SEVERITIES:
        groups[f"defective_k{k:g}"] = (n_test, SEEDS["defective"], defect(k))
    units, timing = simulate(preset, groups)
    train = [f for f, passed in units["train"] if passed]  # the good units: those that pass their limits
    models = {"all": anomaly.fit(train, "eol"),
              "mechanical": anomaly.fit([{k: v for k, v in f.items() if k.startswith(MECHANICAL)} for f in train],
                                        "eol")}
    good = units["good"]
    out = {"sequence": SEQUENCE.name, "preset": preset, "train_units": len(train), "good_test_units": len(good),
           "good_failing_limits": sum(not p for _, p in good), "models": {}}
    for name, model in models.items():
        severities = []
        for k in SEVERITIES:
            bad = units[f"defective_k{k:g}"]
            scores = [anomaly.score(model, f) for f, _ in bad]
            drivers = Counter(d for s in scores if s["flagged"] for d in s["drivers"][:2])
            severities.append({"k": k, "injections": defect(k), "defective": len(bad),
                               "defective_passing_limits": sum(p for _, p in bad),
                               "t2_median": float(np.median([s["t2"] for s in scores])),
                               "rates": [_rates(model, good, bad, a) for a in ALPHAS],
                               "top_drivers": drivers.most_common(4)})
        out["models"][name] = {"variables": model.variables, "excluded": model.excluded, "n_fit": model.n_fit,
                               "good_t2_median": float(np.median([anomaly.score(model, f)["t2"] for f, _ in good])),
                               "severities": severities}
    out["timing_s"] = {**timing, "wall_s": time.perf_counter() - t0}
    return out
