"""``jointkit sim``: run the simulated joint open loop on a torque or q-axis current step; ``jointkit sim serve``:
virtual joints on a bus served to other processes with python-can-remote until Ctrl-C."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from firmware_iface.cli.common import emit
from firmware_iface.cli.common_bus import add_profile_options, profile_from_args
from firmware_iface.defaults import DEFAULT_PORT, LOOPBACK


def __getattr__(name: str) -> Any:
    """``simulate``, imported on first use (building the parser must not import the simulation); looked up on the
    module by ``run``, so that a test can replace it."""
    if name == "simulate":
        from actuator.simulation import simulate

        globals()[name] = simulate
        return simulate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="simulate the joint open loop on a torque or current step")
    p.add_argument("--preset", default="knee", help="preset name (knee, wrist) or path to a joint TOML")
    cmd = p.add_mutually_exclusive_group()
    cmd.add_argument("--torque-nm", type=float, help="output torque step, N·m (through the ideal ratio)")
    cmd.add_argument("--current-a", type=float, help="q-axis current step, A")
    p.add_argument("--duration-s", type=float, help="simulated time, s")
    p.add_argument("--seed", type=int, default=0, help="noise seed (runs are reproducible)")
    p.add_argument("--record-every", type=int, default=1, help="record one trace row every N model steps")
    p.add_argument("--out", type=Path, help="write the trace as CSV here, and a PNG plot next to it")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="sim_action", metavar="ACTION")
    serve = actions.add_parser("serve", help="run virtual joints as bus nodes, served on ws://127.0.0.1:PORT/")
    serve.add_argument("--nodes", default="1", help="node ids, e.g. 1,2,3 or 1-6 (default 1)")
    serve.add_argument("--preset", dest="serve_preset", default="knee", help="joint preset of every node")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    serve.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1; 0.0.0.0 only if you "
                                                        "mean to expose the joints to the network)")
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a --host that is not loopback (no authentication: anyone reaching it commands "
                            "the joints)")
    serve.add_argument("--free-running", action="store_true", help="as fast as possible instead of wall time")
    serve.add_argument("--watchdog-s", type=float, default=0.1, help="watchdog timeout of every joint, s")
    serve.add_argument("--flash-dir", type=Path, help="directory of the joints' flash files (nodeN.toml)")
    serve.add_argument("--inject", action="append", default=[], metavar="NAME[=VALUE][@NODE]",
                       help="fault injection at start (repeatable), e.g. drop_frames=0.1@2")
    serve.add_argument("--duration-s", dest="serve_duration_s", type=float,
                       help="stop after this many seconds (default: until Ctrl-C)")
    serve.add_argument("--parent-pid", type=int, metavar="PID",
                       help="stop when process PID (the parent that started this one: the GUI) is gone, even if it "
                            "died without stopping us")
    add_profile_options(serve)
    serve.set_defaults(func=run_serve)


def run(args: argparse.Namespace) -> int:
    from actuator.errors import SimulationError
    from actuator.params import load_preset
    from firmware_iface.files import write_trace_csv

    if args.torque_nm is None and args.current_a is None:
        raise SimulationError("jointkit sim needs --torque-nm or --current-a (or the action: jointkit sim serve)")
    if args.duration_s is None or not args.duration_s > 0:
        raise SimulationError(f"--duration-s {args.duration_s}: must be > 0")
    option, value = ("--torque-nm", args.torque_nm) if args.torque_nm is not None else ("--current-a", args.current_a)
    if not math.isfinite(value):
        raise SimulationError(f"{option} {value}: must be a finite number")
    if args.seed < 0:
        raise SimulationError(f"--seed {args.seed}: must be an integer >= 0 (numpy seeds are non-negative)")
    params = load_preset(args.preset)
    simulate = sys.modules[__name__].simulate
    trace = simulate(params, duration_s=args.duration_s, torque_nm=args.torque_nm, current_a=args.current_a,
                     seed=args.seed, record_every=args.record_every)
    summary = {"preset": params.name, "model_step_s": params.dt_s, **trace.summary()}
    if args.out:
        from firmware_iface.plots import plot_trace

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_trace_csv(trace, args.out)
        png = plot_trace(trace, args.out.with_suffix(".png"), f"{params.name}: open-loop step")
        summary.update(trace_csv=str(args.out), plot_png=str(png))
    emit(summary, args.json, f"jointkit sim: {params.name}")
    return 0


def _injection(text: str) -> tuple[str, float | None, int | None]:
    from actuator.errors import ConfigError

    spec, _, node = text.partition("@")
    name, _, value = spec.partition("=")
    try:
        return name.strip(), float(value) if value else None, int(node) if node else None
    except ValueError:
        raise ConfigError(f"--inject {text!r}: expected NAME[=VALUE][@NODE], e.g. drop_frames=0.1@2") from None


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # a rig's supervisor stops us with SIGTERM: the same clean stop as Ctrl-C


def _check_bind(host: str, port: int, allow_remote: bool) -> None:
    """A port TCP can bind, and a loopback address unless the user allows the network: python-can-remote has no
    authentication and also serves a web page, so anyone who reaches the port can command the joints."""
    from actuator.errors import ConfigError

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: allowed 1-65535")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return
    if not allow_remote:
        raise ConfigError(f"--host {host}: not a loopback address; python-can-remote has no authentication, so "
                          "every host that reaches it can command the joints. Add --allow-remote to serve anyway")
    print(f"warning: serving on {host}:{port} without authentication: any host that reaches it can command the "
          "joints", file=sys.stderr, flush=True)


def _check_serve_options(args: argparse.Namespace, node_ids: list[int]) -> list[tuple[str, float | None, int | None]]:
    """The options a served run would only trip over later (or silently ignore), checked before anything starts."""
    from actuator.errors import ConfigError

    duration_s = args.serve_duration_s
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"--duration-s {duration_s}: must be a finite number of seconds > 0 (leave it out to serve "
                          "until Ctrl-C)")
    injections = [_injection(text) for text in args.inject]
    for text, (_, _, node) in zip(args.inject, injections, strict=True):
        if node is not None and node not in node_ids:
            raise ConfigError(f"--inject {text!r}: node {node} is not served: allowed the served nodes "
                              f"{','.join(map(str, node_ids))}")
    return injections


def _parent_alive(pid: int | None) -> bool:
    """Whether the process that started us is still our parent: a dead parent's children are re-parented (to init or
    a subreaper), so the parent id changes; this needs no signal to reach us, so a parent killed with SIGKILL (or
    crashed) still ends its joints within a poll."""
    return pid is None or os.getppid() == pid


def run_serve(args: argparse.Namespace) -> int:
    from firmware_iface.protocol.load import parse_nodes
    from firmware_iface.virtual_joint.serve import JointServer

    _check_bind(args.host, args.port, args.allow_remote)
    profile = profile_from_args(args)
    node_ids = parse_nodes(args.nodes, profile)
    injections = _check_serve_options(args, node_ids)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    server = JointServer(node_ids, preset=args.serve_preset, port=args.port, host=args.host,
                         paced=not args.free_running, flash_dir=args.flash_dir, watchdog_timeout_s=args.watchdog_s,
                         profile=profile)
    try:
        for name, value, node in injections:
            for n in server.nodes:
                if node is None or n.node_id == node:
                    n.inject(name, value)
        server.start()
        ids = ",".join(str(n.node_id) for n in server.nodes)
        print(f"serving virtual joints {ids} ({args.serve_preset}, profile {profile.name}) on {server.url} "
              f"(--interface remote --channel {server.url}); Ctrl-C stops", flush=True)
        deadline = None if args.serve_duration_s is None else time.monotonic() + args.serve_duration_s
        while (deadline is None or time.monotonic() < deadline) and _parent_alive(args.parent_pid):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
