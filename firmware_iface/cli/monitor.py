"""``jointkit monitor``: live telemetry of the joints on a bus, a table refreshed at ``--rate-hz``.

The joints are those of ``--nodes``, or those a short scan hears (exit 2 when none). The view runs until Ctrl-C
(exit 0) or ``--duration-s``; with ``--json`` (which needs ``--duration-s``) nothing is drawn and one final
snapshot per node is printed instead: its newest semantic telemetry values, state, mode, fault names, wrench force
magnitude, frames per second (over the last second of the frames' own timestamps: what the joint sent in that time,
not how promptly this host read it), sequence gaps and heartbeat age.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from firmware_iface.cli.common import print_json
from firmware_iface.cli.common_bus import add_bus_command_options, bus_session, profile_from_args

if TYPE_CHECKING:
    import can
    from rich.table import Table

    from firmware_iface.protocol.profile import Profile

FPS_WINDOW_S = 1.0
FORCE = ("telemetry.force_x_n", "telemetry.force_y_n", "telemetry.force_z_n")
# (column, semantic name or snapshot key, format)
COLUMNS = (("pos rad", "telemetry.position_rad", "{:+.4f}"), ("vel rad/s", "telemetry.velocity_rad_s", "{:+.3f}"),
           ("torque N·m", "telemetry.torque_nm", "{:+.2f}"), ("iq A", "telemetry.iq_a", "{:+.2f}"),
           ("winding °C", "telemetry.winding_temp_c", "{:.1f}"), ("|F| N", "force_magnitude_n", "{:.1f}"),
           ("frames/s", "frames_per_s", "{:.0f}"), ("gaps", "gaps", "{:d}"))


class JointView:
    """One monitored joint: its client and the rate of the frames it sends over a window of bus time (the frames'
    timestamps: the adapter's clock, or the sender's on virtual and remote buses)."""

    def __init__(self, bus: can.BusABC, node_id: int, profile: Profile) -> None:
        from firmware_iface.client.joint import JointClient

        # capacity 2: the monitor reads only the newest row of each telemetry message
        self.client = JointClient(bus, node_id, profile, capacity=2)
        self.node_id = self.client.node_id
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self) -> None:
        now = self.client.last_bus_t
        if now is None:
            return
        self._samples.append((now, self.client.counters["frames"]))
        while len(self._samples) > 2 and now - self._samples[1][0] >= FPS_WINDOW_S:
            self._samples.popleft()  # keep the oldest sample at least one window back, once there is one

    @property
    def frames_per_s(self) -> float:
        if len(self._samples) < 2:
            return math.nan
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else math.nan

    def snapshot(self) -> dict[str, Any]:
        c = self.client
        values: dict[str, Any] = dict(c.latest())
        force = [values.get(k, math.nan) for k in FORCE]
        values.update(state=c.state, mode=c.mode, faults=c.faults, force_magnitude_n=math.hypot(*force),
                      frames_per_s=self.frames_per_s, gaps=sum(c.gaps.values()),
                      heartbeat_age_s=None if c.heartbeat_t is None else c.heartbeat_age_s())
        return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="live telemetry of the joints on a bus (Ctrl-C to stop)")
    add_bus_command_options(p)
    p.add_argument("--nodes", help="node ids to monitor, e.g. 1,2 or 1-6 (default: the joints a short scan finds)")
    p.add_argument("--duration-s", type=float, help="stop after this many seconds (default: at Ctrl-C)")
    p.add_argument("--rate-hz", type=float, default=10.0, help="refresh rate of the view, Hz (default 10)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    from actuator.errors import ConfigError

    if not (math.isfinite(args.rate_hz) and 0 < args.rate_hz <= 100):
        raise ConfigError(f"--rate-hz {args.rate_hz:g}: must be in (0, 100]")
    if args.duration_s is not None and not (math.isfinite(args.duration_s) and args.duration_s > 0):
        raise ConfigError(f"--duration-s {args.duration_s:g}: must be a positive number of seconds")
    if args.json and args.duration_s is None:
        raise ConfigError("monitor --json needs --duration-s (the snapshot is printed at the end)")


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _every(rate_hz: float, duration_s: float | None, tick: Callable[[], None]) -> None:
    """``tick()`` every ``1 / rate_hz`` s on absolute deadlines (late ticks skip ahead), the last at the end of
    ``duration_s``; returns at the end or at Ctrl-C."""
    period = 1.0 / rate_hz
    t0 = time.perf_counter()
    end = math.inf if duration_s is None else t0 + duration_s
    k = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= end:
                return
            k = max(k + 1, math.ceil((now - t0) / period))
            _pause(max(0.0, min(t0 + k * period, end) - time.perf_counter()))
            tick()
    except KeyboardInterrupt:
        return


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def render(views: list[JointView], channel: str) -> Table:
    from rich.table import Table

    table = Table(title=f"jointkit monitor: {channel}", caption="Ctrl-C to stop")
    for name in ("node", "state", "mode", "faults", *(c[0] for c in COLUMNS), "hb age"):
        table.add_column(name, justify="left" if name in ("state", "mode", "faults") else "right")
    for view in views:
        s = view.snapshot()
        age = s["heartbeat_age_s"]
        table.add_row(str(view.node_id), str(s["state"] or "-"), str(s["mode"] or "-"),
                      ", ".join(s["faults"]) or "none", *(_cell(s.get(key), fmt) for _, key, fmt in COLUMNS),
                      "never" if age is None else f"{age * 1e3:.0f} ms")
    return table


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    profile = profile_from_args(args)
    try:
        return _monitor(args, profile)
    except KeyboardInterrupt:  # Ctrl-C before the view runs (during the scan): the bus is closed, nothing to show
        return 0


def _monitor(args: argparse.Namespace, profile: Profile) -> int:
    from rich.console import Console
    from rich.live import Live

    from actuator.errors import TimeoutError
    from firmware_iface.client.scan import LISTEN_S, listen
    from firmware_iface.protocol.load import parse_nodes

    with bus_session(args, profile) as (bus, hub):
        channel = bus.channel_info
        if args.nodes:
            ids = parse_nodes(args.nodes, hub.profile)
        else:
            ids = list(listen(bus, hub.profile, LISTEN_S))
            if not ids:
                raise TimeoutError(f"no joints found on {channel} within {LISTEN_S:g} s: check the bus, or give "
                                   "--nodes")
        views = [JointView(bus, node_id, hub.profile) for node_id in ids]

        def sample() -> None:
            for view in views:
                view.sample()

        if args.json:
            _every(args.rate_hz, args.duration_s, sample)
            print_json({"nodes": {str(v.node_id): v.snapshot() for v in views}, "bus": channel})
            return 0
        console = Console()
        with Live(render(views, channel), console=console, auto_refresh=False) as live:
            def refresh() -> None:
                sample()
                live.update(render(views, channel), refresh=True)

            _every(args.rate_hz, args.duration_s, refresh)
    return 0
