"""The firmware of the virtual joint, apart from the bus: the supervisor of ``actuator.control.supervisor`` (states,
modes, watchdog, limits, faults) around one joint's model, gains and parameters with a flash file, and the chunked
advance of the simulated joint under its controller. The bus node (``node.py``) turns frames into calls of this
class and telemetry into frames.

The supervision rules are the supervisor's, shared with the production batch (``firmware_iface.experiments.batch``):
this class adds what one joint on a bus has besides: requests checked and refused with the protocol's errors, live
gains, parameters, flash and telemetry.

The joint advances in chunks: ``advance(duration_s)`` runs whole chunks of ``chunk_steps`` model steps
(1 ms at 40 kHz by default), each one compiled call, with the supervisor before and after each.
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
from actuator.control import supervisor as S
from actuator.control.config import (  # the gain names are the controller's: the firmware writes them by name
    GAINS,
    ControllerConfig,
    config_from_dict,
    config_to_dict,
    gain_of,
    resolved_limits,
)
from actuator.control.supervisor import STATES, TRACKING_LIMIT_RAD, WATCHDOG_TIMEOUT_S, fault_names
from actuator.errors import ConfigError, FaultError
from actuator.model import layout as L
from actuator.params import JointParams, load_preset
from actuator.simulation import JointModel
from firmware_iface.virtual_joint.drive_calibration import PARAMS as DRIVE_PARAMS
from firmware_iface.virtual_joint.drive_calibration import DriveSettings, Phase
from firmware_iface.virtual_joint.sensor_settings import PARAMS as SENSOR_PARAMS
from firmware_iface.virtual_joint.sensor_settings import SensorSettings

PROFILE_VERSION = 1.0
GAIN_RANGE = (-1e6, 1e6)
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


class JointFirmware:
    """One simulated joint with its firmware; time advances only through ``advance``."""

    def __init__(self, params: JointParams | str = "knee", gains: ControllerConfig | None = None, *,
                 watchdog_timeout_s: float = WATCHDOG_TIMEOUT_S, flash_path: str | Path | None = None, seed: int = 0,
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
        m = self.model
        # one joint's rows: views of the model's own arrays, which the supervisor writes in place
        self.sup = S.Supervisor([self.params], m.p[None], m.x[None], m.k[None], m.c[None], m.env[None],
                                limits=[self.limits], gravity_ff_nm=self.gains.gravity_feedforward_nm,
                                mode=self.gains.mode, watchdog_timeout_s=watchdog_timeout_s,
                                tracking_limit_rad=tracking_limit_rad)
        self.chunk_steps = chunk_steps
        self._chunk_u = np.zeros((chunk_steps, L.N_INPUTS))  # no external input: the drive is the controller's
        self._chunk_ref = np.zeros((chunk_steps, C.N_REF))
        self._x_safe = self.model.x.copy()[None]  # the state before the present chunk, finite
        self._bits = np.zeros(1, dtype=np.int64)
        self._t_after = np.zeros(1)
        self.rates_hz = dict(DEFAULT_RATES_HZ)
        self._own_counters = {"chunks": 0, "flash_saves": 0}
        # the drive's commutation settings and its motor calibration (the calibrating state)
        self.drive = DriveSettings(m.p, m.x, m.env, self.params.motor.current_limit_a)
        # its Kt and F/T compensation (sensor_settings): the calibrations' results, restored from flash at boot
        ft = self.params.ft_sensor
        self.sensor = SensorSettings(self.params.torque_constant_nm_per_a, (*ft.range_force_n, *ft.range_torque_nm))
        for name, value in (flash[1] if flash else {}).items():
            self.write_param(name, value)
        if flash and flash[2]:
            self.drive.from_flash(flash[2], str(self.flash_path))
        if flash and flash[3]:
            self.sensor.from_flash(flash[3], str(self.flash_path))
        self._apply_kt()

    # --- the supervisor's view of this joint ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return STATES[int(self.sup.state[0])]

    @property
    def mode(self) -> str:
        return S.MODE_NAMES[int(self.sup.mode[0])]

    @property
    def faults(self) -> int:
        return int(self.sup.faults[0])

    @property
    def ref(self) -> np.ndarray:
        """The controller's reference (position, velocity, torque): a view, written by commands."""
        return self.sup.ref[0]

    @property
    def watchdog_timeout_s(self) -> float:
        return float(self.sup.watchdog_timeout_s[0])

    @property
    def tracking_limit_rad(self) -> float:
        return float(self.sup.tracking_limit_rad[0])

    @property
    def last_command_t(self) -> float:
        """Joint time of the last accepted command (what the watchdog counts from)."""
        return float(self.sup.last_command_t[0])

    @property
    def stop_until_t(self) -> float:
        """Joint time a damped stop ends at (negative: none under way)."""
        return float(self.sup.stop_until_t[0])

    @property
    def counters(self) -> dict[str, int]:
        return {**{name: int(v[0]) for name, v in self.sup.counters.items()}, **self._own_counters}

    def counter(self, name: str) -> int:
        """One of ``counters`` (read at each telemetry tick: without building them all)."""
        own = self._own_counters.get(name)
        return own if own is not None else int(self.sup.counters[name][0])

    # --- time -------------------------------------------------------------------------------------------
    @property
    def t_s(self) -> float:
        return float(self.model.x[L.X_TIME])

    def advance(self, duration_s: float) -> None:
        """Run the joint for ``duration_s`` (rounded to whole chunks, at least one)."""
        chunk_s = self.chunk_steps * self.model.dt_s
        for _ in range(max(1, round(duration_s / chunk_s))):
            self.sup.before_chunk()
            phase = self._calibration_inputs()
            self._chunk_ref[:] = self.sup.ref[0]
            np.copyto(self._x_safe[0], self.model.x)
            rows, self._bits[0] = self.model.run(self._chunk_u, 1 if phase and phase.per_step else self.chunk_steps,
                                                 self._chunk_ref)
            if phase is not None:
                self.drive.keep(phase, rows)
            self._own_counters["chunks"] += 1
            self._t_after[0] = self._x_safe[0, L.X_TIME] + chunk_s
            self.sup.after_chunk(self._bits, self._x_safe, self._t_after)

    def _calibration_inputs(self) -> Phase | None:
        """During the drive's calibration, the chunk's d-axis current (its phase). The drive decides when its run is
        over: it then sets the supervisor's calibrating time to now, and the supervisor's rule moves the joint to
        idle; any other state ends the run early (aborted, nothing applied)."""
        if self.drive.run is None:
            return None
        if self.state != "calibrating":
            self.drive.stop(self._chunk_u, completed=False)
            return None
        phase = self.drive.inputs(self._chunk_u)
        if phase is None and self.drive.stop(self._chunk_u, completed=True):
            phase = self.drive.inputs(self._chunk_u)  # a second pass
        if phase is None:
            self.sup.calibrate_until_t[0] = self.t_s
        return phase

    # --- faults and states ---------------------------------------------------------------------------------
    def estop(self) -> None:
        self.sup.estop()

    def clear_faults(self) -> None:
        self.sup.clear_faults()

    def set_state(self, state: str) -> None:
        if state not in STATES or state == "fault":
            raise ConfigError(f"state {state!r} cannot be requested: choose idle, calibrating or closed_loop")
        if self.drive.run is not None and state != "calibrating":
            self.drive.stop(self._chunk_u, completed=False)  # asked to stop midway: nothing is applied
        if self.sup.set_state(None, STATES.index(state))[0]:
            raise FaultError(f"joint in fault ({', '.join(fault_names(self.faults))}): clear faults first",
                             faults=tuple(fault_names(self.faults)))
        if state == "calibrating" and self.drive.run is None:
            self.drive.start()
            self.sup.calibrate_until_t[0] = math.inf  # until the drive says its run is over

    def set_mode(self, mode: str) -> None:
        if mode not in C.MODES or mode == "relay":
            raise ConfigError(f"mode {mode!r} is not allowed: choose one of torque, velocity, position, "
                              "impedance, admittance")
        self.sup.set_mode(None, mode)

    # --- commands ------------------------------------------------------------------------------------------
    def command(self, mode: str, position_rad: float = 0.0, velocity_rad_s: float = 0.0,
                torque_nm: float = 0.0) -> bool:
        """A set-point for ``mode`` (it must be the active one); clamped to the joint's limits. Feeds the
        watchdog. Returns False (and counts it) when the joint is not in closed loop in that mode."""
        if mode not in C.MODES:
            self.sup.counters["rejected"][0] += 1
            return False
        ok, _ = self.sup.command(None, mode, np.array([[position_rad, velocity_rad_s, torque_nm]], dtype=float))
        return bool(ok[0])

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
        self.sup.set_limits(0, limits, gains.gravity_feedforward_nm)
        self.model.c[:] = vector
        self.model.c[C.C_MODE] = mode
        self.model.c[C.C_MGL] = gains.gravity_feedforward_nm if mgl else 0.0
        self._apply_kt()

    def _apply_kt(self) -> None:
        """The drive's Kt parameter into its controller's torque per amp (the compiled gains carry the preset's)."""
        self.model.c[C.C_TORQUE_PER_A] = self.sensor.kt_nm_per_a * self.params.reducer.ratio

    # --- parameters ------------------------------------------------------------------------------------------
    def param_names(self) -> tuple[str, ...]:
        return ("profile_version", "flash_saves", "watchdog_timeout_s", "tracking_limit_rad", *LIMIT_PARAMS,
                *self.rates_hz, *(f"gain.{g}" for g in GAINS), *DRIVE_PARAMS, *SENSOR_PARAMS)

    def read_param(self, name: str) -> float:
        if name.startswith("gain."):
            return self.read_gain(name[5:])
        if name == "profile_version":
            return PROFILE_VERSION
        if name == "flash_saves":
            return float(self._own_counters["flash_saves"])
        if name in ("watchdog_timeout_s", "tracking_limit_rad"):
            return float(getattr(self, name))
        if name in LIMIT_PARAMS:
            return float(getattr(self.limits, name))
        if name in self.rates_hz:
            return self.rates_hz[name]
        if name in DRIVE_PARAMS:
            return self.drive.read(name)
        if name in SENSOR_PARAMS:
            return self.sensor.read(name)
        raise ParamError("unknown_param", f"parameter {name!r} is unknown: allowed {', '.join(self.param_names())}")

    def write_param(self, name: str, value: float) -> None:
        """Set a parameter (``ParamError`` with the protocol's status when unknown, read-only or out of range)."""
        if name.startswith("gain."):
            return self.write_gain(name[5:], value)
        if name in ("profile_version", "flash_saves"):
            raise ParamError("read_only", f"parameter {name} is read-only")
        if name == "watchdog_timeout_s":
            self.sup.watchdog_timeout_s[0] = _in_range(name, value, 0.005, 10.0)
        elif name == "tracking_limit_rad":
            self.sup.tracking_limit_rad[0] = _in_range(name, value, 1e-3, 10.0)
        elif name in self.rates_hz:
            self.rates_hz[name] = _in_range(name, value, 0.0, MAX_RATE_HZ)
        elif name in DRIVE_PARAMS:
            if self.drive.run is not None:
                raise ParamError("read_only", f"parameter {name} cannot change while the drive calibrates")
            refused = self.drive.write(name, float(value))
            if refused:
                raise ParamError(refused, f"parameter {name} = {value!r} is read-only or out of range: allowed "
                                 f"{DRIVE_PARAMS[name]} (pole pairs a whole number; the calibration current at most "
                                 f"the motor's limit {self.drive.current_limit_a:g} A)")
        elif name in SENSOR_PARAMS:
            if self.sensor.write(name, float(value)):
                raise ParamError("out_of_range", f"parameter {name} = {value!r} is out of range: allowed "
                                 "[{:g}, {:g}]".format(*self.sensor.allowed(name)))
            self._apply_kt()
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
               "gains": config_to_dict(replace(self.gains, mode=self.mode)), "drive": self.drive.to_flash(),
               "sensor": self.sensor.to_flash()}
        tmp.write_text(tomli_w.dumps(doc), encoding="utf-8")
        tmp.replace(self.flash_path)  # atomic: a power cut never leaves half a flash
        self._own_counters["flash_saves"] += 1
        return self.flash_path

    def _load_flash(self) -> tuple[ControllerConfig, dict[str, float], dict, dict] | None:
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
        drive, sensor = data.get("drive", {}), data.get("sensor", {})
        for name, table in (("drive", drive), ("sensor", sensor)):
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: [{name}] must be a table of the drive's settings, got {table!r}")
        return (config_from_dict(data["gains"], f"{where} [gains]"), {k: float(v) for k, v in firmware.items()},
                drive, sensor)

    # --- telemetry -------------------------------------------------------------------------------------------
    def telemetry(self) -> dict[str, float | str | list[str]]:
        x, k = self.model.x, self.model.k
        # the state as Python floats once (exactly the array's values): the node asks at every 1 ms tick
        xs, ref = x.tolist(), self.ref.tolist()
        kt_n = self.sensor.kt_nm_per_a * self.params.reducer.ratio  # the drive's Kt parameter
        t_s, state, faults = xs[L.X_TIME], self.state, self.faults
        return {
            "t_s": t_s, "state": state, "mode": self.mode, "faults": fault_names(faults),
            "fault_bits": faults, "position_rad": xs[L.X_ENC_O], "velocity_rad_s": float(k[C.K_VEL]),
            "torque_nm": xs[L.X_IQ] * kt_n, "iq_a": xs[L.X_IQ], "id_a": xs[L.X_ID],
            "bus_voltage_v": float(self.model.env[L.E_BUS_V]), "winding_temp_c": xs[L.X_TW],
            "motor_encoder_rad": xs[L.X_ENC_M], "output_encoder_rad": xs[L.X_ENC_O],
            "housing_temp_c": xs[L.X_TH],
            "wrench": self.sensor.wrench(x[L.X_FT_MEAS:L.X_FT_MEAS + 6]).tolist(),
            "ft_saturated": int(xs[L.X_FT_SAT]),
            "limits_active": int(k[C.K_LIMITS]) if state == "closed_loop" else 0,
            "setpoint_position_rad": ref[C.R_POS], "setpoint_velocity_rad_s": ref[C.R_VEL],
            "joint_time_ms": round(t_s * 1e3) % 65536,
        }
