"""Controller configuration: the gains file format, its validation, and its compilation for the kernels.

A gains file is TOML with the sections of ``ControllerConfig`` (every key optional; defaults below):

    mode = "position"                  # torque | velocity | position | impedance | admittance | relay
    velocity_loop_rate_hz = 10000.0    # integer divisors of the joint's current-loop rate
    position_loop_rate_hz = 2000.0
    estimator = "observer"             # or "filtered_difference"
    estimator_bandwidth_hz = 400.0
    gravity_feedforward_nm = 9.81      # m g l of the link; 0 turns it off
    [position]  kp = 30.0              # (rad/s)/rad, a PID as actuator.control.pid documents
    [velocity]  kp = 40.0, ki = 2000.0 # N·m/(rad/s), N·m/rad
    [impedance] kp_nm_per_rad, kd_nm_s_per_rad, friction_coulomb_nm, friction_viscous_nm_s_per_rad, ...
    [admittance] mass_kg_m2, damping_nm_s_per_rad, stiffness_nm_per_rad, force_filter_hz, ...
    [notch]     center_hz = 0 (off), q, depth_db (0: full notch)
    [relay]     amplitude_rad_s, hysteresis_rad (relay auto-tuning)
    [limits]    soft-zone widths; position, velocity, torque and current limits (0: the joint's own)
    [cogging_compensation] periods_per_rev, harmonics_nm, phases_rad (motor side), encoder_error_sin_rad,
                encoder_error_cos_rad: the cogging feed-forward (no harmonics: off; ``CoggingCompensation``)
    [kinematic_error_compensation]  position_feedback = "output" (default) | "motor"; amplitudes_rad,
                phases_rad (KE(theta_m) = sum A_k sin(k theta_m + phi_k), the reducer's convention, k = 1..4),
                motor_zero_rad, stiffness_nm_per_rad (0: no twist term), output_zero_rad (0: none);
                written by ``jointkit calibrate encoders`` (``experiments.encoder_calibration``)

Default gains of a preset live in ``seeds/gains/NAME.toml`` (``actuator.analysis.tuning.default_controller``,
which designs gains for a preset without a file). ``compile`` turns
a configuration and the joint's parameters into the flat vector of ``actuator.control.cascade``.

``GAINS`` maps the names a protocol writes gains by (``position_kp``, ...) to the configuration's fields, and
``gain_of`` reads one: the one definition of that mapping. Which of them a joint actually has is its protocol
profile's business (``Profile.gain_names``), not this table's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from actuator.control import cascade as C
from actuator.control.filters import lowpass1_design, notch
from actuator.control.pid import PidGains
from actuator.errors import ConfigError
from actuator.params import (
    SEEDS_DIR,
    JointParams,
    build_dataclass,
    nonneg_field,
    num_field,
    params_to_dict,
    pos_field,
    read_toml,
)

GAINS_DIR = SEEDS_DIR / "gains"
ESTIMATORS = {"filtered_difference": C.EST_DIFFERENCE, "observer": C.EST_OBSERVER}
ANTI_WINDUP = ("back_calculation", "clamping", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopGains:
    kp: float = nonneg_field(default=0.0)
    ki: float = nonneg_field(default=0.0)
    kd: float = nonneg_field(default=0.0)
    derivative_filter_n: float = num_field(1.0, 100.0, default=10.0)
    setpoint_weight: float = num_field(0.0, 1.0, default=1.0)
    tracking_time_s: float = nonneg_field("s", default=0.0)
    anti_windup: str = field(default="back_calculation", metadata={"choices": ANTI_WINDUP})

    def pid(self, limit: float, rate_limit_per_s: float = 0.0) -> PidGains:
        return PidGains(kp=self.kp, ki=self.ki, kd=self.kd, derivative_filter_n=self.derivative_filter_n,
                        setpoint_weight=self.setpoint_weight, tracking_time_s=self.tracking_time_s,
                        output_min=-limit, output_max=limit, rate_limit_per_s=rate_limit_per_s,
                        anti_windup=self.anti_windup)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpedanceGains:
    kp_nm_per_rad: float = nonneg_field("N·m/rad", default=0.0)
    kd_nm_s_per_rad: float = nonneg_field("N·m·s/rad", default=0.0)
    friction_coulomb_nm: float = nonneg_field("N·m", default=0.0)  # feedforward at the output; 0: off
    friction_viscous_nm_s_per_rad: float = nonneg_field("N·m·s/rad", default=0.0)
    friction_velocity_epsilon_rad_s: float = pos_field("rad/s", default=0.01)  # width of the smooth sign
    efficiency: float = num_field(0.5, 1.0, lo_open=True, default=1.0)  # 1: no mesh-loss compensation
    # the Coulomb feed-forward x exp(-beta (T_housing - T_ref)), beta from the friction-temperature calibration
    # (experiments.friction_temperature); 0: off, the feed-forward independent of temperature as before
    friction_temp_coeff_per_k: float = num_field(0.0, 0.5, unit="1/K", default=0.0)
    friction_ref_temp_c: float = num_field(-50.0, 150.0, unit="°C", default=25.0)  # where friction_coulomb_nm holds


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmittanceGains:
    mass_kg_m2: float = pos_field("kg·m²", default=1.0)
    damping_nm_s_per_rad: float = nonneg_field("N·m·s/rad", default=20.0)
    stiffness_nm_per_rad: float = nonneg_field("N·m/rad", default=100.0)
    force_filter_hz: float = pos_field("Hz", default=50.0)
    tool_mass_kg: float = nonneg_field("kg", default=0.0)  # weight removed from the F/T reading
    sensor_distance_m: float = nonneg_field("m", default=0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotchConfig:
    center_hz: float = nonneg_field("Hz", default=0.0)  # 0: off
    q: float = pos_field(default=1.0)
    depth_db: float = nonneg_field("dB", default=0.0)  # 0: a full notch


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    amplitude_rad_s: float = pos_field("rad/s", default=0.25)  # the velocity reference it switches
    hysteresis_rad: float = nonneg_field("rad", default=1e-5)


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyLimits:
    position_min_rad: float = num_field(unit="rad", default=0.0)  # min = max = 0: the joint's limits
    position_max_rad: float = num_field(unit="rad", default=0.0)
    position_zone_rad: float = pos_field("rad", default=0.1)
    velocity_max_rad_s: float = nonneg_field("rad/s", default=0.0)  # 0: the joint's limit
    velocity_zone_fraction: float = num_field(0.0, 1.0, lo_open=True, default=0.2)
    torque_max_nm: float = nonneg_field("N·m", default=0.0)  # 0: the joint's limit
    current_max_a: float = nonneg_field("A", default=0.0)  # 0: the motor's limit


@dataclass(frozen=True, slots=True, kw_only=True)
class CoggingCompensation:
    """The cogging feed-forward: sum_k A_k sin(k N_c theta + phi_k) at the motor (the model's form,
    ``actuator.model.electrics.motor_torque``), N_c = ``periods_per_rev``, theta = r - (s sin r + c cos r), r the
    motor encoder's reading and s, c its once-per-revolution error as the calibration measured it
    (``experiments.cogging_calibration``). Harmonic k of the lists is k N_c per revolution."""
    periods_per_rev: int = num_field(0, 100000, default=0)
    harmonics_nm: tuple[float, ...] = nonneg_field("N·m", default=())  # at the motor; none (or all 0): off
    phases_rad: tuple[float, ...] = num_field(unit="rad", default=())
    encoder_error_sin_rad: float = num_field(-0.1, 0.1, unit="rad", default=0.0)
    encoder_error_cos_rad: float = num_field(-0.1, 0.1, unit="rad", default=0.0)

    @property
    def on(self) -> bool:
        return any(a != 0.0 for a in self.harmonics_nm)


def check_cogging(cog: CoggingCompensation, source: str | None = None) -> None:
    """The checks across the section's fields (each field's own range is the dataclass's)."""
    where = f"{source}: " if source else ""
    path = "cogging_compensation"
    if len(cog.harmonics_nm) > C.COG_HARMONICS:
        raise ConfigError(f"{where}{path}.harmonics_nm = {list(cog.harmonics_nm)!r} is not allowed: at most "
                          f"{C.COG_HARMONICS} harmonics")
    if len(cog.phases_rad) != len(cog.harmonics_nm):
        raise ConfigError(f"{where}{path}.phases_rad = {list(cog.phases_rad)!r} is not allowed: it must have as "
                          f"many entries as harmonics_nm ({len(cog.harmonics_nm)})")
    if cog.on and cog.periods_per_rev <= 0:
        raise ConfigError(f"{where}{path}.periods_per_rev = {cog.periods_per_rev!r} is not allowed: must be > 0 "
                          "when harmonics_nm are given (the cogging periods per motor revolution)")


