"""``jointkit calibrate ROUTINE``: a calibration routine (issue 17) on the simulated joint in-process, or on joint
``--node N`` over a bus (real or simulated), with its certificates (value, standard uncertainty, unit, method,
limits, verdict). Routines: ``ft``, the six-axis F/T sensor's bias and tool load (``experiments.ft_calibration``);
``friction``, the friction map: Coulomb, static, Stribeck velocity and viscous friction at the output
(``experiments.friction_calibration``); ``kt``, the motor's torque constant against the fixture and the mesh efficiency
(``experiments.kt_calibration``: it loads the joint, so on the simulated joint only; over a bus the rig's fixture is
needed, which ``jointkit run`` has on a simulated rig); ``friction-temperature``, the friction map at several housing
temperatures reached by loaded holds and the grease's temperature coefficient beta
(``experiments.friction_temperature``: minutes of joint time, also loading the joint).

Exit 0 when every certificate passes its limit (the routine's defaults, ``DEFAULT_LIMITS`` of its module), 1 when
one fails (named on stderr), 2 when the routine cannot give a result (``CalibrationError``: poses too narrow, a
saturated sensor, a pose not reached; a plateau that did not move, a Stribeck fit that did not converge; a saturated
current, loads that cannot give a slope) or on any other error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_node_options, on_node
from firmware_iface.cli.common_loop import add_joint_options, joint_and_gains

ROUTINES = ("ft", "friction", "kt", "friction-temperature")
PROTOCOL = {"ft": "ft_calibrate", "friction": "friction_calibrate", "kt": "kt_calibrate",
            "friction-temperature": "friction_temperature_calibrate"}
TITLE = {"ft": "F/T calibration", "friction": "friction calibration", "kt": "Kt calibration",
         "friction-temperature": "friction over temperature"}


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="calibration routine with certificates (simulated joint)")
    p.add_argument("routine", choices=ROUTINES, help="ft: the F/T sensor's bias and tool load; friction: the "
                   "friction map (Coulomb, static, Stribeck velocity, viscous); kt: the torque constant against the "
                   "fixture; friction-temperature: the friction map over the housing temperature (beta)")
    add_joint_options(p)
    p.add_argument("--poses", type=_floats, metavar="Q1,Q2,...",
                   help="output angles to hold, rad, as --poses=-1,0,1 (default: 7 over -1.5..1.5)")
    p.add_argument("--speeds", type=_floats, metavar="V1,V2,...",
                   help="friction: output speeds, rad/s (default: 8 log-spaced 0.02 .. 0.8 x the velocity limit)")
    p.add_argument("--loads", type=_floats, metavar="L1,L2,...",
                   help="kt: fixture loads, N·m, as --loads=-40,0,40 (default: -0.8..0.8 x the rated torque, 5)")
    p.add_argument("--maps", type=int, help="friction-temperature: friction maps, a heat before each after the "
                   "first (default 3)")
    p.add_argument("--heat-s", type=float, help="friction-temperature: each heat's loaded hold, s (default 240)")
    p.add_argument("--speed", type=float, help="kt: the plateaus' output speed, rad/s (default 0.5)")
    p.add_argument("--settle-s", type=float, help="settling time at each pose (ft, default 0.4) or before each "
                   "plateau (friction, kt, default 0.2), s")
    p.add_argument("--average-s", type=float, help="averaging time at each pose (ft, default 0.5) or of each "
                   "plateau (friction, kt, default 0.4), s")
    p.add_argument("--inject-ft-bias", type=_floats, metavar="FX,FY,FZ,MX,MY,MZ",
                   help="simulated joint only: a known F/T bias to inject, N and N·m (to see it recovered)")
    p.add_argument("--seed", type=int, default=0, help="simulated joint only: its noise seed")
    p.add_argument("--out", type=Path, help="write DIR/calibration.json and DIR/calibration.png")
    add_node_options(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, params: Any) -> dict:
    """The routine's checked configuration; an option of the other routine is refused, not ignored."""
    from actuator.errors import ConfigError
    from firmware_iface.experiments.friction_calibration import friction_calibrate_config
    from firmware_iface.experiments.friction_temperature import friction_temperature_config
    from firmware_iface.experiments.ft_calibration import DEFAULT_POSES_RAD, ft_calibrate_config
    from firmware_iface.experiments.kt_calibration import kt_calibrate_config

    if args.routine != "kt" and (args.loads is not None or args.speed is not None):
        raise ConfigError("--loads and --speed are options of the kt routine, not of " + args.routine)
    if args.routine != "friction-temperature" and (args.maps is not None or args.heat_s is not None):
        raise ConfigError("--maps and --heat-s are options of the friction-temperature routine, not of "
                          + args.routine)
    if args.routine == "kt":
        if args.poses is not None or args.inject_ft_bias is not None or args.speeds is not None:
            raise ConfigError("--poses, --inject-ft-bias and --speeds are options of the ft and friction routines, "
                              "not of kt")
        return kt_calibrate_config(params, args.loads, args.speed,
                                   plateau_s=0.4 if args.average_s is None else args.average_s,
                                   settle_s=0.2 if args.settle_s is None else args.settle_s)
    if args.routine in ("friction", "friction-temperature"):
        if args.poses is not None or args.inject_ft_bias is not None:
            raise ConfigError(f"--poses and --inject-ft-bias are options of the ft routine, not of {args.routine}")
        if args.routine == "friction-temperature":
            extra = {k: v for k, v in (("maps", args.maps), ("heat_s", args.heat_s)) if v is not None}
            return friction_temperature_config(params, speeds_rad_s=args.speeds,
                                               plateau_s=0.4 if args.average_s is None else args.average_s,
                                               settle_s=0.2 if args.settle_s is None else args.settle_s, **extra)
        return friction_calibrate_config(args.speeds, plateau_s=0.4 if args.average_s is None else args.average_s,
                                         settle_s=0.2 if args.settle_s is None else args.settle_s, params=params)
    if args.speeds is not None:
        raise ConfigError("--speeds is an option of the friction routine, not of ft")
    return ft_calibrate_config(args.poses or DEFAULT_POSES_RAD, 0.4 if args.settle_s is None else args.settle_s,
                               0.5 if args.average_s is None else args.average_s, params=params)


