"""``jointkit dbc``: protocol profiles (a DBC and its sidecar TOML).

``check PATH`` validates a profile and shows what the toolkit can do with a joint of that profile (its capabilities:
``firmware_iface.protocol.capabilities``). Exit 0 when clean, 1 when problems are found (each printed on a line
naming the file, message, signal and numbers), 2 when a file cannot be read (``error: ...``).

``export PATH --nodes 1,2`` writes a DBC with every message once per node at its bus id, for tools that read a DBC
alone (cantools, SavvyCAN, Vector CANdb++; ``firmware_iface.protocol.export``). Exit 0 when written, 2 when the profile
cannot be read or fails its check, or a node is outside its range (``error: ...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_iface.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dbc", help="protocol profiles (DBC + sidecar): check, export")
    dsub = p.add_subparsers(dest="dbc_command", required=True, metavar="ACTION")
    c = dsub.add_parser("check", help="validate a DBC and its sidecar: layouts, ids after node addressing, "
                                      "semantic mappings, ranges, modes")
    c.add_argument("path", type=Path, help="the DBC file")
    c.add_argument("--sidecar", type=Path, help="the sidecar TOML (default: PATH with .toml, when it exists)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=run_check)
    e = dsub.add_parser("export", help="write a DBC with every message once per node, at its bus id, for tools that "
                                       "read a DBC alone (cantools, SavvyCAN, Vector CANdb++)")
    e.add_argument("path", type=Path, help="the DBC file of the profile")
    e.add_argument("--nodes", required=True, help="node ids to export, e.g. 1,2 or 1-4")
    e.add_argument("--sidecar", type=Path, help="the sidecar TOML (default: PATH with .toml, when it exists)")
    e.add_argument("--out", help="the DBC to write (default: <stem>_nodes_<ids>.dbc in the current directory; - for "
                                 "standard output)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_export)


def _sidecar(args: argparse.Namespace) -> Path | None:
    if args.sidecar is None and args.path.with_suffix(".toml").is_file():
        return args.path.with_suffix(".toml")
    return args.sidecar


def run_check(args: argparse.Namespace) -> int:
    from firmware_iface.protocol.capabilities import table
    from firmware_iface.protocol.check import check_files

    sidecar = _sidecar(args)
    profile, problems = check_files(args.path, sidecar)
    if args.json:
        print_json({"dbc": str(args.path), "sidecar": str(sidecar) if sidecar else None, "profile": profile.name,
                    "messages": len(profile.messages), "ok": not problems,
                    "problems": [p.as_dict() | {"line": str(p)} for p in problems], "capabilities": table(profile)})
    else:
        for p in problems:
            print(p)
        for row in table(profile):
            lacking = "" if row["provided"] else f"  (missing: {', '.join(row['missing'])})"
            print(f"  {'yes' if row['provided'] else 'no ':3}  {row['capability']:<18} {row['what']}{lacking}")
        scope = f" with {sidecar}" if sidecar else \
            " (no sidecar: addressing, semantic names, rates and modes unchecked)"
        verdict = f"{len(problems)} problem(s)" if problems else "ok"
        print(f"{args.path}{scope}: {len(profile.messages)} messages, {verdict}")
    return 1 if problems else 0


def run_export(args: argparse.Namespace) -> int:
    import sys

    from actuator.errors import ConfigError
    from firmware_iface.protocol.export import dbc_text, export_dbc, write_dbc
    from firmware_iface.protocol.load import load_profile, parse_nodes

    if args.json and args.out == "-":
        raise ConfigError("--json and --out - both write to standard output: give --out FILE with --json")
    sidecar = _sidecar(args)
    profile = load_profile(args.path, sidecar)
    nodes = parse_nodes(args.nodes, profile)
    db = export_dbc(profile, nodes)
    out = args.out or f"{args.path.stem}_nodes_{'_'.join(map(str, nodes))}.dbc"
    if out == "-":
        sys.stdout.write(dbc_text(db).replace("\r\n", "\n"))
    else:
        write_dbc(db, out)
    figures = {"dbc": str(args.path), "sidecar": str(sidecar) if sidecar else None, "profile": profile.name,
               "out": out, "nodes": nodes, "messages": len(db.messages), "messages_per_node": len(profile.messages),
               "bitrate": profile.sidecar.bitrate}
    if args.json:
        print_json(figures)
    else:
        where = "standard output" if out == "-" else out
        print(f"wrote {where}: {len(db.messages)} messages ({len(profile.messages)} of profile {profile.name} for "
              f"node(s) {', '.join(map(str, nodes))})", file=sys.stderr if out == "-" else sys.stdout)
    return 0