@dataclass(frozen=True, slots=True, kw_only=True)
class KinematicErrorCompensation:
    """Where the position loops take the output angle from. ``output``: the output encoder's reading less
    ``output_zero_rad``. ``motor`` (a joint positioned on its motor encoder, as one without an output encoder is):
    theta_m / N + KE(theta_m) - motor_zero_rad - m g l sin(q) / stiffness_nm_per_rad, with KE the calibrated table
    of the reducer's kinematic error at the motor reading and m g l the gravity feed-forward. Defaults: off."""
    position_feedback: str = field(default="output", metadata={"choices": ("output", "motor")})
    amplitudes_rad: tuple[float, ...] = nonneg_field("rad", default=())
    phases_rad: tuple[float, ...] = num_field(unit="rad", default=())
    motor_zero_rad: float = num_field(unit="rad", default=0.0)
    stiffness_nm_per_rad: float = nonneg_field("N·m/rad", default=0.0)
    output_zero_rad: float = num_field(unit="rad", default=0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerConfig:
    mode: str = field(default="position", metadata={"choices": tuple(C.MODES)})
    velocity_loop_rate_hz: float = pos_field("Hz", default=10000.0)
    position_loop_rate_hz: float = pos_field("Hz", default=2000.0)
    estimator: str = field(default="observer", metadata={"choices": tuple(ESTIMATORS)})
    estimator_bandwidth_hz: float = pos_field("Hz", default=400.0)
    gravity_feedforward_nm: float = nonneg_field("N·m", default=0.0)
    position: LoopGains = field(default_factory=LoopGains)
    velocity: LoopGains = field(default_factory=LoopGains)
    impedance: ImpedanceGains = field(default_factory=ImpedanceGains)
    admittance: AdmittanceGains = field(default_factory=AdmittanceGains)
    notch: NotchConfig = field(default_factory=NotchConfig)
    limits: SafetyLimits = field(default_factory=SafetyLimits)
    relay: RelayConfig = field(default_factory=RelayConfig)
    cogging_compensation: CoggingCompensation = field(default_factory=CoggingCompensation)
    kinematic_error_compensation: KinematicErrorCompensation = field(default_factory=KinematicErrorCompensation)

    def with_mode(self, mode: str) -> ControllerConfig:
        if mode not in C.MODES:
            raise ConfigError(f"mode = {mode!r} is not allowed: choose one of {tuple(C.MODES)}")
        return replace(self, mode=mode)

    def replace(self, section: str | None = None, **values: Any) -> ControllerConfig:
        """A copy with top-level fields, or the fields of one section, replaced (validated)."""
        data = config_to_dict(self)
        (data.setdefault(section, {}) if section else data).update(values)
        return config_from_dict(data, "replace()")

    def compile(self, params: JointParams) -> np.ndarray:
        return compile_controller(self, params)


# gains writable live by name: (section of ControllerConfig, or "" for a top-level field; field)
GAINS = {"position_kp": ("position", "kp"), "position_ki": ("position", "ki"), "position_kd": ("position", "kd"),
         "velocity_kp": ("velocity", "kp"), "velocity_ki": ("velocity", "ki"), "velocity_kd": ("velocity", "kd"),
         "impedance_kp": ("impedance", "kp_nm_per_rad"), "impedance_kd": ("impedance", "kd_nm_s_per_rad"),
         "gravity_feedforward": ("", "gravity_feedforward_nm"),
         # the friction feed-forward a friction calibration sets (experiments.calibrations), written live like the rest
         "impedance_friction_coulomb": ("impedance", "friction_coulomb_nm"),
         "impedance_friction_viscous": ("impedance", "friction_viscous_nm_s_per_rad"),
         "impedance_friction_temp_coeff": ("impedance", "friction_temp_coeff_per_k"),
         "impedance_friction_ref_temp": ("impedance", "friction_ref_temp_c")}
CASCADE_GAINS = ("position_kp", "position_ki", "position_kd", "velocity_kp", "velocity_ki", "velocity_kd")


def gain_of(gains: ControllerConfig, name: str) -> float:
    """The value of the gain ``name`` (a key of ``GAINS``) in a gains set."""
    section, field_name = GAINS[name]
    return float(getattr(getattr(gains, section) if section else gains, field_name))


def _divisor(name: str, rate_hz: float, base_hz: float, base_name: str) -> int:
    ratio = base_hz / rate_hz
    div = round(ratio)
    if div < 1 or abs(ratio - div) > 1e-9 * ratio:
        raise ConfigError(f"{name} = {rate_hz!r} Hz is not allowed: it must divide {base_name} = {base_hz!r} Hz "
                          "into a whole number of steps")
    return div


def _loop_divisors(cfg: ControllerConfig, params: JointParams) -> tuple[int, int]:
    base = params.drive.current_loop_rate_hz
    vel_div = _divisor("velocity_loop_rate_hz", cfg.velocity_loop_rate_hz, base, "drive.current_loop_rate_hz")
    pos_ratio = _divisor("position_loop_rate_hz", cfg.position_loop_rate_hz, cfg.velocity_loop_rate_hz,
                         "velocity_loop_rate_hz")
    return vel_div, vel_div * pos_ratio


def resolved_limits(cfg: ControllerConfig, params: JointParams) -> SafetyLimits:
    """The safety limits with 0 entries replaced by the joint's own, checked against them."""
    lim, jl = cfg.limits, params.limits
    own = lim.position_min_rad == 0.0 and lim.position_max_rad == 0.0
    out = replace(lim,
                  position_min_rad=jl.position_min_rad if own else lim.position_min_rad,
                  position_max_rad=jl.position_max_rad if own else lim.position_max_rad,
                  velocity_max_rad_s=lim.velocity_max_rad_s or jl.velocity_max_rad_s,
                  torque_max_nm=lim.torque_max_nm or jl.torque_max_nm,
                  current_max_a=lim.current_max_a or params.motor.current_limit_a)
    checks = [("position_max_rad", out.position_max_rad, out.position_max_rad > out.position_min_rad,
               f"> limits.position_min_rad = {out.position_min_rad!r}"),
              ("torque_max_nm", out.torque_max_nm, out.torque_max_nm <= jl.torque_max_nm,
               f"<= the joint's limits.torque_max_nm = {jl.torque_max_nm!r}"),
              ("velocity_max_rad_s", out.velocity_max_rad_s, out.velocity_max_rad_s <= jl.velocity_max_rad_s,
               f"<= the joint's limits.velocity_max_rad_s = {jl.velocity_max_rad_s!r}"),
              ("current_max_a", out.current_max_a, out.current_max_a <= params.motor.current_limit_a,
               f"<= the joint's motor.current_limit_a = {params.motor.current_limit_a!r}")]
    for name, value, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"limits.{name} = {value!r} is not allowed: must be {allowed}")
    return out


