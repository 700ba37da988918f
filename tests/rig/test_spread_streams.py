"""The spread's independent streams (``firmware_iface.rig.spread``, ``independent = true``): a tolerance added so
draws from a stream of its own, keyed by its group's name, and leaves every other draw of a seed bit-identical, so
batches drawn before it was added keep their joints; its own draws have the file's sd. seeds/spread.toml's
kinematic-error and output-zero tolerances (issue 17, the encoder calibration's population) are such entries."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest

from actuator.errors import ConfigError
from actuator.params import load_preset, params_to_dict
from firmware_iface.rig.spread import draw, load_spread

SPREAD = Path(__file__).resolve().parents[2] / "seeds" / "spread.toml"
NEW = ("reducer.kinematic_error_amplitudes_rad", "reducer.kinematic_error_phases_rad")


@pytest.fixture(scope="module")
def knee():
    return load_preset("knee")


def _without_independent(spread):
    return dataclasses.replace(spread, parameters=tuple(t for t in spread.parameters if not t.independent),
                               injections=tuple(t for t in spread.injections if not t.independent))


def _shared_fields(p) -> dict:
    d = params_to_dict(p)
    for path in NEW:
        section, name = path.split(".")
        d[section].pop(name)
    return d


def test_independent_entries_leave_the_other_draws_bit_identical(knee) -> None:
    """The shipped spread against itself less its independent entries (the file before they were added): every
    shared field and injection of 20 joints the same to the last bit, for two seeds."""
    spread = load_spread(SPREAD)
    assert set(spread.independent_groups) == {*NEW, "injections.output_encoder_offset"}
    for seed in (3, 5):
        now, before = draw(knee, spread, 20, seed), draw(knee, _without_independent(spread), 20, seed)
        for (p, inj), (p0, inj0) in zip(now, before, strict=True):
            assert _shared_fields(p) == _shared_fields(p0)
            assert inj["encoder_offset"] == inj0["encoder_offset"]
            assert set(inj) - set(inj0) == {"output_encoder_offset"}
            assert p0.reducer.kinematic_error_amplitudes_rad == knee.reducer.kinematic_error_amplitudes_rad


def test_independent_draws_have_the_files_sd_and_joint_j_whatever_n(knee) -> None:
    """400 joints: the output zero's sd (5e-3 rad) and KE_2's (20 %) within 4 standard errors
    (sd / sqrt(2 (n - 1))); the knee's zero KE_1 stays zero (one draw scales the vector); phases and zeros are
    independent of each other (correlation within 4 / sqrt(n)); joint j is the same in a batch of 5 and of 400."""
    n = 400
    spread = load_spread(SPREAD)
    joints = draw(knee, spread, n, seed=11)
    zero = np.array([inj["output_encoder_offset"] for _, inj in joints])
    ke2 = np.array([p.reducer.kinematic_error_amplitudes_rad[1] for p, _ in joints]) / 1.45e-4 - 1.0
    phase = np.array([p.reducer.kinematic_error_phases_rad[1] for p, _ in joints])
    for x, sd in ((zero, 5e-3), (ke2, 0.2), (phase, 1.8)):
        assert np.std(x, ddof=1) == pytest.approx(sd, abs=4 * sd / math.sqrt(2 * (n - 1)))
    assert all(p.reducer.kinematic_error_amplitudes_rad[0] == 0.0 for p, _ in joints)
    for a, b in ((zero, ke2), (zero, phase), (ke2, phase)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 / math.sqrt(n)
    assert draw(knee, spread, 5, seed=11) == joints[:5]


def test_a_group_that_mixes_streams_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spread.toml"
    path.write_text('[reducer]\nk1_nm_per_rad = { sd_pct = 5.0, group = "s" }\n'
                    'k2_nm_per_rad = { sd_pct = 5.0, group = "s", independent = true }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"group = 's' .*disagree on independent"):
        load_spread(path)
    path.write_text("[injections]\noutput_encoder_offset = { sd = 0.005, independent = 1 }\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"output_encoder_offset.independent = 1 is not allowed"):
        load_spread(path)


def test_a_calibrated_injection_reaches_a_sequence_without_its_step_calibrated(knee) -> None:
    """The output encoder's mounting zero (sd 5e-3 rad) is measured and written by encoder_calibrate before a line's
    other tests: a sequence without that step draws the units without it, every other draw bit-identical; the
    encoder calibration's own sequence keeps it."""
    spread = load_spread(SPREAD)
    eol = spread.reaching(["ft_zero", "friction", "backdrive", "stiffness", "step", "bode", "thermal"])
    assert [t.path for t in spread.injections if t not in eol.injections] == ["output_encoder_offset"]
    assert spread.reaching(["friction", "encoder_calibrate"]) is spread
    for (p, inj), (p0, inj0) in zip(draw(knee, eol, 20, 3), draw(knee, spread, 20, 3), strict=True):
        assert p == p0 and inj == {k: v for k, v in inj0.items() if k != "output_encoder_offset"}


@pytest.mark.parametrize(("entry", "named"), [
    ('{ sd = 0.005, independent = true, calibrated_by = "encoder_calibrat" }', "calibrated_by = 'encoder_calibrat'"),
    ('{ sd = 0.005, calibrated_by = "encoder_calibrate" }', "needs independent = true"),
])
def test_a_bad_calibrated_by_is_refused(tmp_path: Path, entry: str, named: str) -> None:
    path = tmp_path / "spread.toml"
    path.write_text(f"[injections]\noutput_encoder_offset = {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_spread(path)
