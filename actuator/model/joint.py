"""The integrated joint composed from its parts, and the compiled run loops over it.

One model step (one current-loop period, 25-50 us) in this order:
  1. supply and encoder checks -> fault bits; the drive stops driving current on a fatal fault;
  2. the current PI runs on the sampled currents, its output is held for the next step;
  3. the voltage computed on the previous step is applied (one-sample delay) and the RL circuit steps;
  4. electromagnetic torque, cogging and ripple -> the two-inertia mechanics step;
  5. copper losses -> thermal step and derating; encoders sampled; the F/T sensor on its own rate.
The step also records its energy flows (``X_P_*``: electrical power, copper loss, the mechanics' losses) for the
trace; the model never reads them back.
Faults latch in ``x[X_FAULTS]`` until the caller clears them; kernels return the fault bits as status.

The kernels use Numba's NumPy error model: no zero check on every division (worth ~15 % of a step);
the Python wrapper validates parameters so that no divisor is zero.

``run_joint`` advances one joint through an input array in a single nogil call and records a trace row
every ``record_every`` steps; ``run_batch`` runs many joints (``prange`` when compiled parallel).
"""

from __future__ import annotations

import math

from numba import njit, prange

from actuator.model.electrics import (
    commutation_error,
    current_loop,
    derate_factor,
    motor_torque,
    rl_step,
    thermal_step,
    voltage_limit,
    winding_resistance,
)
from actuator.model.layout import (
    E_AMBIENT_C,
    E_BUS_V,
    E_ENC_M_DROPOUT,
    E_ENC_M_OFFSET,
    E_ENC_O_DROPOUT,
    E_ENC_O_OFFSET,
    E_FRICTION_SCALE,
    E_RESISTANCE_SCALE,
    E_STIFFNESS_SCALE,
    E_WRENCH,
    FATAL_FAULTS,
    FAULT_OVERCURRENT,
    FAULT_OVERTEMPERATURE,
    FAULT_OVERVOLTAGE,
    FAULT_UNDERVOLTAGE,
    P_DT,
    P_FT_DECIM,
    P_FT_DIST,
    P_I_LIMIT,
    P_OC_TRIP,
    P_OV_TRIP,
    P_TH_LIMIT,
    P_UV_TRIP,
    U_EXT_TORQUE,
    U_ID_CMD,
    U_IQ_CMD,
    X_ANGLE,
    X_ANGLE_ON,
    X_ANGLE_RATE,
    X_DERATE,
    X_FAULTS,
    X_FT_COUNT,
    X_ID,
    X_ID_DRIVE,
    X_ID_REF,
    X_IQ,
    X_IQ_DRIVE,
    X_IQ_REF,
    X_P_CU,
    X_P_ELEC,
    X_TAU_EM,
    X_TH,
    X_THM,
    X_TIME,
    X_TW,
    X_VD,
    X_VQ,
    X_WM,
)
from actuator.model.mechanics import mechanics_step
from actuator.model.sensors import encoders_step, ft_sample, wrench_joint_torque


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _limit_refs(p, x, iq_cmd, id_cmd):
    """Current references after fault handling, the current limit and thermal derating."""
    if int(x[X_FAULTS]) & FATAL_FAULTS:
        return 0.0, 0.0
    i_lim = p[P_I_LIMIT] * math.sqrt(x[X_DERATE])
    id_ref = min(max(id_cmd, -i_lim), i_lim)
    iq_lim = math.sqrt(max(i_lim * i_lim - id_ref * id_ref, 0.0))
    return id_ref, min(max(iq_cmd, -iq_lim), iq_lim)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def joint_step(p, x, env, iq_cmd, id_cmd, ext_torque_nm, noise):
    """Advance one joint by one model step; returns the fault bits raised on this step."""
    bits = 0
    bus_v = env[E_BUS_V]
    if bus_v < p[P_UV_TRIP]:
        bits |= FAULT_UNDERVOLTAGE
    elif bus_v > p[P_OV_TRIP]:
        bits |= FAULT_OVERVOLTAGE
    x[X_FAULTS] = float(int(x[X_FAULTS]) | bits)
    id_ref, iq_ref = _limit_refs(p, x, iq_cmd, id_cmd)
    x[X_ID_REF] = id_ref
    x[X_IQ_REF] = iq_ref

    # the PI runs on the currents sampled now; the inverter applies its result on the next step, and
    # applies now what was computed one step ago (the one-sample computation delay of a real drive)
    # The drive works in its own frame, the rotor's turned by the commutation error delta: it measures the currents
    # rotated by delta and its voltages reach the rotor rotated back (exactly the rotor's frame when delta is 0)
    vd_applied = x[X_VD]
    vq_applied = x[X_VQ]
    delta = commutation_error(p, x, env[E_ENC_M_OFFSET])
    if delta != 0.0:
        cd, sd = math.cos(delta), math.sin(delta)
        x[X_ID_DRIVE] = cd * x[X_ID] - sd * x[X_IQ]
        x[X_IQ_DRIVE] = sd * x[X_ID] + cd * x[X_IQ]
        vd_applied, vq_applied = cd * vd_applied + sd * vq_applied, cd * vq_applied - sd * vd_applied
    else:
        x[X_ID_DRIVE] = x[X_ID]
        x[X_IQ_DRIVE] = x[X_IQ]
    if x[X_ANGLE_ON] != 0.0:
        x[X_ANGLE] += x[X_ANGLE_RATE] * p[P_DT]
    current_loop(p, x, id_ref, iq_ref, voltage_limit(p, bus_v), x[X_ID_DRIVE], x[X_IQ_DRIVE])
    r_ohm = winding_resistance(p, x[X_TW], env[E_RESISTANCE_SCALE])
    rl_step(p, x, vd_applied, vq_applied, x[X_WM], r_ohm)
    i_d = x[X_ID]
    i_q = x[X_IQ]
    if math.sqrt(i_d * i_d + i_q * i_q) > p[P_OC_TRIP]:
        bits |= FAULT_OVERCURRENT

    tau_em = motor_torque(p, i_d, i_q, x[X_THM])
    x[X_TAU_EM] = tau_em
    tau_ext = ext_torque_nm + wrench_joint_torque(p[P_FT_DIST], env, E_WRENCH)
    mechanics_step(p, x, tau_em, tau_ext, env[E_FRICTION_SCALE], env[E_STIFFNESS_SCALE])

    # the inverter's output power over this step and the winding's copper loss, both at the currents the step
    # ends with: the currents the torque above and the thermal network use, so the energy columns balance
    copper_w = 1.5 * r_ohm * (i_d * i_d + i_q * i_q)
    x[X_P_ELEC] = 1.5 * (vd_applied * i_d + vq_applied * i_q)
    x[X_P_CU] = copper_w
    thermal_step(p, x, copper_w, env[E_AMBIENT_C])
    x[X_DERATE] = derate_factor(p, x[X_TW], x[X_TH])
    if x[X_TW] > p[P_TH_LIMIT]:
        bits |= FAULT_OVERTEMPERATURE

    bits |= encoders_step(p, x, env[E_ENC_M_DROPOUT], env[E_ENC_O_DROPOUT], env[E_ENC_M_OFFSET],
                          env[E_ENC_O_OFFSET])
    count = int(x[X_FT_COUNT]) + 1
    if count >= int(p[P_FT_DECIM]):
        count = 0
        bits |= ft_sample(p, x, env, noise)
    x[X_FT_COUNT] = count
    x[X_TIME] += p[P_DT]
    x[X_FAULTS] = float(int(x[X_FAULTS]) | bits)
    return bits


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def record_row(x, source, row):
    for c in range(source.shape[0]):
        row[c] = x[source[c]]


