"""The motor's calibration (issue 17, item 1) as the host runs it: phase resistance and inductance, pole pairs and
the electrical offset of the motor encoder. The joint's drive measures them itself, in its ``calibrating`` state
(``firmware_iface.virtual_joint.drive_calibration`` on the simulated joint, as ODrive's and moteus's drives do on
theirs: the host cannot inject a d-axis current or choose the commutation angle over the bus); the host asks for
the state, waits for the drive to go back to idle, reads the results as the joint's ``motor.*`` parameters and
states them as certificates (``experiments.certificate``). The drive applies its pole pairs and offset at once;
``save`` keeps them in its flash.

Two ways to the same drive: ``on_firmware`` (a simulated joint's firmware called directly, the in-process CLI and
the tests) and ``on_client`` (a joint over its bus: ``jointkit calibrate motor --node N``, the rig's step). Both end
in ``outcome_of``, the one definition of the figures, the certificates and the refusals (``CalibrationError``
naming the drive's reason: ``not_following``, ``pole_pairs_not_integer``, ``current_not_reached``, ``aborted``).

Figures: the drive's R at the winding temperature it read, and referred to the preset's reference temperature
(copper's coefficient, when the preset is known); L (the d axis); the pole pairs, whole and as estimated; the
electrical offset, and its uncertainty expressed at the output (offset / (pole pairs x ratio)), comparable with the
output encoder's resolution.
"""

from __future__ import annotations

import math
from typing import Any

from actuator.errors import CalibrationError, ConfigError
from actuator.params import JointParams
from firmware_iface.experiments.certificate import Certificate
from firmware_iface.experiments.segments import Outcome
from firmware_iface.virtual_joint.drive_calibration import PARAMS, SINE_HZ, STATUS

FIGURES = ("motor_resistance_ohm", "motor_resistance_u_ohm", "motor_resistance_temp_c", "motor_resistance_ref_ohm",
           "motor_inductance_h", "motor_inductance_u_h", "motor_pole_pairs", "motor_pole_pairs_estimate",
           "motor_electrical_offset_rad", "motor_electrical_offset_u_rad", "motor_offset_u_output_rad")
READ = tuple(name for name in PARAMS if name != "motor.calibration_current_a")
# the CLI's limits when no sequence gives them: the drive's own fits, each far inside what a motor's nameplate
# tolerance allows (R to 1 mohm, L to 1 uH: 1 % of the knee's; the offset to a third of an electrical degree)
DEFAULT_LIMITS = {"motor_resistance_u_ohm": (None, 0.001), "motor_inductance_u_h": (None, 1e-6),
                  "motor_electrical_offset_u_rad": (None, 0.006)}
METHOD = {
    "R": "drive's own: d-axis current at two levels ({i_half:.3g} and {i:.3g} A) with the rotor aligned on the current "
         "(no back-EMF, no torque); R = difference of the mean d voltages over that of the currents, at the winding "
         "temperature the drive read ({temp:.1f} °C){ref}. Kept by the drive as motor.phase_resistance_ohm.",
    "L": "drive's own: a {f:g} Hz sine on the d current, the exact discrete RL step i[k+1] = a i[k] + b v[k] fitted by "
         "least squares (the inverter's one-step delay known), L = -R dt / ln a. Kept as motor.phase_inductance_h.",
    "pp": "drive's own: the current vector turned through one motor revolution forward and back; the slope of the "
          "commanded electrical angle on the motor encoder's. Applied by the drive (motor.pole_pairs).",
    "offset": "drive's own: circular mean of pole pairs x motor encoder angle - commanded electrical angle over one "
              "revolution each way (friction's lag cancels; cogging and the encoder's once-per-turn error average "
              "out); its uncertainty is {u_out:.2g} rad at the output. Applied by the drive "
              "(motor.electrical_offset_rad){saved}.",
}


def on_firmware(fw: Any, current_a: float | None = None, save: bool = False, timeout_s: float = 30.0) -> Outcome:
    """Run the drive's calibration on a simulated joint's firmware (``JointFirmware``), its time advanced here."""
    if current_a is not None:
        fw.write_param("motor.calibration_current_a", current_a)
    fw.set_state("calibrating")
    t_end = fw.t_s + timeout_s
    while fw.state == "calibrating" and fw.t_s < t_end:
        fw.advance(0.05)
    if fw.state == "calibrating":
        fw.set_state("idle")
        raise CalibrationError(f"motor calibration: the drive was still calibrating after {timeout_s:g} s of joint "
                               "time; stopped", "timeout")
    values = {name: fw.read_param(name) for name in (*READ, "motor.calibration_current_a")}
    if save and values["motor.calibration_status"] == 1:
        fw.save_to_flash()
    return outcome_of(values, fw.params, saved=save)


