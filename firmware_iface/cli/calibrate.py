"""``jointkit calibrate ROUTINE``: a calibration routine (issue 17) on the simulated joint in-process, or on joint
``--node N`` over a bus (real or simulated), with its certificates (value, standard uncertainty, unit, method,
limits, verdict). Routines: ``ft``, the six-axis F/T sensor's bias and tool load (``experiments.ft_calibration``);
``friction``, the friction map: Coulomb, static, Stribeck velocity and viscous friction at the output
(``experiments.friction_calibration``); ``encoders``, the motor and output encoders' consistency, the reducer's
kinematic-error map and the output encoder's zero (``experiments.encoder_calibration``), whose table ``--gains-out``
writes into a gains file's ``[kinematic_error_compensation]`` (the joint's profile has no parameter for it).

Exit 0 when every certificate passes its limit (the routine's defaults, ``DEFAULT_LIMITS`` of its module), 1 when
one fails (named on stderr), 2 when the routine cannot give a result (``CalibrationError``: poses too narrow, a
saturated sensor, a pose not reached; a plateau that did not move, a Stribeck fit that did not converge; an encoder
that froze, a fit that cannot tell the kinematic error from the twist, no gravity) or on any other error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_node_options, on_node
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains

ROUTINES = ("ft", "friction", "encoders")
PROTOCOL = {"ft": "ft_calibrate", "friction": "friction_calibrate", "encoders": "encoder_calibrate"}
TITLE = {"ft": "F/T calibration", "friction": "friction calibration", "encoders": "encoder calibration"}
# options that belong to one routine only: given to another, they are refused, not ignored
OWN_OPTIONS = {"poses": "ft", "inject_ft_bias": "ft", "speeds": "friction", "speed": "encoders",
               "range": "encoders", "inject_output_offset": "encoders", "inject_motor_offset": "encoders",
               "gains_out": "encoders"}


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="calibration routine with certificates (simulated joint)")
    p.add_argument("routine", choices=ROUTINES, help="ft: the F/T sensor's bias and tool load; friction: the "
                   "friction map (Coulomb, static, Stribeck velocity, viscous); encoders: the encoders' consistency, "
                   "the kinematic-error map and the output encoder's zero")
    add_joint_options(p)
    p.add_argument("--poses", type=_floats, metavar="Q1,Q2,...",
                   help="output angles to hold, rad, as --poses=-1,0,1 (default: 7 over -1.5..1.5)")
    p.add_argument("--speeds", type=_floats, metavar="V1,V2,...",
                   help="friction: output speeds, rad/s (default: 8 log-spaced 0.02 .. 0.8 x the velocity limit)")
    p.add_argument("--settle-s", type=float, help="settling time at each pose (ft, default 0.4) or before each "
                   "plateau (friction, default 0.2), s")
    p.add_argument("--average-s", type=float, help="averaging time at each pose (ft, default 0.5) or of each "
                   "plateau (friction, default 0.4), s")
    p.add_argument("--inject-ft-bias", type=_floats, metavar="FX,FY,FZ,MX,MY,MZ",
                   help="simulated joint only: a known F/T bias to inject, N and N·m (to see it recovered)")
    p.add_argument("--speed", type=float, help="encoders: the sweeps' output speed, rad/s (default 0.1)")
    p.add_argument("--range", type=_floats, metavar="LO,HI", help="encoders: the sweeps' ends, rad, as "
                   "--range=-2,2 (default: a full output turn, or the position limits less 0.2 rad)")
    p.add_argument("--inject-output-offset", type=float, metavar="RAD",
                   help="simulated joint only: a known output encoder offset to inject (to see it recovered)")
    p.add_argument("--inject-motor-offset", type=float, metavar="RAD",
                   help="simulated joint only: a known motor encoder offset (at the motor) to inject")
    p.add_argument("--gains-out", type=Path, metavar="FILE", help="encoders: write the gains (--gains or the "
                   "preset's) with the calibrated [kinematic_error_compensation] table and zeros to FILE")
    p.add_argument("--seed", type=int, default=0, help="simulated joint only: its noise seed")
    p.add_argument("--out", type=Path, help="write DIR/calibration.json and DIR/calibration.png")
    add_node_options(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, params: Any) -> dict:
    """The routine's checked configuration; an option of another routine is refused, not ignored."""
    from actuator.errors import ConfigError
    from firmware_iface.experiments.encoder_calibration import encoder_calibrate_config
    from firmware_iface.experiments.friction_calibration import friction_calibrate_config
    from firmware_iface.experiments.ft_calibration import DEFAULT_POSES_RAD, ft_calibrate_config

    foreign = [(f"--{k.replace('_', '-')}", r) for k, r in OWN_OPTIONS.items()
               if r != args.routine and getattr(args, k) is not None]
    if foreign:
        raise ConfigError(f"{', '.join(o for o, _ in foreign)}: options of the {foreign[0][1]} routine, not of "
                          f"{args.routine}")
    if args.routine == "encoders":
        if args.range is not None and len(args.range) != 2:
            raise ConfigError(f"--range = {args.range!r}: two numbers LO,HI, rad")
        kw = {} if args.settle_s is None else {"settle_s": args.settle_s}
        return encoder_calibrate_config(args.speed or 0.1, args.range, params=params, **kw)
    if args.routine == "friction":
        return friction_calibrate_config(args.speeds, plateau_s=0.4 if args.average_s is None else args.average_s,
                                         settle_s=0.2 if args.settle_s is None else args.settle_s, params=params)
    return ft_calibrate_config(args.poses or DEFAULT_POSES_RAD, 0.4 if args.settle_s is None else args.settle_s,
                               0.5 if args.average_s is None else args.average_s, params=params)


