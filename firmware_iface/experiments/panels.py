"""What an experiment draws: ``Series`` (one line) and ``Panel`` (one axes). The experiments describe their plots with
these; the rig's report (``firmware_iface.rig.report``) and the GUI render them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Series:
    """One line on a panel: ``values`` against ``t_s`` (or any x quantity), drawn with matplotlib format ``style``."""

    label: str
    t_s: np.ndarray
    values: np.ndarray
    style: str = "-"

    def __post_init__(self) -> None:
        # Lists straight from JSON may hold None: as float arrays those become NaN, which the plot skips.
        t = np.asarray(self.t_s, dtype=float).ravel()
        v = np.asarray(self.values, dtype=float).ravel()
        if t.shape != v.shape:
            raise ValueError(f"series {self.label!r}: {t.size} x values but {v.size} y values")
        object.__setattr__(self, "t_s", t)
        object.__setattr__(self, "values", v)


@dataclass(frozen=True)
class Panel:
    """One axes of a figure: its series, and horizontal lines (value, label) such as limits, drawn dashed."""

    ylabel: str
    series: list[Series]
    hlines: list[tuple[float, str]] = field(default_factory=list)