@njit(cache=True, nogil=True, error_model="numpy")
def run_joint(p, x, env, u, noise, source, out, record_every):
    """Step one joint through ``u`` (n, N_INPUTS); records rows at steps 0, k, 2k, ... and after the last.

    ``out`` must hold n // record_every + 1 rows. Returns the OR of the fault bits raised.
    """
    n = u.shape[0]
    bits = 0
    r = 0
    countdown = 0  # rather than k % record_every: an integer division every step costs more than the model's adds
    for k in range(n):
        if countdown == 0:
            record_row(x, source, out[r])
            r += 1
            countdown = record_every
        countdown -= 1
        bits |= joint_step(p, x, env, u[k, U_IQ_CMD], u[k, U_ID_CMD], u[k, U_EXT_TORQUE], noise)
    if r < out.shape[0]:
        record_row(x, source, out[r])
    return bits


# Two functions of identical body, not one compiled twice: Numba's on-disk cache keys an entry by the
# function's name and source, not by ``parallel=``, so a serial and a parallel build of one function
# would share a cache entry and one of them would silently load the other's code.
@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def run_batch_parallel(P, X, ENV, U, NOISE, source, OUT, record_every, status):
    for j in prange(P.shape[0]):
        status[j] = run_joint(P[j], X[j], ENV[j], U[j], NOISE[j], source, OUT[j], record_every)


@njit(cache=True, nogil=True, error_model="numpy")
def run_batch_serial(P, X, ENV, U, NOISE, source, OUT, record_every, status):
    for j in range(P.shape[0]):
        status[j] = run_joint(P[j], X[j], ENV[j], U[j], NOISE[j], source, OUT[j], record_every)


def trace_rows(n_steps: int, record_every: int) -> int:
    return n_steps // record_every + 1
