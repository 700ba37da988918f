"""The firmware of the virtual joint, apart from the bus: state machine, modes, watchdog, limits, faults,
gains and parameters with a flash file, and the chunked advance of the simulated joint under its
controller. The bus node (``node.py``) turns frames into calls of this class and telemetry into frames.

States: ``idle`` (drive off), ``calibrating`` (a short encoder alignment, then idle), ``closed_loop`` (the
controller runs in the selected mode), ``fault`` (drive off; leaves only by ``clear_faults``).

Safety, as every jointkit joint must behave (ARCHITECTURE.md):
* watchdog: in closed loop, no valid command for ``watchdog_timeout_s`` -> a damped stop (velocity 0 for
  ``STOP_TIME_S``, or until still), then the drive off and the ``watchdog`` fault latched;
* commands are clamped to the joint's limits (and counted); the controller's safety limiter bounds torque;
* model faults (over-current, voltages, over-temperature, encoder) latch and turn the drive off; F/T
  saturation is reported while the sensor is saturated (a measurement state, not a drive fault); e-stop is
  one call: drive off, ``estop`` latched;
* a tracking error beyond ``tracking_limit_rad`` in position mode latches ``tracking_error``;
* a state that is not finite or diverges (gains that make a loop unstable: the joint's speed beyond
  ``DIVERGED_SPEED_FACTOR`` times its velocity limit) latches ``unstable``: the state goes back to the last
  finite one at rest (position and temperatures kept, speeds, currents and integrators zero), the drive off,
  so the joint keeps reporting and recovers with sane gains and ``clear_faults``.

The joint advances in chunks: ``advance(duration_s)`` runs whole chunks of ``chunk_steps`` model steps
(1 ms at 40 kHz by default), each one compiled call, and checks the watchdog between chunks.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import tomli_w

from actuator.analysis.tuning import default_controller
from actuator.control import cascade as C
from actuator.control.config import (  # the gain names are the controller's: the firmware writes them by name
    GAINS,
    ControllerConfig,
    config_from_dict,
    config_to_dict,
    gain_of,
    resolved_limits,
)
from actuator.control.pid import N_PID_STATE
from actuator.errors import ConfigError, FaultError
from actuator.model import layout as L
from actuator.model.sensors import prime_encoders
from actuator.params import JointParams, load_preset
from actuator.simulation import JointModel

STATES = ("idle", "calibrating", "closed_loop", "fault")
FAULT_WATCHDOG = 64
FAULT_TRACKING = 128
FAULT_ESTOP = 256
FAULT_UNSTABLE = 512
FAULT_NAMES = {**L.FAULT_NAMES, FAULT_WATCHDOG: "watchdog", FAULT_TRACKING: "tracking_error", FAULT_ESTOP: "estop",
               FAULT_UNSTABLE: "unstable"}
DRIVE_OFF_FAULTS = L.FATAL_FAULTS | FAULT_WATCHDOG | FAULT_ESTOP | FAULT_TRACKING | FAULT_UNSTABLE
# a joint turning faster than this many times its velocity limit is a loop diverging, not motion: the safety limiter
# holds a stable loop's speed near the limit, and a real motor cannot go far past it on its bus voltage
DIVERGED_SPEED_FACTOR = 10.0
LATCHING = ~(L.FAULT_FT_SATURATION) & 0xFFFF  # F/T saturation is reported while present, the rest latch
STOP_TIME_S = 0.2
CALIBRATION_S = 0.05
PROFILE_VERSION = 1.0
GAIN_RANGE = (-1e6, 1e6)
TRACKING_LIMIT_RAD = 0.5  # default position tracking limit: a larger error in position mode latches tracking_error
# telemetry rates, Hz, by parameter name -> the messages they pace
RATES = {"rate_joint_state_hz": ("joint_state",), "rate_wrench_hz": ("wrench_force", "wrench_torque"),
         "rate_motor_telemetry_hz": ("motor_telemetry",), "rate_heartbeat_hz": ("heartbeat",),
         "rate_diagnostics_hz": ("diagnostics",), "rate_encoders_hz": ("encoder_state",),
         "rate_setpoint_hz": ("setpoint_state",)}
DEFAULT_RATES_HZ = {"rate_joint_state_hz": 1000.0, "rate_wrench_hz": 500.0, "rate_motor_telemetry_hz": 100.0,
                    "rate_heartbeat_hz": 10.0, "rate_diagnostics_hz": 1.0, "rate_encoders_hz": 0.0,
                    "rate_setpoint_hz": 0.0}
MAX_RATE_HZ = 1000.0


LIMIT_PARAMS = ("position_min_rad", "position_max_rad", "velocity_max_rad_s", "torque_max_nm")


class ParamError(ConfigError):
    """A parameter or gain write the joint refuses; ``status`` is the protocol's reply status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _in_range(name: str, value: float, lo: float, hi: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ParamError("out_of_range", f"{name} = {value!r} is out of range: allowed [{lo:g}, {hi:g}]")
    return value


