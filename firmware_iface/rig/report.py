"""Plots and the HTML report of a rig run.

This module owns two things:

* the functions that render the experiments' plot descriptions (``experiments.panels``: ``Series``, ``Panel``)
  to PNG files (``save_plot``, ``save_xy_plot``, ``save_bode_plot``), which the rig's steps call to draw their data;
* ``write_report``, which turns a results dictionary (schema ``jointkit.results/1``, as written to ``results.json``
  by the runner) into one self-contained ``report.html`` for people.

Plots use a bare ``matplotlib.figure.Figure`` on an Agg canvas, never pyplot's global state, so several threads may
render at once and no display is needed.  The report escapes every piece of text taken from the results, embeds the
plots as ``data:`` URIs and has no JavaScript or external resources, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from firmware_iface.experiments.panels import Panel, Series

DPI = 110
PANEL_WIDTH_IN = 8.0
PANEL_HEIGHT_IN = 2.2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_LIST_ITEMS = 8
DASH = "—"


# ----------------------------------------------------------------------------------------------------------- plots


def figure_size(n_panels: int) -> tuple[float, float]:
    """Figure size in inches for ``n_panels`` stacked panels; the PNG is this times ``DPI`` pixels."""
    return PANEL_WIDTH_IN, PANEL_HEIGHT_IN * max(n_panels, 1)


def save_plot(path: str | Path, title: str, panels: Sequence[Panel], xlabel: str = "time (s)",
              logx: bool = False) -> Path:
    """Render ``panels`` stacked on a shared x axis to the PNG ``path`` (parent folders created); returns the path.

    ``logx`` puts the shared x axis on a log scale (frequency plots); points with x <= 0 are then left out.
    """
    return _render(Path(path), title, panels, xlabel, logx=logx)


def save_xy_plot(path: str | Path, title: str, x: ArrayLike, ys: Mapping[str, ArrayLike] | ArrayLike,
                 xlabel: str, ylabel: str, logx: bool = False) -> Path:
    """One panel of ``ys`` against ``x``: ``ys`` is one array, or a mapping of legend label to array."""
    named = ys.items() if isinstance(ys, Mapping) else [("", ys)]
    series = [Series(str(label), x, y) for label, y in named]
    return _render(Path(path), title, [Panel(ylabel, series)], xlabel, logx=logx)


def save_bode_plot(path: str | Path, title: str, freq_hz: ArrayLike, magnitude_db: ArrayLike, phase_deg: ArrayLike,
                   bandwidth_hz: float | None = None) -> Path:
    """Magnitude and phase against log frequency, with the -3 dB line and the bandwidth (when finite) marked."""
    panels = [
        Panel("magnitude (dB)", [Series("measured", freq_hz, magnitude_db)], hlines=[(-3.0, "-3 dB")]),
        Panel("phase (deg)", [Series("", freq_hz, phase_deg)]),
    ]
    vlines = []
    if bandwidth_hz is not None and math.isfinite(bandwidth_hz) and bandwidth_hz > 0:
        vlines.append((float(bandwidth_hz), f"bandwidth {bandwidth_hz:.4g} Hz"))
    return _render(Path(path), title, panels, "frequency (Hz)", logx=True, vlines=vlines)


def _render(path: Path, title: str, panels: Sequence[Panel], xlabel: str, logx: bool = False,
            vlines: Sequence[tuple[float, str]] = ()) -> Path:
    panels = list(panels) or [Panel("", [])]
    fig = Figure(figsize=figure_size(len(panels)), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        _draw_panel(ax, panel, logx)
        for x, label in vlines:
            # Label only the top panel so the legend does not repeat on every panel.
            ax.axvline(x, color="tab:red", ls=":", lw=1.0, label=label if i == 0 else None)
        if ax.get_legend_handles_labels()[0]:
            # A fixed corner: loc="best" is slow on long recordings.
            ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _draw_panel(ax: Axes, panel: Panel, logx: bool) -> None:
    if logx:
        ax.set_xscale("log")
    drawn = 0
    for s in panel.series:
        keep = np.isfinite(s.t_s)
        if logx:
            keep &= s.t_s > 0
        x = s.t_s[keep]
        # Non-finite y stays in as NaN so the line shows a gap there rather than joining across it.
        y = np.where(np.isfinite(s.values[keep]), s.values[keep], np.nan)
        if not np.isfinite(y).any():
            continue
        ax.plot(x, y, s.style, lw=1.2, label=s.label)
        drawn += 1
    for value, label in panel.hlines:
        if value is not None and math.isfinite(value):
            ax.axhline(value, color="tab:red", ls="--", lw=0.9, alpha=0.8, label=label)
    if not drawn:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.45")
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, which="both" if logx else "major", alpha=0.3)


# ---------------------------------------------------------------------------------------------------------- report

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:62em;padding:0 1em;
color:#1f2328;line-height:1.45}
h1{margin-bottom:.3em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:9em}
.badge{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff;font-weight:600}
.verdict{font-size:2.4em;letter-spacing:.06em;text-transform:uppercase;padding:.2em 1.2em;margin:.2em 0 .4em}
.pass{background:#1a7f37}.fail{background:#cf222e}.error{background:#d97706}
.incomplete,.skipped,.unknown{background:#6e7781}.running{background:#0969da}
.errmsg{background:#fff1e5;border-left:4px solid #d97706;padding:.5em 1em;white-space:pre-wrap;
font-family:ui-monospace,monospace;font-size:.9em}
.muted{color:#6e7781}code{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
img{max-width:100%;border:1px solid #d0d7de;margin-top:.5em}
section.step{border-top:1px dashed #d0d7de;margin-top:1.2em}
"""

