"""``jointkit record``: record a bus to a raw frame file (BLF, candump .log or ASC) and optionally its decoded
signals to MF4, until Ctrl-C or ``--duration-s``.

The recorders (``firmware_iface.rig.recording``) listen on the bus's hub, so the recording holds every frame the
bus carries, including those this process sends. Both files are flushed every ``--flush-interval-s`` (raw) and
``--signals-flush-s`` (MF4): a recording killed mid-way is readable up to its last flush. At the end it prints the
frames recorded per message (``n1.joint_state``) and the files written; exit 0 on Ctrl-C or at the duration.

The recorders (and with them python-can and asammdf) are imported when the command runs; the formats named in the
help are ``firmware_iface.rig.recording``'s, repeated here (tests/cli/test_cli_imports.py checks they agree).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_bus_command_options, bus_session, profile_from_args
from firmware_iface.defaults import DEFAULT_FRAME_SUFFIX, FRAME_FORMATS

if TYPE_CHECKING:
    from firmware_iface.client.hub import BusHub
    from firmware_iface.protocol.profile import Profile
    from firmware_iface.rig.recording import FrameRecorder

POLL_S = 0.05  # how often the main thread looks at the clock and at the recorders' health


def register(sub: argparse._SubParsersAction) -> None:
    formats = ", ".join(f"{s} ({name})" for s, name in FRAME_FORMATS.items())
    p = sub.add_parser("record", help="record a bus: raw frames (BLF/log/ASC) and decoded signals (MF4)")
    add_bus_command_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help=f"raw frame recording, format by extension: {formats}; {DEFAULT_FRAME_SUFFIX} is the "
                        "recommended one (compact, nanosecond timestamps)")
    p.add_argument("--signals", type=Path, metavar="FILE.mf4", help="also write the decoded signals to this MF4")
    p.add_argument("--duration-s", type=float, help="stop after this many seconds (default: at Ctrl-C)")
    p.add_argument("--flush-interval-s", type=float, default=0.5,
                   help="write the raw recording to disk at least this often, s (default 0.5)")
    p.add_argument("--signals-flush-s", type=float, default=1.0,
                   help="rewrite the MF4 at least this often, s (default 1.0)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    from actuator.errors import ConfigError
    from firmware_iface.rig.recording import frame_path, signal_path

    frame_path(args.out)
    if args.signals is not None:
        signal_path(args.signals)
        if args.signals.resolve() == args.out.resolve():
            raise ConfigError(f"--signals {args.signals} is the --out file: give two files")
    if args.duration_s is not None and not (math.isfinite(args.duration_s) and args.duration_s > 0):
        raise ConfigError(f"--duration-s {args.duration_s:g}: must be a positive number of seconds")
    for option in ("flush_interval_s", "signals_flush_s"):
        value = getattr(args, option)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{option.replace('_', '-')} {value:g}: must be a positive number of seconds")


def run(args: argparse.Namespace) -> int:
    from firmware_iface.rig.recording import FrameRecorder, SignalRecorder

    _check_args(args)
    profile = profile_from_args(args)
    with bus_session(args, profile) as (bus, hub):
        frames = FrameRecorder(args.out, flush_interval_s=args.flush_interval_s)
        recorders: list[Any] = [frames]
        try:
            if args.signals is not None:
                recorders.append(SignalRecorder(args.signals, profile, flush_interval_s=args.signals_flush_s))
            for recorder in recorders:
                hub.add_listener(recorder)
            print(f"recording {bus.channel_info} to {', '.join(str(r.path) for r in recorders)} "
                  f"({'Ctrl-C to stop' if args.duration_s is None else f'{args.duration_s:g} s'})", file=sys.stderr,
                  flush=True)
            elapsed = _record(hub, recorders, args.duration_s)
        finally:
            for recorder in recorders:
                hub.remove_listener(recorder)
            for recorder in recorders:
                recorder.stop()
        channel = bus.channel_info
    report = _report(frames, recorders, profile, channel, elapsed)
    if args.json:
        print_json(report)
    else:
        _print_report(report)
    return 0


def _record(hub: BusHub, recorders: list[Any], duration_s: float | None) -> float:
    """Wait until the duration or Ctrl-C; the seconds recorded. A recorder the hub dropped (it raised) ends the
    recording with its error."""
    from actuator.errors import ConfigError

    start = time.monotonic()
    end = math.inf if duration_s is None else start + duration_s
    try:
        while (now := time.monotonic()) < end:
            if any(r not in hub.listeners for r in recorders):
                raise ConfigError(f"the recording stopped: {hub.last_error}")
            time.sleep(min(POLL_S, end - now))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a recording without --duration-s ends
    return time.monotonic() - start


def message_names(counts: Counter[int], profile: Profile) -> dict[str, int]:
    """Frames per message as ``n<node>.<message>`` (ids the profile does not know as ``0x<id>``), sorted by name."""
    from firmware_iface.protocol.addressing import MAX_STANDARD_ID

    named: Counter[str] = Counter()
    for arb, n in counts.items():
        # counted by id alone: a node carried in the payload (MIT replies) is not known here
        located = profile.addressing.locate(arb, arb > MAX_STANDARD_ID)
        named[f"n{located.node_id}.{located.name}" if located is not None else f"0x{arb:03x}"] += n
    return dict(sorted(named.items()))


def _report(frames: FrameRecorder, recorders: list[Any], profile: Profile, channel: str,
            elapsed: float) -> dict[str, Any]:
    messages = message_names(frames.counts, profile)
    if frames.error_frames:
        messages["error_frames"] = frames.error_frames
    files = {"frames": str(frames.path)}
    if len(recorders) > 1:
        files["signals"] = str(recorders[1].path)
    return {"bus": channel, "duration_s": round(elapsed, 3), "frames": frames.frames, "messages": messages,
            "files": files}


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="jointkit record", caption=f"{report['bus']}, {report['duration_s']:.1f} s")
    table.add_column("message")
    table.add_column("frames", justify="right")
    for name, n in report["messages"].items():
        table.add_row(name, str(n))
    table.add_row("total", str(report["frames"]))
    Console().print(table)
    for kind, path in report["files"].items():
        print(f"wrote {path} ({kind})")  # plain: a path must not be wrapped or styled
