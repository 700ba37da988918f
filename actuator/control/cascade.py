"""The joint controller that runs in the (virtual) firmware above the drive's current loop, and the
closed-loop run kernel that couples it to the simulated joint.

One controller, five modes (``MODE_*``), all producing an output-side torque command (N·m) that the
safety limiter bounds and that is turned into a q-axis current reference for the drive:

* torque: tau = tau_ref + gravity feedforward;
* velocity: PI(D) on the velocity estimate -> tau;
* position: cascade, position PID on the output encoder -> velocity reference (+ feedforward) -> velocity
  PI(D) on the motor-side velocity estimate -> tau. Dual feedback as usual for harmonic-drive joints:
  position where it matters (after the flexspline), velocity where the loop is collocated (the motor);
* impedance (MIT style): tau = Kp (q_des - q) + Kd (qd_des - qd) + tau_ff, with optional friction
  feedforward (Coulomb through a smooth sign, viscous; the Coulomb part optionally following the housing
  temperature, exp(-beta (T - T_ref))) and the reducer efficiency in the conversion;
* admittance: the gravity-compensated, low-pass-filtered F/T joint torque drives a virtual
  mass-damper-spring whose displacement offsets the position reference of the cascade;
* relay: the position PID replaced by a relay (+-h rad/s velocity reference, hysteresis eps on the
  position error) for relay-feedback auto-tuning.

Rates: the estimator runs every model step; the velocity loop (and torque, impedance) every
``C_VEL_DIV`` model steps; the position loop and the admittance every ``C_POS_DIV`` steps, a multiple of
``C_VEL_DIV``. Between ticks the last current reference is held, as a firmware's would be.

Velocity estimate (motor encoder / ratio): a filtered difference (first-order low-pass of the
per-step difference) or a tracking observer (PLL: theta+ = theta + h (w + kp e), w+ = w + h ki e, with
kp = 2 w_o, ki = w_o^2, critically damped at bandwidth w_o).

Cogging compensation (``cogging_torque``, off unless configured): in every closed-loop mode the cogging torque
expected at the motor encoder's reading is subtracted from the torque command, after the notch and before the
safety limiter, so the limiter bounds what is finally commanded.

Safety limiter, on the output torque command (soft zones, continuous everywhere):
* torque: |tau| <= tau_max;
* position: within ``zone`` of a limit the torque towards the limit is capped at tau_max (distance / zone),
  which turns negative past the limit: a soft wall of stiffness tau_max / zone pushes back;
* velocity: above (1 - zone fraction) v_max the torque along the motion is capped the same way and turns
  into braking above v_max;
* current: |iq| <= i_max.
The active limits are kept as bits in the controller state (``LIM_*``).
"""

from __future__ import annotations

import math

from numba import njit, prange

from actuator.control.filters import biquad_step
from actuator.control.pid import N_PID_PARAMS, N_PID_STATE, pid_step
from actuator.model.joint import joint_step, record_row
from actuator.model.layout import (
    MAX_HARMONICS,
    U_EXT_TORQUE,
    U_ID_CMD,
    U_IQ_CMD,
    X_ENC_M,
    X_ENC_O,
    X_FT_MEAS,
    X_TH,
)

MODE_TORQUE, MODE_VELOCITY, MODE_POSITION, MODE_IMPEDANCE, MODE_ADMITTANCE, MODE_RELAY = 0, 1, 2, 3, 4, 5
MODES = {"torque": MODE_TORQUE, "velocity": MODE_VELOCITY, "position": MODE_POSITION,
         "impedance": MODE_IMPEDANCE, "admittance": MODE_ADMITTANCE, "relay": MODE_RELAY}
EST_DIFFERENCE, EST_OBSERVER = 0, 1

