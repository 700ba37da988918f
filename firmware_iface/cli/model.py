"""``jointkit model check PRESET``: the preset's model measured against its ``[catalogue]`` figures.

Each check (``actuator.analysis.catalogue``) simulates the joint on a test bench and compares the measured
quantity with the catalogue's figure: a table of quantity, catalogue value and source, simulated value, error,
tolerance and verdict. ``--json`` prints one object (rows, ``ok``, ``failed``, ``skipped``); ``--out DIR`` writes
DIR/model_check.json, DIR/twist_curve.png (catalogue curve against the simulated static twists) and
DIR/efficiency_map.png (simulated efficiency over input speed and load, with the catalogue's points).

Exit 0 when every check passes, 1 when any fails (each failing quantity named), 2 on an error (a preset that cannot
be read, or has no ``[catalogue]``: ``error: ...``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_iface.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="the joint model against its catalogue figures: check")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    c = msub.add_parser("check", help="measure the preset's model as the catalogue measures the part (twist curve, "
                                      "hysteresis, Kt, thermal, friction, efficiency, cogging) and compare")
    c.add_argument("preset", help="a preset name (knee, wrist) or the path of a joint TOML with a [catalogue]")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--out", type=Path, help="write model_check.json, twist_curve.png and efficiency_map.png here")
    c.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from actuator.analysis.catalogue import run_checks
    from actuator.params import load_preset

    params = load_preset(args.preset)
    report = run_checks(params)
    result = {"preset": params.name, "ok": report.ok, "failed": report.failed, "skipped": list(report.skipped),
              "rows": [r.as_dict() for r in report.rows]}
    if args.out:
        result["files"] = _write(args.out, params, report, result)
    if args.json:
        print_json(result)
    else:
        _print_table(result)
    return 0 if report.ok else 1


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4g}".replace("e-0", "e-")


def _cells(r: dict) -> tuple[str, str]:
    """The error and tolerance columns of a row, in its kind (relative in %, margin, absolute)."""
    if r["error_kind"] == "relative":
        return f"{100 * r['error']:+.1f} %", f"{100 * r['tolerance']:g} %"
    if r["error_kind"] == "margin":
        return _fmt(-r["error"]), "≤ 0"
    return _fmt(r["error"]), f"±{r['tolerance']:g}"


def _print_table(result: dict) -> None:
    """The rows (sources by number, each distinct source in full below with the rows' notes), then what was
    not checked and the failing quantities (on standard error)."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"jointkit model check: {result['preset']}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("quantity [unit]", overflow="fold", min_width=20)
    table.add_column("verdict", no_wrap=True)
    for name in ("catalogue", "simulated", "error", "tol."):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("src", no_wrap=True)
    sources: dict[str, int] = {}
    notes = []
    for r in result["rows"]:
        n = sources.setdefault(r["source"], len(sources) + 1)
        err, tol = _cells(r)
        verdict = "[green]pass[/green]" if r["passed"] else "[red]FAIL[/red]"
        table.add_row(escape(f"{r['quantity']} [{r['unit']}]"), verdict, _fmt(r["catalogue"]), _fmt(r["simulated"]),
                      err, tol, f"({n})")
        if r["note"]:
            notes.append(f"{r['quantity']}: {r['note']}")
    console = Console()
    console.print(table)
    console.print("error: simulated - catalogue (relative, or in the unit); ≤ 0: simulated - catalogue limit",
                  markup=False)
    for source, n in sources.items():
        console.print(f"({n}) {source}", markup=False)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    if result["skipped"]:
        console.print(f"not in the preset's catalogue (not checked): {', '.join(result['skipped'])}", markup=False)
    if result["failed"]:
        print(f"FAIL: {len(result['failed'])} check(s): " + "; ".join(result["failed"]), file=sys.stderr)
    else:
        console.print("all checks pass")


def _write(out: Path, params, report, result: dict) -> dict:
    """model_check.json and the two PNGs in ``out``; their paths."""
    import json

    import numpy as np

    from actuator.analysis.catalogue import catalogue_twist_rad, efficiency_map
    from firmware_iface.jsonsafe import json_safe
    from firmware_iface.plots import plot_efficiency_map, plot_twist_curve

    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "model_check.json")}
    curve = params.catalogue.stiffness
    if curve is not None:
        torques = np.linspace(-1.6 * curve.t2_nm, 1.6 * curve.t2_nm, 401)
        points = [{"torque_nm": r.at_nm, "simulated_rad": r.simulated} for r in report.rows if r.at_nm is not None]
        line = {"torque_nm": torques, "twist_rad": [catalogue_twist_rad(curve, t) for t in torques]}
        files["twist_png"] = str(plot_twist_curve(line, points, out / "twist_curve.png",
                                                  f"{params.name}: static twist, motor held"))
    emap = efficiency_map(params)
    result["efficiency_map"] = emap
    cat_points = [{"input_speed_rpm": e.input_speed_rpm, "efficiency_pct": e.efficiency_pct}
                  for e in params.catalogue.efficiency]
    files["efficiency_png"] = str(plot_efficiency_map(emap, out / "efficiency_map.png",
                                                      f"{params.name}: simulated gear efficiency, 25 °C",
                                                      cat_points))
    (out / "model_check.json").write_text(json.dumps(json_safe({**result, "files": files}), indent=2),
                                          encoding="utf-8")
    return files
