"""Typed, frozen parameter sets of an integrated joint, with TOML load/save and validation.

A joint is described by sections (motor, drive, reducer, encoders, ft_sensor, thermal, load, limits, and an
optional ``catalogue`` of the vendors' figures its model is checked against), each a frozen dataclass whose
field names carry their units. Every numeric field declares its allowed range in its metadata; ``load_params``
checks types, ranges, unknown keys, missing sections and the cross-field rules, and raises ``ConfigError``
naming the file, the field path, the value and what is allowed. ``firmware_iface.files.save_params`` writes
TOML that loads back to an equal object (floats are written with ``repr``, so the round trip is exact).

Presets live in ``seeds/joints/NAME.toml``; ``load_preset`` takes a preset name or a path.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from actuator.errors import ConfigError
from actuator.paths import SEEDS_DIR

PRESETS_DIR = SEEDS_DIR / "joints"

INF = math.inf


def _num(lo: float = -INF, hi: float = INF, *, lo_open: bool = False, unit: str = "", default: Any = MISSING):
    """A numeric field allowed in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "unit": unit}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def _pos(unit: str = "", **kw: Any):
    return _num(0.0, INF, lo_open=True, unit=unit, **kw)


def _nonneg(unit: str = "", **kw: Any):
    return _num(0.0, INF, unit=unit, **kw)


# public names for the other validated file formats (controller gains, sequences)
num_field, pos_field, nonneg_field = _num, _pos, _nonneg


@dataclass(frozen=True, slots=True, kw_only=True)
class MotorParams:
    pole_pairs: int = _num(1, 100)
    phase_resistance_ohm: float = _pos("ohm")
    d_inductance_h: float = _pos("H")
    q_inductance_h: float = _pos("H")
    flux_linkage_wb: float = _pos("Wb")
    rotor_inertia_kg_m2: float = _pos("kg·m²")
    current_limit_a: float = _pos("A")
    voltage_limit_v: float = _pos("V")
    continuous_torque_nm: float = _pos("N·m")
    # cogging repeats LCM(slots, poles) times a revolution: give the slots (the periods follow), or the periods
    slots: int = _num(0, 1000, default=0)
    cogging_periods_per_rev: int = _num(0, 100000, default=0)
    cogging_harmonics_nm: tuple[float, ...] = _nonneg("N·m")
    cogging_phases_rad: tuple[float, ...] = _num(unit="rad")
    ripple_6th_fraction: float = _num(0.0, 0.5)
    copper_temp_coeff_per_k: float = _num(0.0, 0.01, unit="1/K")
    resistance_ref_temp_c: float = _num(-50.0, 200.0, unit="°C")
    # The model's dq frame is amplitude-invariant: |i_dq| is the phase current's peak, Kt = 1.5 p λ per peak
    # amp and the back-EMF's peak phase voltage is p λ ω. A catalogue quoting per rms amp (Kollmorgen) is
    # converted by √2 (Kt_rms = √2 Kt_peak); the field states the convention so a preset cannot leave it open.
    current_convention: str = field(default="peak", metadata={"choices": ("peak",)})


