"""The drive's own calibration of its motor (issue 17, item 1): phase resistance and inductance, pole pairs and the
electrical offset of the motor encoder, run by the firmware in its ``calibrating`` state as ODrive's and moteus's
drives run theirs, its results kept as the joint's parameters (``motor.*``, read with param_read) and in its flash.

The drive commutates on its motor encoder: electrical angle = pole_pairs x encoder angle - electrical offset. Both
numbers are the drive's settings (``layout.P_DRIVE_PP``, ``P_ELEC_OFFSET``); a wrong one turns the drive's frame
away from the rotor's, and the torque per amp falls as cos(delta) (``electrics.commutation_error``). The routine
finds them from what the drive itself sees, its voltages, its currents and its motor encoder, with the current
vector at an angle of its own choosing (the angle override ``X_ANGLE_ON``) instead of the encoder's:

1. align: the current ramps on the d axis at electrical angle 0; the rotor turns until its d axis lies on the current
   (friction and cogging leave a small lag) and settles;
2. resistance: two d-axis levels, half and full calibration current, each held; R = difference of the mean d voltage
   over the difference of the mean d current (the rotor at rest on the current: no back-EMF and no torque; a
   constant voltage offset of an inverter cancels in the difference), at the winding temperature the drive reads;
3. inductance: a sine on the d current about the full level; the drive knows its current loop's timing (the voltage
   computed on one step is applied on the next, the PWM period ``dt``), so the exact discrete RL step
   i[k+1] = a i[k] + b v[k] is fitted by least squares and L = -R dt / ln a with R = (1 - a) / b;
4. pole pairs and offset: the current vector turns at a constant electrical rate through one motor revolution's worth
   of the configured pole pairs, forward then back, centred on where the rotor started, and the rotor follows. The
   slope of the commanded electrical angle against the encoder angle is the pole-pair count; the electrical offset
   is the circular mean of pp x encoder angle - commanded angle over both directions (the lag from friction changes
   sign with the direction and cancels; cogging and the encoder's once-per-turn error average out over the whole
   revolution). A count found other than the configured one is applied and the sweeps run again with it (a second
   pass), so that the offset is always taken over a whole revolution.

A rotor that does not follow (blocked, or too little current for its friction), a slope far from a whole number, or
a current the drive cannot reach on its bus voltage fail the calibration: the drive keeps its previous settings and
reports the reason (``STATUS``), as a real drive sets an error and goes idle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from actuator.model import layout as L

STATUS = {0: "never_run", 1: "ok", 2: "not_following", 3: "pole_pairs_not_integer", 4: "current_not_reached",
          5: "aborted"}
STATUS_CODE = {name: code for code, name in STATUS.items()}
CURRENT_FRACTION = 0.4   # calibration current, of the motor's current limit (ODrive's default 10 A of a 25-40 A motor)
ALIGN_RAMP_S, ALIGN_HOLD_S = 0.1, 0.3
LEVEL_S = 0.15           # each resistance level; the mean is taken over its second half
SINE_S, SINE_HZ, SINE_FRACTION = 0.1, 200.0, 0.2
SWEEP_MOTOR_RAD_S = 4.0  # the rotor's speed during the sweep: a revolution in 1.6 s, cogging at N_c x 0.64 Hz
SWEEP_HOLD_S = 0.2
# the sweep runs a tenth of a revolution on either side of the one it fits (the rotor catching up at the ends): the
# fit keeps exactly one revolution, over which cogging and the encoder's once-per-turn error average out
EDGE_FRACTION = 0.1
FOLLOW_FRACTION = 0.125  # the rotor must turn this fraction of the revolution asked for (a count 8x too small)
INTEGER_TOLERANCE = 0.1  # the slope must be within this of a whole number of pole pairs
REACHED_FRACTION = 0.9   # the d current must reach this fraction of its level
# the drive's state kept after each chunk: its d current and voltage, its motor encoder, its own angle, the winding
SAMPLED = {"id_drive_a": L.X_ID_DRIVE, "vd_v": L.X_VD, "motor_encoder_rad": L.X_ENC_M, "drive_angle_rad": L.X_ANGLE,
           "winding_temp_c": L.X_TW}


@dataclass
class Phase:
    name: str
    duration_s: float
    current_a: object          # callable (seconds into the phase) -> d-axis current, A
    angle_rate_rad_s: float = 0.0
    per_step: bool = False     # record every model step (the inductance fit) rather than every chunk


@dataclass
class DriveCalibration:
    """One run of the routine on one joint: the schedule (``phases``), what each phase recorded, the result."""

    pole_pairs_config: int
    current_a: float
    dt_s: float
    phases: list[Phase] = field(default_factory=list)
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)       # trace rows of the per-step phases
    samples: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)  # the drive's state after each chunk

    @classmethod
    def plan(cls, pole_pairs_config: int, current_a: float, dt_s: float, sweep_only: bool = False
             ) -> DriveCalibration:
        """The schedule; ``sweep_only``: the second pass, after the first found another pole-pair count (its
        revolution was then not whole): align, and the sweeps again with the count found."""
        i = current_a
        rate = SWEEP_MOTOR_RAD_S * pole_pairs_config
        sweep_s = (1 + 2 * EDGE_FRACTION) * 2 * math.pi / SWEEP_MOTOR_RAD_S  # a revolution between the two edges
        w = 2 * math.pi * SINE_HZ
        half_s = 0.5 * sweep_s
        # the fitted sweeps are centred on where the rotor started (it first backs off half a sweep, and returns at
        # the end): a load that depends on the position, the link's gravity, then lags the rotor as much ahead of
        # the start as behind it, and its share of the offset cancels to first order
        phases = [Phase("align", ALIGN_RAMP_S, lambda t: i * min(t / ALIGN_RAMP_S, 1.0)),
                  Phase("settle", ALIGN_HOLD_S, lambda t: i),
                  Phase("r_low", LEVEL_S, lambda t: 0.5 * i), Phase("r_high", LEVEL_S, lambda t: i),
                  Phase("inductance", SINE_S, lambda t: i * (1.0 + SINE_FRACTION * math.sin(w * t)), per_step=True),
                  Phase("back_off", half_s, lambda t: i, -rate), Phase("hold", SWEEP_HOLD_S, lambda t: i),
                  Phase("forward", sweep_s, lambda t: i, rate), Phase("hold_end", SWEEP_HOLD_S, lambda t: i),
                  Phase("backward", sweep_s, lambda t: i, -rate), Phase("hold_back", SWEEP_HOLD_S, lambda t: i),
                  Phase("return", half_s, lambda t: i, rate), Phase("release", 0.05, lambda t: 0.0)]
        if sweep_only:
            phases = phases[:2] + phases[5:]
        return cls(pole_pairs_config, current_a, dt_s, phases)

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def phase_at(self, t_s: float) -> tuple[Phase | None, float]:
        """The phase at ``t_s`` into the run and the time into it (None after the last)."""
        for p in self.phases:
            if t_s < p.duration_s - 1e-12:
                return p, t_s
            t_s -= p.duration_s
        return None, 0.0

    def keep(self, phase: Phase, x: np.ndarray, rows: np.ndarray) -> None:
        """What the drive saw over one chunk of ``phase``: its state after it (``SAMPLED``) and, for a per-step
        phase, the chunk's trace rows."""
        self.samples.setdefault(phase.name, []).append(tuple(float(x[i]) for i in SAMPLED.values()))
        if phase.per_step:
            self.rows.setdefault(phase.name, []).append(rows[:-1])  # the last row is the next chunk's first

    def sampled(self, phase: str, name: str) -> np.ndarray:
        col = list(SAMPLED).index(name)
        return np.array([s[col] for s in self.samples.get(phase, [])])

    def recorded(self, phase: str, name: str) -> np.ndarray:
        col = L.TRACE_FIELDS.index(name)
        return np.concatenate([r[:, col] for r in self.rows[phase]]) if phase in self.rows else np.empty(0)