def run(args: argparse.Namespace) -> int:
    """The routine on a new simulated joint (``experiments.inprocess``), at rest at 0, with the preset's gains."""
    code = on_node(args, run_bus)
    if code is not None:
        return code
    from actuator.model import layout as L
    from actuator.model.sensors import prime_encoders
    from firmware_iface.experiments.inprocess import run_protocol
    from firmware_iface.virtual_joint.firmware import JointFirmware

    params, gains = joint_and_gains(args)
    cfg = _config(args, params)
    fw = JointFirmware(params, gains, seed=args.seed)
    injected = {"ft_bias": ("ft_bias_step", args.inject_ft_bias),
                "output_offset": ("output_encoder_offset", args.inject_output_offset),
                "motor_offset": ("encoder_offset", args.inject_motor_offset)}
    for name, value in injected.values():
        if value is not None:
            fw.model.inject(name, value)  # SimulationError names the values it wants
    # a unit's encoder offsets are there from power-up (as the batch primes them), not a jump at t = 0
    prime_encoders(fw.model.p, fw.model.x, fw.model.env[L.E_ENC_M_OFFSET], fw.model.env[L.E_ENC_O_OFFSET])
    outcome, _ = run_protocol(fw, PROTOCOL[args.routine], cfg)
    head = {"routine": args.routine, "preset": params.name,
            **{f"injected_{k}": v for k, (_, v) in injected.items() if v is not None or k == "ft_bias"}}
    _write_gains(args, gains, outcome)
    return _report(args, head, outcome, f"{params.name} (simulated)")


def run_bus(args: argparse.Namespace, client: Any) -> int:
    """The routine on joint ``--node`` (bus executor); ``--preset`` is the joint type (position limits, gravity)."""
    from actuator.errors import ConfigError
    from actuator.params import load_preset
    from firmware_iface.experiments.bus import run_segments
    from firmware_iface.experiments.protocols import PROTOCOLS

    injected = [o for o in ("inject_ft_bias", "inject_output_offset", "inject_motor_offset")
                if getattr(args, o) is not None]
    if injected:
        raise ConfigError(f"--{injected[0].replace('_', '-')} acts on the in-process simulated joint: not with --node")
    cfg = _config(args, load_preset(args.preset))
    proto = PROTOCOLS[PROTOCOL[args.routine]]
    segments = proto.segments(cfg)
    if proto.needs_encoders:  # the encoders' message is off unless asked for
        client.write_param("rate_encoders_hz", 1000.0)
    try:
        signals, _ = run_segments(client, segments, idle_after=True)
    finally:
        if proto.needs_encoders:
            client.write_param("rate_encoders_hz", 0.0)
    outcome = proto.analyze(signals, segments, cfg)
    head = {"routine": args.routine, "node": client.node_id, "bus": client.hub.bus.channel_info}
    _write_gains(args, joint_and_gains(args)[1] if args.gains_out else None, outcome)
    return _report(args, head, outcome, f"node {client.node_id}")


def _write_gains(args: argparse.Namespace, gains: Any, outcome: Any) -> None:
    """``--gains-out``: the gains with the calibration's ``[kinematic_error_compensation]`` (feedback unchanged)."""
    if not args.gains_out:
        return
    from firmware_iface.files import save_gains

    comp = outcome.figures["compensation"]
    save_gains(gains.replace("kinematic_error_compensation", **comp), args.gains_out)


def _report(args: argparse.Namespace, head: dict, outcome: Any, where: str) -> int:
    """Judge the certificates by the routine's default limits, print them, write ``--out``; the exit code."""
    from firmware_iface.experiments import encoder_calibration, friction_calibration, ft_calibration
    from firmware_iface.experiments.certificate import judge_all
    from firmware_iface.rig.sequence import Limit

    defaults = {"ft": ft_calibration, "friction": friction_calibration,
                "encoders": encoder_calibration}[args.routine].DEFAULT_LIMITS
    limits = {name: Limit(lo, hi) for name, (lo, hi) in defaults.items()}
    checks = {name: lim.verdict(outcome.figures.get(name)) for name, lim in limits.items()}
    certs = judge_all(outcome.certificates, limits, outcome.figures)
    failed = sorted({n for n, v in checks.items() if v != "pass"}
                    | {c["quantity"] for c in certs if c["verdict"] == "fail"})
    result = {**head, "verdict": "fail" if failed else "pass", "failed": failed, "figures": outcome.figures,
              "checks": {n: {"value": outcome.figures.get(n), "min": limits[n].min, "max": limits[n].max,
                             "verdict": v} for n, v in checks.items()},
              "certificates": certs}
    if args.out:
        result["outputs"] = _write(args.out, result, outcome, f"{TITLE[args.routine]}: {where}")
    if args.json:
        print_json(result)
    else:
        _print(result, where)
    if failed:
        print(f"calibration failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _write(out: Path, result: dict, outcome: Any, title: str) -> dict[str, str]:
    import json

    from firmware_iface.jsonsafe import json_safe
    from firmware_iface.rig.report import save_plot

    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(json_safe(result), indent=2))
    png = save_plot(out / "calibration.png", title, outcome.panels)
    return {"json": str(out / "calibration.json"), "plot_png": str(png)}


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
    if result["certificates"]:
        console.print(f"method: {result['certificates'][0]['method']}", markup=False)  # [section] is text