# --- controller parameter vector --------------------------------------------------------------------------
(C_MODE, C_DT, C_VEL_DIV, C_POS_DIV, C_EST_KIND, C_EST_ALPHA, C_EST_KP, C_EST_KI, C_RATIO, C_TORQUE_PER_A,
 C_EFF, C_IMP_KP, C_IMP_KD, C_FRIC_FC, C_FRIC_B, C_FRIC_VEPS, C_MGL,
 C_ADM_M, C_ADM_D, C_ADM_K, C_FORCE_ALPHA, C_TOOL_WEIGHT, C_FT_DIST,
 C_NOTCH_ON, C_LIM_QMIN, C_LIM_QMAX, C_LIM_QZONE, C_LIM_VMAX, C_LIM_VZONE, C_LIM_TMAX, C_LIM_IMAX,
 C_RELAY_H, C_RELAY_EPS) = range(33)
C_NOTCH = 33                      # 5 biquad coefficients at the velocity-loop rate
C_POS_PID = C_NOTCH + 5           # position PID parameters (rad -> rad/s)
C_VEL_PID = C_POS_PID + N_PID_PARAMS  # velocity PID parameters (rad/s -> N·m)
# cogging compensation (``cogging_torque``): on flag, periods per motor revolution, the motor encoder's
# once-per-revolution error (sin, cos), then COG_HARMONICS output-side amplitudes (N·m) and their phases (rad)
C_COG = C_VEL_PID + N_PID_PARAMS
C_COG_ON, C_COG_NC, C_COG_ES, C_COG_EC = C_COG, C_COG + 1, C_COG + 2, C_COG + 3
COG_HARMONICS = 8
C_COG_A = C_COG + 4
C_COG_PH = C_COG_A + COG_HARMONICS
# position feedback from the motor encoder with the kinematic-error table (config [kinematic_error_compensation]):
# the flag (0: the output encoder, every figure as before), the output angle of the motor reading's zero, the
# flexspline stiffness of the gravity-twist term (0: none), the output encoder's zero, then the table's
# MAX_HARMONICS amplitudes and MAX_HARMONICS phases
C_KE_FB_MOTOR = C_COG_PH + COG_HARMONICS
C_KE_MOTOR_ZERO = C_KE_FB_MOTOR + 1
C_KE_STIFFNESS = C_KE_FB_MOTOR + 2
C_KE_OUTPUT_ZERO = C_KE_FB_MOTOR + 3
C_KE_A = C_KE_FB_MOTOR + 4
C_KE_PH = C_KE_A + MAX_HARMONICS
# the impedance loop's friction feed-forward following the housing temperature (issue 17, item 4): Coulomb x
# exp(-beta (T_housing - T_ref)), the grease's law (actuator.model.mechanics); beta 0: off, the feed-forward as before
C_FRIC_TEMP = C_KE_PH + MAX_HARMONICS
C_FRIC_BETA, C_FRIC_TREF = C_FRIC_TEMP, C_FRIC_TEMP + 1
N_CTRL = C_FRIC_TEMP + 2

# --- controller state vector ------------------------------------------------------------------------------
(K_VEL_CD, K_POS_CD, K_STARTED, K_THETA_M, K_W_M, K_PREV_ENC, K_VEL, K_POS, K_VEL_REF, K_TAU, K_IQ,
 K_FORCE, K_ADM_X, K_ADM_V, K_LIMITS, K_REF, K_RELAY) = range(17)
K_NOTCH = 17                     # 2
K_POS_PID = K_NOTCH + 2
K_VEL_PID = K_POS_PID + N_PID_STATE
N_CSTATE = K_VEL_PID + N_PID_STATE

# --- reference columns (one row per model step) ------------------------------------------------------------
R_POS, R_VEL, R_TORQUE = range(3)
N_REF = 3

LIM_TORQUE, LIM_POSITION, LIM_VELOCITY, LIM_CURRENT = 1, 2, 4, 8
LIMIT_NAMES = {LIM_TORQUE: "torque", LIM_POSITION: "position", LIM_VELOCITY: "velocity", LIM_CURRENT: "current"}

# columns the closed-loop trace adds to the model's, and the controller state each records
CONTROL_FIELDS = ("reference", "velocity_reference_rad_s", "velocity_estimate_rad_s", "torque_cmd_nm",
                  "admittance_offset_rad", "limiter")
