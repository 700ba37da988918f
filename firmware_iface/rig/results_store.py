"""Where the results database lives: one SQLite file (a path, the embedded default) or a PostgreSQL database (a
``postgresql://`` URL, for many rigs writing to one server), behind one interface.

As python-can's buses do, the public method is defined once (:meth:`Store.transaction`: open, begin, check or create
the schema, commit or roll back, turn every foreign error into a ``ConfigError`` naming the database) and each
back-end fills in private hooks (connect, begin, lock the schema, read a version that predates the
``schema_version`` table, name a foreign error). The SQL is in ``results_sql``.

Versions: a database at the code's ``SCHEMA_VERSION`` is used; a new (empty) one is built to it in the first write
transaction; an older one is refused (``SchemaVersionError``) until ``jointkit results migrate DB`` takes it forward
(explicitly: a line's database is shared, and its owner decides when it changes); a newer one is refused. The
database is named in every error as the user gave it, less any password (``display``).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from actuator.errors import ConfigError
from firmware_iface.rig import results_sql as sql

APPLICATION_ID = 0x4A4B5254  # SQLite's application_id: "JKRT", marks the file as a jointkit results database
BUSY_TIMEOUT_S = 30.0  # another station's append holds the write lock for milliseconds; a summary read for < 1 s
CONNECT_TIMEOUT_S = 10  # a server that does not answer in 10 s is down or unreachable for a rig's purposes
PG_SCHEMA_LOCK = 0x4A4B5254  # the advisory lock two rigs take before building or migrating the same new database
URL_SCHEMES = ("postgresql://", "postgres://")


class SchemaVersionError(ConfigError):
    """A results database whose schema version is not this jointkit's: older (migrate it) or newer (update)."""

    def __init__(self, message: str, found: int, expected: int) -> None:
        super().__init__(message)
        self.found, self.expected = found, expected


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def display(target: str | Path) -> str:
    """The database as the user named it, with a URL's password replaced by ``***``."""
    if not is_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


class Conn:
    """One connection, with SQLite's ``?`` placeholders whatever the back-end."""

    def __init__(self, raw: Any, placeholder: str) -> None:
        self.raw, self._ph = raw, placeholder

    def _sql(self, text: str) -> str:
        return text if self._ph == "?" else text.replace("?", self._ph)

    def execute(self, text: str, params: tuple | list = ()) -> Any:
        return self.raw.execute(self._sql(text), params)

    def executemany(self, text: str, rows: list[tuple]) -> None:
        if rows:
            self.raw.cursor().executemany(self._sql(text), rows)


