"""The ``jointkit`` command: one module per subcommand, each with ``register(subparsers)`` and ``run(args)``.

Errors of the JointkitError family print ``error: ...`` and exit 2 (1 is kept for a failed verdict); so does any
other exception (an internal error, a bug); ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from actuator.errors import JointkitError
from firmware_iface.cli import (
    bench,
    bode,
    dbc,
    demo,
    gui,
    monitor,
    param,
    record,
    replay,
    results,
    run,
    scan,
    sim,
    step,
    tune,
)

COMMANDS = (sim, step, bode, tune, bench, dbc, demo, scan, monitor, param, run, record, replay, results, gui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jointkit", description="Control, tune and test integrated joint actuators.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except JointkitError as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say, and nobody to say it to
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit, so the final flush is silent
        return 0
    except Exception as e:  # a bug: still exit 2 (1 means "unit failed" to a rig), with the traceback on --debug
        if args.debug:
            traceback.print_exc()
        print(f"error: internal error: {type(e).__name__}: {e} (jointkit --debug {args.command} ... shows the "
              "traceback; please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
