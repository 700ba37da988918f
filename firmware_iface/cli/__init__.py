"""The ``jointkit`` command: one module per subcommand, each with ``register(subparsers)`` and ``run(args)``.

Errors of the JointkitError family print ``error: ...`` and exit 2 (1 is kept for a failed verdict); so does any
other exception (an internal error, a bug); ``--debug`` shows the traceback as well.

Building the parser is cheap (``jointkit --help`` must not wait for numpy, Numba, cantools, python-can, asammdf or
Qt): a subcommand module imports only the standard library and cheap modules of ours at its top, and its heavy
dependencies inside ``run`` (tests/cli/test_cli_imports.py checks it). ``actuator``'s package names load on first use,
so ``actuator.errors`` costs nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from firmware_iface.cli import (
    bench,
    bode,
    calibrate,
    dbc,
    demo,
    gui,
    model,
    monitor,
    param,
    record,
    replay,
    results,
    run,
    scan,
    sim,
    step,
    sweep,
    tune,
)

COMMANDS = (sim, step, bode, tune, calibrate, model, bench, dbc, demo, scan, monitor, param, run, sweep, record,
            replay, results, gui)


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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if _is_jointkit_error(e):
            if args.debug:
                traceback.print_exc()
            print(f"error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, BrokenPipeError):  # the reader went away (e.g. `| head`): nothing left to say, nor anyone
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit, so the final flush is silent
            return 0
        # a bug: still exit 2 (1 means "unit failed" to a rig), with the traceback on --debug
        if args.debug:
            traceback.print_exc()
        print(f"error: internal error: {type(e).__name__}: {e} (jointkit --debug {args.command} ... shows the "
              "traceback; please report it)", file=sys.stderr)
        return 2


def _is_jointkit_error(e: BaseException) -> bool:
    """``isinstance(e, JointkitError)`` without importing ``actuator`` for it: when ``actuator.errors`` was never
    imported, nothing raised one of its errors."""
    errors = sys.modules.get("actuator.errors")
    return errors is not None and isinstance(e, errors.JointkitError)


if __name__ == "__main__":
    sys.exit(main())
