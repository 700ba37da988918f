"""Helpers shared by the CLI subcommands: JSON output and rich tables."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from firmware_iface.jsonsafe import json_safe


def print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(json_safe(obj), indent=2))


def emit(figures: dict[str, Any], as_json: bool, title: str) -> None:
    """The figures as JSON, or as a table for people (nested tables are left to the JSON)."""
    if as_json:
        print_json(figures)
    else:
        print_summary(title, {k: v for k, v in figures.items() if not isinstance(v, dict)})


def print_summary(title: str, summary: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        text = f"{value:.6g}" if isinstance(value, float) else (", ".join(value) or "none"
                                                                if isinstance(value, list) else str(value))
        table.add_row(key, text)
    Console().print(table)
