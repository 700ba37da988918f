"""``jointkit calibrate ROUTINE``: a calibration routine of issue 17 (``experiments.calibrations``) on a new simulated
joint in-process, or on joint ``--node N`` over a bus (real or simulated), with its certificates (value, standard
uncertainty, unit, method, limits, verdict).

Routines: ``motor`` (the drive's own: phase resistance and inductance, pole pairs, electrical offset; kept by the
drive, ``--save`` to its flash), ``ft`` (the F/T sensor's bias and tool load), ``ft-crosstalk`` (its sensitivity and
crosstalk matrix against the wrench fixture), ``kt`` (the torque constant against the fixture; ``--write`` makes it
the drive's, as ``ft --write`` the bias and ``ft-crosstalk --write`` the compensation), ``friction`` (the friction
map), ``friction-temperature`` (the map over the housing temperature), ``encoders`` (consistency, kinematic-error
map, output zero), ``cogging`` (the cogging map). ``--gains-out FILE`` writes the gains (``--gains`` or the
preset's) with the sections the routine sets: the profile has no gain for a friction feed-forward, a table of
harmonics or an encoder zero, so those go through a gains file.

Options belong to routines (``OPTIONS``): one given to a routine that has no use for it is refused, not ignored.
Exit 0 when every certificate passes its limit (the routine's default limits), 1 when one fails (named on stderr),
2 when the routine cannot give a result (``CalibrationError`` naming the case) or on any other error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_node_options, on_node
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains
from firmware_iface.experiments.calibration_options import OPTIONS as CONFIG_OPTIONS

NAMES = ("motor", "ft", "ft-crosstalk", "kt", "friction", "friction-temperature", "encoders", "cogging")
WRITES = ("ft", "ft-crosstalk", "kt", "friction", "friction-temperature")  # a result the joint keeps (--write)
# CLI option -> {routine: the keyword of its configuration} (None: handled by this module, not a configuration key):
# the routines' own options from their one table (experiments.calibration_options), then this command's
OPTIONS: dict[str, dict[str, str | None]] = {o.name: dict(o.keys) for o in CONFIG_OPTIONS} | {
    "current_a": {"motor": None},
    "save": {"motor": None, **{r: None for r in WRITES}},
    "write": {r: None for r in WRITES},
    "inject_ft_bias": {"ft": None, "ft-crosstalk": None},
    "inject_output_offset": {r: None for r in NAMES},
    "inject_motor_offset": {r: None for r in NAMES},
    "inject_electrical_offset": {"motor": None},
    "inject_pole_pairs": {"motor": None},
    "gains_out": {"friction": None, "friction-temperature": None, "encoders": None, "cogging": None},
}
SIMULATED_ONLY = ("inject_ft_bias", "inject_output_offset", "inject_motor_offset", "inject_electrical_offset",
                  "inject_pole_pairs")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="calibration routine with certificates (simulated joint or --node)")
    p.add_argument("routine", choices=NAMES, help="motor: R, L, pole pairs, electrical offset (the drive's own); "
                   "ft: the F/T sensor's bias and tool load; ft-crosstalk: its 6x6 sensitivity and crosstalk against "
                   "the wrench fixture; kt: the torque constant against the fixture; friction: "
                   "the friction map; friction-temperature: the map over the housing temperature; encoders: "
                   "consistency, kinematic-error map, output zero; cogging: the cogging map")
    add_joint_options(p)
    a = p.add_argument
    a("--poses", type=_floats, metavar="Q1,Q2,...", help="ft: output angles to hold, rad (default 7 over -1.5..1.5)")
    a("--speeds", type=_floats, metavar="V1,V2,...", help="friction, friction-temperature: output speeds, rad/s")
    a("--loads", type=_floats, metavar="L1,L2,...", help="kt: fixture loads, N·m (default -0.8..0.8 x rated, 5)")
    a("--speed", type=float, help="kt: the plateaus' output speed (default 0.5); encoders: the sweeps' (0.12), rad/s")
    a("--range", type=_floats, metavar="LO,HI", help="encoders: the sweeps' ends, rad (default: the limits less 0.2)")
    a("--maps", type=int, help="friction-temperature: friction maps, a heat before each after the first (3)")
    a("--heat-s", type=float, help="friction-temperature: each heat's loaded hold, s (default 240)")
    a("--cogging-hz", type=float, help="cogging: the cogging frequency of the sweep, Hz (default 20)")
    a("--revolutions", type=float, help="cogging: motor revolutions each way (default 1)")
    a("--settle-s", type=float, help="settling before each pose, plateau or sweep, s")
    a("--average-s", type=float, help="averaging time at each pose (ft) or of each plateau, s")
    a("--current-a", type=float, help="motor: the drive's calibration current, A (default 0.4 x the limit)")
    a("--save", action="store_true", default=None, help="motor, and the routines of --write with it: keep the "
      "result in the joint's flash")
    a("--write", action="store_true", default=None, help="friction, friction-temperature: write the feed-forward "
      "gains to the joint live (the profile's gain_write; read back), as well as to --gains-out; ft (the bias), "
      "ft-crosstalk (the compensation matrix), kt (the drive's Kt): write the joint's parameters (param_write; "
      "read back)")
    a("--inject-ft-bias", type=_floats, metavar="FX,FY,FZ,MX,MY,MZ", help="simulated joint only (ft, ft-crosstalk): "
      "a known F/T bias")
    a("--inject-output-offset", type=float, metavar="RAD", help="simulated joint only: an output encoder offset")
    a("--inject-motor-offset", type=float, metavar="RAD", help="simulated joint only: a motor encoder offset (at "
      "the motor)")
    a("--inject-electrical-offset", type=float, metavar="RAD", help="simulated joint only (motor): a wrong "
      "electrical offset set in the drive before it calibrates")
    a("--inject-pole-pairs", type=int, metavar="P", help="simulated joint only (motor): a wrong pole-pair count "
      "set in the drive before it calibrates")
    a("--gains-out", type=Path, metavar="FILE", help="friction, friction-temperature, encoders, cogging: write the "
      "gains (--gains or the preset's) with the routine's result to FILE")
    a("--seed", type=int, default=0, help="simulated joint only: its noise seed")
    a("--out", type=Path, help="write DIR/calibration.json and DIR/calibration.png")
    add_node_options(p)
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The routine's configuration keywords from the options given; an option of other routines is refused."""
    from actuator.errors import ConfigError

    foreign = [f"--{k.replace('_', '-')}" for k, owners in OPTIONS.items()
               if getattr(args, k) is not None and args.routine not in owners]
    if foreign:
        raise ConfigError(f"{', '.join(foreign)}: not an option of the {args.routine} routine")
    if args.range is not None and len(args.range) != 2:
        raise ConfigError(f"--range = {args.range!r}: two numbers LO,HI, rad")
    return {OPTIONS[k][args.routine]: getattr(args, k) for k in OPTIONS
            if getattr(args, k) is not None and OPTIONS[k][args.routine] is not None}


