"""Kernels of the motor electrics, the drive's current loop and the two-node thermal network.

Motor: amplitude-invariant dq model (bgkatz/motorcontrol ``foc.c`` convention)
    L_d di_d/dt = v_d - R i_d + w_e L_q i_q
    L_q di_q/dt = v_q - R i_q - w_e (L_d i_d + lambda)
    tau = 1.5 p [lambda i_q + (L_d - L_q) i_d i_q] (1 + r6 sin 6 theta_e) + sum A_k sin(k N_c theta_m + phi_k)
discretised exactly for the RL part over one step with the speed voltages held (zero-order hold).

Drive: PI per axis, kp = L w_c and ki = R w_c (pole-zero cancellation), evaluated on the currents
sampled at the start of a step, in the drive's frame: the rotor's turned by the commutation error
(``commutation_error``: a wrong electrical offset or pole-pair count; 0 on a calibrated drive); its
output is applied one step later (the averaged inverter with a one-sample computation delay). w_c is
chosen in ``layout.current_loop_design`` so that this sampled, delayed loop has its -3 dB point at the
configured bandwidth. The voltage vector is limited to
min(motor limit, modulation V_bus / sqrt 3) with d-axis priority and the integrators clamped to that limit
(anti-windup as in Katz's firmware).

Thermal: C_w dT_w = P - (T_w - T_h)/R_wh, C_h dT_h = (T_w - T_h)/R_wh - (T_h - T_a)/R_ha with
P = 1.5 R(T_w) |i_dq|^2 and R(T) = R_0 (1 + alpha (T - T_0)); the transition matrices are the exact ZOH
discretisation computed once in ``layout.compile_params``. Derating scales I^2 linearly to zero over the
winding and housing soft-limit bands; the current limit scales with its square root.
"""

from __future__ import annotations

import math

from numba import njit

from actuator.model.layout import (
    MAX_HARMONICS,
    P_ALPHA_CU,
    P_COG_A,
    P_COG_PERIODS,
    P_COG_PH,
    P_DRIVE_PP,
    P_DT,
    P_ELEC_OFFSET,
    P_HD_END,
    P_HD_START,
    P_KI_D,
    P_KI_Q,
    P_KP_D,
    P_KP_Q,
    P_LAMBDA,
    P_LD,
    P_LQ,
    P_MODULATION,
    P_POLE_PAIRS,
    P_R0,
    P_RIPPLE,
    P_T_REF_C,
    P_TH_A00,
    P_TH_A01,
    P_TH_A10,
    P_TH_A11,
    P_TH_BA0,
    P_TH_BA1,
    P_TH_BP0,
    P_TH_BP1,
    P_V_MOTOR_LIMIT,
    P_WD_END,
    P_WD_START,
    X_AD,
    X_ANGLE,
    X_ANGLE_ON,
    X_AQ,
    X_ID,
    X_INT_D,
    X_INT_Q,
    X_IQ,
    X_R_CACHED,
    X_TH,
    X_THM,
    X_TW,
    X_VD,
    X_VQ,
)

