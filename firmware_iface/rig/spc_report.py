"""``jointkit results report DB --out DIR``: the process-control report of a results database.

This module owns the report: it reads the runs and their checks (``results_db.check_table``; runs ending
``incomplete`` are left out, as from every production figure), computes per sequence and per check the charts and
figures of ``rig.spc``, fits or applies the anomaly model of ``rig.anomaly``, and writes

* DIR/report.html: one self-contained page (plots embedded as base64 PNG, no scripts, no external resources);
* DIR/spc.json: the figures (the charts' centres, limits and rule flags by run id; capability with intervals;
  drift alarms; rig ANOVA; the anomaly scores);
* DIR/anomaly_model-SEQUENCE.json: the model fitted on that sequence's passing runs (when none is given), for
  ``jointkit run ... --anomaly-model FILE``.

Choices, stated:

* run order is start time (then id); a check's chart holds the runs in which it has a value;
* X-bar / R subgroups: a run's batch when every run has one and there are two batches or more (``rig.batch``, or
  the batch part of a population serial ``POP-<time>-s<seed>-NNNN``), else consecutive groups of ``subgroup`` runs
  (default 5) in run order; a trailing group of one run is left out;
* drift: CUSUM (k 0.5, h 5) against the first runs' baseline (up to 30), over all runs and per rig against that
  same baseline (a rig that drifts or sits off the others alarms); the rig is ``rig.rig_id`` (or ``rig.id``) of the
  results, "(no rig id)" for runs without one;
* anomaly: with ``model`` given, every run of its sequence is scored as a new unit (phase II); otherwise the model
  is fitted on the sequence's ``pass`` runs and those are scored with the phase-I threshold, every other run
  (fail, error) with the phase-II one.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from actuator.errors import ConfigError
from firmware_iface.defaults import SPC_SUBGROUP as SUBGROUP
from firmware_iface.jsonsafe import json_safe
from firmware_iface.rig import anomaly, spc
from firmware_iface.rig.report import format_value
from firmware_iface.rig.results_db import check_table

NO_RIG = "(no rig id)"
_POP_BATCH = re.compile(r"^(POP-.+-s-?\d+)-\d+$")
DPI = 80
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;font-size:90%}th{background:#f3f3f3}
td.l,th.l{text-align:left}.bad{color:#b00;font-weight:bold}.muted{color:#777}img{max-width:100%}"""


# ---------------------------------------------------------------------------------------------------- grouping


def batch_of(run: dict) -> str | None:
    batch = run["rig"].get("batch")
    if isinstance(batch, str | int) and not isinstance(batch, bool):
        return str(batch)
    m = _POP_BATCH.match(run.get("serial") or "")
    return m.group(1) if m else None


def rig_of(run: dict) -> str:
    rig = run.get("rig_id") or run["rig"].get("rig_id", run["rig"].get("id"))  # the trace's, else the rig's own
    return str(rig) if rig is not None else NO_RIG


def subgroups(runs: list[dict], n: int) -> tuple[str, list[np.ndarray], list[str]]:
    """(how the runs were grouped, index arrays, labels) for the X-bar / R chart."""
    batches = [batch_of(r) for r in runs]
    order = list(dict.fromkeys(batches))
    if runs and None not in order and len(order) >= 2:
        pairs = [(key, np.flatnonzero([b == key for b in batches])) for key in order]
        pairs = [(key, g) for key, g in pairs if g.size >= 2]  # a batch of one run has no range
        return "batch", [g for _, g in pairs], [key for key, _ in pairs]
    groups = [np.arange(i, min(i + n, len(runs))) for i in range(0, len(runs), n)]
    groups = [g for g in groups if g.size >= 2]
    return f"consecutive groups of {n} runs", groups, [f"runs {g[0] + 1}-{g[-1] + 1}" for g in groups]


# ---------------------------------------------------------------------------------------------------- figures


def _by_id(indices: dict[int, list[int]], ids: list[int]) -> dict[str, list[int]]:
    return {str(rule): [ids[i] for i in idx] for rule, idx in indices.items()}