def run(args: argparse.Namespace) -> int:
    """The routine on a new simulated joint at rest at 0, with the preset's (or ``--gains``) gains: a protocol
    through ``experiments.inprocess``, the motor's through the firmware's own calibration."""
    code = on_node(args, run_bus)
    if code is not None:
        return code
    from actuator.control.config import GAINS
    from firmware_iface.experiments import motor_calibration
    from firmware_iface.experiments.calibrations import ROUTINES, config_of
    from firmware_iface.experiments.inprocess import run_protocol

    routine = ROUTINES[args.routine]
    params, gains = joint_and_gains(args)
    cfg = config_of(routine, params, **_options(args))
    fw = _simulated_joint(args, params, gains)
    if routine.config is None:
        outcome = motor_calibration.on_firmware(fw, args.current_a, bool(args.save))
    else:
        outcome, _ = run_protocol(fw, routine.step, cfg)
    _write_joint(args, routine, fw, outcome, tuple(GAINS))  # the simulated firmware writes every gain by name
    head = {"routine": args.routine, "preset": params.name,
            **{f"injected_{k.removeprefix('inject_')}": getattr(args, k) for k in SIMULATED_ONLY
               if getattr(args, k) is not None}}
    _write_gains(args, routine, gains, outcome)
    return _report(args, head, outcome, f"{params.name} (simulated)")


def _simulated_joint(args: argparse.Namespace, params: Any, gains: Any) -> Any:
    """The joint with what ``--inject-*`` asks: sensor offsets from power-up (as a unit has them), a drive set wrong."""
    from actuator.model import layout as L
    from actuator.model.sensors import prime_encoders
    from firmware_iface.virtual_joint.firmware import JointFirmware

    fw = JointFirmware(params, gains, seed=args.seed)
    for name, value in (("ft_bias_step", args.inject_ft_bias), ("output_encoder_offset", args.inject_output_offset),
                        ("encoder_offset", args.inject_motor_offset)):
        if value is not None:
            fw.model.inject(name, value)  # SimulationError names the values it wants
    prime_encoders(fw.model.p, fw.model.x, fw.model.env[L.E_ENC_M_OFFSET], fw.model.env[L.E_ENC_O_OFFSET])
    for name, value in (("motor.electrical_offset_rad", args.inject_electrical_offset),
                        ("motor.pole_pairs", args.inject_pole_pairs)):
        if value is not None:
            fw.write_param(name, value)  # ParamError names the range
    return fw