CONTROL_SOURCE = (K_REF, K_VEL_REF, K_VEL, K_TAU, K_ADM_X, K_LIMITS)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def estimate_velocity(c, k, motor_enc_rad):
    """Update the motor-side angle/velocity estimate from one encoder sample; returns output rad/s."""
    h = c[C_DT]
    if k[K_STARTED] == 0.0:
        k[K_THETA_M] = motor_enc_rad
        k[K_PREV_ENC] = motor_enc_rad
        k[K_STARTED] = 1.0
    if c[C_EST_KIND] == EST_OBSERVER:
        e = motor_enc_rad - k[K_THETA_M]
        k[K_THETA_M] += h * (k[K_W_M] + c[C_EST_KP] * e)
        k[K_W_M] += h * c[C_EST_KI] * e
    else:
        raw = (motor_enc_rad - k[K_PREV_ENC]) / h
        k[K_W_M] += c[C_EST_ALPHA] * (raw - k[K_W_M])
        k[K_PREV_ENC] = motor_enc_rad
    return k[K_W_M] / c[C_RATIO]


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def kinematic_error_table(c, motor_enc_rad):
    """The compensation table's KE(theta_m) = sum A_k sin(k theta_m + phi_k), output rad, at a motor reading."""
    ke = 0.0
    for i in range(MAX_HARMONICS):
        a = c[C_KE_A + i]
        if a != 0.0:
            ke += a * math.sin((i + 1) * motor_enc_rad + c[C_KE_PH + i])
    return ke


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def position_feedback(c, x):
    """The output angle the loops close on: the output encoder's reading less its zero, or (motor feedback) the
    motor reading through the reducer, theta_m / N + KE(theta_m) less the motor zero (the model's output is
    theta_m / N + KE - twist), less the flexspline's twist under the link's weight m g l sin(q) / K when a
    stiffness is given."""
    if c[C_KE_FB_MOTOR] == 0.0:
        if c[C_KE_OUTPUT_ZERO] == 0.0:
            return x[X_ENC_O]
        return x[X_ENC_O] - c[C_KE_OUTPUT_ZERO]
    m = x[X_ENC_M]
    q = m / c[C_RATIO] + kinematic_error_table(c, m) - c[C_KE_MOTOR_ZERO]
    if c[C_KE_STIFFNESS] > 0.0:
        q -= c[C_MGL] * math.sin(q) / c[C_KE_STIFFNESS]
    return q


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _soft_cap(limit, distance, zone):
    """The largest torque allowed towards a limit ``distance`` away: ``limit`` outside the zone, falling
    linearly through zero at the limit, and at least -``limit`` beyond it."""
    if distance >= zone:
        return limit
    return max(limit * distance / zone, -limit)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def limit_torque(c, q, qd, tau):
    """The safety limiter on the output torque command; returns (torque, active limit bits)."""
    tmax = c[C_LIM_TMAX]
    bits = 0
    hi = tmax
    lo = -tmax
    cap = _soft_cap(tmax, c[C_LIM_QMAX] - q, c[C_LIM_QZONE])
    if cap < hi:
        hi = cap
        bits |= LIM_POSITION
    cap = _soft_cap(tmax, q - c[C_LIM_QMIN], c[C_LIM_QZONE])
    if -cap > lo:
        lo = -cap
        bits |= LIM_POSITION
    pos_lo = lo
    pos_hi = hi
    vmax = c[C_LIM_VMAX]
    vzone = vmax * c[C_LIM_VZONE]
    if qd > 0.0:
        cap = _soft_cap(tmax, vmax - qd, vzone)
        if cap < hi:
            hi = cap
            bits |= LIM_VELOCITY
    else:
        cap = _soft_cap(tmax, vmax + qd, vzone)
        if -cap > lo:
            lo = -cap
            bits |= LIM_VELOCITY
    if lo > hi:  # a position wall and a velocity cap disagree: the wall wins
        lo = pos_lo
        hi = pos_hi
        if lo > hi:  # both walls at once (a range narrower than two zones): hold the middle
            lo = hi = 0.5 * (lo + hi)
    out = min(max(tau, lo), hi)
    if abs(out) >= tmax:  # at the torque limit, whether the limiter or a saturated PID put it there
        bits |= LIM_TORQUE
    return out, bits


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def mesh_loss_factor(c, tau, qd):
    """The factor on an output torque that compensates the mesh loss: 1/eta when driving, 2 - 1/eta when
    back-driven (the model's mesh friction (1/eta - 1)|tau|), blended through a smooth sign of the power flow."""
    s = math.tanh(qd / c[C_FRIC_VEPS]) if tau >= 0.0 else -math.tanh(qd / c[C_FRIC_VEPS])
    return 1.0 + (1.0 / c[C_EFF] - 1.0) * s


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def cogging_torque(c, motor_enc_rad):
    """The cogging torque the compensation expects, referred to the output (N·m): sum_k A_k sin(k N_c theta +
    phi_k), theta the motor encoder's reading less its once-per-revolution error (the reading, not the rotor, is
    what the controller has; at 180 periods a revolution the knee's 0.5 deg error would shift the cogging's phase by
    1.6 rad)."""
    th = motor_enc_rad - c[C_COG_ES] * math.sin(motor_enc_rad) - c[C_COG_EC] * math.cos(motor_enc_rad)
    nc = c[C_COG_NC]
    tau = 0.0
    for k in range(COG_HARMONICS):
        a = c[C_COG_A + k]
        if a != 0.0:
            tau += a * math.sin((k + 1) * nc * th + c[C_COG_PH + k])
    return tau


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _ft_joint_torque(c, x, q):
    """Joint torque from the F/T reading (Mz + d Fy) with the tool's weight removed."""
    return x[X_FT_MEAS + 5] + c[C_FT_DIST] * x[X_FT_MEAS + 1] + c[C_TOOL_WEIGHT] * math.sin(q)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _position_tick(c, k, x, q, q_ref, qd_ref):
    h = c[C_DT] * c[C_POS_DIV]
    if c[C_MODE] == MODE_ADMITTANCE:
        k[K_FORCE] += c[C_FORCE_ALPHA] * (_ft_joint_torque(c, x, q) - k[K_FORCE])
        acc = (k[K_FORCE] - c[C_ADM_D] * k[K_ADM_V] - c[C_ADM_K] * k[K_ADM_X]) / c[C_ADM_M]
        k[K_ADM_V] += h * acc
        k[K_ADM_X] += h * k[K_ADM_V]
        q_ref += k[K_ADM_X]
        qd_ref += k[K_ADM_V]
    k[K_REF] = q_ref
    if c[C_MODE] == MODE_RELAY:
        e = q_ref - q
        if k[K_RELAY] == 0.0 or e * k[K_RELAY] < -c[C_RELAY_EPS]:  # switch once the error passes -+eps
            k[K_RELAY] = 1.0 if e >= 0.0 else -1.0
        k[K_VEL_REF] = c[C_RELAY_H] * k[K_RELAY]
        return
    k[K_VEL_REF] = pid_step(c[C_POS_PID:C_POS_PID + N_PID_PARAMS], k[K_POS_PID:K_POS_PID + N_PID_STATE],
                            q_ref, q, qd_ref)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def friction_coulomb_at(c, housing_c):
    """The Coulomb feed-forward at the housing temperature ``housing_c`` (°C): the gain itself when beta is 0
    (the same float, so the loop is bit-identical to one without the temperature term)."""
    if c[C_FRIC_BETA] == 0.0:
        return c[C_FRIC_FC]
    return c[C_FRIC_FC] * math.exp(-c[C_FRIC_BETA] * (housing_c - c[C_FRIC_TREF]))


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _velocity_tick(c, k, q, qd, motor_enc_rad, ref_pos, ref_vel, ref_tau, housing_c):
    mode = c[C_MODE]
    tau_ff = ref_tau + c[C_MGL] * math.sin(q)
    if mode == MODE_TORQUE:
        k[K_REF] = ref_tau
        tau = tau_ff
    elif mode == MODE_IMPEDANCE:
        k[K_REF] = ref_pos
        k[K_VEL_REF] = ref_vel
        tau = c[C_IMP_KP] * (ref_pos - q) + c[C_IMP_KD] * (ref_vel - qd) + tau_ff
        # the mesh loss scales the torque carried through the flexspline; input friction does not
        tau = tau * mesh_loss_factor(c, tau, qd)
        tau += friction_coulomb_at(c, housing_c) * math.tanh(qd / c[C_FRIC_VEPS]) + c[C_FRIC_B] * qd
    else:
        if mode == MODE_VELOCITY:
            k[K_REF] = ref_vel
            k[K_VEL_REF] = ref_vel
        tau = pid_step(c[C_VEL_PID:C_VEL_PID + N_PID_PARAMS], k[K_VEL_PID:K_VEL_PID + N_PID_STATE],
                       k[K_VEL_REF], qd, tau_ff)
    if c[C_NOTCH_ON] != 0.0:
        tau = biquad_step(c[C_NOTCH:C_NOTCH + 5], k[K_NOTCH:K_NOTCH + 2], tau)
    if c[C_COG_ON] != 0.0:
        # feed-forward past the notch (a notch near the cogging frequency must not eat it) and before the limiter,
        # which bounds the sum: the compensation never takes the command past a limit
        tau -= cogging_torque(c, motor_enc_rad)
    tau, bits = limit_torque(c, q, qd, tau)
    iq = tau / c[C_TORQUE_PER_A]
    imax = c[C_LIM_IMAX]
    if abs(iq) > imax:
        iq = imax if iq > 0.0 else -imax
        tau = iq * c[C_TORQUE_PER_A]
        bits |= LIM_CURRENT
    k[K_TAU] = tau
    k[K_IQ] = iq
    k[K_LIMITS] = bits


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def controller_step(c, k, x, ref_pos, ref_vel, ref_tau):
    """One model step of the controller: returns the q-axis current reference to hold for this step."""
    q = position_feedback(c, x)
    qd = estimate_velocity(c, k, x[X_ENC_M])
    k[K_POS] = q
    k[K_VEL] = qd
    vel_tick = k[K_VEL_CD] <= 0.0
    if vel_tick:
        k[K_VEL_CD] = c[C_VEL_DIV]
        mode = c[C_MODE]
        if mode in (MODE_POSITION, MODE_ADMITTANCE, MODE_RELAY) and k[K_POS_CD] <= 0.0:
            k[K_POS_CD] = c[C_POS_DIV]
            _position_tick(c, k, x, q, ref_pos, ref_vel)
        k[K_POS_CD] -= c[C_VEL_DIV]
        # the motor encoder (cogging compensation) and the housing sensor (friction feed-forward) the firmware reads
        _velocity_tick(c, k, q, qd, x[X_ENC_M], ref_pos, ref_vel, ref_tau, x[X_TH])
    k[K_VEL_CD] -= 1.0
    return k[K_IQ]


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _record(x, k, source, csource, row):
    n = source.shape[0]
    record_row(x, source, row)
    for i in range(csource.shape[0]):
        row[n + i] = k[csource[i]]


