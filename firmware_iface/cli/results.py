"""``jointkit results summary|list|add|show|migrate|report``: the production results database (see
firmware_iface/rig/results_db.py): an SQLite file, or a ``postgresql://`` URL wherever DB is asked for.

``summary`` prints the yield and, per check, n, mean, std, the limits, Cpk and the fails, per sequence name;
``list`` prints the runs (the last 20 unless told); ``add`` appends results.json files written earlier, all in
one transaction (a bad file adds none, so the batch can be rerun once fixed; runs already present are skipped);
``show SERIAL`` prints a unit's whole history with its trace (rig, jointkit version, profile, preset and gains
sha256, calibration certificate ids); ``migrate`` takes an older database forward to this jointkit's schema;
``report`` writes the process-control report (``firmware_iface.rig.spc_report``).
A missing database, one that is not a results database or one of another schema version, and an unreachable
server are ``error: ...`` naming the database (a URL without its password) (exit 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_iface.cli.common import print_json
from firmware_iface.defaults import ANOMALY_ALPHA, SPC_SUBGROUP

if TYPE_CHECKING:
    from rich.console import Console

DB_HELP = "results database: an SQLite file or a postgresql://USER@HOST/DB URL"
DEFAULT_DB = Path("out") / "results.db"  # where `jointkit run` appends by default
HASH_SHOWN = 12  # hex digits of a sha256 in the table: enough to tell versions apart; --json has them whole
LIST_LAST = 20  # a line's database holds thousands of runs: a screenful unless asked for more
CPK_GOOD, CPK_MARGINAL = 1.33, 1.0  # the usual automotive thresholds (AIAG): >= 1.33 capable, < 1.0 not


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="production results database: summary (yield, Cpk), list, add, show a unit's "
                                       "history, migrate")
    rsub = p.add_subparsers(dest="results_command", required=True, metavar="ACTION")

    s = rsub.add_parser("summary", help="yield and per-check statistics with Cpk")
    s.add_argument("db", help=DB_HELP)
    _filter_options(s)
    s.add_argument("--last", type=int, default=None, help="only the N most recent runs (default: all)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_summary)

    ls = rsub.add_parser("list", help="the runs: id, serial, time, verdict, failed checks")
    ls.add_argument("db", help=DB_HELP)
    _filter_options(ls)
    ls.add_argument("--last", type=int, default=LIST_LAST,
                    help=f"the N most recent runs (default {LIST_LAST}; 0 for all)")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=run_list)

    a = rsub.add_parser("add", help="append results.json files to the database (created on first use)")
    a.add_argument("db", help=DB_HELP)
    a.add_argument("files", type=Path, nargs="+", metavar="RESULTS_JSON", help="results.json files of rig runs")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=run_add)

    sh = rsub.add_parser("show", help="a unit's whole history: runs, verdicts, trace hashes, certificate ids")
    sh.add_argument("serial", help="the unit's serial number")
    sh.add_argument("--db", default=str(DEFAULT_DB), help=DB_HELP + f" (default {DEFAULT_DB}, as `jointkit run`)")
    sh.add_argument("--json", action="store_true", help="print one JSON object")
    sh.set_defaults(func=run_show)

    m = rsub.add_parser("migrate", help="take an older results database forward to this jointkit's schema")
    m.add_argument("db", help=DB_HELP)
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=run_migrate)

    r = rsub.add_parser("report", help="process-control report: control charts, Western Electric rules, Cp/Cpk with "
                                      "intervals, drift alarms, anomaly detection (HTML + JSON)")
    r.add_argument("db", help=DB_HELP)
    r.add_argument("--out", type=Path, required=True, help="output folder: report.html, spc.json, anomaly models")
    _filter_options(r)
    r.add_argument("--last", type=int, default=None, help="only the N most recent runs (default: all)")
    r.add_argument("--subgroup", type=int, default=SPC_SUBGROUP,
                   help=f"runs per X-bar/R subgroup when the runs carry no batch (default {SPC_SUBGROUP})")
    r.add_argument("--anomaly-model", type=Path, default=None,
                   help="score the runs with this model (default: fit one on the pass runs, written to --out)")
    r.add_argument("--alpha", type=float, default=ANOMALY_ALPHA,
                   help=f"false-alarm rate of a fitted anomaly model (default {ANOMALY_ALPHA:g}; a given one: its own)")
    r.add_argument("--json", action="store_true", help="print one JSON object (the flags and alarms)")
    r.set_defaults(func=run_report)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequence", default=None, help="only runs of this sequence name")
    parser.add_argument("--serial-prefix", default=None, help="only joints whose serial starts with this")


def run(args: argparse.Namespace) -> int:
    return int(args.func(args) or 0)


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "—" if value is None else format(value, fmt)


def _cpk_cell(check: dict[str, Any]) -> str:
    cpk = check["cpk"]
    if cpk is None:
        return f"[dim]— ({check['cpk_reason']})[/dim]"
    style = "green" if cpk >= CPK_GOOD else "yellow" if cpk >= CPK_MARGINAL else "red"
    return f"[{style}]{cpk:.2f}[/{style}]"


def _yield_line(group: dict[str, Any]) -> str:
    v = group["verdicts"]
    runs = f"{group['runs']} run" + ("" if group["runs"] == 1 else "s")
    counts = f"{runs}: {v['pass']} pass, {v['fail']} fail, {v['error']} error, {v['incomplete']} incomplete"
    if group["yield"] is None:
        return f"{counts}; yield — ({group['yield_reason']})"
    return f"{counts}; yield {group['yield']:.1%} ({v['pass']}/{v['pass'] + v['fail']})"


def _print_group(console: Console, group: dict[str, Any]) -> None:
    from rich.table import Table

    versions, v = len(group["sequence_sha256"]), group["verdicts"]
    note = f" ({versions} versions of the sequence file)" if versions > 1 else ""
    console.print(f"[bold]{group['sequence']}[/bold]{note}: {_yield_line(group)}")
    table = Table()
    for column in ("check", "unit", "n", "mean", "std", "LSL", "USL", "Cpk", "fails"):
        table.add_column(column, justify="left" if column in ("check", "unit") else "right",
                         overflow="fold" if column == "check" else "ellipsis")
    for c in group["checks"]:
        limits_note = " *" if c["limits_changed"] else ""
        table.add_row(c["name"] + limits_note, c["unit"] or "", str(c["n"]), _num(c["mean"]), _num(c["std"]),
                      _num(c["lsl"]), _num(c["usl"]), _cpk_cell(c), str(c["fails"]))
    console.print(table)
    if v["error"] or v["incomplete"]:
        console.print("yield = pass / (pass + fail): runs ending in error or incomplete did not judge the joint"
                      + ("; incomplete runs are not in the check figures" if v["incomplete"] else ""))
    if any(c["limits_changed"] for c in group["checks"]):
        console.print("* limits changed between runs: LSL/USL and Cpk are the most recent run's")


def run_summary(args: argparse.Namespace) -> int:
    from rich.console import Console

    from firmware_iface.rig import results_db

    s = results_db.summary(args.db, sequence=args.sequence, serial_prefix=args.serial_prefix, last=args.last)
    if args.json:
        print_json(s)
        return 0
    console = Console()
    console.print(f"[bold]jointkit results summary: {s['db']}[/bold]")
    if not s["sequences"]:
        console.print("no runs match")
    for group in s["sequences"]:
        _print_group(console, group)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from actuator.errors import ConfigError
    from firmware_iface.rig import results_db

    if args.last < 0:
        raise ConfigError(f"--last {args.last}: allowed an integer >= 1, or 0 for every run")
    runs = results_db.list_runs(args.db, sequence=args.sequence, serial_prefix=args.serial_prefix,
                                last=args.last or None)
    if args.json:
        print_json({"db": results_db.display(args.db), "runs": runs})
        return 0
    table = Table(title=f"jointkit results list: {results_db.display(args.db)}")
    for column in ("id", "serial", "started (UTC)", "sequence", "verdict", "failed checks"):
        table.add_column(column, justify="right" if column == "id" else "left")
    for r in runs:
        style = {"pass": "green", "fail": "red"}.get(r["verdict"], "yellow")
        failed = ", ".join(r["failed_checks"]) or (r["error"] or "")
        started = r["started_utc"][:19].replace("T", " ")  # to the second: the fraction only crowds the table
        table.add_row(str(r["id"]), r["serial"] or "—", started, r["sequence"],
                      f"[{style}]{r['verdict']}[/{style}]", failed)
    Console().print(table)
    return 0


def _read_results(path: Path) -> dict:
    from actuator.errors import ConfigError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a results JSON file ({e})") from e


def run_add(args: argparse.Namespace) -> int:
    from actuator.errors import ConfigError
    from firmware_iface.rig import results_db

    runs = []
    for path in args.files:
        data = _read_results(path)
        try:
            results_db.validate(data)  # here as well as in append_many, so that the error names the file
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e
        runs.append(data)
    appended = results_db.append_many(args.db, runs)
    rows = [{"file": str(f), "run_id": a.run_id, "added": a.added} for f, a in zip(args.files, appended, strict=True)]
    added = sum(a.added for a in appended)
    if args.json:
        print_json({"db": results_db.display(args.db), "added": added, "already_present": len(appended) - added,
                    "runs": rows})
        return 0
    for row in rows:
        print(f"{row['file']}: run {row['run_id']}" + ("" if row["added"] else " (already present)"))
    print(f"added {added} run(s) to {results_db.display(args.db)}, {len(appended) - added} already present")
    return 0


def _short(sha: str | None) -> str:
    return "—" if sha is None else sha[:HASH_SHOWN]


def run_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from actuator.errors import ConfigError
    from firmware_iface.rig import results_db

    runs = results_db.history(args.db, args.serial)
    name = results_db.display(args.db)
    if not runs:
        raise ConfigError(f"{name}: no run of serial {args.serial!r}")
    if args.json:
        print_json({"db": name, "serial": args.serial, "runs": runs})
        return 0
    console = Console()
    table = Table(title=f"jointkit results show {args.serial}: {name}")
    for column in ("id", "started (UTC)", "sequence", "verdict", "rig", "jointkit", "profile", "preset", "gains",
                   "failed checks"):
        table.add_column(column, justify="right" if column == "id" else "left")
    for r in runs:
        style = {"pass": "green", "fail": "red"}.get(r["verdict"], "yellow")
        table.add_row(str(r["id"]), r["started_utc"][:19].replace("T", " "), r["sequence"],
                      f"[{style}]{r['verdict']}[/{style}]", r["rig_id"] or "—", r["jointkit_version"] or "—",
                      _short(r["profile_sha256"]), _short(r["preset_sha256"]), _short(r["gains_sha256"]),
                      ", ".join(r["failed_checks"]) or (r["error"] or ""))
    console.print(table)
    certs = [(r["id"], c) for r in runs for c in r["certificates"]]
    if certs:
        ct = Table(title="calibration certificates")
        for column in ("run", "step", "certificate", "quantity", "verdict"):
            ct.add_column(column, justify="right" if column in ("run", "step") else "left")
        for run_id, c in certs:
            ct.add_row(str(run_id), str(c["step"]), c["id"] or "—", c["quantity"], c["verdict"])
        console.print(ct)
    console.print(f"sha256 shown to {HASH_SHOWN} hex digits; --json gives them whole")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from firmware_iface.rig import results_db

    done = results_db.migrate(args.db)
    if args.json:
        print_json(done)
    elif done["migrated_to"] is None:
        print(f"{done['db']}: already at schema version {results_db.DB_VERSION}, {done['runs']} run(s); nothing to do")
    else:
        print(f"{done['db']}: migrated from schema version {done['steps'][0] - 1} to {done['migrated_to']}, "
              f"{done['runs']} run(s)")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from firmware_iface.rig import spc_report

    figures = spc_report.report(args.db, args.out, sequence=args.sequence, serial_prefix=args.serial_prefix,
                                last=args.last, subgroup=args.subgroup, model_path=args.anomaly_model,
                                alpha=args.alpha)
    brief = {"db": str(args.db), "out": str(args.out), "runs": figures["runs"], "sequences": [
        {"sequence": s["sequence"], "runs": s["runs"], "anomaly_model": s["anomaly"]["model"],
         "anomaly_flagged": s["anomaly"].get("flagged", []),
         "checks": {c["name"]: {"cpk": c["capability"]["cpk"], "cpk_ci": c["capability"]["cpk_ci"],
                                "we_rules": {r: len(v) for r, v in c["individuals"].get("rules", {}).items() if v},
                                "drift_alarms": [a["run_id"] for a in c["drift"].get("alarms", [])]}
                    for c in s["checks"]}} for s in figures["sequences"]]}
    if args.json:
        print_json(brief)
        return 0
    console = Console()
    for s in brief["sequences"]:
        alarms = sum(bool(c["drift_alarms"]) for c in s["checks"].values())
        rules = sum(bool(c["we_rules"]) for c in s["checks"].values())
        console.print(f"[bold]{s['sequence']}[/bold]: {s['runs']} runs; {rules} checks with Western Electric "
                      f"signals, {alarms} with drift alarms; {len(s['anomaly_flagged'])} units flagged anomalous")
    console.print(f"report: {args.out / 'report.html'}  figures: {args.out / 'spc.json'}")
    return 0