def rest_state(params: JointParams, p: np.ndarray, safe: np.ndarray, t_s: float, motor_offset_rad: float = 0.0,
               output_offset_rad: float = 0.0) -> np.ndarray:
    """The state a diverged joint is put back into: at rest where ``safe`` (its last finite state) was, the motor's
    turn count, temperatures and derating kept, speeds, currents and twist zero, the clock at ``t_s``."""
    x = L.initial_state(params, float(safe[L.X_THL]))
    x[L.X_THM] = safe[L.X_THM]  # the motor where it was: the encoders keep their turn count
    for i in (L.X_TW, L.X_TH, L.X_DERATE, L.X_R_CACHED):
        x[i] = safe[i]
    x[L.X_TIME] = t_s
    prime_encoders(p, x, motor_offset_rad, output_offset_rad)
    return x


def fault_names(bits: int) -> list[str]:
    return [name for bit, name in FAULT_NAMES.items() if int(bits) & bit]


class JointFirmware:
    """One simulated joint with its firmware; time advances only through ``advance``."""

    def __init__(self, params: JointParams | str = "knee", gains: ControllerConfig | None = None, *,
                 watchdog_timeout_s: float = 0.1, flash_path: str | Path | None = None, seed: int = 0,
                 chunk_steps: int = 40, tracking_limit_rad: float = TRACKING_LIMIT_RAD) -> None:
        self.params = params if isinstance(params, JointParams) else load_preset(params)
        self.flash_path = Path(flash_path) if flash_path else None
        flash = self._load_flash()
        self.gains = flash[0] if flash else gains or default_controller(self.params)
        self.limits = resolved_limits(self.gains, self.params)
        self.model = JointModel(self.params, seed=seed)
        self.model.attach(self.gains)
        if not (math.isfinite(watchdog_timeout_s) and watchdog_timeout_s > 0):
            raise ConfigError(f"watchdog_timeout_s = {watchdog_timeout_s!r}: must be > 0")
        self.watchdog_timeout_s = watchdog_timeout_s
        self.chunk_steps = chunk_steps
        self._chunk_u = np.zeros((chunk_steps, L.N_INPUTS))  # no external input: the drive is the controller's
        self._chunk_ref = np.zeros((chunk_steps, C.N_REF))
        self._x_safe = self.model.x.copy()  # the state before the present chunk, finite
        self.tracking_limit_rad = tracking_limit_rad
        self.rates_hz = dict(DEFAULT_RATES_HZ)
        for name, value in (flash[1] if flash else {}).items():
            self.write_param(name, value)
        self.state = "idle"
        self.mode = self.gains.mode
        self.faults = 0
        self.ref = np.zeros(C.N_REF)
        self.last_command_t = 0.0
        self.stop_until_t = -1.0
        self.calibrate_until_t = -1.0
        self.counters = {"commands": 0, "clamped": 0, "rejected": 0, "watchdog_trips": 0, "chunks": 0,
                         "flash_saves": 0, "diverged": 0}
        self._apply_drive()

    # --- time -------------------------------------------------------------------------------------------
    @property
    def t_s(self) -> float:
        return float(self.model.x[L.X_TIME])

    def advance(self, duration_s: float) -> None:
        """Run the joint for ``duration_s`` (rounded to whole chunks, at least one)."""
        chunk_s = self.chunk_steps * self.model.dt_s
        for _ in range(max(1, round(duration_s / chunk_s))):
            self._supervise()
            self._chunk_ref[:] = self.ref
            np.copyto(self._x_safe, self.model.x)
            _, bits = self.model.run(self._chunk_u, self.chunk_steps, self._chunk_ref)
            self.counters["chunks"] += 1
            if self._diverged():
                continue
            saturated = self.model.x[L.X_FT_SAT] != 0.0
            self.faults = (self.faults & LATCHING) | (L.FAULT_FT_SATURATION if saturated else 0)
            if bits & LATCHING:
                self._raise_faults(bits & LATCHING)
            self._check_tracking()

    def _supervise(self) -> None:
        t = self.t_s
        if self.state == "calibrating" and t >= self.calibrate_until_t:
            self.state = "idle"
        if self.state != "closed_loop":
            return
        if self.stop_until_t >= 0.0:
            if t >= self.stop_until_t or abs(self.model.k[C.K_VEL]) < 1e-3:
                self.stop_until_t = -1.0
                self._raise_faults(FAULT_WATCHDOG)
            return
        if t - self.last_command_t > self.watchdog_timeout_s:
            # damped stop: hold zero velocity through the velocity loop, then drive off and latch
            self.counters["watchdog_trips"] += 1
            self.stop_until_t = t + STOP_TIME_S
            self._set_controller_mode("velocity")
            self.ref[:] = 0.0

    def _diverged(self) -> bool:
        """After a chunk: a non-finite or diverging state is put back at rest where it last was finite, with the
        ``unstable`` fault latched (drive off). True when that happened."""
        x, k = self.model.x, self.model.k
        speed_limit = DIVERGED_SPEED_FACTOR * self.params.limits.velocity_max_rad_s
        if np.isfinite(x).all() and np.isfinite(k).all() and abs(x[L.X_WL]) <= speed_limit:
            return False
        t_s = self._x_safe[L.X_TIME] + self.chunk_steps * self.model.dt_s
        x[:] = rest_state(self.params, self.model.p, self._x_safe, t_s)
        k[:] = 0.0
        self.counters["diverged"] += 1
        self._raise_faults(FAULT_UNSTABLE)
        return True

    def _check_tracking(self) -> None:
        tracking = self.state == "closed_loop" and self.mode == "position" and self.stop_until_t < 0
        if tracking and abs(self.ref[C.R_POS] - self.model.x[L.X_ENC_O]) > self.tracking_limit_rad:
            self._raise_faults(FAULT_TRACKING)

    # --- faults and states ---------------------------------------------------------------------------------
    def _raise_faults(self, bits: int) -> None:
        self.faults |= int(bits)
        if int(bits) & DRIVE_OFF_FAULTS:
            self.state = "fault"
            self._apply_drive()

    def estop(self) -> None:
        self._raise_faults(FAULT_ESTOP)

    def clear_faults(self) -> None:
        self.faults = 0
        self.model.clear_faults()
        if self.state == "fault":
            self.state = "idle"
            self._apply_drive()

    def set_state(self, state: str) -> None:
        if state not in STATES or state == "fault":
            raise ConfigError(f"state {state!r} cannot be requested: choose idle, calibrating or closed_loop")
        if self.state == "fault" and state != "idle":
            raise FaultError(f"joint in fault ({', '.join(fault_names(self.faults))}): clear faults first",
                             faults=tuple(fault_names(self.faults)))
        self.state = state
        if state == "calibrating":
            self.calibrate_until_t = self.t_s + CALIBRATION_S
        if state == "closed_loop":
            # fresh loops: integrators from before the drive was off must not kick the joint
            self.model.k[C.K_POS_PID:C.K_VEL_PID + N_PID_STATE] = 0.0
            self.last_command_t = self.t_s
            self.ref[:] = 0.0
            self.ref[C.R_POS] = self.model.x[L.X_ENC_O]  # hold where it is
        self._apply_drive()

    def set_mode(self, mode: str) -> None:
        if mode not in C.MODES or mode == "relay":
            raise ConfigError(f"mode {mode!r} is not allowed: choose one of torque, velocity, position, "
                              "impedance, admittance")
        self.mode = mode
        self.ref[:] = 0.0
        self.ref[C.R_POS] = self.model.x[L.X_ENC_O]
        self._apply_drive()

    def _apply_drive(self) -> None:
        """Controller mode and references for the state: only closed loop drives current."""
        if self.state == "closed_loop":
            self._set_controller_mode(self.mode)
        else:
            self._set_controller_mode("torque")
            self.model.c[C.C_MGL] = 0.0
            self.ref[:] = 0.0

    def _set_controller_mode(self, mode: str) -> None:
        self.model.c[C.C_MODE] = C.MODES[mode]
        self.model.c[C.C_MGL] = self.gains.gravity_feedforward_nm

    # --- commands ------------------------------------------------------------------------------------------
    def command(self, mode: str, position_rad: float = 0.0, velocity_rad_s: float = 0.0,
                torque_nm: float = 0.0) -> bool:
        """A set-point for ``mode`` (it must be the active one); clamped to the joint's limits. Feeds the
        watchdog. Returns False (and counts it) when the joint is not in closed loop in that mode."""
        finite = math.isfinite(position_rad) and math.isfinite(velocity_rad_s) and math.isfinite(torque_nm)
        if self.state != "closed_loop" or mode != self.mode or self.stop_until_t >= 0.0 or not finite:
            self.counters["rejected"] += 1
            return False
        lim = self.limits
        values = (min(max(position_rad, lim.position_min_rad), lim.position_max_rad),
                  min(max(velocity_rad_s, -lim.velocity_max_rad_s), lim.velocity_max_rad_s),
                  min(max(torque_nm, -lim.torque_max_nm), lim.torque_max_nm))
        if values != (position_rad, velocity_rad_s, torque_nm):
            self.counters["clamped"] += 1
        self.ref[C.R_POS], self.ref[C.R_VEL], self.ref[C.R_TORQUE] = values
        self.last_command_t = self.t_s
        self.counters["commands"] += 1
        return True

    def impedance(self, position_rad: float, velocity_rad_s: float, kp: float, kd: float, torque_nm: float) -> bool:
        if self.mode == "impedance" and (kp, kd) != (self.gains.impedance.kp_nm_per_rad,
                                                       self.gains.impedance.kd_nm_s_per_rad):
            self.model.c[C.C_IMP_KP] = kp
            self.model.c[C.C_IMP_KD] = kd
        return self.command("impedance", position_rad, velocity_rad_s, torque_nm)

    def write_gain(self, name: str, value: float) -> None:
        """Apply a gain live (bumpless for the PIDs' integral) and keep it in the gains set."""
        if name not in GAINS:
            raise ParamError("unknown_param", f"gain {name!r} is unknown: allowed {', '.join(GAINS)}")
        section, field_name = GAINS[name]
        self._replace_gains(section, **{field_name: _in_range(f"gain {name}", value, *GAIN_RANGE)})

    def read_gain(self, name: str) -> float:
        if name not in GAINS:
            raise ParamError("unknown_param", f"gain {name!r} is unknown: allowed {', '.join(GAINS)}")
        return gain_of(self.gains, name)

    def _replace_gains(self, section: str, **values: float) -> None:
        """Swap in a new gains set, compiled and checked before anything changes (a bad value changes nothing)."""
        try:
            gains = self.gains.replace(section, **values) if section else replace(self.gains, **values)
            vector = gains.compile(self.params)
            limits = resolved_limits(gains, self.params)
        except ConfigError as e:
            raise ParamError("out_of_range", str(e)) from e
        mode, mgl = self.model.c[C.C_MODE], self.model.c[C.C_MGL]
        self.gains, self.limits = gains, limits
        self.model.c[:] = vector
        self.model.c[C.C_MODE] = mode
        self.model.c[C.C_MGL] = gains.gravity_feedforward_nm if mgl else 0.0

    # --- parameters ------------------------------------------------------------------------------------------
    def param_names(self) -> tuple[str, ...]:
        return ("profile_version", "flash_saves", "watchdog_timeout_s", "tracking_limit_rad", *LIMIT_PARAMS,
                *self.rates_hz, *(f"gain.{g}" for g in GAINS))

    def read_param(self, name: str) -> float:
        if name.startswith("gain."):
            return self.read_gain(name[5:])
        if name == "profile_version":
            return PROFILE_VERSION
        if name == "flash_saves":
            return float(self.counters["flash_saves"])
        if name in ("watchdog_timeout_s", "tracking_limit_rad"):
            return float(getattr(self, name))
        if name in LIMIT_PARAMS:
            return float(getattr(self.limits, name))
        if name in self.rates_hz:
            return self.rates_hz[name]
        raise ParamError("unknown_param", f"parameter {name!r} is unknown: allowed {', '.join(self.param_names())}")

    def write_param(self, name: str, value: float) -> None:
        """Set a parameter (``ParamError`` with the protocol's status when unknown, read-only or out of range)."""
        if name.startswith("gain."):
            return self.write_gain(name[5:], value)
        if name in ("profile_version", "flash_saves"):
            raise ParamError("read_only", f"parameter {name} is read-only")
        if name == "watchdog_timeout_s":
            self.watchdog_timeout_s = _in_range(name, value, 0.005, 10.0)
        elif name == "tracking_limit_rad":
            self.tracking_limit_rad = _in_range(name, value, 1e-3, 10.0)
        elif name in self.rates_hz:
            self.rates_hz[name] = _in_range(name, value, 0.0, MAX_RATE_HZ)
        elif name in LIMIT_PARAMS:
            lim = self.limits
            pos = {"position_min_rad": lim.position_min_rad, "position_max_rad": lim.position_max_rad}
            jl = self.params.limits
            if name in pos:
                pos[name] = _in_range(name, value, jl.position_min_rad, jl.position_max_rad)
                if not pos["position_min_rad"] < pos["position_max_rad"]:
                    # an empty window would read as "unset" to the controller config and widen to the joint's limits
                    raise ParamError("out_of_range", f"{name} = {value:g} leaves no position window: "
                                     f"position_min_rad = {pos['position_min_rad']:g} must be below "
                                     f"position_max_rad = {pos['position_max_rad']:g}")
                self._replace_gains("limits", **pos)
            else:
                self._replace_gains("limits", **{name: _in_range(name, value, 1e-6, getattr(jl, name))})
        else:
            self.read_param(name)  # raises unknown_param

    # --- flash ----------------------------------------------------------------------------------------------
    def save_to_flash(self) -> Path:
        if self.flash_path is None:
            raise ConfigError("this joint has no flash file (flash_path)")
        self.flash_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.flash_path.with_suffix(".tmp")
        doc = {"firmware": {"watchdog_timeout_s": self.watchdog_timeout_s,
                            "tracking_limit_rad": self.tracking_limit_rad, **self.rates_hz},
               "gains": config_to_dict(replace(self.gains, mode=self.mode))}
        tmp.write_text(tomli_w.dumps(doc), encoding="utf-8")
        tmp.replace(self.flash_path)  # atomic: a power cut never leaves half a flash
        self.counters["flash_saves"] += 1
        return self.flash_path

    def _load_flash(self) -> tuple[ControllerConfig, dict[str, float]] | None:
        if self.flash_path is None or not self.flash_path.exists():
            return None
        where = str(self.flash_path)
        try:
            data = tomllib.loads(self.flash_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{where}: cannot read the flash file: {e}") from e
        firmware = data.get("firmware", {})
        allowed = {"watchdog_timeout_s", "tracking_limit_rad", *DEFAULT_RATES_HZ}
        unknown = sorted(set(firmware) - allowed)
        if unknown or not isinstance(data.get("gains"), dict):
            raise ConfigError(f"{where}: not a jointkit flash file (needs [gains]; [firmware] keys allowed: "
                              f"{', '.join(sorted(allowed))}; got {', '.join(unknown) or 'no [gains]'})")
        return config_from_dict(data["gains"], f"{where} [gains]"), {k: float(v) for k, v in firmware.items()}

    # --- telemetry -------------------------------------------------------------------------------------------
    def telemetry(self) -> dict[str, float | str | list[str]]:
        x, k = self.model.x, self.model.k
        kt_n = self.params.torque_constant_nm_per_a * self.params.reducer.ratio
        return {
            "t_s": self.t_s, "state": self.state, "mode": self.mode, "faults": fault_names(self.faults),
            "fault_bits": self.faults, "position_rad": float(x[L.X_ENC_O]), "velocity_rad_s": float(k[C.K_VEL]),
            "torque_nm": float(x[L.X_IQ] * kt_n), "iq_a": float(x[L.X_IQ]), "id_a": float(x[L.X_ID]),
            "bus_voltage_v": float(self.model.env[L.E_BUS_V]), "winding_temp_c": float(x[L.X_TW]),
            "motor_encoder_rad": float(x[L.X_ENC_M]), "output_encoder_rad": float(x[L.X_ENC_O]),
            "housing_temp_c": float(x[L.X_TH]),
            "wrench": [float(v) for v in x[L.X_FT_MEAS:L.X_FT_MEAS + 6]],
            "ft_saturated": int(x[L.X_FT_SAT]),
            "limits_active": int(k[C.K_LIMITS]) if self.state == "closed_loop" else 0,
            "setpoint_position_rad": float(self.ref[C.R_POS]), "setpoint_velocity_rad_s": float(self.ref[C.R_VEL]),
            "joint_time_ms": round(self.t_s * 1e3) % 65536,
        }