@njit(cache=True, nogil=True, error_model="numpy")
def run_closed_loop(p, x, env, c, k, ref, u, noise, source, csource, out, record_every):
    """Step the joint under the controller through ``ref`` (n, N_REF); ``u`` (n, N_INPUTS) adds a q-axis
    current disturbance, a d-axis current and the external torque. Rows as ``run_joint``; returns the
    OR of the fault bits raised."""
    n = ref.shape[0]
    bits = 0
    r = 0
    countdown = 0
    for i in range(n):
        if countdown == 0:
            _record(x, k, source, csource, out[r])
            r += 1
            countdown = record_every
        countdown -= 1
        iq = controller_step(c, k, x, ref[i, R_POS], ref[i, R_VEL], ref[i, R_TORQUE])
        bits |= joint_step(p, x, env, iq + u[i, U_IQ_CMD], u[i, U_ID_CMD], u[i, U_EXT_TORQUE], noise)
    if r < out.shape[0]:
        _record(x, k, source, csource, out[r])
    return bits


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def run_closed_batch_parallel(P, X, ENV, C, K, REF, U, NOISE, source, csource, OUT, record_every, status):
    """Many joints under their controllers, spread over all cores (one compiled call)."""
    for j in prange(P.shape[0]):
        status[j] = run_closed_loop(P[j], X[j], ENV[j], C[j], K[j], REF[j], U[j], NOISE[j], source, csource,
                                    OUT[j], record_every)