def check_figures(name: str, runs: list[dict], subgroup: int) -> dict[str, Any]:
    """Every SPC figure of one check over ``runs`` (those holding a value of it)."""
    have = [r for r in runs if r["checks"].get(name, {}).get("value") is not None]
    x = np.array([r["checks"][name]["value"] for r in have], dtype=float)
    ids = [r["id"] for r in have]
    last = have[-1]["checks"][name] if have else {}
    lsl, usl = last.get("min"), last.get("max")
    ind = spc.individuals_chart(x)
    if "rules" in ind:
        ind["rules"] = _by_id(ind["rules"], ids)
        ind["mr_beyond_ucl"] = [ids[i] for i in ind["mr_beyond_ucl"]]
    grouping, groups, labels = subgroups(have, subgroup)
    xbar = spc.xbar_r_chart(x, groups)
    xbar.update(grouping=grouping, labels=labels)
    if "rules" in xbar:  # subgroup indices -> labels
        xbar["rules"] = {str(rule): [labels[i] for i in idx] for rule, idx in xbar["rules"].items()}
    drift = spc.drift(x)
    rigs: dict[str, list[int]] = {}
    for i, r in enumerate(have):
        rigs.setdefault(rig_of(r), []).append(i)
    by_rig = {}
    for rig, idx in rigs.items():
        alarms = []
        if drift["reason"] is None:
            z = (x[idx] - drift["centre"]) / drift["sigma"]
            alarms = [{"run_id": ids[idx[a["index"]]], "direction": a["direction"]} for a in spc.cusum(z)["alarms"]]
        by_rig[rig] = {"n": len(idx), "mean": float(x[idx].mean()), "alarms": alarms}
    for a in drift.get("alarms", []):
        a["run_id"] = ids[a["index"]]
    return {"name": name, "unit": last.get("unit"), "run_ids": ids, "values": x.tolist(),
            "capability": spc.capability_ci(x, lsl, usl), "individuals": ind, "xbar_r": xbar, "drift": drift,
            "by_rig": by_rig, "rig_anova": spc.rig_anova({rig: x[idx] for rig, idx in rigs.items()})}


def anomaly_figures(sequence: str, runs: list[dict], model_path: Path | None, out_dir: Path,
                    alpha: float) -> dict[str, Any]:
    """The anomaly model of ``sequence`` (given, or fitted on its pass runs and written to out_dir) and the scores."""
    figures = {r["id"]: {k: c["value"] for k, c in r["checks"].items()} for r in runs}
    if model_path is not None:
        model, fitted_on = anomaly.load(model_path), set()
        if model.sequence != sequence:
            return {"model": str(model_path), "reason": f"the model is of sequence {model.sequence}", "scores": []}
    else:
        good = [r for r in runs if r["verdict"] == "pass"]
        try:
            model = anomaly.fit([figures[r["id"]] for r in good], sequence, alpha=alpha)
        except ConfigError as e:
            return {"model": None, "reason": str(e), "scores": []}
        fitted_on = {r["id"] for r in good}
        model_path = out_dir / f"anomaly_model-{re.sub(r'[^A-Za-z0-9_.-]', '_', sequence)}.json"
        anomaly.save(model, model_path)
    scores = []
    for r in runs:
        s = anomaly.score(model, figures[r["id"]], in_fit=r["id"] in fitted_on)
        scores.append({"run_id": r["id"], "serial": r["serial"], "verdict": r["verdict"], **s})
    return {"model": str(model_path), "fitted": bool(fitted_on), "variables": model.variables,
            "excluded": model.excluded, "n_train": model.n_train, "n_fit": model.n_fit, "alpha": model.alpha,
            "threshold_new_unit": model.threshold(), "reason": None, "scores": scores,
            "flagged": [s["run_id"] for s in scores if s["flagged"]]}


# ---------------------------------------------------------------------------------------------------- plots


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _flags(ax: Axes, xs: np.ndarray, ys: np.ndarray, rules: dict[str, list], keys: list) -> None:
    """Red rings on the points a Western Electric rule flags, the rule numbers beside them."""
    where = {k: i for i, k in enumerate(keys)}
    marks: dict[int, list[str]] = {}
    for rule, hits in rules.items():
        for k in hits:
            marks.setdefault(where[k], []).append(rule)
    for i, rs in marks.items():
        ax.plot(xs[i], ys[i], "o", mfc="none", mec="red", ms=9)
        ax.annotate(",".join(sorted(set(rs))), (xs[i], ys[i]), xytext=(3, 5), textcoords="offset points",
                    color="red", fontsize=7)