@dataclass(frozen=True, slots=True, kw_only=True)
class DriveParams:
    current_loop_rate_hz: float = _num(1000.0, 200000.0, unit="Hz")
    current_loop_bandwidth_hz: float = _pos("Hz")
    bus_voltage_v: float = _pos("V")
    max_modulation: float = _num(0.0, 1.0, lo_open=True)
    overcurrent_trip_a: float = _pos("A")
    undervoltage_trip_v: float = _nonneg("V")
    overvoltage_trip_v: float = _pos("V")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReducerParams:
    ratio: float = _num(1.0, 10000.0)
    stiffness_model: str = field(default="piecewise", metadata={"choices": ("piecewise", "cubic")})
    t1_nm: float = _pos("N·m")
    t2_nm: float = _pos("N·m")
    k1_nm_per_rad: float = _pos("N·m/rad")
    k2_nm_per_rad: float = _pos("N·m/rad")
    k3_nm_per_rad: float = _pos("N·m/rad")
    cubic_k1_nm_per_rad: float = _nonneg("N·m/rad", default=0.0)
    cubic_k3_nm_per_rad3: float = _nonneg("N·m/rad³", default=0.0)
    flexspline_damping_nm_s_per_rad: float = _nonneg("N·m·s/rad")
    hysteresis_torque_nm: float = _nonneg("N·m")
    hysteresis_stiffness_nm_per_rad: float = _pos("N·m/rad")
    coulomb_friction_nm: float = _nonneg("N·m")
    static_friction_nm: float = _nonneg("N·m")
    stribeck_velocity_rad_s: float = _pos("rad/s")
    stribeck_exponent: float = _num(0.5, 4.0)
    viscous_friction_nm_s_per_rad: float = _nonneg("N·m·s/rad")
    presliding_stiffness_nm_per_rad: float = _pos("N·m/rad")
    presliding_damping_nm_s_per_rad: float = _nonneg("N·m·s/rad")
    efficiency: float = _num(0.5, 1.0, lo_open=True)  # the mesh's, in motion; the no-load losses come on top
    # grease: the speed-independent no-load losses (Coulomb, static) scale by exp(-coeff (T_housing - ref))
    lubricant_temp_coeff_per_k: float = _num(0.0, 0.2, unit="1/K", default=0.0)
    lubricant_ref_temp_c: float = _num(-50.0, 200.0, unit="°C", default=25.0)
    kinematic_error_amplitudes_rad: tuple[float, ...] = _nonneg("rad")
    kinematic_error_phases_rad: tuple[float, ...] = _num(unit="rad")
    wave_generator_inertia_kg_m2: float = _nonneg("kg·m²")
    rated_torque_nm: float = _pos("N·m")
    repeated_peak_torque_nm: float = _pos("N·m")
    momentary_peak_torque_nm: float = _pos("N·m")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncoderParams:
    bits: int = _num(8, 32)
    nonlinearity_rad: float = _num(0.0, 0.1, unit="rad")
    latency_s: float = _num(0.0, 0.01, unit="s")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodersParams:
    motor: EncoderParams
    output: EncoderParams


@dataclass(frozen=True, slots=True, kw_only=True)
class FTSensorParams:
    range_force_n: tuple[float, ...] = _pos("N")
    range_torque_nm: tuple[float, ...] = _pos("N·m")
    noise_force_n: tuple[float, ...] = _nonneg("N")
    noise_torque_nm: tuple[float, ...] = _nonneg("N·m")
    bias_walk_force_n_per_sqrt_s: tuple[float, ...] = _nonneg("N/√s")
    bias_walk_torque_nm_per_sqrt_s: tuple[float, ...] = _nonneg("N·m/√s")
    crosstalk: tuple[tuple[float, ...], ...] = _num(-0.2, 0.2)
    saturation_fraction: float = _num(0.5, 2.0)
    sample_rate_hz: float = _pos("Hz")
    tool_mass_kg: float = _nonneg("kg")
    distance_from_axis_m: float = _nonneg("m")


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalParams:
    winding_to_housing_k_per_w: float = _pos("K/W")
    housing_to_ambient_k_per_w: float = _pos("K/W")
    winding_capacity_j_per_k: float = _pos("J/K")
    housing_capacity_j_per_k: float = _pos("J/K")
    ambient_c: float = _num(-50.0, 100.0, unit="°C")
    winding_limit_c: float = _num(0.0, 250.0, unit="°C")
    winding_derate_start_c: float = _num(0.0, 250.0, unit="°C")
    winding_derate_end_c: float = _num(0.0, 250.0, unit="°C")
    housing_derate_start_c: float = _num(0.0, 250.0, unit="°C")
    housing_derate_end_c: float = _num(0.0, 250.0, unit="°C")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadParams:
    inertia_kg_m2: float = _pos("kg·m²")
    mass_kg: float = _nonneg("kg")
    com_distance_m: float = _nonneg("m")
    damping_nm_s_per_rad: float = _nonneg("N·m·s/rad")
    gravity_m_s2: float = _num(0.0, 20.0, unit="m/s²")


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitParams:
    position_min_rad: float = _num(-100.0, 100.0, unit="rad")
    position_max_rad: float = _num(-100.0, 100.0, unit="rad")
    velocity_max_rad_s: float = _pos("rad/s")
    torque_max_nm: float = _pos("N·m")
    torque_rated_nm: float = _pos("N·m")


# --- catalogue: the vendors' figures a preset's model is checked against (``jointkit model check``) -----