_BADGE_CLASSES = {"pass", "fail", "error", "incomplete", "skipped", "running"}


def format_value(value: Any) -> str:
    """Plain (unescaped) text for a value from the results: floats to 4 significant digits, None as an em dash."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        items = [format_value(v) for v in value[:MAX_LIST_ITEMS]]
        if len(value) > MAX_LIST_ITEMS:
            items.append(f"… ({len(value)} values)")
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} = {format_value(v)}" for k, v in value.items()) or DASH
    return str(value)


def _t(value: Any) -> str:
    """Escaped text of any value from the results: the only way results text reaches the HTML."""
    return html.escape(format_value(value), quote=True)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _badge(text: Any, extra_class: str = "") -> str:
    # The class comes from a fixed set so that results text never lands in an attribute unescaped or unexpected.
    key = str(text).lower()
    cls = key if key in _BADGE_CLASSES else "unknown"
    classes = " ".join(c for c in ("badge", cls, extra_class) if c)
    return f'<span class="{classes}">{_t(text)}</span>'


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table; the values must already be HTML (escaped)."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def write_report(results: dict, out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` for ``results`` (schema ``jointkit.results/1``) and return its path.

    Plots named by the steps are read from ``out_dir`` and embedded.  Missing or malformed optional fields (as
    in the results of a killed run) are shown as missing rather than raising.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = [s for s in _as_list(results.get("steps")) if isinstance(s, dict)]
    checks = [(step, c) for step in steps for c in _as_list(step.get("checks")) if isinstance(c, dict)]
    seq = _as_dict(results.get("sequence"))
    serial = results.get("serial")
    title = f"{format_value(seq.get('name') or 'unnamed sequence')} — {format_value(serial or 'no serial')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Rig report: {html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Rig report: {html.escape(title)}</h1>",
        _verdict_html(results),
        _run_html(results, steps),
        _failed_html(results, steps, checks),
        _checks_html(checks),
        '<h2 id="steps">Steps</h2>',
        *(_step_html(i, step, out_dir) for i, step in enumerate(steps)),
        "" if steps else '<p class="muted">No steps were recorded.</p>',
        _outputs_html(results, out_dir),
        f'<p class="muted">Results schema: {_t(results.get("schema"))}.</p>',
        "</body></html>\n",
    ]
    target = out_dir / "report.html"
    # Write then rename, so that anyone reading the report during a run never sees half a file.
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, target)
    return target


def _verdict_html(results: dict) -> str:
    verdict = results.get("verdict") or "unknown"
    out = [f'<div id="verdict">{_badge(verdict, "verdict")}']
    if str(verdict).lower() == "incomplete":
        out.append('<p>The run did not finish (incomplete): the results below are partial.</p>')
    if results.get("error"):
        out.append(f'<div class="errmsg">Run error: {_t(results["error"])}</div>')
    out.append("</div>")
    return "\n".join(out)


def _parse_utc(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_duration(seconds: float | None) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``; None or non-finite as an em dash."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 60:
        return f"{seconds:.4g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _run_html(results: dict, steps: list[dict]) -> str:
    seq = _as_dict(results.get("sequence"))
    started, finished = _parse_utc(results.get("started_utc")), _parse_utc(results.get("finished_utc"))
    if started and finished:
        try:
            duration = format_duration((finished - started).total_seconds())
        except TypeError:  # one timestamp with a zone and one without
            duration = DASH
    else:
        duration = f"{DASH} (not finished)" if not results.get("finished_utc") else DASH
    done = sum(1 for s in steps if s.get("status") in ("pass", "fail", "error", "skipped"))
    rows = [
        ("sequence", f"{_t(seq.get('name'))} <span class=\"muted\">({_t(seq.get('path'))})</span>"),
        ("sequence sha256", f"<code>{_t(seq.get('sha256'))}</code>"),
        ("serial", _t(results.get("serial"))),
        ("started (UTC)", _t(results.get("started_utc"))),
        ("finished (UTC)", _t(results.get("finished_utc"))),
        ("duration", html.escape(duration)),
        ("steps", f"{done} of {len(steps)} finished"),
        *_rig_rows(_as_dict(results.get("rig"))),
    ]
    return f'<section id="run"><h2>Run</h2>\n{_kv_table(rows)}</section>'


def _rig_rows(rig: dict) -> list[tuple[str, str]]:
    where = f"{_t(rig.get('interface'))} / {_t(rig.get('channel'))}"
    if rig.get("sim"):
        where = f"simulation ({where})"
    injections = _as_dict(rig.get("injections"))
    inj = "<br>".join(f"{_t(k)} = {_t(v)}" for k, v in injections.items()) or "none"
    return [("rig", where), ("preset", _t(rig.get("preset"))), ("injections", inj)]


def _check_rows(checks: Sequence[tuple[dict, dict]]) -> str:
    rows = []
    for step, c in checks:
        unit = c.get("unit")
        value = _t(c.get("value"))
        if unit and c.get("value") is not None:
            value += f" {_t(unit)}"
        rows.append(
            f"<tr><td>{_t(step.get('name'))}</td><td>{_t(c.get('name'))}</td><td class=\"num\">{value}</td>"
            f"<td class=\"num\">{_t(c.get('min'))}</td><td class=\"num\">{_t(c.get('max'))}</td>"
            f"<td>{_badge(c.get('verdict') or 'unknown')}</td></tr>")
    head = "<tr><th>step</th><th>check</th><th>value</th><th>min</th><th>max</th><th>verdict</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _failed_html(results: dict, steps: list[dict], checks: list[tuple[dict, dict]]) -> str:
    """The failed checks (named in ``failed_checks`` or failing in a step), then any errors."""
    names = [n for n in _as_list(results.get("failed_checks")) if isinstance(n, str)]
    names += [c.get("name") for _, c in checks if c.get("verdict") == "fail" and c.get("name") not in names]
    by_name = {c.get("name"): (step, c) for step, c in checks}
    failed = [by_name.get(n, ({}, {"name": n})) for n in names]
    out = ['<section id="failed"><h2>Failed checks</h2>']
    out.append(_check_rows(failed) if failed else "<p>No failed checks.</p>")
    errors = [(s.get("name"), s.get("error")) for s in steps if s.get("error")]
    if errors:
        out.append("<h3>Step errors</h3><ul>")
        out += [f"<li><b>{_t(name)}</b>: {_t(err)}</li>" for name, err in errors]
        out.append("</ul>")
    out.append("</section>")
    return "\n".join(out)


def _checks_html(checks: list[tuple[dict, dict]]) -> str:
    body = _check_rows(checks) if checks else '<p class="muted">No checks were recorded.</p>'
    return f'<section id="checks"><h2>All checks</h2>\n{body}</section>'


def _step_html(position: int, step: dict, out_dir: Path) -> str:
    index = step.get("index", position)
    out = [f'<section class="step" id="step-{position}">',
           f"<h3>{_t(index)}. {_t(step.get('name'))} {_badge(step.get('status') or 'unknown')}</h3>",
           _kv_table([("type", _t(step.get("type"))), ("node", _t(step.get("node"))),
                      ("started at", html.escape(format_duration(_num(step.get("started_s"))))),
                      ("duration", html.escape(format_duration(_num(step.get("duration_s")))))])]
    figures = _as_dict(step.get("figures"))
    if figures:
        rows = "".join(f'<tr><td>{_t(k)}</td><td class="num">{_t(v)}</td></tr>' for k, v in figures.items())
        out.append(f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table>")
    else:
        out.append('<p class="muted">No figures.</p>')
    out.append(_certificates_html(step))
    if step.get("error"):
        out.append(f'<div class="errmsg">{_t(step["error"])}</div>')
    plot = step.get("plot")
    if plot:
        uri, problem = _embed_png(out_dir, plot)
        if uri:
            out.append(f'<img alt="plot of step {_t(step.get("name"))}" src="{uri}">')
        else:
            out.append(f'<p class="muted">Plot {_t(plot)}: {html.escape(problem)}.</p>')
    out.append("</section>")
    return "\n".join(out)


def _certificates_html(step: dict) -> str:
    """A calibration step's certificates (``experiments.certificate``): per quantity its value, standard
    uncertainty, unit, limits and verdict, and the method below the table (one text when they share it)."""
    certs = [c for c in _as_list(step.get("certificates")) if isinstance(c, dict)]
    if not certs:
        return ""
    rows = []
    for c in certs:
        lims = _as_dict(c.get("limits"))
        limits = "<br>".join(f"{_t(fig)}: {_t(_as_dict(lim).get('min'))} … {_t(_as_dict(lim).get('max'))}"
                             for fig, lim in lims.items()) or DASH
        rows.append(f"<tr><td>{_t(c.get('quantity'))}</td><td class=\"num\">{_t(c.get('value'))}</td>"
                    f"<td class=\"num\">{_t(c.get('uncertainty'))}</td><td>{_t(c.get('unit'))}</td>"
                    f"<td>{limits}</td><td>{_badge(c.get('verdict') or 'unknown')}</td></tr>")
    methods = list(dict.fromkeys(str(c.get("method") or "") for c in certs))
    head = ("<tr><th>quantity</th><th>value</th><th>standard uncertainty (k = 1)</th><th>unit</th><th>limits</th>"
            "<th>verdict</th></tr>")
    notes = "".join(f'<p class="muted">Method: {html.escape(m)}</p>' for m in methods if m)
    return f'<div class="certificate"><h4>Calibration certificate</h4><table>{head}{"".join(rows)}</table>{notes}</div>'


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _inside(out_dir: Path, rel: Any) -> Path | None:
    """``out_dir / rel`` when ``rel`` is a relative path that stays inside ``out_dir``, else None."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        return None
    full = (out_dir / rel).resolve()
    return full if full.is_relative_to(out_dir.resolve()) else None


