"""The firmware's supervision as arrays over n joints: states, mode rules, set-point clamping, the watchdog and its
damped stop, the tracking check, faults, and the recovery of a diverged state.

The simulated firmware (``firmware_iface.virtual_joint.firmware``) runs it with n = 1 around one joint's model, the
production batch (``firmware_iface.experiments.batch``) with n = N around the batch kernel: the two behave alike by
construction. It owns no time and no I/O. It reads each joint's own clock from its state row (``X_TIME``), writes the
controller's mode, gravity feedforward and reference, and is told what a chunk of the model reported (fault bits, the
state before it, the largest position error over it).

States: ``idle`` (drive off), ``calibrating`` (a short encoder alignment, then idle), ``closed_loop`` (the controller
runs in the selected mode), ``fault`` (drive off; left only by ``clear_faults``).

* watchdog: in closed loop, no accepted command for ``watchdog_timeout_s`` -> a damped stop (velocity 0 for
  ``STOP_TIME_S``, or until still), then the drive off and ``watchdog`` latched;
* commands are accepted only in closed loop, in the selected mode, outside a damped stop, when finite; they are
  clamped to the joint's limits (and counted);
* model faults latch and turn the drive off, F/T saturation is reported while present; e-stop latches ``estop``;
* in position mode a tracking error beyond ``tracking_limit_rad`` latches ``tracking_error``;
* a state that is not finite or diverges (the joint's speed beyond ``DIVERGED_SPEED_FACTOR`` times its velocity
  limit: gains that make a loop unstable) is put back at rest where it last was finite, ``unstable`` latched.

Selections (``sel``) are boolean masks over the joints, or None for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from actuator.control import cascade as C
from actuator.control.config import SafetyLimits
from actuator.control.pid import N_PID_STATE
from actuator.model import layout as L
from actuator.model.sensors import prime_encoders
from actuator.params import JointParams

IDLE, CALIBRATING, CLOSED_LOOP, FAULT = range(4)
STATES = ("idle", "calibrating", "closed_loop", "fault")
MODE_NAMES = {code: name for name, code in C.MODES.items()}
FAULT_WATCHDOG = 64
FAULT_TRACKING = 128
FAULT_ESTOP = 256
FAULT_UNSTABLE = 512
FAULT_NAMES = {**L.FAULT_NAMES, FAULT_WATCHDOG: "watchdog", FAULT_TRACKING: "tracking_error", FAULT_ESTOP: "estop",
               FAULT_UNSTABLE: "unstable"}
DRIVE_OFF_FAULTS = L.FATAL_FAULTS | FAULT_WATCHDOG | FAULT_ESTOP | FAULT_TRACKING | FAULT_UNSTABLE
LATCHING = ~L.FAULT_FT_SATURATION & 0xFFFF  # F/T saturation is reported while present, the rest latch
# a joint turning faster than this many times its velocity limit is a loop diverging, not motion: the safety limiter
# holds a stable loop's speed near the limit, and a real motor cannot go far past it on its bus voltage
DIVERGED_SPEED_FACTOR = 10.0
STOP_TIME_S = 0.2
STILL_RAD_S = 1e-3  # a damped stop ends early once the joint is this still
CALIBRATION_S = 0.05
WATCHDOG_TIMEOUT_S = 0.1
TRACKING_LIMIT_RAD = 0.5
COUNTERS = ("commands", "clamped", "rejected", "watchdog_trips", "diverged")
_PIDS = slice(C.K_POS_PID, C.K_VEL_PID + N_PID_STATE)


def fault_names(bits: int) -> list[str]:
    return [name for bit, name in FAULT_NAMES.items() if int(bits) & bit]


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


# --- the per-chunk rules, compiled: called every millisecond for one joint (the firmware) or for a batch ---------
_COMMANDS, _CLAMPED, _REJECTED, _TRIPS, _DIVERGED = range(len(COUNTERS))


@njit(cache=True, nogil=True)
def _raise(j: int, bits: int, state: np.ndarray, faults: np.ndarray, ref: np.ndarray, c: np.ndarray) -> None:
    """Latch ``bits`` on joint j; a drive-off fault puts it in fault with the drive off (torque mode, no reference,
    no gravity feedforward)."""
    faults[j] |= bits
    if bits & DRIVE_OFF_FAULTS:
        state[j] = FAULT
        c[j, C.C_MODE] = C.MODE_TORQUE
        c[j, C.C_MGL] = 0.0
        ref[j, :] = 0.0


@njit(cache=True, nogil=True)
def command_kernel(sel: np.ndarray, mode: int, values: np.ndarray, t_s: np.ndarray, state: np.ndarray,
                   modes: np.ndarray, stop_until_t: np.ndarray, lo: np.ndarray, hi: np.ndarray, ref: np.ndarray,
                   last_command_t: np.ndarray, counts: np.ndarray, clamped: np.ndarray, ok: np.ndarray) -> int:
    """``Supervisor.command`` over ``values`` (n, m, 3): ``clamped`` and ``ok`` are the outputs. Returns 0."""
    n, m = values.shape[0], values.shape[1]
    for j in range(n):
        ok[j] = False
        if not sel[j]:
            continue
        finite, changed = True, False
        for k in range(m):
            for i in range(3):
                v = values[j, k, i]
                finite = finite and np.isfinite(v)
                w = min(max(v, lo[j, i]), hi[j, i])
                clamped[j, k, i] = w
                changed = changed or w != v
        if not (finite and state[j] == CLOSED_LOOP and modes[j] == mode and stop_until_t[j] < 0.0):
            counts[j, _REJECTED] += 1
            continue
        ok[j] = True
        counts[j, _COMMANDS] += 1
        if changed:
            counts[j, _CLAMPED] += 1
        ref[j, :] = clamped[j, m - 1, :]
        last_command_t[j] = t_s[j]
    return 0


@njit(cache=True, nogil=True)
def before_chunk_kernel(x: np.ndarray, k: np.ndarray, c: np.ndarray, state: np.ndarray, faults: np.ndarray,
                        ref: np.ndarray, calibrate_until_t: np.ndarray, stop_until_t: np.ndarray,
                        last_command_t: np.ndarray, watchdog_timeout_s: np.ndarray, gravity_ff_nm: np.ndarray,
                        counts: np.ndarray) -> int:
    """``Supervisor.before_chunk``. Returns 0."""
    for j in range(x.shape[0]):
        t = x[j, L.X_TIME]
        if state[j] == CALIBRATING and t >= calibrate_until_t[j]:
            state[j] = IDLE
        if state[j] != CLOSED_LOOP:
            continue
        if stop_until_t[j] >= 0.0:
            if t >= stop_until_t[j] or abs(k[j, C.K_VEL]) < STILL_RAD_S:
                stop_until_t[j] = -1.0
                _raise(j, FAULT_WATCHDOG, state, faults, ref, c)
        elif t - last_command_t[j] > watchdog_timeout_s[j]:
            # damped stop: hold zero velocity through the velocity loop, then drive off and latch
            counts[j, _TRIPS] += 1
            stop_until_t[j] = t + STOP_TIME_S
            c[j, C.C_MODE] = C.MODE_VELOCITY
            c[j, C.C_MGL] = gravity_ff_nm[j]
            ref[j, :] = 0.0
    return 0


@njit(cache=True, nogil=True)
def after_chunk_kernel(bits: np.ndarray, x: np.ndarray, k: np.ndarray, c: np.ndarray, state: np.ndarray,
                       modes: np.ndarray, faults: np.ndarray, ref: np.ndarray, stop_until_t: np.ndarray,
                       tracking_limit_rad: np.ndarray, diverged_rad_s: np.ndarray, position_error_rad: np.ndarray,
                       use_error: bool, diverged: np.ndarray) -> int:
    """``Supervisor.after_chunk`` but the recovery of the diverged joints (``diverged``, an output), which the
    wrapper does. Returns how many diverged."""
    count = 0
    for j in range(x.shape[0]):
        healthy = abs(x[j, L.X_WL]) <= diverged_rad_s[j]  # False for NaN too
        for i in range(x.shape[1]):
            healthy = healthy and np.isfinite(x[j, i])
        for i in range(k.shape[1]):
            healthy = healthy and np.isfinite(k[j, i])
        diverged[j] = not healthy
        if not healthy:
            count += 1
            continue
        faults[j] = (faults[j] & LATCHING) | (L.FAULT_FT_SATURATION if x[j, L.X_FT_SAT] != 0.0 else 0)
        latch = bits[j] & LATCHING
        if latch:
            _raise(j, latch, state, faults, ref, c)
        if state[j] == CLOSED_LOOP and modes[j] == C.MODE_POSITION and stop_until_t[j] < 0.0:
            error = position_error_rad[j] if use_error else abs(ref[j, C.R_POS] - x[j, L.X_ENC_O])
            if error > tracking_limit_rad[j]:
                _raise(j, FAULT_TRACKING, state, faults, ref, c)
    return count


class Supervisor:
    """The firmware state of n joints over their model arrays ``P, X, K, C, ENV`` (rows per joint, written in place:
    for one joint pass ``model.x[None]`` and the like, views of the model's own arrays)."""

    def __init__(self, params_list: Sequence[JointParams], P: np.ndarray, X: np.ndarray, K: np.ndarray,
                 C_: np.ndarray, ENV: np.ndarray, *, limits: Sequence[SafetyLimits], gravity_ff_nm: float,
                 mode: str, watchdog_timeout_s: float = WATCHDOG_TIMEOUT_S,
                 tracking_limit_rad: float = TRACKING_LIMIT_RAD) -> None:
        n = X.shape[0]
        self.params_list = list(params_list)
        self.P, self.X, self.K, self.C, self.ENV = P, X, K, C_, ENV
        self.lo, self.hi = np.zeros((n, C.N_REF)), np.zeros((n, C.N_REF))
        self.gravity_ff_nm = np.zeros(n)
        for j, lim in enumerate(limits):
            self.set_limits(j, lim, gravity_ff_nm)
        self.watchdog_timeout_s = np.full(n, float(watchdog_timeout_s))
        self.tracking_limit_rad = np.full(n, float(tracking_limit_rad))
        self.diverged_rad_s = DIVERGED_SPEED_FACTOR * np.array([p.limits.velocity_max_rad_s for p in params_list])
        self.state = np.full(n, IDLE, dtype=np.int64)
        self.mode = np.full(n, C.MODES[mode], dtype=np.int64)
        self.faults = np.zeros(n, dtype=np.int64)
        self.ref = np.zeros((n, C.N_REF))
        self.last_command_t = np.zeros(n)
        self.stop_until_t = np.full(n, -1.0)
        self.calibrate_until_t = np.full(n, -1.0)
        self._counts = np.zeros((n, len(COUNTERS)), dtype=np.int64)
        self.counters = {name: self._counts[:, i] for i, name in enumerate(COUNTERS)}  # views, by name
        self._no_error = np.zeros(n)
        self._all = np.ones(n, dtype=bool)
        self._apply_drive(self._all)
        self._compile()

    def _compile(self) -> None:
        """Compile (or load from Numba's cache) the kernels a running joint calls later, here, where nothing is timed:
        on a cold clone the first command or e-stop would otherwise stall a paced joint for seconds of compiling, its
        heartbeat lost (seen). Calls that change nothing: no joint selected, no fault bit."""
        none = np.zeros(self.n, dtype=bool)
        self.command(none, MODE_NAMES[int(self.mode[0])], np.zeros((self.n, C.N_REF)))
        self.command(none, MODE_NAMES[int(self.mode[0])], np.zeros((self.n, 1, C.N_REF)), np.zeros(self.n))
        _raise(0, 0, self.state, self.faults, self.ref, self.C)
        before_chunk_kernel(self.X, self.K, self.C, self.state, self.faults, self.ref, self.calibrate_until_t,
                            self.stop_until_t, self.last_command_t, self.watchdog_timeout_s, self.gravity_ff_nm,
                            self._counts)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def _sel(self, sel: np.ndarray | None) -> np.ndarray:
        return self._all if sel is None else sel

    def set_limits(self, j: int, limits: SafetyLimits, gravity_ff_nm: float) -> None:
        """Joint j's set-point window (position, velocity, torque) and gravity feedforward, from its gains."""
        self.lo[j] = (limits.position_min_rad, -limits.velocity_max_rad_s, -limits.torque_max_nm)
        self.hi[j] = (limits.position_max_rad, limits.velocity_max_rad_s, limits.torque_max_nm)
        self.gravity_ff_nm[j] = gravity_ff_nm

    # --- states and modes -------------------------------------------------------------------------------------
    def set_state(self, sel: np.ndarray | None, state: int) -> np.ndarray:
        """Request ``state`` (IDLE, CALIBRATING or CLOSED_LOOP); returns the joints that refused it: those in fault
        (a fault is left only by ``clear_faults``; idle asked of a faulted joint is no change)."""
        sel = self._sel(sel)
        faulted = sel & (self.state == FAULT)
        go = sel & ~faulted
        self.state[go] = state
        if state == CALIBRATING:
            self.calibrate_until_t[go] = self.X[go, L.X_TIME] + CALIBRATION_S
        if state == CLOSED_LOOP:
            # fresh loops: integrators from before the drive was off must not kick the joint
            self.K[go, _PIDS] = 0.0
            self.last_command_t[go] = self.X[go, L.X_TIME]
            self._hold(go)
        self._apply_drive(go)
        return faulted if state != IDLE else np.zeros_like(faulted)

    def set_mode(self, sel: np.ndarray | None, mode: str) -> None:
        """Select ``mode``; the reference holds the present output position until a set-point comes."""
        sel = self._sel(sel)
        self.mode[sel] = C.MODES[mode]
        self._hold(sel)
        self._apply_drive(sel)

    def _hold(self, sel: np.ndarray) -> None:
        self.ref[sel] = 0.0
        self.ref[sel, C.R_POS] = self.X[sel, L.X_ENC_O]

    def _apply_drive(self, sel: np.ndarray) -> None:
        """Controller mode and reference for the state: only closed loop drives current."""
        closed = sel & (self.state == CLOSED_LOOP)
        self.C[closed, C.C_MODE] = self.mode[closed]
        self.C[closed, C.C_MGL] = self.gravity_ff_nm[closed]
        off = sel & ~closed
        self.C[off, C.C_MODE] = C.MODE_TORQUE
        self.C[off, C.C_MGL] = 0.0
        self.ref[off] = 0.0

    # --- commands ----------------------------------------------------------------------------------------------
    def command(self, sel: np.ndarray | None, mode: str, values: np.ndarray,
                t_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Set-points (position, velocity, torque) for ``mode``: ``values`` (n, 3), or (n, m, 3) for m ticks in a
        row, the last of which stays the reference. Returns (accepted, values clamped to the limits). An accepted
        command feeds the watchdog, as of ``t_s`` (default: each joint's clock)."""
        ticks = np.ascontiguousarray(values, dtype=np.float64).reshape(self.n, -1, C.N_REF)
        clamped, ok = np.empty_like(ticks), np.empty(self.n, dtype=np.bool_)
        command_kernel(self._sel(sel), C.MODES[mode], ticks, self.X[:, L.X_TIME] if t_s is None else t_s,
                       self.state, self.mode, self.stop_until_t, self.lo, self.hi, self.ref, self.last_command_t,
                       self._counts, clamped, ok)
        return ok, clamped.reshape(values.shape)

    # --- around a chunk of the model ---------------------------------------------------------------------------
    def before_chunk(self) -> None:
        """Calibrations that are done end; the watchdog: a late command starts a damped stop, a stop that is over
        (or still) latches ``watchdog``."""
        before_chunk_kernel(self.X, self.K, self.C, self.state, self.faults, self.ref, self.calibrate_until_t,
                            self.stop_until_t, self.last_command_t, self.watchdog_timeout_s, self.gravity_ff_nm,
                            self._counts)

    def after_chunk(self, bits: np.ndarray, x_before: np.ndarray, t_after_s: np.ndarray,
                    position_error_rad: np.ndarray | None = None) -> np.ndarray:
        """What a chunk of the model left: ``bits`` its fault bits per joint, ``x_before`` the state before it,
        ``t_after_s`` the time it ended at, ``position_error_rad`` the largest |reference - output encoder| over its
        ticks (default: at its end). Returns the joints found diverged (and put back at rest)."""
        diverged = np.empty(self.n, dtype=np.bool_)
        error = self._no_error if position_error_rad is None else position_error_rad
        if after_chunk_kernel(np.asarray(bits, dtype=np.int64), self.X, self.K, self.C, self.state, self.mode,
                              self.faults, self.ref, self.stop_until_t, self.tracking_limit_rad, self.diverged_rad_s,
                              error, position_error_rad is not None, diverged):
            self._recover(diverged, x_before, t_after_s)
        return diverged

    def _recover(self, bad: np.ndarray, x_before: np.ndarray, t_after_s: np.ndarray) -> None:
        """The diverged joints put back at rest where they last were finite, ``unstable`` latched."""
        for j in np.flatnonzero(bad):
            self.X[j] = rest_state(self.params_list[j], self.P[j], x_before[j], float(t_after_s[j]),
                                   self.ENV[j, L.E_ENC_M_OFFSET], self.ENV[j, L.E_ENC_O_OFFSET])
            self.K[j] = 0.0
        self.counters["diverged"][bad] += 1
        self.raise_faults(bad, FAULT_UNSTABLE)

    # --- faults --------------------------------------------------------------------------------------------------
    def raise_faults(self, sel: np.ndarray, bits: int) -> None:
        """Latch ``bits`` on the selected joints (the kernels' own rule: a drive-off fault puts them in ``fault``)."""
        for j in np.flatnonzero(sel):
            _raise(j, bits, self.state, self.faults, self.ref, self.C)

    def estop(self, sel: np.ndarray | None = None) -> None:
        self.raise_faults(self._sel(sel), FAULT_ESTOP)

    def clear_faults(self, sel: np.ndarray | None = None) -> None:
        sel = self._sel(sel)
        self.faults[sel] = 0
        self.X[sel, L.X_FAULTS] = 0.0
        faulted = sel & (self.state == FAULT)
        self.state[faulted] = IDLE
        self._apply_drive(faulted)