@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueValue:
    """One catalogue figure and where it comes from (a source tag [S]/[S2]/[R]/[A] and the document)."""

    value: float = _num(unit="see the field")
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueKt(CatalogueValue):
    """The catalogue's torque constant, and whether its amps are peak or rms (Kollmorgen: rms)."""

    amps: str = field(default="peak", metadata={"choices": ("peak", "rms")})

    @property
    def per_peak_amp(self) -> float:
        return self.value / math.sqrt(2.0) if self.amps == "rms" else self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueStiffness:
    """The catalogue's piecewise torsional stiffness curve (HD CHA manual eq. 68.1-68.3), output side."""

    t1_nm: float = _pos("N·m")
    t2_nm: float = _pos("N·m")
    k1_nm_per_rad: float = _pos("N·m/rad")
    k2_nm_per_rad: float = _pos("N·m/rad")
    k3_nm_per_rad: float = _pos("N·m/rad")
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueEfficiency:
    """One point of the catalogue's efficiency curves: input speed, temperature and load -> efficiency."""

    input_speed_rpm: float = _pos("rpm")
    temperature_c: float = _num(-50.0, 150.0, unit="°C")
    load_fraction: float = _num(0.0, 2.0, lo_open=True, unit="of reducer.rated_torque_nm")
    efficiency_pct: float = _num(0.0, 100.0, lo_open=True, unit="%")
    source: str


def _in(lo: float, hi: float, unit: str, *, lo_open: bool = True) -> dict[str, Any]:
    """The allowed range of a catalogue entry's value (``(lo, hi]`` by default)."""
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "unit": unit}


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueParams:
    """Every entry optional: a check whose figure is absent is not run."""

    stiffness: CatalogueStiffness | None = None
    hysteresis_loss_rad: CatalogueValue | None = field(default=None, metadata=_in(0.0, 0.1, "rad"))
    torque_constant_nm_per_a: CatalogueKt | None = field(default=None, metadata=_in(0.0, 100.0, "N·m/A"))
    continuous_torque_nm: CatalogueValue | None = field(default=None, metadata=_in(0.0, 1e4, "N·m"))
    winding_limit_c: CatalogueValue | None = field(default=None, metadata=_in(0.0, 300.0, "°C"))
    starting_torque_nm: CatalogueValue | None = field(default=None, metadata=_in(0.0, 1e3, "N·m input"))
    backdriving_torque_nm: CatalogueValue | None = field(default=None, metadata=_in(0.0, 1e4, "N·m output"))
    cogging_periods_per_rev: CatalogueValue | None = field(default=None, metadata=_in(0.5, 1e5, "per rev"))
    efficiency: tuple[CatalogueEfficiency, ...] = ()


