"""Sequence files are checked before anything moves: a problem names the file, the step, the key and what is allowed."""

from __future__ import annotations

import pytest

from actuator.errors import ConfigError
from actuator.params import SEEDS_DIR
from firmware_iface.rig.sequence import FIGURES, STEP_TYPES, load_sequence

SEQUENCES = SEEDS_DIR / "sequences"


def write(tmp_path, text: str):
    path = tmp_path / "seq.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["eol.toml", "demo.toml"])
def test_bundled_sequences_load(name):
    seq = load_sequence(SEQUENCES / name)
    assert seq.steps and len(seq.sha256) == 64 and seq.nodes == [1]
    assert len({s.name for s in seq.steps}) == len(seq.steps)


def test_eol_has_a_limit_on_every_check_the_issue_lists():
    seq = load_sequence(SEQUENCES / "eol.toml")
    limited = {f for s in seq.steps for f in s.limits}
    for figure in ("friction_torque_nm", "backdrive_torque_nm", "stiffness_nm_per_rad", "rise_time_s", "bandwidth_hz",
                   "encoder_mismatch_rad", "ft_force_offset_n", "ft_force_noise_n", "thermal_rise_at_load_k",
                   "watchdog_reaction_s"):
        assert figure in limited


def test_defaults_fill_the_step_and_repeated_types_are_numbered(tmp_path):
    seq = load_sequence(write(tmp_path, '[[steps]]\ntype = "step"\n[[steps]]\ntype = "step"\namplitude_rad = 0.05\n'))
    assert [s.name for s in seq.steps] == ["step", "step2"]
    assert seq.steps[0].cfg["amplitude_rad"] == 0.1 and seq.steps[1].cfg["amplitude_rad"] == 0.05
    assert seq.steps[1].cfg["duration_s"] == STEP_TYPES["step"]["duration_s"]["default"]


@pytest.mark.parametrize(("text", "expected"), [
    ('[[steps]]\ntype = "jump"\n', "step 1: type: 'jump' is not allowed: choose one of connect"),
    ('[[steps]]\ntype = "step"\namplitude = 0.1\n', "step 1 (step): amplitude: not a key of a step step: allowed"),
    ('[[steps]]\ntype = "step"\namplitude_rad = 5.0\n', "amplitude_rad: 5.0 is out of range: allowed [-1, 1]"),
    ('[[steps]]\ntype = "step"\namplitude_rad = "big"\n', "amplitude_rad: 'big' is not allowed: expected a float"),
    ('[[steps]]\ntype = "enable"\nmode = "fast"\n', "mode: 'fast' is not allowed: choose one of position"),
    ('[[steps]]\ntype = "step"\nlimits.bandwidth_hz = { min = 1 }\n', "limits.bandwidth_hz: not a figure of a step"),
    ('[[steps]]\ntype = "step"\nlimits.rise_time_s = { min = 2, max = 1 }\n', "limits.rise_time_s: min 2 > max 1"),
    ('[[steps]]\ntype = "step"\nlimits.rise_time_s = { low = 1 }\n', "a table with min and/or max expected"),
    ('[[steps]]\ntype = "bode"\nf0_hz = 10.0\nf1_hz = 5.0\n', "f1_hz: 5.0 must be above f0_hz = 10.0"),
    ('[[steps]]\ntype = "gains"\n', "give exactly one of file"),
    ('[[steps]]\ntype = "gains"\nfile = "nope.toml"\n', "'nope.toml': no such gains file"),
    ('[[steps]]\nname = "a"\ntype = "wait"\n[[steps]]\nname = "a"\ntype = "wait"\n', "step 2 (a): name: "
     "step names must be unique"),
    ('[[steps]]\ntype = "wait"\nnode = 64\n', "node: 64 is out of range: allowed 1..63"),
    ('[sequence]\nratio = -1\n[[steps]]\ntype = "wait"\n', "sequence.ratio: -1: the reducer ratio"),
    ('[sequence]\nname = "x"\n', "steps: a sequence needs at least one [[steps]] table"),
    ('[[steps]]\ntype = "measure"\nsignals = ["median:telemetry.torque_nm"]\n', "expected STAT:telemetry.NAME"),
    ("[[steps]\n", "not valid TOML"),
])
def test_bad_sequences_name_file_step_key_and_allowed(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_sequence(path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_measure_step_limits_its_own_figures(tmp_path):
    seq = load_sequence(write(tmp_path, '[[steps]]\ntype = "measure"\nsignals = ["std:telemetry.torque_nm"]\n'
                                        'limits.torque_nm_std = { max = 1.0 }\n'))
    assert set(seq.steps[0].limits) == {"torque_nm_std"}


def test_every_figure_table_names_a_step_type():
    assert set(FIGURES) <= set(STEP_TYPES)
