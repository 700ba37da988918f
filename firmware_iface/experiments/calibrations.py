"""The calibration routines of issue 17 by name: the one table that ``jointkit calibrate``, the rig's calibration steps
and the GUI's calibration panel read. A routine is a protocol of ``experiments.protocols`` (its segments run by any
executor, its analysis giving certificates) or, for the motor, the drive's own calibration read back from the joint
(``experiments.motor_calibration``).

Per routine: the sequence step it is (``step``), its configuration from the joint's parameters and the caller's
options (``config``: each module's checked ``*_config``), the limits a certificate is judged by when no sequence
gives them (its module's ``DEFAULT_LIMITS``), whether it loads the joint through the rig's fixture, and the gains
sections its result goes to (``gains``: the controller's ``[impedance]`` friction feed-forward,
``[cogging_compensation]``, ``[kinematic_error_compensation]``), which ``gains_with`` applies to a gains set, and
the joint parameters it sets (``joint_params``: the F/T bias, the F/T compensation matrix, the drive's Kt, native
profile ids 43 and 48-99, ``virtual_joint.sensor_settings``), composed with what the joint holds.

Also the one way a routine runs on a joint over its bus (``run_on_client``: ``jointkit calibrate --node`` and the
GUI's calibration panel) and the one judging of its result by the routine's default limits (``judged``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from actuator.control.config import GAINS, ControllerConfig
from actuator.errors import ConfigError
from actuator.params import JointParams
from firmware_iface.experiments import (
    bus,
    cogging_calibration,
    encoder_calibration,
    friction_calibration,
    friction_temperature,
    ft_calibration,
    ft_crosstalk,
    kt_calibration,
    motor_calibration,
)
from firmware_iface.experiments.certificate import Limit, judge_all
from firmware_iface.experiments.protocols import PROTOCOLS
from firmware_iface.experiments.segments import Outcome
from firmware_iface.virtual_joint import sensor_settings

Gains = dict[str, dict[str, Any]]  # gains section -> fields
# (figures, the joint's present value of a parameter by name) -> the joint parameters the result sets
JointParamsOf = Callable[[dict, Callable[[str], float]], dict[str, float]]


@dataclass(frozen=True)
class Routine:
    name: str                                  # jointkit calibrate NAME
    step: str                                  # the sequence step (and protocol) it is
    title: str
    module: ModuleType                         # its DEFAULT_LIMITS
    config: Callable[..., dict] | None         # (params, **options) -> checked configuration; None: the drive's own
    gains: Callable[[dict], Gains] | None = None  # its figures -> the gains sections it sets
    needs_fixture: bool = False                # it loads the joint: the rig's fixture (or the simulated joint's)
    joint_params: JointParamsOf | None = None  # its figures -> the joint's parameters it sets (native profile)
    params: tuple[str, ...] = ()               # their names

    @property
    def default_limits(self) -> dict[str, tuple[float | None, float | None]]:
        return self.module.DEFAULT_LIMITS


def _friction_gains(f: dict) -> Gains:
    return {"impedance": {"friction_coulomb_nm": f["friction_coulomb_nm"],
                          "friction_viscous_nm_s_per_rad": f["friction_viscous_nm_s_per_rad"]}}


def _friction_temperature_gains(f: dict) -> Gains:
    return {"impedance": {"friction_coulomb_nm": f["friction_coulomb_ref_nm"],
                          "friction_temp_coeff_per_k": f["friction_beta_per_k"],
                          "friction_ref_temp_c": f["friction_ref_temp_c"]}}


ROUTINES: dict[str, Routine] = {r.name: r for r in (
    Routine("motor", "motor_calibrate", "motor calibration", motor_calibration, None),
    Routine("ft", "ft_calibrate", "F/T calibration", ft_calibration,
            lambda params, **o: ft_calibration.ft_calibrate_config(params=params, **o),
            joint_params=ft_calibration.bias_params, params=sensor_settings.BIAS_PARAMS),
    Routine("ft-crosstalk", "ft_crosstalk_calibrate", "F/T crosstalk calibration", ft_crosstalk,
            ft_crosstalk.ft_crosstalk_config, needs_fixture=True, joint_params=ft_crosstalk.compensation_params,
            params=sensor_settings.COMPENSATION_PARAMS),
    Routine("kt", "kt_calibrate", "Kt calibration", kt_calibration, kt_calibration.kt_calibrate_config,
            needs_fixture=True, joint_params=kt_calibration.kt_params, params=(sensor_settings.KT_PARAM,)),
    Routine("friction", "friction_calibrate", "friction calibration", friction_calibration,
            lambda params, **o: friction_calibration.friction_calibrate_config(params=params, **o), _friction_gains),
    Routine("friction-temperature", "friction_temperature_calibrate", "friction over temperature",
            friction_temperature, friction_temperature.friction_temperature_config, _friction_temperature_gains,
            needs_fixture=True),
    Routine("encoders", "encoder_calibrate", "encoder calibration", encoder_calibration,
            lambda params, **o: encoder_calibration.encoder_calibrate_config(params=params, **o),
            lambda f: {"kinematic_error_compensation": f["compensation"]}),
    Routine("cogging", "cogging_calibrate", "cogging calibration", cogging_calibration,
            cogging_calibration.cogging_calibrate_config,
            lambda f: {"cogging_compensation": f["cogging_compensation"]}),
)}
BY_STEP = {r.step: r for r in ROUTINES.values()}


def gains_with(gains: ControllerConfig, routine: Routine, figures: dict) -> ControllerConfig:
    """``gains`` with the sections ``routine``'s result sets (unchanged for a routine that sets none)."""
    for section, fields in (routine.gains(figures) if routine.gains else {}).items():
        gains = gains.replace(section, **fields)
    return gains


