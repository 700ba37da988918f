"""Fixtures shared by the test folders: a real PostgreSQL server for the results database's tests.

``pg_server`` starts one throw-away server per session (firmware_iface.rig.pg_server: initdb on a temporary
directory, a Unix socket only, about 2 s) the first time a test asks for it, and stops it at the end, also after a
failure. Without the server binaries the tests that need it FAIL saying so: CI has them, and a results test that
silently skipped its PostgreSQL half would pass while the back-end is broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    from actuator.errors import ConfigError
    from firmware_iface.rig.pg_server import temporary_server

    try:
        server = temporary_server(durable=False)
        url = server.__enter__()
    except ConfigError as e:
        pytest.fail(f"the PostgreSQL tests need a server: {e}", pytrace=False)
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """The server's database, emptied: each test starts from no tables, as each SQLite test from no file."""
    import psycopg

    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return pg_server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A results database that does not exist yet, on each back-end: an SQLite path whose parent directory does not
    exist either, or an empty PostgreSQL database."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_url")
    return tmp_path / "line" / "results.sqlite"


def _db_exists(target: str | Path) -> bool:
    if isinstance(target, Path):
        return target.exists()
    import psycopg

    with psycopg.connect(target) as conn:
        return conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = 'public'").fetchone()[0] > 0


@pytest.fixture
def db_exists() -> Callable[[str | Path], bool]:
    """Whether anything was ever written to a database: an SQLite file exists; PostgreSQL tables exist."""
    return _db_exists