def _build_catalogue(data: Any, path: str, source: str | None) -> CatalogueParams:
    """The ``[catalogue]`` table: each figure an inline table {value, source}, ``stiffness`` a table,
    ``efficiency`` an array of tables."""
    if not isinstance(data, dict):
        _fail(source, path, data, "has the wrong type: expected a table")
    names = [f.name for f in fields(CatalogueParams)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{_where(source)}{path}.{unknown[0]}: unknown key; allowed keys here: {', '.join(names)}")
    kwargs: dict[str, Any] = {}
    for f in fields(CatalogueParams):
        if f.name not in data:
            continue
        sub, value = f"{path}.{f.name}", data[f.name]
        if f.name == "stiffness":
            curve = _build(CatalogueStiffness, value, sub, source)
            if curve.t2_nm <= curve.t1_nm:
                _fail(source, f"{sub}.t2_nm", curve.t2_nm, f"must be greater than {sub}.t1_nm = {curve.t1_nm!r}")
            kwargs[f.name] = curve
        elif f.name == "efficiency":
            if not isinstance(value, list):
                _fail(source, sub, value, "has the wrong type: expected an array of tables ([[catalogue.efficiency]])")
            kwargs[f.name] = tuple(_build(CatalogueEfficiency, v, f"{sub}[{i}]", source) for i, v in enumerate(value))
        else:
            entry = _build(CatalogueKt if f.name == "torque_constant_nm_per_a" else CatalogueValue, value, sub, source)
            _check_scalar(entry.value, float, dict(f.metadata), f"{sub}.value", source)
            if not entry.source.strip():
                _fail(source, f"{sub}.source", entry.source, "must name where the figure comes from")
            kwargs[f.name] = entry
    return CatalogueParams(**kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class JointParams:
    name: str
    description: str
    motor: MotorParams
    drive: DriveParams
    reducer: ReducerParams
    encoders: EncodersParams
    ft_sensor: FTSensorParams
    thermal: ThermalParams
    load: LoadParams
    limits: LimitParams
    catalogue: CatalogueParams | None = field(default=None, metadata={"builder": _build_catalogue})

    @property
    def cogging_periods_per_rev(self) -> int:
        """LCM(slots, 2 p) when the preset gives its slots, else its ``motor.cogging_periods_per_rev``."""
        m = self.motor
        return math.lcm(m.slots, 2 * m.pole_pairs) if m.slots else m.cogging_periods_per_rev

    @property
    def torque_constant_nm_per_a(self) -> float:
        """Kt = 1.5 p λ (amplitude-invariant dq), motor side."""
        return 1.5 * self.motor.pole_pairs * self.motor.flux_linkage_wb

    @property
    def motor_side_inertia_kg_m2(self) -> float:
        return self.motor.rotor_inertia_kg_m2 + self.reducer.wave_generator_inertia_kg_m2

    @property
    def dt_s(self) -> float:
        """The model step: one current-loop period."""
        return 1.0 / self.drive.current_loop_rate_hz


# --- validation --------------------------------------------------------------------------------------

_VECTOR_LENGTHS = {
    "range_force_n": 3, "range_torque_nm": 3, "noise_force_n": 3, "noise_torque_nm": 3,
    "bias_walk_force_n_per_sqrt_s": 3, "bias_walk_torque_nm_per_sqrt_s": 3,
}
_MAX_HARMONICS = 4


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _allowed(meta: dict) -> str:
    lo, hi = meta["lo"], meta["hi"]
    left = "(" if meta.get("lo_open") else "["
    lo_s = "-inf" if lo == -INF else f"{lo:g}"
    hi_s = "inf" if hi == INF else f"{hi:g}"
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    return f"{left}{lo_s}, {hi_s}]{unit}"


def _check_scalar(value: Any, want: type, meta: dict, path: str, source: str | None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (want is int and isinstance(value, float)):
        raise ConfigError(f"{_where(source)}{path} = {value!r} has the wrong type: expected "
                          f"{'an integer' if want is int else 'a number'} in {_allowed(meta)}")
    try:
        value = want(value)
    except OverflowError:
        raise ConfigError(f"{_where(source)}{path} = {value!r} is out of range: allowed {_allowed(meta)}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{_where(source)}{path} = {value!r} is not finite: allowed {_allowed(meta)}")
    lo, hi = meta["lo"], meta["hi"]
    below = value <= lo if meta.get("lo_open") else value < lo
    if below or value > hi:
        raise ConfigError(f"{_where(source)}{path} = {value!r} is out of range: allowed {_allowed(meta)}")
    return value


def _check_value(value: Any, hint: Any, meta: dict, path: str, source: str | None) -> Any:
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(source)}{path} = {value!r} has the wrong type: expected a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{_where(source)}{path} = {value!r} is not allowed: choose one of {choices}")
        return value
    if get_origin(hint) is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{_where(source)}{path} = {value!r} has the wrong type: expected an array")
        inner = get_args(hint)[0]
        return tuple(_check_value(v, inner, meta, f"{path}[{i}]", source) for i, v in enumerate(value))
    return _check_scalar(value, hint, meta, path, source)


def _build(cls: type, data: Any, path: str, source: str | None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(source)}{path or 'top level'} = {data!r} has the wrong type: expected a table")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{_where(source)}{path + '.' if path else ''}{unknown[0]}: unknown key; "
                          f"allowed keys here: {', '.join(names)}")
    kwargs = {}
    for f in fields(cls):
        sub = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if f.default is not MISSING or f.default_factory is not MISSING:
                continue
            kind = "section" if is_dataclass(hints[f.name]) else "key"
            raise ConfigError(f"{_where(source)}{sub}: missing {kind}")
        hint = hints[f.name]
        if "builder" in f.metadata:
            kwargs[f.name] = f.metadata["builder"](data[f.name], sub, source)
        elif is_dataclass(hint):
            kwargs[f.name] = _build(hint, data[f.name], sub, source)
        else:
            kwargs[f.name] = _check_value(data[f.name], hint, dict(f.metadata), sub, source)
    return cls(**kwargs)


def build_dataclass(cls: type, data: Any, source: str | None = None, path: str = "") -> Any:
    """Build a dataclass of ``_num``-annotated fields from a TOML-shaped dict, with the checks and error
    messages of the parameter files (other file formats of jointkit reuse it)."""
    return _build(cls, data, path, source)


def _fail(source: str | None, path: str, value: Any, why: str) -> None:
    raise ConfigError(f"{_where(source)}{path} = {value!r} {why}")


def _check_lengths(p: JointParams, source: str | None) -> None:
    ft = p.ft_sensor
    for name, n in _VECTOR_LENGTHS.items():
        vec = getattr(ft, name)
        if len(vec) != n:
            _fail(source, f"ft_sensor.{name}", list(vec), f"must have {n} entries (x, y, z)")
    if len(ft.crosstalk) != 6 or any(len(row) != 6 for row in ft.crosstalk):
        _fail(source, "ft_sensor.crosstalk", [list(r) for r in ft.crosstalk], "must be a 6x6 matrix")
    if any(ft.crosstalk[i][i] != 0.0 for i in range(6)):
        _fail(source, "ft_sensor.crosstalk", [list(r) for r in ft.crosstalk],
              "must have a zero diagonal (it holds only the off-axis coupling)")
    pairs = [("motor.cogging_harmonics_nm", p.motor.cogging_harmonics_nm, p.motor.cogging_phases_rad),
             ("reducer.kinematic_error_amplitudes_rad", p.reducer.kinematic_error_amplitudes_rad,
              p.reducer.kinematic_error_phases_rad)]
    for path, amps, phases in pairs:
        if len(amps) > _MAX_HARMONICS:
            _fail(source, path, list(amps), f"has more than {_MAX_HARMONICS} harmonics")
        if len(amps) != len(phases):
            _fail(source, path, list(amps), f"must have as many entries as its phases ({len(phases)})")


def _initial_stiffness(r: ReducerParams) -> float:
    return r.cubic_k1_nm_per_rad if r.stiffness_model == "cubic" else r.k1_nm_per_rad


def _check_relations(p: JointParams, source: str | None) -> None:
    r, d, t, lim = p.reducer, p.drive, p.thermal, p.limits
    rules = [
        (r.t2_nm > r.t1_nm, "reducer.t2_nm", r.t2_nm, f"must be greater than reducer.t1_nm = {r.t1_nm!r}"),
        (r.static_friction_nm >= r.coulomb_friction_nm, "reducer.static_friction_nm", r.static_friction_nm,
         f"must be at least reducer.coulomb_friction_nm = {r.coulomb_friction_nm!r}"),
        (r.stiffness_model != "cubic" or r.cubic_k1_nm_per_rad > 0, "reducer.cubic_k1_nm_per_rad",
         r.cubic_k1_nm_per_rad, "must be > 0 when reducer.stiffness_model = 'cubic'"),
        (r.hysteresis_stiffness_nm_per_rad <= _initial_stiffness(r), "reducer.hysteresis_stiffness_nm_per_rad",
         r.hysteresis_stiffness_nm_per_rad, f"must be at most the spring's initial stiffness "
         f"({_initial_stiffness(r):g} N·m/rad): the spring less the Dahl loading path must not soften below zero"),
        (r.repeated_peak_torque_nm >= r.rated_torque_nm, "reducer.repeated_peak_torque_nm",
         r.repeated_peak_torque_nm, f"must be at least reducer.rated_torque_nm = {r.rated_torque_nm!r}"),
        (r.momentary_peak_torque_nm >= r.repeated_peak_torque_nm, "reducer.momentary_peak_torque_nm",
         r.momentary_peak_torque_nm,
         f"must be at least reducer.repeated_peak_torque_nm = {r.repeated_peak_torque_nm!r}"),
        (d.overvoltage_trip_v > d.undervoltage_trip_v, "drive.overvoltage_trip_v", d.overvoltage_trip_v,
         f"must be greater than drive.undervoltage_trip_v = {d.undervoltage_trip_v!r}"),
        (d.undervoltage_trip_v < d.bus_voltage_v < d.overvoltage_trip_v, "drive.bus_voltage_v", d.bus_voltage_v,
         f"must lie between the trip levels ({d.undervoltage_trip_v!r}, {d.overvoltage_trip_v!r}) V"),
        (d.overcurrent_trip_a > p.motor.current_limit_a, "drive.overcurrent_trip_a", d.overcurrent_trip_a,
         f"must be greater than motor.current_limit_a = {p.motor.current_limit_a!r}"),
        (d.current_loop_bandwidth_hz <= d.current_loop_rate_hz / 10, "drive.current_loop_bandwidth_hz",
         d.current_loop_bandwidth_hz, f"must be at most a tenth of the loop rate ({d.current_loop_rate_hz / 10:g} Hz)"),
        (t.winding_derate_end_c > t.winding_derate_start_c, "thermal.winding_derate_end_c",
         t.winding_derate_end_c, f"must be greater than thermal.winding_derate_start_c = {t.winding_derate_start_c!r}"),
        (t.housing_derate_end_c > t.housing_derate_start_c, "thermal.housing_derate_end_c",
         t.housing_derate_end_c, f"must be greater than thermal.housing_derate_start_c = {t.housing_derate_start_c!r}"),
        (t.winding_limit_c >= t.winding_derate_end_c, "thermal.winding_limit_c", t.winding_limit_c,
         f"must be at least thermal.winding_derate_end_c = {t.winding_derate_end_c!r}"),
        (lim.position_max_rad > lim.position_min_rad, "limits.position_max_rad", lim.position_max_rad,
         f"must be greater than limits.position_min_rad = {lim.position_min_rad!r}"),
        (lim.torque_max_nm >= lim.torque_rated_nm, "limits.torque_max_nm", lim.torque_max_nm,
         f"must be at least limits.torque_rated_nm = {lim.torque_rated_nm!r}"),
    ]
    for ok, path, value, why in rules:
        if not ok:
            _fail(source, path, value, why)
    m = p.motor
    if not m.slots and not m.cogging_periods_per_rev:
        _fail(source, "motor.slots", m.slots, "must be given (or motor.cogging_periods_per_rev): the cogging's period")
    if m.slots and m.cogging_periods_per_rev not in (0, p.cogging_periods_per_rev):
        _fail(source, "motor.cogging_periods_per_rev", m.cogging_periods_per_rev,
              f"must be LCM(motor.slots, 2 x motor.pole_pairs) = {p.cogging_periods_per_rev} (or left out)")
    ft_steps = d.current_loop_rate_hz / p.ft_sensor.sample_rate_hz
    if ft_steps < 1 or abs(ft_steps - round(ft_steps)) > 1e-9:
        _fail(source, "ft_sensor.sample_rate_hz", p.ft_sensor.sample_rate_hz,
              f"must divide drive.current_loop_rate_hz = {d.current_loop_rate_hz!r} into a whole number of steps")


def params_from_dict(data: dict, source: str | None = None) -> JointParams:
    """Build and validate a JointParams from a TOML-shaped dict; ``source`` names the file in errors."""
    p = _build(JointParams, data, "", source)
    _check_lengths(p, source)
    _check_relations(p, source)
    return p


def params_to_dict(p: Any) -> dict:
    """The TOML-shaped dict of a parameter set (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in fields(p):
        v = getattr(p, f.name)
        if v is None:  # an optional section or entry that is absent (TOML has no null)
            continue
        if is_dataclass(v):
            out[f.name] = params_to_dict(v)
        elif isinstance(v, tuple) and v and is_dataclass(v[0]):
            out[f.name] = [params_to_dict(x) for x in v]
        elif isinstance(v, tuple):
            out[f.name] = [list(x) if isinstance(x, tuple) else x for x in v]
        else:
            out[f.name] = v
    return out


def read_toml(path: str | Path, what: str) -> dict:
    """The table of a TOML file; ``ConfigError`` naming the file (a ``what``, e.g. "gains file") when it cannot
    be read or is not valid TOML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a {what}: byte 0x{e.object[e.start]:02x} at offset {e.start} is not UTF-8 "
                          "text (allowed: a TOML file, which is UTF-8)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def load_params(path: str | Path) -> JointParams:
    return params_from_dict(read_toml(path, "parameter file"), str(path))


def preset_names() -> list[str]:
    return sorted(f.stem for f in PRESETS_DIR.glob("*.toml"))


def preset_path(name_or_path: str | Path) -> Path:
    """The file of a preset given by name (``knee``: seeds/joints/knee.toml) or by path (``my/joint.toml``)."""
    text = str(name_or_path)
    candidate = Path(text)
    if isinstance(name_or_path, Path) or candidate.suffix == ".toml" or "/" in text:
        return candidate
    path = PRESETS_DIR / f"{text}.toml"
    if not path.exists() and candidate.is_file():
        return candidate
    if not path.exists():
        raise ConfigError(f"preset {text!r} not found: known presets are {', '.join(preset_names())}, "
                          "or give a path to a .toml file")
    return path


def load_preset(name_or_path: str | Path) -> JointParams:
    """A preset by name (``knee``) or by path (``my/joint.toml``)."""
    return load_params(preset_path(name_or_path))