def run(args: argparse.Namespace) -> int:
    """The routine on a new simulated joint (``experiments.inprocess``), at rest at 0, with the preset's gains."""
    code = on_node(args, run_bus)
    if code is not None:
        return code
    from firmware_iface.experiments.inprocess import run_protocol
    from firmware_iface.virtual_joint.firmware import JointFirmware

    params, gains = joint_and_gains(args)
    cfg = _config(args, params)
    fw = JointFirmware(params, gains, seed=args.seed)
    if args.inject_ft_bias is not None:
        fw.model.inject("ft_bias_step", args.inject_ft_bias)  # SimulationError names the 6 values it wants
    outcome, _ = run_protocol(fw, PROTOCOL[args.routine], cfg)
    head = {"routine": args.routine, "preset": params.name, "injected_ft_bias": args.inject_ft_bias}
    return _report(args, head, outcome, f"{params.name} (simulated)")


def run_bus(args: argparse.Namespace, client: Any) -> int:
    """The routine on joint ``--node`` (bus executor); ``--preset`` is the joint type (position limits, gravity)."""
    from actuator.errors import ConfigError
    from actuator.params import load_preset
    from firmware_iface.experiments.bus import run_segments
    from firmware_iface.experiments.protocols import PROTOCOLS

    if args.inject_ft_bias is not None:
        raise ConfigError("--inject-ft-bias acts on the in-process simulated joint: not with --node")
    cfg = _config(args, load_preset(args.preset))
    proto = PROTOCOLS[PROTOCOL[args.routine]]
    segments = proto.segments(cfg)
    signals, _ = run_segments(client, segments, idle_after=True)
    outcome = proto.analyze(signals, segments, cfg)
    head = {"routine": args.routine, "node": client.node_id, "bus": client.hub.bus.channel_info}
    return _report(args, head, outcome, f"node {client.node_id}")


def _report(args: argparse.Namespace, head: dict, outcome: Any, where: str) -> int:
    """Judge the certificates by the routine's default limits, print them, write ``--out``; the exit code."""
    from firmware_iface.experiments import friction_calibration, friction_temperature, ft_calibration, kt_calibration
    from firmware_iface.experiments.certificate import judge_all
    from firmware_iface.rig.sequence import Limit

    defaults = {"ft": ft_calibration, "friction": friction_calibration,
                "kt": kt_calibration, "friction-temperature": friction_temperature}[args.routine].DEFAULT_LIMITS
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
        console.print(f"method: {result['certificates'][0]['method']}")
