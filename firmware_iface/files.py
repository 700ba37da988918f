"""The files jointkit writes from the model layer's objects (``actuator`` reads its inputs but writes no file) and from
an experiment's signals: a simulated trace or signals as CSV, a gains set and a joint's parameters as TOML that load
back to equal objects."""

from __future__ import annotations

import csv
from pathlib import Path

import tomli_w

from actuator.control.config import ControllerConfig, config_to_dict
from actuator.params import JointParams, params_to_dict
from actuator.simulation import Trace


def write_trace_csv(trace: Trace, path: str | Path) -> None:
    """The trace's columns (``trace.fields``, SI units in the names), one row per recorded step."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(trace.fields)
        w.writerows(trace.data.tolist())


def save_gains(cfg: ControllerConfig, path: str | Path) -> None:
    Path(path).write_text(tomli_w.dumps(config_to_dict(cfg)), encoding="utf-8")


def save_params(p: JointParams, path: str | Path) -> None:
    Path(path).write_text(tomli_w.dumps(params_to_dict(p)), encoding="utf-8")


def write_signals_csv(signals: dict, path: str | Path, columns: tuple[str, ...]) -> None:
    """An experiment's signals (``experiments.protocols.Signals``, one row per grid tick) as CSV, ``columns`` in order
    (their names are the signals', SI units in the names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(zip(*(signals[c].tolist() for c in columns), strict=True))