def on_client(client: Any, params: JointParams | None, current_a: float | None = None, save: bool = False,
              timeout_s: float = 30.0) -> Outcome:
    """Run it on joint ``client`` over its bus: the profile must carry the drive's calibration (its ``motor.*``
    parameters) and the calibrating state."""
    missing = [n for n in (*READ, "motor.calibration_current_a") if n not in client.profile.sidecar.params]
    if missing:
        raise ConfigError(f"profile {client.profile.name} has no drive calibration: it lacks the parameters "
                          f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if current_a is not None:
        client.write_param("motor.calibration_current_a", current_a)
    client.set_state("calibrate")
    client.wait_state("calibrate", 2.0)
    client.wait_state("idle", timeout_s)
    values = {name: client.read_param(name) for name in (*READ, "motor.calibration_current_a")}
    if save and values["motor.calibration_status"] == 1:
        client.save()
    return outcome_of(values, params, saved=save)


def _figures(v: dict[str, float], params: JointParams | None) -> dict[str, Any]:
    r, temp = v["motor.phase_resistance_ohm"], v["motor.resistance_temp_c"]
    r_ref = math.nan
    if params is not None:
        m = params.motor
        r_ref = r / (1.0 + m.copper_temp_coeff_per_k * (temp - m.resistance_ref_temp_c))
    pp = v["motor.pole_pairs"]
    ratio = params.reducer.ratio if params is not None else math.nan
    return {"motor_resistance_ohm": r, "motor_resistance_u_ohm": v["motor.phase_resistance_u_ohm"],
            "motor_resistance_temp_c": temp, "motor_resistance_ref_ohm": r_ref,
            "motor_inductance_h": v["motor.phase_inductance_h"],
            "motor_inductance_u_h": v["motor.phase_inductance_u_h"],
            "motor_pole_pairs": int(pp), "motor_pole_pairs_estimate": v["motor.pole_pairs_estimate"],
            "motor_electrical_offset_rad": v["motor.electrical_offset_rad"],
            "motor_electrical_offset_u_rad": v["motor.electrical_offset_u_rad"],
            "motor_offset_u_output_rad": v["motor.electrical_offset_u_rad"] / (pp * ratio)}


def outcome_of(values: dict[str, float], params: JointParams | None, saved: bool = False) -> Outcome:
    """The drive's results as figures and certificates; ``CalibrationError`` with the drive's reason if it failed."""
    status = STATUS.get(int(values["motor.calibration_status"]), "unknown")
    if status != "ok":
        raise CalibrationError(f"motor calibration: the drive reports {status} (motor.calibration_status = "
                               f"{values['motor.calibration_status']:g}); its settings are unchanged", status)
    f = _figures(values, params)
    i = values["motor.calibration_current_a"]
    ref = (f", {f['motor_resistance_ref_ohm']:.5g} ohm at the preset's reference temperature"
           if math.isfinite(f["motor_resistance_ref_ohm"]) else "")
    certs = [
        Certificate("motor_resistance_ohm", f["motor_resistance_ohm"], f["motor_resistance_u_ohm"], "ohm",
                    METHOD["R"].format(i_half=i / 2, i=i, temp=f["motor_resistance_temp_c"], ref=ref),
                    uncertainty_figure="motor_resistance_u_ohm"),
        Certificate("motor_inductance_h", f["motor_inductance_h"], f["motor_inductance_u_h"], "H",
                    METHOD["L"].format(f=SINE_HZ), uncertainty_figure="motor_inductance_u_h"),
        Certificate("motor_pole_pairs", f["motor_pole_pairs"], abs(f["motor_pole_pairs_estimate"]
                                                                   - f["motor_pole_pairs"]), "", METHOD["pp"]),
        Certificate("motor_electrical_offset_rad", f["motor_electrical_offset_rad"],
                    f["motor_electrical_offset_u_rad"], "rad (electrical)",
                    METHOD["offset"].format(u_out=f["motor_offset_u_output_rad"],
                                            saved=" and saved to its flash" if saved else ""),
                    uncertainty_figure="motor_electrical_offset_u_rad"),
    ]
    return Outcome(f, [], certificates=certs)
