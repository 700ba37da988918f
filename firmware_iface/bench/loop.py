"""Benchmark of the host control loop: 1 kHz position commands to virtual joints over an in-process CAN bus.

Two configurations, each on its own python-can ``virtual`` channel (a fresh unique name, two endpoints: the
joints' ``NodeRunner`` thread, paced to wall time, and the host's ``BusHub`` reader thread), all in this process.
The joints' endpoint keeps the frames' own time stamps (``preserve_timestamps=True``: the joint's time on the
wall clock), as ``JointClient.rtt`` expects:

* ``one_joint``: one joint at the firmware's default telemetry rates (joint_state 1 kHz, wrench_force and
  wrench_torque 500 Hz each, motor_telemetry 100 Hz, heartbeat 10 Hz, diagnostics 1 Hz: 2111 frames/s).
* ``six_joints``: six joints (nodes 1..6) with the telemetry lowered to ``SIX_JOINT_RATES_HZ`` (joint_state 1 kHz,
  wrench off, motor_telemetry 100 Hz, heartbeat 10 Hz, diagnostics 1 Hz: 1111 frames/s a joint).

The joints are enabled in position mode (every ``enable(wait=False)`` first, then every ``wait_state``), and the
host loop (``HostLoop`` at ``RATE_HZ``, absolute deadlines) starts at once, inside the joints' 100 ms watchdog.
Each tick sends every joint ``JointClient.position`` of a slow sinusoid (``AMPLITUDE_RAD`` at ``SINE_HZ``) and
reads ``JointClient.latest()`` of every joint. The loop runs ``WARMUP_S`` first, unmeasured (a separate loop whose
figures are discarded), then ``DURATION_S`` (``--quick``: ``QUICK_DURATION_S``) measured. Per configuration:

* ``rate_hz``, ``jitter_p50_us``, ``jitter_p99_us``, ``ticks``, ``overruns``, ``nice``: ``HostLoop.figures()``
  of the measured loop: achieved callback rate, |actual - nominal period| between consecutive callback starts,
  ticks run, ticks skipped because a tick started more than a period late, and the thread priority the loop ran
  at (``HOST_LOOP_NICE`` when the OS granted it, else null: the default priority).
* ``rtt_p50_us``, ``rtt_p99_us``, ``rtt_samples``: the clients' ``rtt`` rings over the measured loop, all joints
  pooled: from a command's send to the receipt of the first joint_state frame the joint stamped after that send
  (so up to one joint_state period, one 1 ms joint chunk, and any lag of the simulation behind wall time are
  part of it); at most one sample per joint_state frame, so fewer samples than commands.
* ``frames_per_s``: frames the host received (``hub.counters["rx"]``) per wall second of the measured loop;
  ``commands_per_s``: frames it sent (``hub.counters["tx"]``) likewise.
* ``telemetry_gaps``: frames missed according to the sequence counters over the measured loop, all joints (only
  heartbeat, wrench_force and wrench_torque carry a counter; joint_state is covered by ``frames_lost``).
* ``frames_lost``: frames the joints sent minus frames the host decoded over the whole session (counted after
  the joints stop and the host has drained the bus), so every message, joint_state included.
* ``command_errors``: ``position`` calls that raised (a joint lost or faulted, e.g. by its watchdog when the host
  starved); the first message is in ``first_error``. The loop goes on and reports what it achieved.
  ``enable_error`` is the first joint that did not report closed loop after enabling (empty when all did).
* ``watchdog_trips``, ``runner_overruns``: the joints' watchdog trips over the session, and how often the joints'
  runner fell more than 50 ms behind wall time and resynchronised during the measured loop (joint time then runs
  slower than wall time).
* ``bus_load_pct``: the traffic the configuration asks for, both directions (the telemetry rates plus one
  command a tick, each joint), as frames/s x ``BITS_PER_FRAME`` (~125 bit: an 8-byte standard frame with typical
  bit stuffing) / 1 Mbit/s, in %. The ``virtual`` bus has no bandwidth limit, so this is what the same traffic
  would need on a real 1 Mbit/s classic CAN bus, not a measurement; ``bus_load_measured_pct`` is the same from
  the measured frames (received + sent). Six joints at 1 kHz commands and 1 kHz joint_state need about 158 %:
  on a real bus that traffic needs two buses (or CAN FD, or lower joint_state rates).

How long the host loop busy-waits before each deadline (``spin_us``) is chosen per configuration. The loop
sleeps until ``spin_s`` before the deadline, and the OS wakes a sleeping thread late by up to a few hundred
microseconds on these shared 2-core machines. With one joint the CPU is mostly idle and a 0.5 ms busy-wait
absorbs that lateness: over 13 runs of 5 s the p99 jitter was 0.1 to 11 us, where HostLoop's default of 0.2 ms
gave more than 200 us in about one run in four (12 to 356 us). With six joints the simulation saturates both
cores and a 0.5 ms busy-wait starves the joints (122 failed commands in one of three runs), so that
configuration keeps the 0.2 ms default; it has no jitter target.

``target`` is the host loop's goal, which the issue sets for one joint; ``one_joint_meets_target`` is true when
the achieved rate is within 1 % of it, the p99 jitter is within ``jitter_p99_us_max`` and no command failed.
Every thread (joints, hub, host loop) shares one interpreter lock, so the host loop's timing also depends on how
much the simulated joints cost. The figures are what was measured; a slow machine gives lower figures, not an error.
Flat copies of the main figures (``one_joint_rate_hz``, ...) are at the top level for the CLI table, which does not
show nested figures.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import can
import numpy as np

from actuator.errors import BusError, FaultError, TimeoutError
from firmware_iface.client import BusHub, JointClient
from firmware_iface.client.joint import SHARED_BUS_RATES_HZ
from firmware_iface.client.loop import HostLoop, percentiles_us
from firmware_iface.virtual_joint.firmware import DEFAULT_RATES_HZ, RATES
from firmware_iface.virtual_joint.node import NodeRunner, VirtualJointNode

RATE_HZ = 1000
ONE_JOINT_SPIN_S = 5e-4  # one joint leaves the CPU idle: busy-wait the last 0.5 ms (see below)
SIX_JOINT_SPIN_S = 2e-4  # six joints saturate both cores: a longer busy-wait starves them (HostLoop's default)
HOST_LOOP_NICE = -10  # the host loop thread's priority, as a control loop asks; figures["nice"]: granted or not
JITTER_P99_US_MAX = 200
RATE_TOLERANCE = 0.01  # the achieved rate must be within 1 % of RATE_HZ to meet the target
WARMUP_S = 0.5
DURATION_S = 5.0
QUICK_DURATION_S = 1.0
AMPLITUDE_RAD = 0.05
SINE_HZ = 0.5
SETUP_TIMEOUT_S = 5.0  # first heartbeat, and closed loop after enabling (generous: a loaded machine is slow)
BITS_PER_FRAME = 125  # an 8-byte classic CAN frame, standard id, with typical bit stuffing
BUS_BITRATE = 1_000_000
SIX_JOINT_RATES_HZ = {**DEFAULT_RATES_HZ, **SHARED_BUS_RATES_HZ}
FLAT = ("rate_hz", "jitter_p50_us", "jitter_p99_us", "rtt_p50_us", "rtt_p99_us", "overruns", "frames_per_s",
        "telemetry_gaps", "frames_lost", "command_errors", "bus_load_pct")


def telemetry_frames_per_s(rates_hz: dict[str, float]) -> float:
    """Telemetry frames a joint sends per second at these rate parameters (wrench is two messages)."""
    return sum(rate * len(RATES[name]) for name, rate in rates_hz.items())


def bus_load_pct(frames_per_s: float) -> float:
    return frames_per_s * BITS_PER_FRAME / BUS_BITRATE * 100.0


class _Errors:
    """Commands that raised: how many, and the first message."""

    def __init__(self) -> None:
        self.count, self.first = 0, ""

    def add(self, e: Exception) -> None:
        self.count += 1
        self.first = self.first or f"{type(e).__name__}: {e}"


def _position_ticks(clients: list[JointClient], t0: float, errors: _Errors) -> Callable[[int, float], None]:
    """The loop's callback: a position command to every joint, then every joint's latest telemetry."""
    omega = 2.0 * math.pi * SINE_HZ

    def tick(k: int, t_s: float) -> None:
        target = AMPLITUDE_RAD * math.sin(omega * (time.perf_counter() - t0))  # one time base across both loops
        for c in clients:
            try:
                c.position(target)
            except (FaultError, TimeoutError, BusError) as e:
                errors.add(e)
            c.latest()

    return tick


def _drain(hub: BusHub, quiet_s: float = 0.05, limit_s: float = 1.0) -> None:
    """Wait until the hub has received nothing new for ``quiet_s`` (the joints have stopped sending)."""
    end = time.perf_counter() + limit_s
    last = -1
    while hub.counters["rx"] != last and time.perf_counter() < end:
        last = hub.counters["rx"]
        time.sleep(quiet_s)


def measure(n_joints: int, rates_hz: dict[str, float], duration_s: float, preset: str = "knee",
            warmup_s: float = WARMUP_S, spin_s: float = SIX_JOINT_SPIN_S) -> dict[str, Any]:
    """The figures of one configuration (see the module docstring); buses and threads are closed on return."""
    channel = f"jointkit-bench-loop-{os.getpid()}-{uuid.uuid4().hex}"
    with contextlib.ExitStack() as stack:
        joint_bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
        stack.callback(joint_bus.shutdown)
        host_bus = can.Bus(interface="virtual", channel=channel)
        stack.callback(host_bus.shutdown)
        hub = BusHub.of(host_bus)
        stack.callback(hub.close)
        nodes = [VirtualJointNode(joint_bus, i + 1, preset=preset, seed=i) for i in range(n_joints)]
        for node in nodes:
            node.fw.rates_hz.update(rates_hz)
        clients = [JointClient(host_bus, i + 1) for i in range(n_joints)]
        runner = NodeRunner(joint_bus, nodes, paced=True)
        stack.callback(runner.stop)
        runner.start()

        for c in clients:
            c.wait_alive(SETUP_TIMEOUT_S)
        for c in clients:
            c.enable("position", wait=False)
        enable_errors = _Errors()
        for c in clients:
            try:
                c.wait_state("closed_loop", SETUP_TIMEOUT_S)
            except (FaultError, TimeoutError) as e:  # a starved host: measured on, reported, not raised
                enable_errors.add(e)
        errors = _Errors()
        t_ref0 = time.perf_counter()
        tick = _position_ticks(clients, t_ref0, errors)
        HostLoop(RATE_HZ, tick).run(warmup_s)  # unmeasured: caches, queues and the joints' transients settle

        rx0, tx0 = hub.counters["rx"], hub.counters["tx"]
        gaps0 = sum(sum(c.gaps.values()) for c in clients)
        rtt0 = [c.rtt.count for c in clients]
        runner_overruns0 = runner.counters["overruns"]
        errors = _Errors()
        tick = _position_ticks(clients, t_ref0, errors)
        loop = HostLoop(RATE_HZ, tick, nice=HOST_LOOP_NICE, spin_s=spin_s)
        t_start = time.perf_counter()
        figures = loop.run(duration_s)
        wall_s = time.perf_counter() - t_start
        rx, tx = hub.counters["rx"] - rx0, hub.counters["tx"] - tx0
        gaps = sum(sum(c.gaps.values()) for c in clients) - gaps0
        rtt = np.concatenate([c.rtt.view(n0)[:, 1] for c, n0 in zip(clients, rtt0, strict=True)])
        runner_overruns = runner.counters["overruns"] - runner_overruns0
        states = [c.state for c in clients]

        runner.stop()
        _drain(hub)
        frames_lost = sum(n.counters["tx"] for n in nodes) - hub.counters["rx"]
        rtt_p50, rtt_p99 = percentiles_us(rtt)
        expected = n_joints * (telemetry_frames_per_s(rates_hz) + RATE_HZ)
        return {
            "joints": n_joints,
            "telemetry_rates_hz": dict(rates_hz),
            "duration_s": wall_s,
            **figures,
            "spin_us": loop.spin_s * 1e6,
            "rtt_p50_us": rtt_p50,
            "rtt_p99_us": rtt_p99,
            "rtt_samples": int(rtt.size),
            "frames_per_s": rx / wall_s,
            "commands_per_s": tx / wall_s,
            "telemetry_gaps": int(gaps),
            "frames_lost": int(frames_lost),
            "command_errors": errors.count,
            "first_error": errors.first,
            "enable_error": enable_errors.first,
            "states_after": states,
            "watchdog_trips": int(sum(n.fw.counters["watchdog_trips"] for n in nodes)),
            "runner_overruns": int(runner_overruns),
            "expected_frames_per_s": expected,
            "bus_load_pct": bus_load_pct(expected),
            "bus_load_measured_pct": bus_load_pct((rx + tx) / wall_s),
        }


def meets_target(f: dict[str, Any]) -> bool:
    rate, jitter = f["rate_hz"], f["jitter_p99_us"]
    return bool(math.isfinite(rate) and abs(rate - RATE_HZ) <= RATE_TOLERANCE * RATE_HZ
                and math.isfinite(jitter) and jitter <= JITTER_P99_US_MAX and f["command_errors"] == 0)


def run(preset: str = "knee", quick: bool = False) -> dict[str, Any]:
    duration = QUICK_DURATION_S if quick else DURATION_S
    configs = {"one_joint": measure(1, dict(DEFAULT_RATES_HZ), duration, preset, spin_s=ONE_JOINT_SPIN_S),
               "six_joints": measure(6, dict(SIX_JOINT_RATES_HZ), duration, preset, spin_s=SIX_JOINT_SPIN_S)}
    out: dict[str, Any] = {"preset": preset, **configs,
                           "target": {"rate_hz": RATE_HZ, "jitter_p99_us_max": JITTER_P99_US_MAX}}
    out["target"]["applies_to"] = "one_joint"  # six joints is a load figure: two cores, no jitter target
    out["one_joint_meets_target"] = meets_target(configs["one_joint"])
    for name, f in configs.items():
        out.update({f"{name}_{key}": f[key] for key in FLAT})
    out.update({"warmup_s": WARMUP_S, "duration_s": duration, "cores": os.cpu_count()})
    return out
