"""What each step type of a sequence does on a rig's joint: ``run_step(rig, seq, step) -> Outcome``.

Measuring steps with a protocol (``firmware_iface.experiments.protocols``) run through the bus executor; the others
are written here: connect, enable, disable, gains, move, hold, wait, fault_reaction (stop commanding and time the
watchdog), identify (a multisine torque over the bus, ``identify_rigid_body`` on what came back), tune (design on
the sequence's preset model, write the gains live, measure the joint's bandwidth over the bus) and measure
(statistics of telemetry signals while the joint holds still).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from actuator.analysis.identify import excitation_torque, identify_rigid_body
from actuator.control.config import CASCADE_GAINS, gain_of, load_gains
from actuator.errors import ConfigError
from actuator.params import load_preset
from firmware_iface.client.gain_check import check_gains
from firmware_iface.client.joint import JointClient
from firmware_iface.experiments import motor_calibration
from firmware_iface.experiments.bus import run_protocol_segments, run_segments
from firmware_iface.experiments.calibrations import BY_STEP, write_to_joint
from firmware_iface.experiments.panels import Panel, Series
from firmware_iface.experiments.protocols import PROTOCOLS, RATE_HZ, Outcome, Segment, hold, move_to
from firmware_iface.protocol.capabilities import missing
from firmware_iface.protocol.profile import Profile
from firmware_iface.rig.rig import Rig
from firmware_iface.rig.sequence import FIGURES, PROTOCOL_OF, Sequence, Step, protocol_config

WATCHDOG_HEARTBEAT_HZ = 1000.0  # heartbeats while timing the watchdog: the reaction is seen to 1 ms


def _run_segments(rig: Rig, step: Step, proto: Any, segments: list[Segment]) -> dict:
    """A protocol's segments on the step's joint over the bus, with the rig's fixture on it."""
    return run_protocol_segments(rig.client(step.node), proto, segments, rig.fixtures.get(step.node))