def _embed_png(out_dir: Path, rel: Any) -> tuple[str | None, str]:
    """A ``data:image/png`` URI of the plot file, or None and why not."""
    full = _inside(out_dir, rel)
    if full is None:
        return None, "not a path inside the run folder"
    try:
        data = full.read_bytes()
    except FileNotFoundError:
        return None, "file missing"
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    if not data.startswith(PNG_SIGNATURE):
        return None, "not a PNG file"
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), ""


def _outputs_html(results: dict, out_dir: Path) -> str:
    outputs = _as_dict(results.get("outputs"))
    items = []
    for kind, rel in outputs.items():
        parts = urlsplit(rel) if isinstance(rel, str) else None
        # Only relative links into the run folder: an absolute path or URL is shown as text, not followed.
        if parts is None or parts.scheme or parts.netloc or _inside(out_dir, rel) is None:
            items.append(f"<li>{_t(kind)}: {_t(rel)}</li>")
            continue
        # The report itself is being written right now, so it counts as present.
        present = (out_dir / rel).exists() or (out_dir / rel).resolve() == (out_dir / "report.html").resolve()
        missing = "" if present else ' <span class="muted">(missing)</span>'
        href = html.escape(quote(rel), quote=True)
        items.append(f'<li>{_t(kind)}: <a href="{href}">{_t(rel)}</a>{missing}</li>')
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="muted">No outputs recorded.</p>'
    return f'<section id="outputs"><h2>Outputs</h2>\n{body}</section>'
