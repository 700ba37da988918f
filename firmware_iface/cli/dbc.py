"""``jointkit dbc check PATH``: validate a protocol profile (a DBC and its sidecar TOML), and show what the toolkit
can do with a joint of that profile (its capabilities: ``firmware_iface.protocol.capabilities``).

Exit 0 when clean, 1 when problems are found (each printed on a line naming the file, message, signal and
numbers), 2 when a file cannot be read (``error: ...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_iface.cli.common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dbc", help="protocol profiles (DBC + sidecar): check")
    dsub = p.add_subparsers(dest="dbc_command", required=True, metavar="ACTION")
    c = dsub.add_parser("check", help="validate a DBC and its sidecar: layouts, ids after node addressing, "
                                      "semantic mappings, ranges, modes")
    c.add_argument("path", type=Path, help="the DBC file")
    c.add_argument("--sidecar", type=Path, help="the sidecar TOML (default: PATH with .toml, when it exists)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from firmware_iface.protocol.capabilities import table
    from firmware_iface.protocol.check import check_files

    sidecar = args.sidecar
    if sidecar is None and args.path.with_suffix(".toml").is_file():
        sidecar = args.path.with_suffix(".toml")
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