def compile_controller(cfg: ControllerConfig, params: JointParams) -> np.ndarray:
    """The controller parameter vector for ``params`` (validated against the joint's rates and limits)."""
    vel_div, pos_div = _loop_divisors(cfg, params)
    dt = params.dt_s
    lim = resolved_limits(cfg, params)
    v = np.zeros(C.N_CTRL)
    w_o = 2 * math.pi * cfg.estimator_bandwidth_hz
    v[[C.C_MODE, C.C_DT, C.C_VEL_DIV, C.C_POS_DIV, C.C_EST_KIND, C.C_EST_ALPHA, C.C_EST_KP, C.C_EST_KI]] = (
        C.MODES[cfg.mode], dt, vel_div, pos_div, ESTIMATORS[cfg.estimator],
        lowpass1_design(cfg.estimator_bandwidth_hz, dt), 2 * w_o, w_o * w_o)
    imp, adm = cfg.impedance, cfg.admittance
    v[[C.C_RATIO, C.C_TORQUE_PER_A, C.C_EFF, C.C_IMP_KP, C.C_IMP_KD, C.C_FRIC_FC, C.C_FRIC_B, C.C_FRIC_VEPS,
       C.C_MGL]] = (params.reducer.ratio, params.torque_constant_nm_per_a * params.reducer.ratio, imp.efficiency,
                    imp.kp_nm_per_rad, imp.kd_nm_s_per_rad, imp.friction_coulomb_nm,
                    imp.friction_viscous_nm_s_per_rad, imp.friction_velocity_epsilon_rad_s,
                    cfg.gravity_feedforward_nm)
    v[[C.C_ADM_M, C.C_ADM_D, C.C_ADM_K, C.C_FORCE_ALPHA, C.C_TOOL_WEIGHT, C.C_FT_DIST]] = (
        adm.mass_kg_m2, adm.damping_nm_s_per_rad, adm.stiffness_nm_per_rad,
        lowpass1_design(adm.force_filter_hz, dt * pos_div),
        adm.tool_mass_kg * params.load.gravity_m_s2 * adm.sensor_distance_m, adm.sensor_distance_m)
    if cfg.notch.center_hz > 0.0:
        v[C.C_NOTCH_ON] = 1.0
        v[C.C_NOTCH:C.C_NOTCH + 5] = notch(cfg.notch.center_hz, cfg.notch.q, dt * vel_div,
                                           cfg.notch.depth_db or None)
    v[[C.C_LIM_QMIN, C.C_LIM_QMAX, C.C_LIM_QZONE, C.C_LIM_VMAX, C.C_LIM_VZONE, C.C_LIM_TMAX, C.C_LIM_IMAX]] = (
        lim.position_min_rad, lim.position_max_rad, lim.position_zone_rad, lim.velocity_max_rad_s,
        lim.velocity_zone_fraction, lim.torque_max_nm, lim.current_max_a)
    v[[C.C_RELAY_H, C.C_RELAY_EPS]] = cfg.relay.amplitude_rad_s, cfg.relay.hysteresis_rad
    v[C.C_POS_PID:C.C_POS_PID + 11] = cfg.position.pid(lim.velocity_max_rad_s).compile(dt * pos_div)
    v[C.C_VEL_PID:C.C_VEL_PID + 11] = cfg.velocity.pid(lim.torque_max_nm).compile(dt * vel_div)
    _compile_cogging(v, cfg.cogging_compensation, params.reducer.ratio)
    _compile_compensation(v, cfg.kinematic_error_compensation)
    v[[C.C_FRIC_BETA, C.C_FRIC_TREF]] = imp.friction_temp_coeff_per_k, imp.friction_ref_temp_c
    return v


