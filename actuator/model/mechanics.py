"""Kernels of the harmonic reducer and the load: a compliant two-inertia system.

Motor side (rotor + wave generator, J_m) and load side (output flange + link, J_L) are joined by the
flexspline. With the kinematic error KE(theta_m) = sum A_k sin(k theta_m + phi_k) (output radians, k = 2
dominant: twice per wave-generator turn) the twist is

    phi = theta_m / N + KE(theta_m) - theta_L,      dphi/dt = w_m (1/N + KE'(theta_m)) - w_L

and the flexspline torque tau_fs = K(phi) - D(phi) + tau_h + c dphi/dt, with K the catalogue piecewise-linear
curve (HD CHA manual eq. 68.1-68.3, odd-symmetric) or a cubic k1 phi + k3 phi^3, tau_h a Dahl hysteresis
state, D(phi) = tau_hmax (1 - exp(-sigma |phi| / tau_hmax)) sgn(phi) the Dahl state's path when loaded from
rest, and c a structural damping. Subtracting D makes the loading curve from rest the catalogue's K (which
is how the catalogue measures it) instead of K plus a saturated Dahl torque, which stiffened the joint near
zero load to K1 + sigma; unloading then runs 2 tau_hmax below it, and the twist at zero torque after +-T
differs by about 3.69 tau_hmax / K1 (sigma = K1): the hysteresis loss. Small signals about rest see K1.
The motor side sees tau_fs through the same transmission (1/N + KE'), so the kinematic error does no net
work over a closed path.

Friction at the input is LuGre with a Stribeck curve g(w) = Fc + (Fs - Fc) e, e = exp(-|w/ws|^delta), plus
viscous b w: the gear's no-load losses. The grease's temperature factor exp(-beta (T_h - T_ref)), at the
housing temperature, scales the speed-independent part (Fc and Fs): fitted to the cold efficiency points it
grows 5x from 25 to -10 °C while the viscous part stays (scaling b instead overshoots the loss at speed).
The mesh loss is a load-dependent Coulomb term (1/eta - 1)|tau_fs (1/N + KE')| (1 - e) added to g: in
motion it gives forward efficiency eta and back-driving efficiency 2 - 1/eta (driving and back-driving
differ, as they do); at breakaway (e = 1) it is absent, so the backdriving torque is N x the starting
torque, as Harmonic Drive's catalogue figures are (CSF-17-100: 3.3 N·m and 3.4 N·cm). Efficiency
then falls with input speed (b w), at light load (the no-load losses against a smaller torque: Harmonic
Drive's factor K) and in the cold (the grease).

Integration (reference section 8): semi-implicit Euler, velocities first then angles with the new
velocities; the viscous terms acting on one body alone (input viscous friction, load damping) are
implicit; the Dahl and LuGre states use their implicit updates
    tau_h+ = (tau_h + sigma dphi) / (1 + sigma |dphi| / tau_hmax),  z+ = (z + h w) / (1 + h sigma0 |w| / g).

Energy (the trace's loss columns, ``actuator.analysis.energy``): with s the stiffness scale, the flexspline's
s K(phi) stores V(phi) = s int_0^phi K, its hysteretic part tau_h - s D(phi) takes (tau_h - s D) dphi/dt, the
damping c (dphi/dt)^2; the input loses tau_f w_m to LuGre friction (split into no-load and mesh in the ratio
g0 : g - g0) and b w_m^2 to viscous friction, the load b_L w_L^2 to its damping; gravity stores
m g l (1 - cos theta_L). The motor's and the external torque's work, less these losses and the change of the
kinetic, spring and gravity energy, is the integrator's error (measured in tests/actuator/test_energy_trace.py).
"""

from __future__ import annotations

import math

from numba import njit