class Store:
    """A results database; ``transaction`` is the one way in. Subclasses fill in the hooks below."""

    dialect: str
    placeholder = "?"

    def __init__(self, target: str | Path) -> None:
        self.target, self.name = target, display(target)

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.name}: {problem}")

    @contextlib.contextmanager
    def transaction(self, *, write: bool, migrate: Callable[[Conn, int], None] | None = None) -> Iterator[Conn]:
        """One transaction with the schema checked (and, writing to a new database, built). ``migrate``: take an
        older database forward, calling ``migrate(conn, version)`` after each version's statements (the data
        re-derived from the stored results); without it an older database is refused."""
        raw = self._connect(write)
        conn = Conn(raw, self.placeholder)
        try:
            try:
                self._begin(raw, write)
                self._check_schema(conn, write, migrate)
                yield conn
                raw.execute("COMMIT")
            except ConfigError:
                raise
            except Exception as e:
                foreign = self._foreign(e)
                if foreign is None:
                    raise
                raise self.error(foreign) from e
        finally:
            self._close(raw)

    # ------------------------------------------------------------------------------------------ schema versions

    def _version(self, conn: Conn) -> int:
        """The database's schema version; 0 when it holds none of our tables; ConfigError when it is not ours."""
        if not self._has_table(conn, "schema_version"):
            return self._legacy_version(conn)
        rows = conn.execute(sql.READ_VERSION).fetchall()
        if len(rows) != 1 or rows[0][0] != sql.APPLICATION or not isinstance(rows[0][1], int):
            raise self.error("not a jointkit results database (its schema_version table is someone else's)")
        return rows[0][1]

    def _check_schema(self, conn: Conn, write: bool, migrate: Callable[[Conn, int], None] | None) -> None:
        version = self._version(conn)
        if version == sql.SCHEMA_VERSION and migrate is None:
            return
        if version > sql.SCHEMA_VERSION:
            raise SchemaVersionError(f"{self.name}: results database schema version {version}; this jointkit reads "
                                     f"up to {sql.SCHEMA_VERSION} (update jointkit)", version, sql.SCHEMA_VERSION)
        if version == 0 and not write:
            raise self.error("holds no jointkit results (no run was ever appended)")
        if 0 < version < sql.SCHEMA_VERSION and migrate is None:
            raise SchemaVersionError(
                f"{self.name}: results database schema version {version}, this jointkit uses {sql.SCHEMA_VERSION}: "
                f"take it forward with `jointkit results migrate {self.name}` (back it up first)",
                version, sql.SCHEMA_VERSION)
        self._lock_schema(conn)
        version = self._version(conn)  # another rig may have built it while this one waited for the lock
        for v in range(version + 1, sql.SCHEMA_VERSION + 1):
            for statement in sql.MIGRATIONS[v]:
                conn.execute(statement.format(**sql.TOKENS[self.dialect]))
            if v in sql.REDERIVE and migrate is not None:
                migrate(conn, v)
        if version < sql.SCHEMA_VERSION:
            conn.execute(sql.CLEAR_VERSION)
            conn.execute(sql.WRITE_VERSION, (sql.APPLICATION, sql.SCHEMA_VERSION))
            self._mark(conn)

    # ------------------------------------------------------------------------------------------------- hooks

    def _connect(self, write: bool) -> Any:
        raise NotImplementedError

    def _begin(self, raw: Any, write: bool) -> None:
        raise NotImplementedError

    def _close(self, raw: Any) -> None:
        raise NotImplementedError

    def _has_table(self, conn: Conn, name: str) -> bool:
        raise NotImplementedError

    def _legacy_version(self, conn: Conn) -> int:
        """The version of a database without a schema_version table: 0 if it holds nothing of ours."""
        raise NotImplementedError

    def _lock_schema(self, conn: Conn) -> None:
        """Hold off other writers while the schema is built or migrated (till the transaction ends)."""

    def _mark(self, conn: Conn) -> None:
        """Anything besides schema_version that marks the database as ours, at its new version."""

    def _foreign(self, e: Exception) -> str | None:
        """What a foreign (driver) error means for the user, or None to let it through (a bug)."""
        raise NotImplementedError


class SqliteStore(Store):
    """One SQLite file, marked with SQLite's ``application_id`` so that a foreign SQLite file is refused rather than
    written into. The rollback journal is kept (not WAL): WAL needs shared memory and "does not work over a network
    filesystem" (sqlite.org/wal.html), and a line's database may well live on a share; concurrent appends serialise
    on SQLite's write lock with a long busy timeout, which a run every few tens of seconds never comes near."""

    dialect = "sqlite"

    def __init__(self, target: str | Path) -> None:
        super().__init__(target)
        self.path = Path(target)

    def _connect(self, write: bool) -> sqlite3.Connection:
        path = self.path
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(path), False
        else:
            if not path.is_file():
                raise self.error("a directory, not a results database" if path.is_dir() else "no such results database")
            target, uri = path.resolve().as_uri() + "?mode=ro", True  # a read never creates or changes the file
        try:
            return sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=uri)
        except sqlite3.Error as e:
            raise self.error(f"cannot open the results database ({e})") from e

    def _begin(self, raw: sqlite3.Connection, write: bool) -> None:
        # IMMEDIATE for writes: the lock is taken before anything is read, so two writers never both read an empty
        # file and both create it; DEFERRED for reads: one consistent snapshot
        raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _close(self, raw: sqlite3.Connection) -> None:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raw.close()

    def _has_table(self, conn: Conn, name: str) -> bool:
        return conn.execute(sql.SQLITE_HAS_TABLE, (name,)).fetchone()[0] > 0

    def _legacy_version(self, conn: Conn) -> int:
        app_id = conn.execute(sql.SQLITE_APPLICATION_ID).fetchone()[0]
        if app_id == 0 and conn.execute(sql.SQLITE_IS_EMPTY).fetchone()[0]:
            return 0
        if app_id != APPLICATION_ID:
            raise self.error("not a jointkit results database (an SQLite file of something else)")
        return int(conn.execute(sql.SQLITE_USER_VERSION).fetchone()[0])  # version 1 kept it there

    def _mark(self, conn: Conn) -> None:
        # a PRAGMA takes no parameter: the two integers are this module's constants
        conn.execute(f"{sql.SQLITE_APPLICATION_ID} = {APPLICATION_ID}")
        conn.execute(f"{sql.SQLITE_USER_VERSION} = {sql.SCHEMA_VERSION}")

    def _foreign(self, e: Exception) -> str | None:
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            return f"still locked by another process after {BUSY_TIMEOUT_S:g} s"
        if isinstance(e, sqlite3.OperationalError):
            return f"cannot use the results database ({e})"
        if isinstance(e, sqlite3.DatabaseError):
            return f"not a jointkit results database ({e})"
        return None


