"""The PID kernel used by every loop of jointkit (firmware, host and batch), and its Python wrapper.

Discretisation (Åström & Hägglund, "Advanced PID Control"; Åström & Murray), sample time h:
    P_k = kp (b r_k - y_k)                                      set-point weight b
    D_k = a_d D_{k-1} - b_d (y_k - y_{k-1})                     derivative on measurement, backward Euler
          a_d = T_f / (T_f + h),  b_d = kd / (T_f + h),  T_f = T_d / N = kd / (kp N)
    v_k = P_k + I_k + D_k + u_ff
    u_k = sat(v_k) within [u_min, u_max], then |u_k - u_{k-1}| <= rate h
    I_{k+1} = I_k + ki h e_k                                    forward for the integral, so u_k uses I_k
        anti-windup by clamping: the increment is skipped while saturated and e_k pushes further out;
        by back-calculation: I_{k+1} += (h / T_t)(u_k - v_k), T_t the tracking time constant.
Backward Euler keeps 0 <= a_d < 1 for every N and h (Tustin rings when T_d < N h / 2).
Bumpless transfer: on a gain change the integral is reset so that the output does not jump,
I = u_{k-1} - P_new - D_new - u_ff (``pid_retune``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from actuator.errors import ConfigError

# parameter array
(PID_KP, PID_KI, PID_KD, PID_N, PID_B, PID_TT, PID_UMIN, PID_UMAX, PID_RATE, PID_DT, PID_AW) = range(11)
N_PID_PARAMS = 11
AW_NONE, AW_CLAMP, AW_BACKCALC = 0.0, 1.0, 2.0
# state array
(S_I, S_D, S_Y_PREV, S_U_PREV, S_V, S_R_PREV, S_FF_PREV, S_STARTED) = range(8)
N_PID_STATE = 8


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _derivative_coefficients(g):
    kp, kd, h = g[PID_KP], g[PID_KD], g[PID_DT]
    if kd == 0.0:
        return 0.0, 0.0
    tf = kd / (kp * g[PID_N]) if kp > 0.0 else h
    return tf / (tf + h), kd / (tf + h)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def pid_step(g, s, r, y, u_ff):
    """One sample of the PID: returns the limited output and updates the state ``s`` in place."""
    h = g[PID_DT]
    a_d, b_d = _derivative_coefficients(g)
    d = a_d * s[S_D] - b_d * (y - s[S_Y_PREV]) if s[S_STARTED] != 0.0 else 0.0
    e = r - y
    v = g[PID_KP] * (g[PID_B] * r - y) + s[S_I] + d + u_ff
    u = min(max(v, g[PID_UMIN]), g[PID_UMAX])
    if g[PID_RATE] > 0.0 and s[S_STARTED] != 0.0:
        step = g[PID_RATE] * h
        u = min(max(u, s[S_U_PREV] - step), s[S_U_PREV] + step)
    mode = g[PID_AW]
    if g[PID_KI] == 0.0:
        pass  # no integral action: nothing to wind up, and back-calculation must not create an offset
    elif mode == AW_BACKCALC:
        s[S_I] += g[PID_KI] * h * e + h / g[PID_TT] * (u - v)
    elif mode == AW_CLAMP and u != v and e * (v - u) > 0.0:
        pass  # saturated and the error pushes further out: freeze the integral
    else:
        s[S_I] += g[PID_KI] * h * e
    s[S_D] = d
    s[S_Y_PREV] = y
    s[S_U_PREV] = u
    s[S_V] = v
    s[S_R_PREV] = r
    s[S_FF_PREV] = u_ff
    s[S_STARTED] = 1.0
    return u


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def pid_retune(g_new, s):
    """Bumpless transfer to new gains: the next output continues from the last one."""
    p_new = g_new[PID_KP] * (g_new[PID_B] * s[S_R_PREV] - s[S_Y_PREV])
    s[S_I] = s[S_U_PREV] - p_new - s[S_D] - s[S_FF_PREV]


@njit(cache=True, nogil=True, error_model="numpy")
def pid_run(g, s, r, y, u_ff, out):
    """Run the PID over arrays of reference, measurement and feedforward (offline use and benchmarks)."""
    for k in range(r.shape[0]):
        out[k] = pid_step(g, s, r[k], y[k], u_ff[k])
    return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PidGains:
    """PID gains with units left to the loop (position: A/rad, velocity: A/(rad/s), ...)."""

    kp: float
    ki: float = 0.0
    kd: float = 0.0
    derivative_filter_n: float = 10.0
    setpoint_weight: float = 1.0
    tracking_time_s: float = 0.0  # back-calculation T_t; 0 picks sqrt(T_i T_d), or T_i without D
    output_min: float = -np.inf
    output_max: float = np.inf
    rate_limit_per_s: float = 0.0  # 0: no rate limit
    anti_windup: str = "back_calculation"  # or "clamping" or "none"

    def compile(self, dt_s: float) -> np.ndarray:
        """The kernel parameter array at sample time ``dt_s``, after validation."""
        checks = [("kp", self.kp, self.kp >= 0, ">= 0"), ("ki", self.ki, self.ki >= 0, ">= 0"),
                  ("kd", self.kd, self.kd >= 0, ">= 0"),
                  ("derivative_filter_n", self.derivative_filter_n, self.derivative_filter_n > 0, "> 0"),
                  ("setpoint_weight", self.setpoint_weight, 0 <= self.setpoint_weight <= 1, "in [0, 1]"),
                  ("tracking_time_s", self.tracking_time_s, self.tracking_time_s >= 0, ">= 0"),
                  ("output_max", self.output_max, self.output_max > self.output_min, "> output_min"),
                  ("rate_limit_per_s", self.rate_limit_per_s, self.rate_limit_per_s >= 0, ">= 0"),
                  ("dt_s", dt_s, dt_s > 0, "> 0"),
                  ("anti_windup", self.anti_windup, self.anti_windup in _AW, f"one of {tuple(_AW)}")]
        for name, value, ok, allowed in checks:
            if not ok or (isinstance(value, float) and np.isnan(value)):
                raise ConfigError(f"pid.{name} = {value!r} is not allowed: must be {allowed}")
        tt = self.tracking_time_s or self._default_tracking_time()
        g = np.zeros(N_PID_PARAMS)
        g[[PID_KP, PID_KI, PID_KD, PID_N, PID_B, PID_TT]] = (
            self.kp, self.ki, self.kd, self.derivative_filter_n, self.setpoint_weight, tt)
        g[[PID_UMIN, PID_UMAX, PID_RATE, PID_DT, PID_AW]] = (
            self.output_min, self.output_max, self.rate_limit_per_s, dt_s, _AW[self.anti_windup])
        return g

    def _default_tracking_time(self) -> float:
        # T_t = sqrt(T_i T_d) (Åström & Hägglund); T_i without derivative action; 1 s with no integral
        if self.ki <= 0 or self.kp <= 0:
            return 1.0
        ti = self.kp / self.ki
        return float(np.sqrt(ti * self.kd / self.kp)) if self.kd > 0 else ti


_AW = {"none": AW_NONE, "clamping": AW_CLAMP, "back_calculation": AW_BACKCALC}


def new_state() -> np.ndarray:
    return np.zeros(N_PID_STATE)
