"""Helpers shared by the CLI subcommands: JSON output and rich tables (rich imported when a table is printed)."""

from __future__ import annotations

import json
from typing import Any

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
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        text = f"{value:.6g}" if isinstance(value, float) else (", ".join(value) or "none"
                                                                if isinstance(value, list) else str(value))
        table.add_row(key, text)
    Console().print(table)


def load_entry_point(name: str) -> Any:
    """The object the installed ``jointkit`` entry point ``name`` names (group ``jointkit``: the GUI's command and
    benchmark, which live in the gui package); ``ConfigError`` naming what to do when it is not installed."""
    from importlib.metadata import entry_points

    found = entry_points(group="jointkit", name=name)
    if not found:
        from actuator.errors import ConfigError

        raise ConfigError(f"jointkit's {name!r} entry point is not installed: reinstall jointkit (make setup, or "
                          "pip install -e .) so its GUI is found")
    return next(iter(found)).load()