def _protocol_step(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    """A measuring step or a calibration (``experiments.calibrations``) over the bus, with the rig's fixture where it
    loads the joint: a calibration's configuration is checked against the sequence preset (position and velocity
    limits, gravity, the drive's ceiling) before anything moves, and its outcome carries the certificates; with
    ``write_gains`` the friction feed-forward it found goes into the joint through its profile's gain_write, with
    ``write`` a result the joint keeps as parameters (F/T bias, compensation, Kt) through param_write, the joint
    disabled first; ``save`` then stores them in its flash."""
    cfg = protocol_config(step, seq)
    proto = PROTOCOLS[PROTOCOL_OF[step.type]]
    segments = proto.segments(cfg)
    outcome = proto.analyze(_run_segments(rig, step, proto, segments), segments, cfg)
    if step.cfg.get("write_gains") or step.cfg.get("write"):
        client = rig.client(step.node)
        if step.cfg.get("write") or step.cfg.get("save"):
            # the joint's sensor and drive settings change idle (a drive changes no Kt under load), and the flash is
            # written idle only; the dozens of requests would outlast its watchdog in closed loop with nothing sent.
            # The next measuring step enables it again
            client.disable()
            client.wait_state("idle", 1.0)
        outcome.figures["gains_written"] = write_to_joint(client, BY_STEP[step.type], outcome.figures,
                                                          client.profile.gain_names, bool(step.cfg.get("save")))
    return outcome


def _motor_calibration(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    """The drive's own motor calibration (``experiments.motor_calibration``): asked for, waited for, read back; the
    sequence's preset gives the reference temperature of R and the ratio."""
    params = load_preset(seq.preset) if seq.preset else None
    return motor_calibration.on_client(rig.client(step.node), params, step.cfg["current_a"], step.cfg["save"],
                                       step.cfg["timeout_s"])


def _connect(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    c.wait_alive(step.cfg["timeout_s"])
    c.identify()  # confirmed as a joint of the profile, or IdentityError naming what was heard
    # the protocol version where the profile has it as a parameter (an ODrive or MIT motor: None)
    version = c.read_param("profile_version") if "profile_version" in c.profile.sidecar.params else None
    return Outcome({"state": c.state, "profile_version": version, "faults": c.faults})


def _enable(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    c.enable(step.cfg["mode"], timeout_s=step.cfg["timeout_s"])
    return _keep_alive(c, 0.05, Outcome({"state": c.state, "mode": c.mode}))


def _disable(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    c.disable()
    c.wait_state("idle", 1.0)
    return Outcome({"state": c.state})


def _gains(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    cfg = None
    if step.cfg["file"]:
        cfg = load_gains(seq.path.parent / step.cfg["file"])
        values = {name: gain_of(cfg, name) for name in CASCADE_GAINS}
    else:
        values = {str(k): float(v) for k, v in step.cfg["values"].items()}
    # checked on the sequence preset's linear model before anything is sent: an unstable set is this step's error
    present = {name: c.read_gain(name) for name in CASCADE_GAINS}
    check = check_gains(seq.preset, values, cfg, present=present, where=f"{seq.path}: step {step.index} gains")
    for name, value in values.items():
        c.write_gain(name, value)
    written = {name: c.read_gain(name) for name in values}
    if step.cfg["save"]:
        c.disable()
        c.wait_state("idle", 1.0)
        c.save()
    margins = {f"{m.loop}_phase_margin_deg": m.phase_margin_deg for m in check.margins}
    return Outcome({"gains": written, **margins, **({"gain_warnings": "; ".join(check.warnings)} if check.warnings
                                                     else {})})


def _here(c: JointClient) -> float:
    return float(c.latest().get("telemetry.position_rad", 0.0))


def _move(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    target = step.cfg["position_rad"] if step.cfg["position_rad"] is not None else _here(c)
    segs = [Segment(step.cfg["duration_s"], "position", move_to(target, step.cfg["duration_s"])),
            Segment(max(step.cfg["hold_s"], 1e-3), "position", hold(target))]
    s, _ = run_segments(c, segs)
    t = s["t_s"]
    return Outcome({"final_position_rad": float(s["position_rad"][-1])},
                   [Panel("position (rad)", [Series("position", t, s["position_rad"]),
                                             Series("set-point", t, s["reference"], "--")])])


def _hold(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    q = step.cfg["position_rad"]
    ref = hold(q) if q is not None else (lambda t, q0: q0)
    s, _ = run_segments(c, [Segment(max(step.cfg["duration_s"], 1e-3), "position", ref)])
    return Outcome({"position_error_rms_rad": float(np.sqrt(np.nanmean((s["position_rad"] - s["reference"]) ** 2)))})


def _keep_alive(c: JointClient, duration_s: float, out: Outcome) -> Outcome:
    """Hold the present position for ``duration_s`` when the joint is in closed loop (its watchdog expects
    commands), else just let the time pass."""
    if c.state == "closed_loop" and c.mode == "position":
        run_segments(c, [Segment(max(duration_s, 1e-3), "position", lambda t, q0: q0)])
    elif duration_s > 0:
        c.clock.sleep(duration_s)
    return out


def _wait(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    return _keep_alive(rig.client(step.node), step.cfg["duration_s"], Outcome({}))


def _fault_reaction(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    """Command, then stop: the time from the last command to the heartbeat reporting the watchdog fault."""
    c = rig.client(step.node)
    rate0 = c.read_param("rate_heartbeat_hz")
    c.write_param("rate_heartbeat_hz", WATCHDOG_HEARTBEAT_HZ)
    try:
        home = step.cfg["home_rad"]
        run_segments(c, [Segment(0.6, "position", move_to(home, 0.6)),
                         Segment(step.cfg["command_s"], "position", hold(home))])
        # from the last set-point actually sent: ticks the host loop skipped at the end sent nothing
        last = c.last_command_t or c.clock.now()
        c.wait_for(lambda: "watchdog" in c.faults, step.cfg["timeout_s"], "watchdog fault after the last command")
        reaction = c.heartbeat_t - last
        faults = c.faults
        c.clear_faults()
        c.disable()
        c.wait_for(lambda: not c.faults, 1.0, "faults cleared")
    finally:
        c.write_param("rate_heartbeat_hz", rate0)
    return Outcome({"watchdog_reaction_s": reaction, "faults_seen": faults})


def _identify(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    """A multisine torque (one period) in torque mode; J, B, Fc and m g l fitted to what the joint reported."""
    c, cfg = rig.client(step.node), step.cfg
    tau = excitation_torque(cfg["duration_s"], 1.0 / RATE_HZ, cfg["amplitude_nm"], cfg["f_low_hz"], cfg["f_high_hz"])
    home = cfg["home_rad"]
    segs = [Segment(0.6, "position", move_to(home, 0.6)), Segment(0.3, "position", hold(home)),
            Segment(cfg["duration_s"], "torque", lambda t, q0: float(tau[min(int(t * RATE_HZ), tau.size - 1)]),
                    tag="excite"),
            Segment(0.6, "position", move_to(home, 0.6))]
    s, _ = run_segments(c, segs)
    sel = s["segment"] == 2
    ident = identify_rigid_body(s["t_s"][sel], s["torque_nm"][sel], s["position_rad"][sel])
    figures = {"inertia_kg_m2": ident.inertia_kg_m2.value, "viscous_nm_s_per_rad": ident.viscous_nm_s_per_rad.value,
               "coulomb_nm": ident.coulomb_nm.value,
               "gravity_nm": ident.gravity_nm.value if ident.gravity_nm else math.nan}
    t = s["t_s"][sel]
    return Outcome(figures, [Panel("torque (N·m)", [Series("drive torque", t, s["torque_nm"][sel])]),
                             Panel("position (rad)", [Series("position", t, s["position_rad"][sel])])])


def _tune(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    """Design on the sequence's preset model (verified in simulation), write live, measure the joint's bandwidth
    (``experiments.tune``, as the CLI's ``tune --node`` and the GUI's auto-tune do)."""
    from actuator.params import load_preset
    from firmware_iface.experiments.tune import tune_joint

    c = rig.client(step.node)
    c.wait_alive()
    tuned = tune_joint(c, load_preset(seq.preset), step.cfg["bandwidth_hz"], apply=step.cfg["apply"])
    figures = tuned.figures()
    return Outcome({k: figures[k] for k in FIGURES["tune"]}, tuned.measured.panels)


def _measure(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    c = rig.client(step.node)
    t0 = c.clock.now()
    _keep_alive(c, step.cfg["duration_s"], Outcome({}))
    figures = {}
    for item in step.cfg["signals"]:
        stat, _, semantic = str(item).partition(":")
        _, values = c.series(semantic, since_t=t0)
        v = np.asarray(values, dtype=float)
        fn: Callable[[np.ndarray], float] = {
            "mean": np.mean, "std": lambda a: np.std(a, ddof=1), "min": np.min, "max": np.max, "p2p": np.ptp,
            "rms": lambda a: np.sqrt(np.mean(a ** 2))}[stat]
        figures[f"{semantic.removeprefix('telemetry.')}_{stat}"] = float(fn(v)) if v.size > 1 else math.nan
    return Outcome(figures)


EXECUTORS: dict[str, Callable[[Rig, Sequence, Step], Outcome]] = {
    "connect": _connect, "enable": _enable, "disable": _disable, "gains": _gains, "move": _move, "hold": _hold,
    "wait": _wait, "fault_reaction": _fault_reaction, "identify": _identify, "tune": _tune, "measure": _measure,
    **{t: _protocol_step for t in PROTOCOL_OF},
    "motor_calibrate": _motor_calibration,
}


# what a step needs of the joint's profile beyond what its executor checks itself (the protocol steps check their
# loop's set-points before they send anything): checked for every step before a run starts
NEEDS = {"connect": ("heartbeat",), "enable": ("state_machine",), "disable": ("state_machine",),
         "gains": ("gains", "parameters"), "tune": ("gains", "parameters")}


def unmet_needs(seq: Sequence, profile: Profile) -> list[str]:
    """The steps of ``seq`` a joint of ``profile`` cannot run, each with the capabilities it lacks."""
    out = []
    for step in seq.steps:
        lacking = [c for c in NEEDS.get(step.type, ()) if missing(profile, c)]
        if lacking:
            out.append(f"step {step.name} ({step.type}) needs {', '.join(lacking)}")
    return out


def run_step(rig: Rig, seq: Sequence, step: Step) -> Outcome:
    if step.type not in EXECUTORS:
        raise ConfigError(f"step {step.name}: type {step.type!r} has no executor")
    return EXECUTORS[step.type](rig, seq, step)