def run_bus(args: argparse.Namespace, client: Any) -> int:
    """The routine on joint ``--node``; ``--preset`` is the joint type (its limits, gravity, ratio)."""
    from actuator.errors import ConfigError
    from actuator.params import load_preset
    from firmware_iface.experiments.calibrations import ROUTINES, config_of, run_on_client

    injected = [f"--{k.replace('_', '-')}" for k in SIMULATED_ONLY if getattr(args, k) is not None]
    if injected:
        raise ConfigError(f"{injected[0]} acts on the in-process simulated joint: not with --node")
    routine = ROUTINES[args.routine]
    if routine.needs_fixture:
        raise ConfigError(f"the {args.routine} routine loads the joint's output: it needs the rig's fixture, which "
                          "jointkit calibrate --node has not; run it as a step of jointkit run on a rig")
    params = load_preset(args.preset)
    cfg = config_of(routine, params, **_options(args))
    head = {"routine": args.routine, "node": client.node_id, "bus": client.hub.bus.channel_info}
    outcome = run_on_client(client, routine, params, cfg, current_a=args.current_a, save=bool(args.save))
    _write_joint(args, routine, client, outcome, client.profile.gain_names)
    _write_gains(args, routine, joint_and_gains(args)[1] if args.gains_out else None, outcome)
    return _report(args, head, outcome, f"node {client.node_id}")


def _write_joint(args: argparse.Namespace, routine: Any, joint: Any, outcome: Any, gain_names: tuple[str, ...]) -> None:
    """``--write``: the result's feed-forward gains or joint parameters to the joint (``--save``: and its flash);
    what it now holds goes into the figures as ``gains_written`` (a ConfigError when its profile has none of them)."""
    if not args.write:
        return
    from actuator.errors import ConfigError
    from firmware_iface.experiments.calibrations import joint_gains, write_to_joint

    if not (joint_gains(routine, outcome.figures, gain_names) or routine.joint_params):
        raise ConfigError(f"--write: the joint's profile has no gain for the {args.routine} routine's result "
                          f"(gains it has: {', '.join(gain_names) or 'none'}); use --gains-out")
    outcome.figures["gains_written"] = write_to_joint(joint, routine, outcome.figures, gain_names, bool(args.save))


def _write_gains(args: argparse.Namespace, routine: Any, gains: Any, outcome: Any) -> None:
    if not args.gains_out:
        return
    from firmware_iface.experiments.calibrations import gains_with
    from firmware_iface.files import save_gains

    save_gains(gains_with(gains, routine, outcome.figures), args.gains_out)


def _report(args: argparse.Namespace, head: dict, outcome: Any, where: str) -> int:
    """Judge the certificates by the routine's default limits, print them, write ``--out``; the exit code."""
    from firmware_iface.experiments.calibrations import ROUTINES, judged

    routine = ROUTINES[args.routine]
    verdict = judged(routine, outcome)
    result = {**head, "verdict": verdict["verdict"], "failed": verdict["failed"], "figures": outcome.figures,
              "checks": verdict["checks"], "certificates": verdict["certificates"]}
    if args.out:
        result["outputs"] = _write(args.out, result, outcome, f"{routine.title}: {where}")
    if args.json:
        print_json(result)
    else:
        _print(result, where)
    if verdict["failed"]:
        print(f"calibration failed: {', '.join(verdict['failed'])}", file=sys.stderr)
    return 1 if verdict["failed"] else 0


def _write(out: Path, result: dict, outcome: Any, title: str) -> dict[str, str]:
    import json

    from firmware_iface.jsonsafe import json_safe
    from firmware_iface.rig.report import save_plot

    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(json_safe(result), indent=2))
    outputs = {"json": str(out / "calibration.json")}
    if outcome.panels:
        outputs["plot_png"] = str(save_plot(out / "calibration.png", title, outcome.panels))
    return outputs


def _print(result: dict, where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from firmware_iface.rig.report import format_value

    table = Table(title=f"jointkit calibrate {result['routine']}: {where} — {result['verdict'].upper()}")
    for col in ("quantity", "value", "uncertainty (k = 1)", "unit", "verdict"):
        table.add_column(col, justify="right" if col in ("value", "uncertainty (k = 1)") else "left")
    for c in result["certificates"]:
        table.add_row(c["quantity"], format_value(c["value"]), format_value(c["uncertainty"]), c["unit"],
                      c["verdict"])
    for name, check in result["checks"].items():
        table.add_row(name, format_value(check["value"]), "", "", check["verdict"])
    console = Console()
    console.print(table)
    for c in result["certificates"]:
        console.print(f"{c['quantity']}: {c['method']}")