@dataclass(frozen=True)
class DriveResult:
    status: str
    resistance_ohm: float = math.nan
    resistance_u_ohm: float = math.nan
    resistance_temp_c: float = math.nan
    inductance_h: float = math.nan
    inductance_u_h: float = math.nan
    pole_pairs: int = 0
    pole_pairs_estimate: float = math.nan
    electrical_offset_rad: float = math.nan
    electrical_offset_u_rad: float = math.nan


def _second_half(a: np.ndarray) -> np.ndarray:
    return a[a.size // 2:]


def fit_resistance(cal: DriveCalibration) -> tuple[float, float, float]:
    """(R, its standard uncertainty, the winding temperature): the two levels' mean d voltage and current."""
    v = [_second_half(cal.sampled(p, "vd_v")) for p in ("r_low", "r_high")]
    i = [_second_half(cal.sampled(p, "id_drive_a")) for p in ("r_low", "r_high")]
    di = float(np.mean(i[1]) - np.mean(i[0]))
    r = float(np.mean(v[1]) - np.mean(v[0])) / di
    # the means' standard errors, each from its level's scatter about R i (what R i does not explain)
    var = sum(float(np.var(vk - r * ik)) / max(vk.size - 1, 1) for vk, ik in zip(v, i, strict=True))
    temp = float(np.mean(cal.sampled("r_high", "winding_temp_c")))
    return r, math.sqrt(var) / abs(di), temp


def fit_inductance(id_drive: np.ndarray, vd: np.ndarray, dt_s: float) -> tuple[float, float, float]:
    """(L, its standard uncertainty, R at the sine's frequency) from rows recorded every step: row k holds the current
    sampled at the start of step k - 1 and the voltage computed then, applied on step k, so
    i[k + 2] = a i[k + 1] + b v[k] (the d axis at rest: no speed voltage)."""
    y, x1, x2 = id_drive[2:], id_drive[1:-1], vd[:-2]
    a_mat = np.column_stack([x1, x2])
    coef, *_ = np.linalg.lstsq(a_mat, y, rcond=None)
    a, b = (float(c) for c in coef)
    resid = y - a_mat @ coef
    s2 = float(resid @ resid) / max(y.size - 2, 1)
    cov = s2 * np.linalg.pinv(a_mat.T @ a_mat)
    r_hf = (1.0 - a) / b
    ind = -r_hf * dt_s / math.log(a)
    # L = -dt (1 - a) / (b ln a): its gradient in (a, b), through the fit's covariance
    grad = np.array([ind * (-1.0 / (1.0 - a) - 1.0 / (a * math.log(a))), -ind / b])
    return ind, float(math.sqrt(max(grad @ cov @ grad, 0.0))), r_hf


def _wrap(a: np.ndarray | float) -> np.ndarray | float:
    return (np.asarray(a) + math.pi) % (2 * math.pi) - math.pi


def fit_commutation(cal: DriveCalibration) -> tuple[str, int, float, float, float]:
    """(status, pole pairs, their estimate, electrical offset, its standard uncertainty) from the two sweeps."""
    sweeps = []
    for phase in ("forward", "backward"):
        enc, cmd = cal.sampled(phase, "motor_encoder_rad"), cal.sampled(phase, "drive_angle_rad")
        edge = round(EDGE_FRACTION / (1 + 2 * EDGE_FRACTION) * enc.size)
        enc, cmd = enc[edge:enc.size - edge], cmd[edge:cmd.size - edge]
        # the configured count asks for a whole revolution; a count k times too small turns the rotor 1/k of it,
        # a blocked rotor only wobbles within a pole pitch
        if enc.size < 10 or np.ptp(enc) < FOLLOW_FRACTION * 2 * math.pi:
            return "not_following", 0, math.nan, math.nan, math.nan
        sweeps.append((enc, cmd))
    estimate = float(np.mean([np.polyfit(enc, cmd, 1)[0] for enc, cmd in sweeps]))
    pp = round(estimate)
    if pp < 1 or abs(estimate - pp) > INTEGER_TOLERANCE:
        return "pole_pairs_not_integer", 0, estimate, math.nan, math.nan
    # per direction the circular mean of pp theta_enc - theta_cmd; the offset is their circular mean (the lags
    # cancel), its uncertainty the scatter about each direction's mean over the samples
    means, scatter = [], []
    for enc, cmd in sweeps:
        e = pp * enc - cmd
        m = math.atan2(float(np.mean(np.sin(e))), float(np.mean(np.cos(e))))
        means.append(m)
        scatter.append(np.asarray(_wrap(e - m)))
    offset = float(_wrap(math.atan2(sum(math.sin(m) for m in means), sum(math.cos(m) for m in means))))
    resid = np.concatenate(scatter)
    return "ok", pp, estimate, offset, float(np.std(resid) / math.sqrt(resid.size))


def analyse(cal: DriveCalibration, first: DriveResult | None = None) -> DriveResult:
    """The run's result (``status`` "ok" or the reason it failed); a second pass takes R and L from ``first``."""
    level = _second_half(cal.sampled("settle", "id_drive_a"))
    if level.size == 0 or np.mean(level) < REACHED_FRACTION * cal.current_a:
        return DriveResult("current_not_reached")
    if first is None:
        r, r_u, temp = fit_resistance(cal)
        ind, ind_u, _ = fit_inductance(cal.recorded("inductance", "id_drive_a"), cal.recorded("inductance", "vd_v"),
                                       cal.dt_s)
    else:
        r, r_u, temp, ind, ind_u = (first.resistance_ohm, first.resistance_u_ohm, first.resistance_temp_c,
                                    first.inductance_h, first.inductance_u_h)
    status, pp, estimate, offset, offset_u = fit_commutation(cal)
    if status != "ok":
        return DriveResult(status, r, r_u, temp, ind, ind_u, pp, estimate)
    return DriveResult("ok", r, r_u, temp, ind, ind_u, pp, estimate, offset, offset_u)


# parameters of the joint (native profile ids 32-42): name -> writable range (None: read-only)
PARAMS: dict[str, tuple[float, float] | None] = {
    "motor.calibration_status": None, "motor.phase_resistance_ohm": None, "motor.phase_resistance_u_ohm": None,
    "motor.resistance_temp_c": None, "motor.phase_inductance_h": None, "motor.phase_inductance_u_h": None,
    "motor.pole_pairs": (1.0, 100.0), "motor.pole_pairs_estimate": None,
    "motor.electrical_offset_rad": (-math.pi, math.pi), "motor.electrical_offset_u_rad": None,
    "motor.calibration_current_a": (0.0, math.inf),
}
_RESULT_PARAMS = {"motor.phase_resistance_ohm": "resistance_ohm", "motor.phase_resistance_u_ohm": "resistance_u_ohm",
                  "motor.resistance_temp_c": "resistance_temp_c", "motor.phase_inductance_h": "inductance_h",
                  "motor.phase_inductance_u_h": "inductance_u_h", "motor.pole_pairs_estimate": "pole_pairs_estimate",
                  "motor.electrical_offset_u_rad": "electrical_offset_u_rad"}


class DriveSettings:
    """The drive's commutation settings and calibration on one simulated joint: what the firmware delegates to when
    asked to calibrate, for its ``motor.*`` parameters and for its flash. Works on the model's arrays in place."""

    def __init__(self, p: np.ndarray, x: np.ndarray, env: np.ndarray, current_limit_a: float) -> None:
        self.p, self.x, self.env = p, x, env
        self.current_limit_a = current_limit_a
        self.current_a = CURRENT_FRACTION * current_limit_a
        self.result = DriveResult("never_run")
        self.run: DriveCalibration | None = None
        self._first: DriveResult | None = None  # the first pass's result while a second runs
        self._pp_before = float(p[L.P_DRIVE_PP])
        self._t0 = 0.0

    # --- a run ----------------------------------------------------------------------------------------------------
    def start(self, sweep_only: bool = False) -> None:
        """Begin a run (or its second pass) at the model's present time."""
        self.run = DriveCalibration.plan(int(self.p[L.P_DRIVE_PP]), self.current_a, float(self.p[L.P_DT]),
                                         sweep_only)
        self._t0 = float(self.x[L.X_TIME])
        self.x[[L.X_ANGLE_ON, L.X_ANGLE, L.X_ANGLE_RATE]] = 1.0, 0.0, 0.0
        if not sweep_only:
            self._first = None
            self._pp_before = float(self.p[L.P_DRIVE_PP])

    def inputs(self, u: np.ndarray) -> Phase | None:
        """The d-axis current of the next chunk (written into ``u``) and its phase; None once the run is over."""
        assert self.run is not None
        dt = float(self.p[L.P_DT])
        phase, t_in = self.run.phase_at(float(self.x[L.X_TIME]) - self._t0)
        if phase is None:
            return None
        u[:, L.U_ID_CMD] = [phase.current_a(t_in + k * dt) for k in range(u.shape[0])]
        self.x[L.X_ANGLE_RATE] = phase.angle_rate_rad_s
        return phase

    def keep(self, phase: Phase, rows: np.ndarray) -> None:
        assert self.run is not None
        self.run.keep(phase, self.x, rows)

    def stop(self, u: np.ndarray, completed: bool) -> bool:
        """End the schedule: analysed and applied when ``completed`` and good, else ``aborted`` (an e-stop, a fault,
        a request): the drive's settings are left as they were. A first pass that found another pole-pair count than
        it ran with applies it and starts the second pass: True (the run goes on)."""
        result = analyse(self.run, self._first) if completed and self.run is not None else DriveResult("aborted")
        if result.status == "ok" and self._first is None and result.pole_pairs != self.run.pole_pairs_config:
            self._first = result
            self.p[L.P_DRIVE_PP] = result.pole_pairs
            self.start(sweep_only=True)
            return True
        if result.status == "ok":
            self.p[L.P_DRIVE_PP] = result.pole_pairs
            self.p[L.P_ELEC_OFFSET] = result.electrical_offset_rad
        elif self._first is not None:
            self.p[L.P_DRIVE_PP] = self._pp_before  # the second pass failed: back to the count the drive had
        self.result = result
        self.run = None
        self._first = None
        self.x[[L.X_ANGLE_ON, L.X_ANGLE_RATE]] = 0.0
        u[:, L.U_ID_CMD] = 0.0
        return False

    # --- parameters -----------------------------------------------------------------------------------------------
    @property
    def electrical_offset_rad(self) -> float:
        """The drive's offset; while it is the factory's (NaN in the model), the value the factory wrote: the
        configured pole pairs times the motor encoder's zero as mounted."""
        e = float(self.p[L.P_ELEC_OFFSET])
        return float(_wrap(self.p[L.P_DRIVE_PP] * self.env[L.E_ENC_M_OFFSET])) if math.isnan(e) else e

    def read(self, name: str) -> float:
        if name == "motor.calibration_status":
            return float(STATUS_CODE[self.result.status])
        if name == "motor.pole_pairs":
            return float(self.p[L.P_DRIVE_PP])
        if name == "motor.electrical_offset_rad":
            return self.electrical_offset_rad
        if name == "motor.calibration_current_a":
            return self.current_a
        return float(getattr(self.result, _RESULT_PARAMS[name]))

    def write(self, name: str, value: float) -> str | None:
        """Apply a writable setting; returns the refusal's reason (``read_only``, ``out_of_range``) or None."""
        allowed = PARAMS[name]
        if allowed is None:
            return "read_only"
        hi = self.current_limit_a if name == "motor.calibration_current_a" else allowed[1]
        if not (math.isfinite(value) and allowed[0] <= value <= hi) or (name == "motor.calibration_current_a"
                                                                         and value <= 0.0):
            return "out_of_range"
        if name == "motor.pole_pairs":
            if value != round(value):
                return "out_of_range"
            self.p[L.P_DRIVE_PP] = value
        elif name == "motor.electrical_offset_rad":
            self.p[L.P_ELEC_OFFSET] = value
        else:
            self.current_a = value
        return None

    # --- flash ------------------------------------------------------------------------------------------------------
    def to_flash(self) -> dict[str, float | str]:
        """What the flash keeps: the settings (the offset only once set: the factory's stays the factory's) and the
        last calibration's result."""
        doc: dict[str, float | str] = {"pole_pairs": float(self.p[L.P_DRIVE_PP]),
                                       "calibration_current_a": self.current_a, "status": self.result.status}
        if not math.isnan(self.p[L.P_ELEC_OFFSET]):
            doc["electrical_offset_rad"] = float(self.p[L.P_ELEC_OFFSET])
        for name, attr in _RESULT_PARAMS.items():
            value = getattr(self.result, attr)
            if math.isfinite(value):
                doc[name.removeprefix("motor.")] = float(value)
        return doc

    def from_flash(self, doc: dict, where: str) -> None:
        from actuator.errors import ConfigError

        allowed = {"pole_pairs", "calibration_current_a", "status", "electrical_offset_rad",
                   *(n.removeprefix("motor.") for n in _RESULT_PARAMS)}
        unknown = sorted(set(doc) - allowed)
        if unknown or doc.get("status", "never_run") not in STATUS_CODE:
            raise ConfigError(f"{where} [drive]: keys allowed {', '.join(sorted(allowed))} and status one of "
                              f"{', '.join(STATUS_CODE)}; got {', '.join(unknown) or repr(doc.get('status'))}")
        for key in ("pole_pairs", "electrical_offset_rad", "calibration_current_a"):
            if key in doc and self.write(f"motor.{key}", float(doc[key])):
                raise ConfigError(f"{where} [drive] {key} = {doc[key]!r} is out of range")
        fields_ = {attr: float(doc[name.removeprefix("motor.")]) for name, attr in _RESULT_PARAMS.items()
                   if name.removeprefix("motor.") in doc}
        self.result = DriveResult(doc.get("status", "never_run"), **fields_,
                                  pole_pairs=int(self.p[L.P_DRIVE_PP]) if doc.get("status") == "ok" else 0,
                                  electrical_offset_rad=self.electrical_offset_rad)