def _limit_lines(ax: Axes, c: dict, x: np.ndarray) -> str:
    """The specification limits as dashed lines where they are near the process; a far one would squash the chart
    to a line, so it is named in the title instead (returned)."""
    ind = c["individuals"]
    span = [float(x.min()), float(x.max())] if x.size else [0.0, 1.0]
    if ind.get("sigma") is not None:
        span = [min(span[0], ind["lcl"]), max(span[1], ind["ucl"])]
    pad = 0.1 * (span[1] - span[0]) or 1.0
    off = []
    for label, v in (("LSL", c["capability"].get("lsl")), ("USL", c["capability"].get("usl"))):
        if v is None:
            continue
        if span[0] - 3 * pad <= v <= span[1] + 3 * pad:
            ax.axhline(v, color="purple", ls="--", lw=0.8)
        else:
            off.append(f"{label} {v:.4g}")
    return f" ({', '.join(off)} off the chart)" if off else ""


def chart_png(c: dict) -> str:
    """The check's individuals, moving range, X-bar, R and CUSUM charts as one base64 PNG."""
    fig = Figure(figsize=(9, 10), dpi=DPI)
    axes = fig.subplots(5, 1)
    x, ids = np.array(c["values"]), c["run_ids"]
    k = np.arange(1, x.size + 1)
    ind, xb, dr = c["individuals"], c["xbar_r"], c["drift"]
    ax = axes[0]
    ax.plot(k, x, ".-", lw=0.6, ms=3)
    if ind.get("sigma") is not None:
        for v, col in ((ind["centre"], "green"), (ind["ucl"], "red"), (ind["lcl"], "red")):
            ax.axhline(v, color=col, lw=0.8)
        _flags(ax, k, x, ind.get("rules", {}), ids)
    far = _limit_lines(ax, c, x)
    ax.set_title(f"{c['name']}: individuals (red: 3 sigma; purple dashed: LSL/USL{far}; rings: WE rules)",
                 fontsize=9)
    ax = axes[1]
    if x.size > 1:
        ax.plot(k[1:], np.abs(np.diff(x)), ".-", lw=0.6, ms=3)
    if ind.get("mr_bar") is not None:
        ax.axhline(ind["mr_bar"], color="green", lw=0.8)
        ax.axhline(ind["mr_ucl"], color="red", lw=0.8)
    ax.set_title("moving range", fontsize=9)
    ax, ax_r = axes[2], axes[3]
    if xb.get("sigma") is not None:
        g = np.arange(1, xb["subgroups"] + 1)
        ax.plot(g, xb["means"], ".-", lw=0.6)
        ax.step(g, xb["ucl"], where="mid", color="red", lw=0.8)
        ax.step(g, xb["lcl"], where="mid", color="red", lw=0.8)
        ax.axhline(xb["grand_mean"], color="green", lw=0.8)
        _flags(ax, g, np.array(xb["means"]), xb.get("rules", {}), xb["labels"])
        ax_r.plot(g, xb["ranges"], ".-", lw=0.6)
        ax_r.step(g, xb["r_ucl"], where="mid", color="red", lw=0.8)
        ax_r.step(g, xb["r_centre"], where="mid", color="green", lw=0.8)
    ax.set_title(f"X-bar by {xb.get('grouping', 'subgroup')}", fontsize=9)
    ax_r.set_title("range by subgroup", fontsize=9)
    ax = axes[4]
    if dr.get("reason") is None:
        ax.plot(k, dr["c_plus"], lw=0.8, label="C+")
        ax.plot(k, dr["c_minus"], lw=0.8, label="C-")
        ax.axhline(dr["h"], color="red", lw=0.8)
        for a in dr["alarms"]:
            ax.axvline(a["index"] + 1, color="red", ls=":", lw=0.8)
        ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"CUSUM (k {spc.CUSUM_K:g}, h {spc.CUSUM_H:g} sigma; baseline: first {dr.get('baseline_runs')} "
                 "runs)", fontsize=9)
    ax.set_xlabel("run (start order)")
    for a in axes:
        a.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def anomaly_png(a: dict) -> str:
    fig = Figure(figsize=(9, 2.6), dpi=DPI)
    ax = fig.subplots()
    scored = [s for s in a["scores"] if s["t2"] is not None]
    k = np.arange(1, len(scored) + 1)
    t2 = np.array([s["t2"] for s in scored])
    flagged = np.array([bool(s["flagged"]) for s in scored], dtype=bool)
    ax.semilogy(k, t2, ".", ms=3, color="tab:blue")
    ax.semilogy(k[flagged], t2[flagged], "o", mfc="none", mec="red", ms=8)
    ax.plot(k, [s["threshold"] for s in scored], color="red", lw=0.8, drawstyle="steps-mid")
    ax.set_title(f"Hotelling T^2 per run (red: its threshold at alpha {a['alpha']:g}, phase I for a training unit, "
                 "II for others)", fontsize=9)
    ax.set_xlabel("run (start order)")
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------------- page


