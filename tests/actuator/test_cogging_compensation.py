"""The controller's cogging feed-forward (``actuator.control.cascade.cogging_torque``, gains section
``[cogging_compensation]``): the kernel against a plain-Python evaluation of the series, the command it changes, the
gains file's round trip and named refusals, and off = bit-identical to a controller without the section."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from actuator.analysis.tuning import default_controller
from actuator.control import cascade as C
from actuator.control.config import (
    CoggingCompensation,
    config_from_dict,
    config_to_dict,
    new_controller_state,
)
from actuator.errors import ConfigError
from actuator.params import load_preset
from firmware_iface.experiments.inprocess import step_test

COG = CoggingCompensation(periods_per_rev=180, harmonics_nm=(0.0116, 0.002), phases_rad=(0.3, -1.0),
                          encoder_error_sin_rad=0.0087, encoder_error_cos_rad=-0.001)


def _series(cog: CoggingCompensation, ratio: float, r: float) -> float:
    th = r - cog.encoder_error_sin_rad * math.sin(r) - cog.encoder_error_cos_rad * math.cos(r)
    return ratio * sum(a * math.sin((k + 1) * cog.periods_per_rev * th + p)
                       for k, (a, p) in enumerate(zip(cog.harmonics_nm, cog.phases_rad, strict=True)))


def test_the_kernel_evaluates_the_series() -> None:
    knee = load_preset("knee")
    c = replace(default_controller(knee), cogging_compensation=COG).compile(knee)
    for r in np.linspace(-7.0, 7.0, 41):
        # float64 sums in a different order: 1e-12 N·m of a ~1 N·m output torque
        assert C.cogging_torque(c, r) == pytest.approx(_series(COG, 100.0, r), abs=1e-12)


def test_it_is_subtracted_from_the_command_in_every_mode() -> None:
    knee = load_preset("knee")
    x = np.zeros(200)
    x[C.X_ENC_M] = 0.123
    for mode in ("torque", "velocity", "position", "impedance"):
        taus = []
        for cog in (CoggingCompensation(), COG):
            c = replace(default_controller(knee), mode=mode, cogging_compensation=cog).compile(knee)
            k = new_controller_state()
            C.controller_step(c, k, x, 0.0, 0.0, 5.0)
            taus.append(k[C.K_TAU])
        # the feed-forward alone separates the two: exactly the series at the encoder's reading (1e-9 N·m: rounding)
        assert taus[0] - taus[1] == pytest.approx(_series(COG, 100.0, 0.123), abs=1e-9), mode


def test_the_limiter_bounds_the_sum() -> None:
    knee = load_preset("knee")
    c = replace(default_controller(knee), mode="torque", cogging_compensation=COG).compile(knee)
    k = new_controller_state()
    x = np.zeros(200)
    x[C.X_ENC_M] = -math.pi / 360  # the series is negative here: it adds to a positive command
    assert _series(COG, 100.0, x[C.X_ENC_M]) < 0
    C.controller_step(c, k, x, 0.0, 0.0, 1e4)
    assert abs(k[C.K_TAU]) <= knee.limits.torque_max_nm


def test_off_is_bit_identical() -> None:
    """A section at its defaults, or with all-zero harmonics, leaves the step figures identical to the last bit."""
    knee = load_preset("knee")
    g = default_controller(knee)
    base, base_s, _ = step_test(knee, g, duration_s=0.3)
    zero = CoggingCompensation(periods_per_rev=180, harmonics_nm=(0.0,), phases_rad=(1.0,))
    for cog in (CoggingCompensation(), zero):
        other, other_s, _ = step_test(knee, replace(g, cogging_compensation=cog), duration_s=0.3)
        assert other.figures == base.figures
        for name in ("position_rad", "torque_nm"):
            assert np.array_equal(other_s[name], base_s[name])


def test_the_gains_file_round_trip() -> None:
    cfg = replace(default_controller(load_preset("knee")), cogging_compensation=COG)
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(("section", "message"), [
    ({"harmonics_nm": [0.01, 0.02], "phases_rad": [0.0]}, r"phases_rad = \[0.0\] .* as many entries as harmonics_nm"),
    ({"harmonics_nm": [0.01], "phases_rad": [0.0]}, r"periods_per_rev = 0 .* must be > 0"),
    ({"periods_per_rev": 180, "harmonics_nm": [math.nan], "phases_rad": [0.0]}, r"harmonics_nm\[0\] = nan"),
    ({"periods_per_rev": 180, "harmonics_nm": [0.01] * 9, "phases_rad": [0.0] * 9}, "at most 8 harmonics"),
    ({"periods_per_rev": -1}, "periods_per_rev = -1 is out of range"),
])
def test_bad_sections_are_refused_by_name(section, message) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"cogging_compensation": section}, "gains.toml")
