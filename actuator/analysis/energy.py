"""The energy balance of a simulated joint from its trace's energy columns: ``energy_balance``.

The model records, for every step, the electrical power into the motor and where it goes (``layout.TRACE_FIELDS``:
``electrical_power_w``, ``copper_loss_w``, ``coulomb_loss_w``, ``mesh_loss_w``, ``viscous_loss_w``,
``hysteresis_power_w``, ``damping_loss_w``) and the torques on the load (``gravity_torque_nm``,
``external_torque_nm``). Integrated over a run (trapezoid over the rows) they must account for the electrical energy:

    E_electrical + W_external = copper + coulomb + mesh + viscous + hysteresis + damping + dE_stored

with W_external = int tau_ext w_L dt (work done on the joint by the external torque) and E_stored the motor's
magnetic energy 0.75 (L_d i_d^2 + L_q i_q^2), the two bodies' kinetic energy, the flexspline's spring energy
s int_0^phi K (``stiffness_scale`` s) and gravity's m g l (1 - cos theta_L). What is left (``residual_j``) is the
integrator's: semi-implicit Euler conserves a nearby energy, not this one, and the columns pair each step's forces
with its new velocities; the LuGre bristle's energy sigma0 z^2 / 2 is part of the friction columns.

The balance needs every step's row (``record_every = 1``): a column is the step's value, not a smooth signal.
The motor's torque ripple (``motor.ripple_6th_fraction``) is a torque without a matching back-EMF harmonic, and
cogging stores energy this module does not count: a balance that should close wants both at zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from actuator.errors import ConfigError
from actuator.params import JointParams

#: the loss and power columns, in the balance's order
POWER_COLUMNS = ("electrical_power_w", "copper_loss_w", "coulomb_loss_w", "mesh_loss_w", "viscous_loss_w",
                 "hysteresis_power_w", "damping_loss_w")


def spring_energy(params: JointParams, phi: ArrayLike, stiffness_scale: float = 1.0) -> NDArray[np.float64]:
    """s int_0^phi K: the energy of the flexspline's catalogue curve (piecewise linear, or cubic) at twist ``phi``."""
    r = params.reducer
    a = np.abs(np.asarray(phi, dtype=float))
    if r.stiffness_model == "cubic":
        return stiffness_scale * (0.5 * r.cubic_k1_nm_per_rad * a**2 + 0.25 * r.cubic_k3_nm_per_rad3 * a**4)
    phi1 = r.t1_nm / r.k1_nm_per_rad
    phi2 = phi1 + (r.t2_nm - r.t1_nm) / r.k2_nm_per_rad
    e1 = 0.5 * r.k1_nm_per_rad * phi1**2
    e2 = e1 + r.t1_nm * (phi2 - phi1) + 0.5 * r.k2_nm_per_rad * (phi2 - phi1) ** 2
    d1, d2 = a - phi1, a - phi2
    v = np.where(a <= phi1, 0.5 * r.k1_nm_per_rad * a**2,
                 np.where(a <= phi2, e1 + r.t1_nm * d1 + 0.5 * r.k2_nm_per_rad * d1**2,
                          e2 + r.t2_nm * d2 + 0.5 * r.k3_nm_per_rad * d2**2))
    return stiffness_scale * v


def twist(params: JointParams, motor_position_rad: ArrayLike, position_rad: ArrayLike) -> NDArray[np.float64]:
    """phi = theta_m / N + KE(theta_m) - theta_L at the given angles (the trace's ``twist_rad`` is the one a step
    started from; this is the twist of the angles the row ends with)."""
    r = params.reducer
    thm = np.asarray(motor_position_rad, dtype=float)
    ke = sum((a * np.sin((k + 1) * thm + ph) for k, (a, ph) in
              enumerate(zip(r.kinematic_error_amplitudes_rad, r.kinematic_error_phases_rad, strict=True))),
             start=np.zeros_like(thm))
    return thm / r.ratio + ke - np.asarray(position_rad, dtype=float)