def _e(value: Any) -> str:
    return html.escape(format_value(value), quote=True)


def _ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" + ("" if ci is None else f" [{ci[0]:.3g}, {ci[1]:.3g}]")


def _rules_text(rules: dict[str, list]) -> str:
    parts = [f"rule {r}: {len(hits)}" for r, hits in rules.items() if hits]
    return ", ".join(parts) or "none"


def _check_row(c: dict) -> str:
    cap, ind, dr, anova = c["capability"], c["individuals"], c["drift"], c["rig_anova"]
    we = _rules_text(ind.get("rules", {}))
    alarms = ", ".join(f"run {a['run_id']} {a['direction']}" for a in dr.get("alarms", [])) or "none"
    rig_alarms = sum(len(v["alarms"]) for v in c["by_rig"].values())
    p = anova["p_value"]
    cells = [f'<td class="l"><a href="#{_e(c["name"])}">{_e(c["name"])}</a></td>', f"<td>{_e(c['unit'])}</td>",
             f"<td>{cap['n']}</td>", f"<td>{_e(cap['mean'])}</td>", f"<td>{_e(cap['std'])}</td>",
             f"<td>{_e(cap['lsl'])}</td>", f"<td>{_e(cap['usl'])}</td>",
             f"<td>{_ci(cap['cp'], cap['cp_ci'])}</td>", f"<td>{_ci(cap['cpk'], cap['cpk_ci'])}</td>",
             f'<td class="l{" bad" if we != "none" else ""}">{_e(we)}</td>',
             f'<td class="l{" bad" if alarms != "none" else ""}">{_e(alarms)}</td>',
             f"<td>{rig_alarms}</td>", f"<td>{'—' if p is None else f'{p:.3g}'}</td>"]
    return "<tr>" + "".join(cells) + "</tr>"


def _anomaly_html(a: dict) -> str:
    if a["reason"] is not None:
        return f'<p class="muted">Anomaly model: {_e(a["reason"])}</p>'
    how = "fitted on this database's pass runs" if a["fitted"] else "given"
    head = (f"<p>Model {_e(a['model'])} ({how}): {len(a['variables'])} figures, {a['n_train']} training units "
            f"({a['n_fit']} kept), alpha {a['alpha']:g}; a new unit's threshold T^2 &gt; "
            f"{a['threshold_new_unit']:.4g}. Left out: {_e(a['excluded'] or 'none')}.</p>")
    rows = []
    for s in a["scores"]:
        if not s["flagged"]:
            continue
        drivers = "; ".join(f"{f['name']} = {f['value']:.4g} (z {f['z']:+.2f}, conditional T^2 "
                            f"{f['conditional_t2']:.3g})" for f in s["figures"] if f["name"] in s["drivers"])
        rows.append(f"<tr><td>{s['run_id']}</td><td class='l'>{_e(s['serial'])}</td><td>{_e(s['verdict'])}</td>"
                    f"<td>{s['t2']:.4g}</td><td>{s['threshold']:.4g}</td><td>{s['p_value']:.2g}</td>"
                    f"<td class='l'>{_e(s['phase'])}</td><td class='l'>{html.escape(drivers)}</td></tr>")
    table = ("<table><tr><th>run</th><th class='l'>serial</th><th>verdict</th><th>T^2</th><th>threshold</th>"
             "<th>p</th><th class='l'>phase</th><th class='l'>drivers</th></tr>" + "".join(rows) + "</table>"
             if rows else '<p class="muted">No unit flagged.</p>')
    img = f'<img alt="anomaly T2 chart" src="data:image/png;base64,{anomaly_png(a)}">'
    return head + f"<p>{len(a['flagged'])} of {len(a['scores'])} runs flagged.</p>" + table + img