SQRT3 = math.sqrt(3.0)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def winding_resistance(p, temp_c, scale):
    return p[P_R0] * (1.0 + p[P_ALPHA_CU] * (temp_c - p[P_T_REF_C])) * scale


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def voltage_limit(p, bus_v):
    return min(p[P_V_MOTOR_LIMIT], p[P_MODULATION] * bus_v / SQRT3)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def current_loop(p, x, id_ref, iq_ref, v_max, id_meas, iq_meas):
    """One PI evaluation on the sampled currents (in the drive's frame); stores the voltage to apply on the next
    step."""
    dt = p[P_DT]
    ed = id_ref - id_meas
    eq = iq_ref - iq_meas
    int_d = min(max(x[X_INT_D] + p[P_KI_D] * dt * ed, -v_max), v_max)
    int_q = min(max(x[X_INT_Q] + p[P_KI_Q] * dt * eq, -v_max), v_max)
    vd = min(max(p[P_KP_D] * ed + int_d, -v_max), v_max)
    vq_max = math.sqrt(max(v_max * v_max - vd * vd, 0.0))
    vq = min(max(p[P_KP_Q] * eq + int_q, -vq_max), vq_max)
    x[X_INT_D] = int_d
    x[X_INT_Q] = int_q
    x[X_VD] = vd
    x[X_VQ] = vq


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def commutation_error(p, x, enc_offset_rad):
    """delta = theta_e - theta_e_drive, the rotor's electrical angle less the angle the drive commutates on.

    The drive's angle is p_cfg (theta_m + offset) - e_cal from its motor encoder (``enc_offset_rad``: the encoder's
    zero, mechanical rad; its nonlinearity, quantisation and latency are left out of the commutation), or, while a
    calibration overrides it (``X_ANGLE_ON``), the calibration's own angle. e_cal NaN is the factory's offset,
    matched to the encoder as mounted: delta is then exactly 0 (the nominal joint, bit for bit)."""
    pp = p[P_POLE_PAIRS]
    if x[X_ANGLE_ON] != 0.0:
        return pp * x[X_THM] - x[X_ANGLE]
    e_cal = p[P_ELEC_OFFSET]
    if e_cal != e_cal and p[P_DRIVE_PP] == pp:
        return 0.0
    if e_cal != e_cal:
        e_cal = p[P_DRIVE_PP] * enc_offset_rad
    return pp * x[X_THM] - (p[P_DRIVE_PP] * (x[X_THM] + enc_offset_rad) - e_cal)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def rl_step(p, x, vd, vq, omega_m, r_ohm):
    """Exact step of the dq RL circuit with the applied voltages and speed voltages held."""
    dt = p[P_DT]
    we = p[P_POLE_PAIRS] * omega_m
    id0 = x[X_ID]
    iq0 = x[X_IQ]
    ud = vd + we * p[P_LQ] * iq0
    uq = vq - we * (p[P_LD] * id0 + p[P_LAMBDA])
    # R(T) moves slowly: refresh the exact decay factors only when R has changed by 1e-5 relative
    if abs(r_ohm - x[X_R_CACHED]) > 1e-5 * r_ohm:
        x[X_R_CACHED] = r_ohm
        x[X_AD] = math.exp(-r_ohm * dt / p[P_LD])
        x[X_AQ] = math.exp(-r_ohm * dt / p[P_LQ])
    ad = x[X_AD]
    aq = x[X_AQ]
    x[X_ID] = ad * id0 + (1.0 - ad) * ud / r_ohm
    x[X_IQ] = aq * iq0 + (1.0 - aq) * uq / r_ohm


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def motor_torque(p, i_d, i_q, theta_m):
    """Electromagnetic torque with 6th-harmonic ripple, plus cogging, at the motor shaft."""
    pp = p[P_POLE_PAIRS]
    tau = 1.5 * pp * (p[P_LAMBDA] * i_q + (p[P_LD] - p[P_LQ]) * i_d * i_q)
    if p[P_RIPPLE] != 0.0:
        tau *= 1.0 + p[P_RIPPLE] * math.sin(6.0 * pp * theta_m)
    nc = p[P_COG_PERIODS]
    for k in range(MAX_HARMONICS):
        a = p[P_COG_A + k]
        if a != 0.0:
            tau += a * math.sin((k + 1) * nc * theta_m + p[P_COG_PH + k])
    return tau


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def thermal_step(p, x, power_w, ambient_c):
    tw = x[X_TW]
    th = x[X_TH]
    x[X_TW] = p[P_TH_A00] * tw + p[P_TH_A01] * th + p[P_TH_BP0] * power_w + p[P_TH_BA0] * ambient_c
    x[X_TH] = p[P_TH_A10] * tw + p[P_TH_A11] * th + p[P_TH_BP1] * power_w + p[P_TH_BA1] * ambient_c


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def derate_factor(p, tw, th):
    """Fraction of I^2 allowed: 1 below the soft limits, 0 above their ends, linear between."""
    fw = (p[P_WD_END] - tw) / (p[P_WD_END] - p[P_WD_START])
    fh = (p[P_HD_END] - th) / (p[P_HD_END] - p[P_HD_START])
    return min(max(min(fw, fh), 0.0), 1.0)
