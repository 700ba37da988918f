"""Options of the commands that run a simulated population (``run --population``, ``sweep``): the population size,
the spread, and where the batch runs (this machine, a local Dask cluster of K processes, or an existing scheduler).

Cheap to import (Dask is imported by ``firmware_iface.rig.population`` when a cluster is asked for)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--workers K`` / ``--scheduler tcp://HOST:PORT`` / ``--chunk N``: the same on every population command."""
    group = parser.add_argument_group("where a population runs (default: this machine, all cores, one batch)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="K",
                       help="a local Dask cluster of K worker processes (one thread each) on 127.0.0.1")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="an existing Dask cluster's scheduler (its workers need jointkit installed)")
    group.add_argument("--chunk", type=int, metavar="N",
                       help="joints per Dask task (default: about 3 chunks per worker, at most 250)")


def add_population_options(parser: argparse.ArgumentParser, *, default: int | None = None) -> None:
    """``--population N``, ``--spread FILE`` and ``--seed S`` (joint j of a seed is the same joint in any run)."""
    parser.add_argument("--population", type=int, default=default,
                        help="simulate N joints from --spread in the batch simulation" +
                             (f" (default {default})" if default else ""))
    parser.add_argument("--spread", type=Path, help="manufacturing spread for --population (default "
                                                    "seeds/spread.toml)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
