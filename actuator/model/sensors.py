"""Kernels of the joint's sensors: motor- and output-side encoders and the six-axis F/T sensor.

Encoders: reading = q floor((theta + INL sin(theta) + offset) / q) with q = 2 pi / 2^bits (an
unwrapped multi-turn count, as firmware keeps), delayed by a whole number of model steps through a
ring buffer. A dropout freezes the reading and raises the encoder fault.

F/T sensor, sampled every ``P_FT_DECIM`` model steps and held between samples (reference section 3):
    w_true = external wrench on the tool + tool weight, both in the sensor frame
    w_meas = (I + E) w_true + bias + sigma n,   bias <- bias + walk n'   (n, n' standard normal)
The link hangs at theta = 0; the sensor x axis points along the link, z along the joint axis, so the
tool weight reads m g (cos theta, -sin theta, 0). Channels beyond saturation_fraction x range clip there
(ADC clipping; the calibration no longer holds) and raise the saturation flag and fault.
The normal draws come from the caller (reproducible runs): ``noise[i, 0:6]`` and ``noise[i, 6:12]``.
"""

from __future__ import annotations

import math

from numba import njit

from actuator.model.layout import (
    E_FT_BIAS_STEP,
    E_FT_NOISE_SCALE,
    E_WRENCH,
    ENC_BUF,
    FAULT_ENCODER,
    FAULT_FT_SATURATION,
    P_ENC_M_INL,
    P_ENC_M_LAT,
    P_ENC_M_Q,
    P_ENC_O_INL,
    P_ENC_O_LAT,
    P_ENC_O_Q,
    P_FT_NOISE,
    P_FT_RANGE,
    P_FT_SAT,
    P_FT_TOOL_MASS,
    P_FT_WALK,
    P_FT_XT,
    P_G,
    X_ENC_HEAD,
    X_ENC_M,
    X_ENC_M_BUF,
    X_ENC_O,
    X_ENC_O_BUF,
    X_FT_BIAS,
    X_FT_MEAS,
    X_FT_NOISE_IDX,
    X_FT_SAT,
    X_THL,
    X_THM,
)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def quantise(angle_rad, lsb_rad):
    return lsb_rad * math.floor(angle_rad / lsb_rad)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def encoder_reading(angle_rad, inl_rad, offset_rad, lsb_rad):
    return quantise(angle_rad + inl_rad * math.sin(angle_rad) + offset_rad, lsb_rad)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def prime_encoders(p, x, motor_offset_rad, output_offset_rad):
    """Fill the latency buffers with the present readings (a joint powered up at rest)."""
    rm = encoder_reading(x[X_THM], p[P_ENC_M_INL], motor_offset_rad, p[P_ENC_M_Q])
    ro = encoder_reading(x[X_THL], p[P_ENC_O_INL], output_offset_rad, p[P_ENC_O_Q])
    for i in range(ENC_BUF):
        x[X_ENC_M_BUF + i] = rm
        x[X_ENC_O_BUF + i] = ro
    x[X_ENC_M] = rm
    x[X_ENC_O] = ro


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def encoders_step(p, x, motor_dropout, output_dropout, motor_offset_rad, output_offset_rad):
    """Sample both encoders into their latency buffers; returns fault bits."""
    head = (int(x[X_ENC_HEAD]) + 1) % ENC_BUF
    x[X_ENC_HEAD] = head
    bits = 0
    if motor_dropout != 0.0:
        x[X_ENC_M_BUF + head] = x[X_ENC_M_BUF + (head - 1) % ENC_BUF]
        bits |= FAULT_ENCODER
    else:
        x[X_ENC_M_BUF + head] = encoder_reading(x[X_THM], p[P_ENC_M_INL], motor_offset_rad, p[P_ENC_M_Q])
    if output_dropout != 0.0:
        x[X_ENC_O_BUF + head] = x[X_ENC_O_BUF + (head - 1) % ENC_BUF]
        bits |= FAULT_ENCODER
    else:
        x[X_ENC_O_BUF + head] = encoder_reading(x[X_THL], p[P_ENC_O_INL], output_offset_rad, p[P_ENC_O_Q])
    x[X_ENC_M] = x[X_ENC_M_BUF + (head - int(p[P_ENC_M_LAT])) % ENC_BUF]
    x[X_ENC_O] = x[X_ENC_O_BUF + (head - int(p[P_ENC_O_LAT])) % ENC_BUF]
    return bits


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def ft_sample(p, x, env, noise):
    """One F/T sample from the present link angle; returns fault bits."""
    noise_scale = env[E_FT_NOISE_SCALE]
    n_rows = noise.shape[0]
    row = int(x[X_FT_NOISE_IDX]) % n_rows
    x[X_FT_NOISE_IDX] = row + 1
    weight = p[P_FT_TOOL_MASS] * p[P_G]
    th = x[X_THL]
    w = E_WRENCH
    w_true = (env[w] + weight * math.cos(th), env[w + 1] - weight * math.sin(th), env[w + 2],
              env[w + 3], env[w + 4], env[w + 5])
    saturated = 0.0
    for i in range(6):
        x[X_FT_BIAS + i] += p[P_FT_WALK + i] * noise[row, 6 + i]
        acc = 0.0
        for j in range(6):
            acc += p[P_FT_XT + 6 * i + j] * w_true[j]
        acc += x[X_FT_BIAS + i] + env[E_FT_BIAS_STEP + i] + noise_scale * p[P_FT_NOISE + i] * noise[row, i]
        limit = p[P_FT_SAT] * p[P_FT_RANGE + i]
        if abs(acc) > limit:
            acc = limit if acc > 0.0 else -limit
            saturated = 1.0
        x[X_FT_MEAS + i] = acc
    x[X_FT_SAT] = saturated
    return FAULT_FT_SATURATION if saturated != 0.0 else 0


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def wrench_joint_torque(dist_m, env, at):
    """Torque about the joint axis of the wrench ``env[at:at+6]`` applied at the sensor, r = (d, 0, 0):
    Mz + d Fy."""
    return env[at + 5] + dist_m * env[at + 1]