def config_of(routine: Routine, params: JointParams, **options: Any) -> dict:
    """The routine's checked configuration for a joint of ``params`` (``options``: its ``*_config``'s keywords)."""
    if routine.config is None:
        return dict(options)
    return routine.config(params, **options)


def joint_gains(routine: Routine, figures: dict, gain_names: tuple[str, ...]) -> dict[str, float]:
    """Of the gains a routine's result sets, those the joint's profile can write (by ``GAINS`` name): the scalar
    feed-forwards. A table of harmonics has no gain on any profile: it goes through a gains file only."""
    by_field = {fields: name for name, fields in GAINS.items()}
    out = {}
    for section, values in (routine.gains(figures) if routine.gains else {}).items():
        for field_name, value in values.items():
            name = by_field.get((section, field_name))
            if name in gain_names and isinstance(value, int | float):
                out[name] = float(value)
    return out


def param_names_of(joint: Any) -> tuple[str, ...]:
    """The parameters ``joint`` has: a ``JointClient``'s profile's, a simulated ``JointFirmware``'s own."""
    if hasattr(joint, "param_names"):
        return tuple(joint.param_names())
    return tuple(joint.profile.sidecar.params)


def joint_params(joint: Any, routine: Routine, figures: dict) -> dict[str, float]:
    """The joint parameters a routine's result sets on ``joint`` (composed with what it holds, read from it);
    ``ConfigError`` when its profile lacks one of them (nothing is written then)."""
    if routine.joint_params is None:
        return {}
    have = param_names_of(joint)
    lacking = [n for n in routine.params if n not in have]
    if lacking:
        raise ConfigError(f"the joint's profile has no parameter {lacking[0]} for the {routine.name} routine's result "
                          f"({len(lacking)} missing; the native profile has them): nothing written")
    return routine.joint_params(figures, joint.read_param)


def write_to_joint(joint: Any, routine: Routine, figures: dict, gain_names: tuple[str, ...],
                   save: bool = False) -> dict[str, float]:
    """Write the result's gains and joint parameters to ``joint`` live (a ``JointClient`` or a simulated
    ``JointFirmware``: both have ``write_gain`` and ``write_param``), each read back; with ``save`` into its flash
    too (the joint idle). Returns what the joint now holds."""
    written = {}
    for name, value in joint_gains(routine, figures, gain_names).items():
        joint.write_gain(name, value)
        written[name] = joint.read_gain(name)
    for name, value in joint_params(joint, routine, figures).items():
        joint.write_param(name, value)
        written[name] = joint.read_param(name)
    if save and written:
        (joint.save if hasattr(joint, "save") else joint.save_to_flash)()
    return written


def run_on_client(client: Any, routine: Routine, params: JointParams | None, cfg: dict, fixture: Any = None, *,
                  current_a: float | None = None, save: bool = False) -> Outcome:
    """Run ``routine`` on joint ``client`` over its bus with configuration ``cfg`` (``config_of``), the joint left idle:
    the drive's own for the motor (``current_a``, ``save`` to its flash), else the protocol's segments (with
    ``fixture`` on the output for a routine that loads it) and their analysis."""
    if routine.config is None:
        return motor_calibration.on_client(client, params, current_a, save)
    proto = PROTOCOLS[routine.step]
    segments = proto.segments(cfg)
    signals = bus.run_protocol_segments(client, proto, segments, fixture, idle_after=True)
    return proto.analyze(signals, segments, cfg)


def judged(routine: Routine, outcome: Outcome) -> dict[str, Any]:
    """The result judged by the routine's default limits: ``verdict`` (pass / fail), ``failed`` (the figures and
    quantities that failed), ``checks`` (each limited figure: value, min, max, verdict) and ``certificates`` (judged,
    as dictionaries)."""
    limits = {name: Limit(lo, hi) for name, (lo, hi) in routine.default_limits.items()}
    checks = {name: {"value": outcome.figures.get(name), "min": lim.min, "max": lim.max,
                     "verdict": lim.verdict(outcome.figures.get(name))} for name, lim in limits.items()}
    certs = judge_all(outcome.certificates, limits, outcome.figures)
    failed = sorted({n for n, c in checks.items() if c["verdict"] != "pass"}
                    | {c["quantity"] for c in certs if c["verdict"] == "fail"})
    return {"verdict": "fail" if failed else "pass", "failed": failed, "checks": checks, "certificates": certs}