class PostgresStore(Store):
    """A PostgreSQL database (psycopg 3), the tables in the connection's current schema (``public`` unless the URL
    says ``?options=-csearch_path%3DNAME``). Writes run at READ COMMITTED (appends of different runs never conflict;
    the same run from two rigs at once is stored once: ``ON CONFLICT``); reads in one REPEATABLE READ snapshot."""

    dialect = "postgresql"
    placeholder = "%s"

    def _connect(self, write: bool) -> Any:
        try:
            import psycopg
        except ImportError as e:  # a dependency of the package: only a broken install lacks it
            raise self.error("PostgreSQL needs psycopg 3 (pip install 'psycopg[binary]')") from e
        try:
            return psycopg.connect(str(self.target), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as e:
            raise self.error(f"cannot connect to the PostgreSQL server ({self._scrub(e)})") from e

    def _scrub(self, e: Exception) -> str:
        text = " ".join(str(e).split())
        password = urlsplit(str(self.target)).password
        return text.replace(password, "***") if password else text

    def _begin(self, raw: Any, write: bool) -> None:
        raw.execute("BEGIN" if write else sql.PG_BEGIN_READ)

    def _close(self, raw: Any) -> None:
        with contextlib.suppress(Exception):  # a connection already broken has nothing left to roll back
            if raw.info.transaction_status != 0:  # not idle: an error or an exception left it open
                raw.execute("ROLLBACK")
        raw.close()

    def _has_table(self, conn: Conn, name: str) -> bool:
        return conn.execute(sql.PG_HAS_TABLE, (name,)).fetchone()[0] > 0

    def _legacy_version(self, conn: Conn) -> int:
        # PostgreSQL support began at version 2: a database without schema_version is new, unless it holds tables
        # of the same names (someone else's: not to be written into); other tables are the server's business
        if any(self._has_table(conn, t) for t in sql.TABLES):
            # a write's statements each see the newest commit (READ COMMITTED): a rig that built the schema after
            # the look for schema_version committed it with the tables, so a second look finds it (eight rigs
            # appending to a new database at once saw the tables without it)
            if self._has_table(conn, "schema_version"):
                return self._version(conn)
            raise self.error("not a jointkit results database (it has a runs, checks or certificates table "
                             "but no schema_version)")
        return 0

    def _lock_schema(self, conn: Conn) -> None:
        conn.execute(sql.PG_SCHEMA_LOCK, (PG_SCHEMA_LOCK,))

    def _foreign(self, e: Exception) -> str | None:
        import psycopg

        if isinstance(e, psycopg.OperationalError):
            return f"lost the PostgreSQL server ({self._scrub(e)})"
        if isinstance(e, psycopg.Error):
            return f"cannot use the results database ({self._scrub(e)})"
        return None


def open_store(target: str | Path) -> Store:
    """The store of ``target``: a ``postgresql://`` URL or a path (SQLite)."""
    if is_url(target):
        return PostgresStore(target)
    if isinstance(target, str) and re.match(r"^[a-z][a-z0-9+.-]*://", target):
        raise ConfigError(f"{display(target)}: unknown results database URL; allowed a postgresql:// URL or a "
                          "path to an SQLite file")
    return SqliteStore(target)
