"""The host's check of gains before it sends them: the cascade with the new gains on the joint's linear model
(``actuator.analysis.linear``), where the caller knows the joint's preset.

A set whose velocity or position loop has a negative margin is refused (``UnstableGainsError``, a ``ConfigError``)
unless the caller forces it; a stable set with little margin (under ``MIN_PHASE_MARGIN_DEG`` or
``MIN_GAIN_MARGIN_DB``) passes with a warning naming the margin. The joint guards itself anyway (the ``unstable``
fault): this check tells the engineer before the joint has to.
"""

from __future__ import annotations

from dataclasses import dataclass

from actuator.analysis.linear import LoopMargins, TwoMass, loop_margins
from actuator.analysis.tuning import default_controller
from actuator.control.config import CASCADE_GAINS, GAINS, ControllerConfig
from actuator.errors import ConfigError
from actuator.params import JointParams, load_preset

MIN_PHASE_MARGIN_DEG = 30.0  # the usual design floor for a servo loop (tune designs for 45-60)
MIN_GAIN_MARGIN_DB = 6.0
# gain name -> (section of ControllerConfig, field): the cascade gains the linear model depends on, from the one table
CASCADE = {name: GAINS[name] for name in CASCADE_GAINS}


class UnstableGainsError(ConfigError):
    """Gains that make a loop of the cascade unstable on the joint's linear model."""


@dataclass(frozen=True)
class GainCheck:
    margins: list[LoopMargins]
    warnings: list[str]

    @property
    def stable(self) -> bool:
        return all(m.stable for m in self.margins)


def with_gains(cfg: ControllerConfig, values: dict[str, float]) -> ControllerConfig:
    """``cfg`` with the cascade gains of ``values`` (names as the protocol's gains; others are ignored)."""
    for name, value in values.items():
        if name in CASCADE:
            section, field_name = CASCADE[name]
            cfg = cfg.replace(section, **{field_name: float(value)})
    return cfg


def check_gains(preset: JointParams | str, values: dict[str, float], base: ControllerConfig | None = None,
                *, present: dict[str, float] | None = None, where: str = "gains", force: bool = False,
                loops: tuple[str, ...] = ("velocity", "position")) -> GainCheck:
    """Margins of ``base`` (default: the preset's controller) with the joint's ``present`` gains and then the new
    ``values`` applied; raises ``UnstableGainsError`` naming the new values, the loop and its margin when a loop is
    unstable, unless ``force``."""
    params = preset if isinstance(preset, JointParams) else load_preset(preset)
    cfg = with_gains(with_gains(base or default_controller(params), present or {}), values)
    margins = [m for m in loop_margins(TwoMass.from_params(params), cfg) if m.loop in loops]
    shown = ", ".join(f"{k} = {v:g}" for k, v in values.items() if k in CASCADE)
    bad = [m for m in margins if not m.stable]
    if bad and not force:
        raise UnstableGainsError(f"{where}: {shown or 'these gains'}: the cascade is unstable on {params.name}'s "
                                 f"linear model ({'; '.join(m.describe() for m in bad)}); allowed: gains with "
                                 "positive margins (force to send them anyway)")
    warnings = [f"{where}: {shown}: {m.describe()} (unstable: the joint will fault)" if not m.stable else
                f"{where}: {shown}: low margin on {params.name}'s linear model, {m.describe()} "
                f"(want >= {MIN_PHASE_MARGIN_DEG:g} deg and >= {MIN_GAIN_MARGIN_DB:g} dB)"
                for m in margins if not m.stable or m.phase_margin_deg < MIN_PHASE_MARGIN_DEG
                or m.gain_margin_db < MIN_GAIN_MARGIN_DB]
    return GainCheck(margins, warnings)
