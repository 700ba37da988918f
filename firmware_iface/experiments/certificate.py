"""Calibration certificates: what a calibration routine states about each quantity it calibrated.

A ``Certificate`` holds the value (a number or a vector), its standard uncertainty (same shape, k = 1), the unit,
the method (how it was measured and where the result is applied) and, once judged against limits, the limits and the
verdict. A routine builds them unjudged (``Outcome.certificates``); whoever holds the limits judges them: the rig
with the sequence step's ``limits`` (``judged``), the CLI with the routine's default limits. The same shape serves
every routine (F/T bias and tool load now; motor R/L/Kt, encoder offset, cogging and friction maps next), so the
report (``rig.report``) shows any of them as one table.

Verdicts: ``pass`` / ``fail`` from the limits on the certificate's ``limit_figure`` (default: its quantity; a vector
quantity is judged through a scalar figure such as its largest component) and on its ``uncertainty_figure``; ``fail``
also for a value or uncertainty that is not finite; ``not checked`` when no limit names either figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Limit:
    """A figure's limits (a sequence step's ``limits.FIGURE``, a routine's defaults): pass when the value is a finite
    number within them."""

    min: float | None
    max: float | None

    def verdict(self, value: Any) -> str:
        if not isinstance(value, int | float) or not math.isfinite(value):
            return "fail"
        ok = (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
        return "pass" if ok else "fail"


class LimitLike(Protocol):
    min: float | None
    max: float | None

    def verdict(self, value: Any) -> str: ...


def _finite(value: Any) -> bool:
    values = value if isinstance(value, list | tuple) else [value]
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)


@dataclass(frozen=True)
class Certificate:
    quantity: str                      # the figure it certifies, unit in the name (``tool_mass_kg``)
    value: float | list[float]
    uncertainty: float | list[float]   # standard uncertainty (k = 1), same shape as the value
    unit: str
    method: str
    limit_figure: str | None = None    # the scalar figure whose limits judge it (None: the quantity itself)
    uncertainty_figure: str | None = None  # the scalar figure of its uncertainty, whose limits judge it too
    limits: dict[str, dict[str, float | None]] | None = None  # figure -> {min, max}, once judged
    verdict: str = NOT_CHECKED

    def judged(self, limits: dict[str, LimitLike], figures: dict[str, Any]) -> Certificate:
        """This certificate with the limits (of ``limits``, by figure name) that judge it, its value's and its
        uncertainty's, and its verdict: fail if one fails, pass if one was checked and none failed."""
        if not (_finite(self.value) and _finite(self.uncertainty)):
            return replace(self, verdict="fail")
        names = [f for f in (self.limit_figure or self.quantity, self.uncertainty_figure) if f in limits]
        if not names:
            return replace(self, verdict=NOT_CHECKED)
        verdicts = [limits[f].verdict(figures.get(f)) for f in names]
        used = {f: {"min": limits[f].min, "max": limits[f].max} for f in names}
        return replace(self, limits=used, verdict="fail" if "fail" in verdicts else "pass")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_all(certificates: list[Certificate], limits: dict[str, LimitLike],
              figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The certificates judged and as plain dictionaries (results.json's ``certificates`` of a step)."""
    return [c.judged(limits, figures).as_dict() for c in certificates]
