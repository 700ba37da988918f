"""Run a command while its processes are stopped at random: finds verdicts that depend on the wall clock.

    python .ci/stall_stress.py [--stall-s 0.4] [--every-s 1.5] [--seed 1] -- COMMAND...

e.g. ``python .ci/stall_stress.py -- .venv/bin/python -m pytest -q -n 2 --dist loadfile`` (the README's tests, with
``QT_QPA_PLATFORM=offscreen``). Every 0.3..``every_s`` seconds it sends SIGSTOP, then SIGCONT 0.1..``stall_s`` later,
to the command's descendants (the pytest workers and the processes they start; the command itself too when it has
none): half the time to all of them, as a machine that stalls, half the time to one, as a scheduler that passes one
over. A CI machine stalled a test's process 327 ms; a test that passes under this is not at the mercy of that.
Exits with the command's exit code. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import time


def descendants(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return []
    return [p for c in children for p in (c, *descendants(c))]


def stall(victims: list[int], seconds: float) -> None:
    for sig, pause in ((signal.SIGSTOP, seconds), (signal.SIGCONT, 0.0)):
        for pid in victims:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, sig)
        time.sleep(pause)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stall-s", type=float, default=0.4, help="longest stop, s (default 0.4)")
    p.add_argument("--every-s", type=float, default=1.5, help="longest time between stops, s (default 1.5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("command", nargs="+", help="the command to run, after --")
    args = p.parse_args(argv)
    if not (args.stall_s > 0.1 and args.every_s > 0.3):
        p.error("--stall-s must be > 0.1 and --every-s > 0.3")
    rng = random.Random(args.seed)
    proc = subprocess.Popen(args.command)
    try:
        while proc.poll() is None:
            time.sleep(rng.uniform(0.3, args.every_s))
            procs = descendants(proc.pid) or [proc.pid]
            victims = procs if rng.random() < 0.5 else [rng.choice(procs)]
            stall(victims, rng.uniform(0.1, args.stall_s))
    finally:
        if proc.poll() is None:
            stall([*descendants(proc.pid), proc.pid], 0.0)  # never leave one stopped
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