def _sequence_html(s: dict) -> str:
    head = ("<table><tr><th class='l'>check</th><th>unit</th><th>n</th><th>mean</th><th>std</th><th>LSL</th>"
            "<th>USL</th><th>Cp [95 % CI]</th><th>Cpk [95 % CI]</th><th class='l'>WE rules (individuals)</th>"
            "<th class='l'>drift alarms</th><th>rig alarms</th><th>rig ANOVA p</th></tr>")
    table = head + "".join(_check_row(c) for c in s["checks"]) + "</table>"
    charts = "".join(
        f'<h3 id="{_e(c["name"])}">{_e(c["name"])}</h3><p>X-bar/R subgroups: {_e(c["xbar_r"].get("grouping"))}; '
        f'X-bar rules: {_e(_rules_text(c["xbar_r"].get("rules", {})))}; by rig: '
        + _e({rig: f"n {v['n']}, mean {v['mean']:.4g}, {len(v['alarms'])} alarms" for rig, v in c["by_rig"].items()})
        + f'</p><img alt="control charts of {_e(c["name"])}" src="data:image/png;base64,{chart_png(c)}">'
        for c in s["checks"])
    return (f"<h2>{_e(s['sequence'])}: {s['runs']} runs</h2>" + table + "<h3>Anomaly detection</h3>"
            + _anomaly_html(s["anomaly"]) + charts)


def report(db_path: str | Path, out_dir: str | Path, *, sequence: str | None = None,
           serial_prefix: str | None = None, last: int | None = None, subgroup: int = SUBGROUP,
           model_path: str | Path | None = None, alpha: float = anomaly.DEFAULT_ALPHA) -> dict[str, Any]:
    """Write DIR/report.html, DIR/spc.json (and the fitted anomaly models) for the chosen runs; return the figures."""
    if not isinstance(subgroup, int) or subgroup < 2:
        raise ConfigError(f"subgroup = {subgroup!r}: allowed an integer >= 2 (runs per X-bar/R subgroup)")
    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"alpha = {alpha!r}: allowed 0 < alpha < 0.5 (the anomaly model's false-alarm rate)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = check_table(db_path, sequence=sequence, serial_prefix=serial_prefix, last=last)
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["sequence"], []).append(r)
    sequences = []
    for name, g in groups.items():
        checks = list(dict.fromkeys(k for r in g for k in r["checks"]))
        sequences.append({"sequence": name, "runs": len(g),
                          "checks": [check_figures(c, g, subgroup) for c in checks],
                          "anomaly": anomaly_figures(name, g, Path(model_path) if model_path else None, out_dir,
                                                     alpha)})
    page = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>SPC report: {_e(str(db_path))}</title><style>{_CSS}</style></head><body>",
            f"<h1>Process control report: {_e(str(db_path))}</h1>",
            f"<p>{len(runs)} runs (incomplete runs left out). Western Electric rules: "
            + "; ".join(f"{k}: {html.escape(v)}" for k, v in spc.WE_RULES.items())
            + f". Capability intervals {spc.CONFIDENCE:.0%}: chi-square (Cp), Bissell (Cpk).</p>",
            *(_sequence_html(s) for s in sequences),
            "" if sequences else '<p class="muted">No runs match.</p>', "</body></html>\n"]
    (out_dir / "report.html").write_text("\n".join(page), encoding="utf-8")
    figures = {"db": str(db_path), "filters": {"sequence": sequence, "serial_prefix": serial_prefix, "last": last},
               "runs": len(runs), "subgroup": subgroup, "sequences": sequences}
    for s in figures["sequences"]:
        for c in s["checks"]:
            c["drift"].pop("c_plus", None)  # the CUSUM paths are in the plot; the alarms are the figures
            c["drift"].pop("c_minus", None)
    (out_dir / "spc.json").write_text(json.dumps(json_safe(figures), indent=1), encoding="utf-8")
    return figures
