"""A throw-away PostgreSQL server for the tests and ``jointkit bench results``: ``initdb`` on a temporary directory,
``pg_ctl start`` listening on a Unix socket in that directory only (``listen_addresses=''``: nothing on the network),
``pg_isready``, and ``pg_ctl stop`` plus removal of the directory however the block ends.

The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, the newest found) or those of ``JOINTKIT_PG_BIN``.
PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user the package creates, in a
directory it owns (root's client connects to the socket all the same).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from actuator.errors import ConfigError

DEBIAN_BIN = Path("/usr/lib/postgresql")
PORT = 5432  # names the socket file in the private directory: no clash with any other server
USER = "jointkit"  # the cluster's superuser; trust authentication (the socket is reachable by its owner and root)
DATABASE = "jointkit"
START_TIMEOUT_S = 60  # a cold start on a loaded machine takes a few seconds; 60 s means it will not come
# for tests: a server that dies with its data directory need not survive a power cut
FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


def bin_dir() -> Path:
    """The directory of initdb and pg_ctl, or ConfigError saying where they were looked for."""
    env = os.environ.get("JOINTKIT_PG_BIN")
    candidates = [Path(env)] if env else sorted(DEBIAN_BIN.glob("*/bin"), key=lambda p: _major(p.parent.name))[::-1]
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    where = f"JOINTKIT_PG_BIN={env}" if env else f"{DEBIAN_BIN}/*/bin"
    raise ConfigError(f"PostgreSQL server binaries (initdb, pg_ctl) not found in {where}: install the postgresql "
                      "package (Debian: apt-get install postgresql) or set JOINTKIT_PG_BIN to their directory")


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def _owner() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as: None as an ordinary user, the postgres user as root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise ConfigError("PostgreSQL does not run as root and there is no postgres user to run it as "
                          "(the postgresql package creates one)") from None
    return entry.pw_uid, entry.pw_gid


def _run(args: list[str], owner: tuple[int, int] | None, cwd: Path, timeout_s: float) -> None:
    ids = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
    try:
        subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, timeout=timeout_s, **ids)
    except subprocess.CalledProcessError as e:
        said = (e.stderr or e.stdout or "").strip()[-800:]
        raise ConfigError(f"temporary PostgreSQL server: {Path(args[0]).name} failed (exit {e.returncode}): "
                          f"{said}") from e
    except subprocess.TimeoutExpired as e:
        raise ConfigError(f"temporary PostgreSQL server: {Path(args[0]).name} took over {timeout_s:g} s") from e


@contextlib.contextmanager
def temporary_server(*, durable: bool = True) -> Iterator[str]:
    """Start a server and yield the ``postgresql://`` URL of its (empty) database ``jointkit``; stop it and remove
    its directory at the end. ``durable=False`` turns off fsync (for tests: faster, and nothing outlives them)."""
    pg = bin_dir()
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="jointkit-pg-"))
    data, log = root / "data", root / "server.log"
    started = False
    try:
        if owner:
            os.chown(root, *owner)
        _run([str(pg / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C",
              "--no-sync"], owner, root, START_TIMEOUT_S)
        options = f"-k {root} -c listen_addresses='' -p {PORT}" + ("" if durable else " " + FAST)
        started = True  # from here on a failed start may still have left a server to stop
        _run([str(pg / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT_S), "-o", options,
              "start"], owner, root, START_TIMEOUT_S + 5)
        _run([str(pg / "pg_isready"), "-h", str(root), "-p", str(PORT), "-t", str(START_TIMEOUT_S)], owner, root,
             START_TIMEOUT_S + 5)
        _run([str(pg / "createdb"), "-h", str(root), "-p", str(PORT), "-U", USER, DATABASE], owner, root,
             START_TIMEOUT_S)
        yield f"postgresql://{USER}@/{DATABASE}?host={root}&port={PORT}"
    finally:
        if started:
            with contextlib.suppress(ConfigError):  # already stopped (or never came up): nothing to stop
                _run([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], owner, root, 60)
        shutil.rmtree(root, ignore_errors=True)