from actuator.model.layout import (
    MAX_HARMONICS,
    P_B,
    P_B_L,
    P_CK1,
    P_CK3,
    P_CUBIC,
    P_DELTA,
    P_DT,
    P_EFF,
    P_FC,
    P_FS,
    P_FS_DAMP,
    P_HYS_SIGMA,
    P_HYS_T,
    P_J_L,
    P_J_M,
    P_K1,
    P_K2,
    P_K3,
    P_KE_A,
    P_KE_PH,
    P_LUBE_BETA,
    P_LUBE_TREF,
    P_MGL,
    P_RATIO,
    P_SIGMA0,
    P_SIGMA1,
    P_T1,
    P_T2,
    P_WS,
    X_HYS,
    X_P_COULOMB,
    X_P_DAMP,
    X_P_HYS,
    X_P_MESH,
    X_P_VISCOUS,
    X_PHI,
    X_TAU_EXT,
    X_TAU_F,
    X_TAU_FS,
    X_TAU_GRAV,
    X_TH,
    X_THL,
    X_THM,
    X_WL,
    X_WM,
    X_Z,
)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def spring_torque(p, phi):
    """Catalogue stiffness curve K(phi), odd-symmetric."""
    if p[P_CUBIC] != 0.0:
        return p[P_CK1] * phi + p[P_CK3] * phi * phi * phi
    a = abs(phi)
    phi1 = p[P_T1] / p[P_K1]
    phi2 = phi1 + (p[P_T2] - p[P_T1]) / p[P_K2]
    if a <= phi1:
        t = p[P_K1] * a
    elif a <= phi2:
        t = p[P_T1] + p[P_K2] * (a - phi1)
    else:
        t = p[P_T2] + p[P_K3] * (a - phi2)
    return t if phi >= 0.0 else -t


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def catalogue_twist(p, torque_nm):
    """The catalogue's twist for an output torque (eq. 68.1-68.3), the inverse of ``spring_torque``."""
    t = abs(torque_nm)
    if t <= p[P_T1]:
        phi = t / p[P_K1]
    elif t <= p[P_T2]:
        phi = p[P_T1] / p[P_K1] + (t - p[P_T1]) / p[P_K2]
    else:
        phi = p[P_T1] / p[P_K1] + (p[P_T2] - p[P_T1]) / p[P_K2] + (t - p[P_T2]) / p[P_K3]
    return phi if torque_nm >= 0.0 else -phi


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def kinematic_error(p, theta_m):
    """KE(theta_m) and its derivative d KE / d theta_m, in output radians."""
    ke = 0.0
    dke = 0.0
    for k in range(MAX_HARMONICS):
        a = p[P_KE_A + k]
        if a != 0.0:
            arg = (k + 1) * theta_m + p[P_KE_PH + k]
            ke += a * math.sin(arg)
            dke += a * (k + 1) * math.cos(arg)
    return ke, dke


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def dahl_update(p, tau_h, dphi):
    tmax = p[P_HYS_T]
    if tmax <= 0.0:
        return 0.0
    sigma = p[P_HYS_SIGMA]
    return (tau_h + sigma * dphi) / (1.0 + sigma * abs(dphi) / tmax)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def dahl_virgin(p, phi):
    """D(phi): the Dahl torque along the loading path from rest (subtracted from the spring, see above)."""
    tmax = p[P_HYS_T]
    if tmax <= 0.0:
        return 0.0
    e = p[P_HYS_SIGMA] * abs(phi) / tmax
    d = tmax if e > 40.0 else tmax * (1.0 - math.exp(-e))
    return d if phi >= 0.0 else -d


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def stribeck_level(p, w, scale):
    """g(w) = Fc + (Fs - Fc) e, the Coulomb-Stribeck level at input speed w, and e = exp(-|w/ws|^delta)."""
    r = abs(w) / p[P_WS]
    # the common Gaussian Stribeck shape (delta = 2) without a pow call: this runs every model step
    x = r * r if p[P_DELTA] == 2.0 else r ** p[P_DELTA]
    e = 0.0 if x > 40.0 else math.exp(-x)  # exp(-40) < 1e-17: skip libm's slow underflow path at speed
    return (p[P_FC] + (p[P_FS] - p[P_FC]) * e) * scale, e


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def lubricant_factor(p, temp_c):
    """The grease's share of the no-load losses at the gear's (housing's) temperature: 1 at the reference."""
    beta = p[P_LUBE_BETA]
    return 1.0 if beta == 0.0 else math.exp(-beta * (temp_c - p[P_LUBE_TREF]))


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def lugre_update(p, z, w, g):
    """Implicit LuGre bristle update; returns the new z and the friction torque without viscous part."""
    dt = p[P_DT]
    if g <= 0.0:
        return 0.0, 0.0
    z_new = (z + dt * w) / (1.0 + dt * p[P_SIGMA0] * abs(w) / g)
    return z_new, p[P_SIGMA0] * z_new + p[P_SIGMA1] * (z_new - z) / dt


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def mechanics_step(p, x, tau_motor, tau_ext, friction_scale, stiffness_scale):
    """Advance the two-inertia mechanics by one step (semi-implicit Euler)."""
    dt = p[P_DT]
    thm = x[X_THM]
    wm = x[X_WM]
    thl = x[X_THL]
    wl = x[X_WL]
    ke, dke = kinematic_error(p, thm)
    trans = 1.0 / p[P_RATIO] + dke
    phi = thm / p[P_RATIO] + ke - thl
    dphi_dt = wm * trans - wl
    tau_h = dahl_update(p, x[X_HYS], phi - x[X_PHI])
    virgin = dahl_virgin(p, phi)
    tau_fs = (spring_torque(p, phi) - virgin) * stiffness_scale + tau_h + p[P_FS_DAMP] * dphi_dt
    # no-load losses with the grease's temperature; the mesh loss, load-dependent Coulomb friction at the input,
    # acts once the teeth slide (1 - e): at breakaway the catalogue's backdriving torque is N x its starting torque
    g0, e = stribeck_level(p, wm, friction_scale * lubricant_factor(p, x[X_TH]))
    g = g0 + (1.0 / p[P_EFF] - 1.0) * abs(tau_fs * trans) * (1.0 - e)
    z, tau_f = lugre_update(p, x[X_Z], wm, g)
    b = p[P_B] * friction_scale
    jm = p[P_J_M]
    jl = p[P_J_L]
    wm_new = (wm + dt / jm * (tau_motor - tau_fs * trans - tau_f)) / (1.0 + dt * b / jm)
    tau_grav = -p[P_MGL] * math.sin(thl)
    tau_load = tau_fs + tau_grav + tau_ext
    b_l = p[P_B_L]
    wl_new = (wl + dt / jl * tau_load) / (1.0 + dt * b_l / jl)
    x[X_WM] = wm_new
    x[X_WL] = wl_new
    x[X_THM] = thm + dt * wm_new
    x[X_THL] = thl + dt * wl_new
    x[X_PHI] = phi
    x[X_HYS] = tau_h
    x[X_Z] = z
    x[X_TAU_FS] = tau_fs
    x[X_TAU_F] = tau_f + b * wm_new

    # Energy flows of this step. Each torque is paired with the velocity that moves its body over the step (the
    # new one: the angles advance with it), so force x displacement is what left the bodies; the implicit viscous
    # terms (b w_m, b_L w_L) are exactly that. The LuGre friction's power tau_f w_m is split between the no-load
    # (Coulomb-Stribeck) and the mesh loss in the proportion of their levels in g; it includes the bristle's small
    # stored energy, so it dips below zero for a few steps at a reversal. Of the flexspline torque s K(phi) is the
    # spring (its energy a function of phi), tau_h - s D(phi) the hysteretic part: its power is negative while a
    # loaded flexspline unloads, its integral over a closed cycle the loop's area; c dphi/dt the damping, whose loss
    # takes the rate that force was computed with, a square (>= 0) within second order of c dphi/dt x the new rate.
    p_f = tau_f * wm_new
    coulomb = p_f * g0 / g if g > 0.0 else 0.0
    x[X_P_COULOMB] = coulomb
    x[X_P_MESH] = p_f - coulomb
    x[X_P_VISCOUS] = b * wm_new * wm_new
    x[X_P_HYS] = (tau_h - virgin * stiffness_scale) * (wm_new * trans - wl_new)
    x[X_P_DAMP] = p[P_FS_DAMP] * dphi_dt * dphi_dt + b_l * wl_new * wl_new
    x[X_TAU_GRAV] = tau_grav
    x[X_TAU_EXT] = tau_ext
