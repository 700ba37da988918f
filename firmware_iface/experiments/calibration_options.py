"""The calibration routines' options (issue 17): which option sets which keyword of a routine's configuration
(``experiments.calibrations.config_of``), its kind and what it means. The one table that ``jointkit calibrate``'s
options (``cli.calibrate.OPTIONS``) and the GUI's calibration panel's option fields are made from; parsing of a
typed value (``parse``) with an error naming the option, the value and what is allowed.

Light on purpose (no numerics imported): the command line builds its parser from it before any routine runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from actuator.errors import ConfigError

SETTLE = ("ft", "ft-crosstalk", "kt", "friction", "friction-temperature", "encoders")


@dataclass(frozen=True)
class Option:
    name: str                  # the command line's --NAME (with dashes for underscores)
    keys: dict[str, str]       # routine -> the configuration keyword it sets
    kind: str                  # "float", "int" or "floats" (comma-separated), "pair" (two floats: LO,HI)
    unit: str
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("poses", {"ft": "poses_rad"}, "floats", "rad", "output angles to hold (default 7 over -1.5..1.5)"),
    Option("speeds", {"friction": "speeds_rad_s", "friction-temperature": "speeds_rad_s"}, "floats", "rad/s",
           "output speeds of the friction map"),
    Option("loads", {"kt": "loads_nm"}, "floats", "N·m", "fixture loads (default -0.8..0.8 x rated, 5)"),
    Option("speed", {"kt": "speed_rad_s", "encoders": "speed_rad_s"}, "float", "rad/s",
           "kt: the plateaus' output speed (default 0.5); encoders: the sweeps' (0.1)"),
    Option("range", {"encoders": "range_rad"}, "pair", "rad", "the sweeps' ends LO,HI (default: the limits less 0.2)"),
    Option("maps", {"friction-temperature": "maps"}, "int", "",
           "friction maps, a heat before each but the first (3)"),
    Option("heat_s", {"friction-temperature": "heat_s"}, "float", "s", "each heat's loaded hold (default 240)"),
    Option("cogging_hz", {"cogging": "cogging_hz"}, "float", "Hz", "the cogging frequency of the sweep (default 20)"),
    Option("revolutions", {"cogging": "revolutions"}, "float", "", "motor revolutions each way (default 1)"),
    Option("settle_s", {r: "settle_s" for r in SETTLE}, "float", "s", "settling before each pose, plateau or sweep"),
    Option("average_s", {"ft": "average_s", "ft-crosstalk": "average_s", "kt": "plateau_s", "friction": "plateau_s",
                         "friction-temperature": "plateau_s"}, "float", "s",
           "averaging time at each pose (ft) or load (ft-crosstalk), or of each plateau"),
)
BY_NAME = {o.name: o for o in OPTIONS}


def options_of(routine: str) -> tuple[Option, ...]:
    """The options ``routine`` takes, in the table's order."""
    return tuple(o for o in OPTIONS if routine in o.keys)


def parse(option: Option, text: str) -> Any:
    """The value of ``option`` written as ``text`` (numbers, comma-separated for a list); ``ConfigError`` naming the
    option, the text and what is allowed."""
    allowed = {"float": "a number", "int": "a whole number", "floats": "comma-separated numbers",
               "pair": "two comma-separated numbers LO,HI"}[option.kind]
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    ok = bool(values) and all(math.isfinite(v) for v in values)
    if option.kind in ("float", "int"):
        ok = ok and len(values) == 1 and (option.kind == "float" or values[0] == int(values[0]))
    elif option.kind == "pair":
        ok = ok and len(values) == 2
    if not ok:
        unit = f", {option.unit}" if option.unit else ""
        raise ConfigError(f"{option.name} = {text!r} is not allowed: {allowed}{unit}")
    if option.kind == "float":
        return values[0]
    return int(values[0]) if option.kind == "int" else values