def stored_energy(params: JointParams, columns: dict[str, NDArray[np.float64]],
                  stiffness_scale: float = 1.0) -> dict[str, NDArray[np.float64]]:
    """Per row: magnetic, motor and load kinetic, spring and gravity energy (J) of the state the row holds."""
    m, ld = params.motor, params.load
    phi = twist(params, columns["motor_position_rad"], columns["position_rad"])
    return {
        "magnetic_j": 0.75 * (m.d_inductance_h * columns["id_a"] ** 2 + m.q_inductance_h * columns["iq_a"] ** 2),
        "motor_kinetic_j": 0.5 * params.motor_side_inertia_kg_m2 * columns["motor_velocity_rad_s"] ** 2,
        "load_kinetic_j": 0.5 * ld.inertia_kg_m2 * columns["velocity_rad_s"] ** 2,
        "spring_j": spring_energy(params, phi, stiffness_scale),
        "gravity_j": ld.mass_kg * ld.gravity_m_s2 * ld.com_distance_m * (1.0 - np.cos(columns["position_rad"])),
    }


@dataclass(frozen=True)
class EnergyBalance:
    """The integrals of a run's energy columns and the change of its stored energy, in joules."""

    electrical_j: float
    copper_j: float
    coulomb_j: float
    mesh_j: float
    viscous_j: float
    hysteresis_j: float
    damping_j: float
    external_work_j: float
    gravity_work_j: float  # int tau_grav w_L dt: minus the change of gravity's energy, to the integrator's error
    stored_change_j: dict[str, float]

    @property
    def losses_j(self) -> float:
        return self.copper_j + self.coulomb_j + self.mesh_j + self.viscous_j + self.hysteresis_j + self.damping_j

    @property
    def residual_j(self) -> float:
        """Energy in (electrical, external work) minus losses and the change of stored energy."""
        return self.electrical_j + self.external_work_j - self.losses_j - sum(self.stored_change_j.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "losses_j": self.losses_j, "residual_j": self.residual_j}


def _trapezoid(t: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(t)))


def energy_balance(params: JointParams, columns: Any, stiffness_scale: float = 1.0) -> EnergyBalance:
    """The balance of a run recorded every step: ``columns`` maps the trace's field names to arrays (a ``Trace``,
    or a dict); ``stiffness_scale`` the run's (``simulation.INJECTIONS``; the trace does not record it)."""
    col = {name: np.asarray(columns[name], dtype=float) for name in
           (*POWER_COLUMNS, "t_s", "id_a", "iq_a", "motor_position_rad", "motor_velocity_rad_s", "position_rad",
            "velocity_rad_s", "gravity_torque_nm", "external_torque_nm")}
    t = col["t_s"]
    if t.size < 2 or not np.allclose(np.diff(t), params.dt_s, rtol=1e-6, atol=0.0):
        spacing = f"{float(np.median(np.diff(t))):g} s apart" if t.size > 1 else "one row"
        raise ConfigError(f"an energy balance needs a row for every model step of {params.dt_s:g} s "
                          f"(record_every = 1), at least two: got {t.size} rows, {spacing}")
    power = {name: _trapezoid(t, col[name]) for name in POWER_COLUMNS}
    stored = stored_energy(params, col, stiffness_scale)
    return EnergyBalance(
        electrical_j=power["electrical_power_w"], copper_j=power["copper_loss_w"],
        coulomb_j=power["coulomb_loss_w"], mesh_j=power["mesh_loss_w"], viscous_j=power["viscous_loss_w"],
        hysteresis_j=power["hysteresis_power_w"], damping_j=power["damping_loss_w"],
        external_work_j=_trapezoid(t, col["external_torque_nm"] * col["velocity_rad_s"]),
        gravity_work_j=_trapezoid(t, col["gravity_torque_nm"] * col["velocity_rad_s"]),
        stored_change_j={name: float(v[-1] - v[0]) for name, v in stored.items()})
