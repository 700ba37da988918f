"""Tests of actuator.params: preset loading, exact TOML round trip and validation messages."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from actuator.errors import ConfigError
from actuator.params import (
    PRESETS_DIR,
    JointParams,
    load_params,
    load_preset,
    params_from_dict,
    preset_names,
)
from firmware_iface.files import save_params

KNEE_TOML = PRESETS_DIR / "knee.toml"


# --- presets -----------------------------------------------------------------------------------------


def test_preset_names_are_the_shipped_joints() -> None:
    assert preset_names() == ["knee", "qdd", "wrist"]


@pytest.mark.parametrize("name", ["knee", "wrist"])
def test_preset_loads_by_name_and_by_path(name: str) -> None:
    path = PRESETS_DIR / f"{name}.toml"
    by_name = load_preset(name)
    assert isinstance(by_name, JointParams)
    assert by_name.name == name
    assert load_preset(str(path)) == by_name
    assert load_preset(path) == by_name
    assert load_params(path) == by_name


def test_knee_values_match_toml() -> None:
    knee = load_preset("knee")
    assert knee.reducer.ratio == 100.0
    assert knee.reducer.t1_nm == 14.0
    assert knee.reducer.t2_nm == 48.0
    assert knee.reducer.stiffness_model == "piecewise"
    assert knee.motor.pole_pairs == 10 and type(knee.motor.pole_pairs) is int
    assert knee.motor.flux_linkage_wb == 7.811e-3
    assert knee.motor.cogging_harmonics_nm == (0.0116,)
    assert knee.reducer.kinematic_error_amplitudes_rad == (0.0, 1.45e-4)
    assert knee.encoders.output.bits == 20
    assert knee.ft_sensor.range_force_n == (580.0, 580.0, 1160.0)
    assert len(knee.ft_sensor.crosstalk) == 6 and all(len(row) == 6 for row in knee.ft_sensor.crosstalk)
    assert knee.ft_sensor.crosstalk[0] == (0.0, 0.01, -0.005, 0.0, 0.002, 0.0)
    assert knee.load.inertia_kg_m2 == 0.5
    assert knee.torque_constant_nm_per_a == pytest.approx(0.117165, abs=1e-12)
    assert knee.motor_side_inertia_kg_m2 == pytest.approx(4.75e-5 + 0.413e-4, abs=1e-15)
    assert knee.dt_s == pytest.approx(25e-6, abs=1e-15)


def test_wrist_values_match_toml() -> None:
    wrist = load_preset("wrist")
    assert wrist.motor.pole_pairs == 7
    assert wrist.motor.flux_linkage_wb == 4.879e-3
    assert wrist.reducer.t1_nm == 3.9
    assert wrist.drive.overcurrent_trip_a == 14.0
    assert wrist.torque_constant_nm_per_a == pytest.approx(1.5 * 7 * 4.879e-3, abs=1e-12)
    assert wrist.torque_constant_nm_per_a == pytest.approx(0.0512295, abs=1e-12)


def test_params_are_frozen() -> None:
    knee = load_preset("knee")
    with pytest.raises(dataclasses.FrozenInstanceError):
        knee.reducer.ratio = 50.0  # type: ignore[misc]


def test_integer_accepted_for_float_field(tmp_path: Path) -> None:
    path = tmp_path / "int_ratio.toml"
    path.write_text(KNEE_TOML.read_text(encoding="utf-8").replace("ratio = 100.0 ", "ratio = 100 "), "utf-8")
    p = load_params(path)
    assert p.reducer.ratio == 100.0 and type(p.reducer.ratio) is float
    assert p == load_preset("knee")


# --- round trip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["knee", "wrist"])
def test_save_load_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    original = load_preset(name)
    first = tmp_path / "first.toml"
    second = tmp_path / "second.toml"
    save_params(original, first)
    loaded = load_params(first)
    assert loaded == original
    assert loaded.torque_constant_nm_per_a == original.torque_constant_nm_per_a
    save_params(loaded, second)
    assert second.read_bytes() == first.read_bytes()
    assert load_preset(str(second)) == original


# --- validation --------------------------------------------------------------------------------------

Edit = Callable[[str], str]


def _walk(data: dict, dotted: str) -> tuple[dict, str]:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    return data, last


def _set(dotted: str, value: Any) -> Edit:
    def edit(text: str) -> str:
        data = tomllib.loads(text)
        table, key = _walk(data, dotted)
        table[key] = value
        return tomli_w.dumps(data)
    return edit


def _del(dotted: str) -> Edit:
    def edit(text: str) -> str:
        data = tomllib.loads(text)
        table, key = _walk(data, dotted)
        del table[key]
        return tomli_w.dumps(data)
    return edit


def _sub(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)
    return edit


def _crosstalk(rows: int, cols: int) -> list[list[float]]:
    return [[0.0] * cols for _ in range(rows)]


BAD_CASES = [
    ("negative", _set("load.inertia_kg_m2", -0.5), ["load.inertia_kg_m2 = -0.5", "out of range", "(0, inf] kg·m²"]),
    ("zero_open_bound", _set("load.inertia_kg_m2", 0.0), ["load.inertia_kg_m2 = 0.0", "(0, inf]"]),
    ("above_max", _set("drive.max_modulation", 1.5), ["drive.max_modulation = 1.5", "out of range", "(0, 1]"]),
    ("int_out_of_range", _set("encoders.motor.bits", 40), ["encoders.motor.bits = 40", "[8, 32]"]),
    ("t2_below_t1", _set("reducer.t2_nm", 10.0),
     ["reducer.t2_nm = 10.0", "must be greater than", "reducer.t1_nm = 14.0"]),
    ("unknown_key", _set("motor.colour", "red"), ["motor.colour", "unknown key", "pole_pairs", "flux_linkage_wb"]),
    ("unknown_top_key", _set("colour", "red"), ["colour: unknown key", "thermal"]),
    ("missing_section", _del("thermal"), ["thermal: missing section"]),
    ("missing_nested_section", _del("encoders.output"), ["encoders.output: missing section"]),
    ("missing_key", _del("motor.flux_linkage_wb"), ["motor.flux_linkage_wb: missing key"]),
    ("section_not_table", _set("load", 5), ["load = 5", "wrong type", "a table"]),
    ("string_for_number", _set("motor.phase_resistance_ohm", "0.1"),
     ["motor.phase_resistance_ohm = '0.1'", "wrong type", "a number"]),
    ("float_for_int", _set("motor.pole_pairs", 10.0), ["motor.pole_pairs = 10.0", "wrong type", "an integer"]),
    ("bool_for_number", _set("load.mass_kg", True), ["load.mass_kg = True", "wrong type", "a number"]),
    ("bool_for_int", _set("encoders.motor.bits", False), ["encoders.motor.bits = False", "wrong type"]),
    ("number_for_string", _set("name", 3), ["name = 3", "wrong type", "a string"]),
    ("scalar_for_vector", _set("ft_sensor.range_force_n", 580.0),
     ["ft_sensor.range_force_n = 580.0", "wrong type", "an array"]),
    ("bad_choice", _set("reducer.stiffness_model", "linear"),
     ["reducer.stiffness_model = 'linear'", "not allowed", "'piecewise'", "'cubic'"]),
    ("crosstalk_5x6", _set("ft_sensor.crosstalk", _crosstalk(5, 6)), ["ft_sensor.crosstalk = [[0.0", "6x6 matrix"]),
    ("crosstalk_6x5", _set("ft_sensor.crosstalk", _crosstalk(6, 5)), ["ft_sensor.crosstalk = [[0.0", "6x6 matrix"]),
    ("crosstalk_element", _set("ft_sensor.crosstalk", [[0.0, 0.5, 0.0, 0.0, 0.0, 0.0], *_crosstalk(5, 6)]),
     ["ft_sensor.crosstalk[0][1] = 0.5", "out of range", "[-0.2, 0.2]"]),
    ("crosstalk_diagonal", _set("ft_sensor.crosstalk", [[0.01] * 6] * 6),
     ["ft_sensor.crosstalk = [[0.01", "must have a zero diagonal"]),
    ("cubic_without_k1", _set("reducer.stiffness_model", "cubic"),
     ["reducer.cubic_k1_nm_per_rad = 0.0", "must be > 0", "stiffness_model = 'cubic'"]),
    ("vector_length", _set("ft_sensor.range_force_n", [580.0, 580.0]),
     ["ft_sensor.range_force_n = [580.0, 580.0]", "must have 3 entries"]),
    ("vector_element", _set("ft_sensor.range_force_n", [580.0, -1.0, 1160.0]),
     ["ft_sensor.range_force_n[1] = -1.0", "(0, inf] N"]),
    ("nan", _sub("inertia_kg_m2 = 0.5 ", "inertia_kg_m2 = nan "),
     ["load.inertia_kg_m2 = nan", "not finite", "(0, inf] kg·m²"]),
    ("inf", _sub("mass_kg = 4.0 ", "mass_kg = inf "), ["load.mass_kg = inf", "not finite", "[0, inf] kg"]),
    ("minus_inf_unbounded", _sub("cogging_phases_rad = [0.0]", "cogging_phases_rad = [-inf]"),
     ["motor.cogging_phases_rad[0] = -inf", "not finite", "[-inf, inf] rad"]),
    ("toml_syntax", _sub("pole_pairs = 10 ", "pole_pairs = = 10 "), ["not valid TOML"]),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_file_raises_config_error(edit: Edit, expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bad_joint.toml"
    path.write_text(edit(KNEE_TOML.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    with pytest.raises(ConfigError) as by_preset:
        load_preset(str(path))
    assert str(by_preset.value) == message


def test_huge_integer_literal_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text(_sub("inertia_kg_m2 = 0.5 ", f"inertia_kg_m2 = {10**400} ")(KNEE_TOML.read_text("utf-8")), "utf-8")
    with pytest.raises(ConfigError, match=r"load\.inertia_kg_m2"):
        load_params(path)


def test_params_from_dict_without_source_has_no_file_prefix() -> None:
    data = tomllib.loads(KNEE_TOML.read_text(encoding="utf-8"))
    data["load"]["inertia_kg_m2"] = -0.5
    with pytest.raises(ConfigError) as info:
        params_from_dict(data)
    assert str(info.value) == "load.inertia_kg_m2 = -0.5 is out of range: allowed (0, inf] kg·m²"


def test_unknown_preset_lists_known_presets() -> None:
    with pytest.raises(ConfigError) as info:
        load_preset("ankle")
    message = str(info.value)
    assert "'ankle'" in message and "not found" in message
    assert "knee, qdd, wrist" in message


def test_nonexistent_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "nope.toml"
    for arg in (str(path), path):
        with pytest.raises(ConfigError) as info:
            load_preset(arg)
        assert str(path) in str(info.value)
        assert "cannot read parameter file" in str(info.value)