def _compile_cogging(v: np.ndarray, cog: CoggingCompensation, ratio: float) -> None:
    """Off leaves the block at zero (the kernel then skips it: bit-identical figures); on, the amplitudes are
    referred to the output (x ratio), where the torque command lives."""
    check_cogging(cog)
    if not cog.on:
        return
    n = len(cog.harmonics_nm)
    v[[C.C_COG_ON, C.C_COG_NC, C.C_COG_ES, C.C_COG_EC]] = (1.0, cog.periods_per_rev, cog.encoder_error_sin_rad,
                                                           cog.encoder_error_cos_rad)
    v[C.C_COG_A:C.C_COG_A + n] = np.asarray(cog.harmonics_nm) * ratio
    v[C.C_COG_PH:C.C_COG_PH + n] = cog.phases_rad


def _compile_compensation(v: np.ndarray, ke: KinematicErrorCompensation) -> None:
    name = "kinematic_error_compensation"
    if len(ke.amplitudes_rad) > C.MAX_HARMONICS or len(ke.amplitudes_rad) != len(ke.phases_rad):
        raise ConfigError(f"{name}.amplitudes_rad = {list(ke.amplitudes_rad)!r} is not allowed: at most "
                          f"{C.MAX_HARMONICS} harmonics, as many as phases_rad ({len(ke.phases_rad)})")
    n = len(ke.amplitudes_rad)
    v[C.C_KE_FB_MOTOR] = 1.0 if ke.position_feedback == "motor" else 0.0
    v[[C.C_KE_MOTOR_ZERO, C.C_KE_STIFFNESS, C.C_KE_OUTPUT_ZERO]] = (ke.motor_zero_rad, ke.stiffness_nm_per_rad,
                                                                   ke.output_zero_rad)
    v[C.C_KE_A:C.C_KE_A + n] = ke.amplitudes_rad
    v[C.C_KE_PH:C.C_KE_PH + n] = ke.phases_rad


def new_controller_state() -> np.ndarray:
    return np.zeros(C.N_CSTATE)


def config_from_dict(data: dict, source: str | None = None) -> ControllerConfig:
    cfg = build_dataclass(ControllerConfig, data, source)
    check_cogging(cfg.cogging_compensation, source)
    return cfg


def config_to_dict(cfg: ControllerConfig) -> dict:
    return params_to_dict(cfg)


def load_gains(path: str | Path) -> ControllerConfig:
    """A gains file; errors name the file, the key, the value and what is allowed."""
    data = read_toml(path, "gains file")
    if not data:
        raise ConfigError(f"{path}: empty gains file: it sets no key; allowed: the tables and keys of "
                          f"actuator/control/config.py ({', '.join(sorted(config_to_dict(ControllerConfig())))})")
    return config_from_dict(data, str(path))
