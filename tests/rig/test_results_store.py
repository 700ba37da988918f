"""The results database's back-ends and schema versions: targets (path or URL), refused databases (foreign, newer,
older, unreachable, passwords never shown), the explicit migration from version 1 and a unit's traceable history."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_results_db import make_results

from actuator.errors import ConfigError
from firmware_iface.rig import results_db, results_sql
from firmware_iface.rig.results_store import APPLICATION_ID, PostgresStore, SchemaVersionError, SqliteStore, open_store


def traced(serial: str, started: str, *, certificates: list[dict] | None = None, gains: str | None = None,
           value: float = 10.0, verdict: str = "pass") -> dict[str, Any]:
    """A results dict as the runner writes it: metadata with the trace, a step with certificates."""
    r = make_results({"s.a": value}, serial=serial, started=started, verdict=verdict)
    r["metadata"].update(rig_id="RIG-7", jointkit_version="0.1.0", gains_sha256=gains)
    r["steps"][0]["certificates"] = certificates or []
    return r


CERTS = [{"id": "CAL-00000000000000A1", "quantity": "kt_nm_per_a", "value": 0.1, "uncertainty": 0.001,
          "unit": "N·m/A", "method": "fixture", "verdict": "pass"},
         {"id": "CAL-00000000000000A2", "quantity": "cogging_map", "value": [0.0], "uncertainty": [0.0],
          "unit": "N·m", "method": "map", "verdict": "not checked"}]


def test_targets_choose_the_back_end():
    assert isinstance(open_store("line/results.db"), SqliteStore)
    assert isinstance(open_store(Path("results.db")), SqliteStore)
    assert isinstance(open_store("postgresql://rig@db.line/results"), PostgresStore)
    assert isinstance(open_store("postgres://rig@db.line/results"), PostgresStore)
    with pytest.raises(ConfigError, match=r"mysql://x/y: unknown results database URL; allowed a postgresql:// URL"):
        open_store("mysql://x/y")


def test_an_unreachable_server_is_named_without_its_password():
    # port 1 on the loopback: nothing listens there, so the connection is refused at once
    url = "postgresql://rig:s3cr3t-pw@127.0.0.1:1/line"
    for call in (lambda: results_db.ensure(url), lambda: results_db.summary(url)):
        with pytest.raises(ConfigError) as exc:
            call()
        message = str(exc.value)
        assert message.startswith("postgresql://rig:***@127.0.0.1:1/line: cannot connect to the PostgreSQL server")
        assert "s3cr3t" not in message


def test_history_of_a_unit_with_its_trace_and_certificates(new_db):
    db = new_db
    results_db.append(db, traced("KNEE-9", "2026-11-21T14:00:00Z", value=13.0, verdict="fail"))
    results_db.append(db, traced("KNEE-9", "2026-11-21T13:00:00Z", certificates=CERTS, gains="ef" * 32))
    results_db.append(db, traced("KNEE-10", "2026-11-21T13:30:00Z", certificates=CERTS[:1]))
    runs = results_db.history(db, "KNEE-9")
    # oldest first by start time, although appended the other way round
    assert [(r["started_utc"], r["verdict"]) for r in runs] == [("2026-11-21T13:00:00Z", "pass"),
                                                               ("2026-11-21T14:00:00Z", "fail")]
    first, second = runs
    assert (first["rig_id"], first["jointkit_version"], first["gains_sha256"]) == ("RIG-7", "0.1.0", "ef" * 32)
    assert (first["profile_sha256"], first["preset_sha256"]) == ("11" * 32, "22" * 32)
    assert first["certificates"] == [
        {"step": 0, "id": "CAL-00000000000000A1", "quantity": "kt_nm_per_a", "verdict": "pass"},
        {"step": 0, "id": "CAL-00000000000000A2", "quantity": "cogging_map", "verdict": "not checked"}]
    assert second["certificates"] == [] and second["gains_sha256"] is None
    assert second["failed_checks"] == ["s.a"]
    assert results_db.history(db, "KNEE-1") == []  # a prefix of a serial is not the serial


def _stored_version(db: str | Path, version: int) -> None:
    """Set the database's recorded schema version behind jointkit's back (as a newer jointkit would have)."""
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.close()
    else:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE schema_version SET version = %s", (version,))


def test_a_newer_database_is_refused(new_db):
    db = new_db
    results_db.append(db, make_results({"s.a": 10.0}))
    _stored_version(db, results_sql.SCHEMA_VERSION + 1)
    name = str(db)
    for call in (lambda: results_db.summary(db), lambda: results_db.append(db, make_results({"s.a": 11.0})),
                 lambda: results_db.migrate(db)):
        with pytest.raises(SchemaVersionError, match=re.escape(
                f"{name}: results database schema version 3; this jointkit reads up to 2 (update jointkit)")):
            call()
    _stored_version(db, results_sql.SCHEMA_VERSION)
    assert len(results_db.list_runs(db)) == 1  # the refused append wrote nothing


def test_a_foreign_postgresql_database_is_not_written_into(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (lap INTEGER)")  # somebody else's table of the same name
    for call in (lambda: results_db.ensure(pg_url), lambda: results_db.list_runs(pg_url)):
        with pytest.raises(ConfigError, match=r"not a jointkit results database \(it has a runs, checks or"):
            call()
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert [r[0] for r in tables] == ["runs"]


def test_an_empty_postgresql_database_has_no_results_to_read(pg_url):
    with pytest.raises(ConfigError, match="holds no jointkit results"):
        results_db.summary(pg_url)


def version_1_database(path: Path, runs: list[dict]) -> None:
    """An SQLite file as jointkit wrote it before schema version 2: version 1's tables, application_id and
    user_version, its runs rows and their checks in version 1's layout (no position, no trace, no certificates)."""
    with sqlite3.connect(path) as conn:
        for statement in results_sql.MIGRATIONS[1]:
            conn.execute(statement.format(**results_sql.TOKENS["sqlite"]))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        for results in runs:
            run, rows = results_db.validate(results)
            v1 = {k: v for k, v in run.items() if k not in results_sql.TRACE_COLUMNS}
            cur = conn.execute(f"INSERT INTO runs ({', '.join(v1)}) VALUES ({', '.join('?' * len(v1))})",
                               tuple(v1.values()))
            conn.executemany("INSERT INTO checks (run_id, step, name, value, min, max, unit, verdict) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(cur.lastrowid, *row) for row in rows])
    conn.close()


def test_a_version_1_database_is_refused_then_migrated_explicitly(tmp_path):
    db = tmp_path / "line.db"
    old = traced("KNEE-3", "2026-11-21T13:00:00Z", certificates=CERTS, gains="ab" * 32)
    plain = make_results({"s.a": 12.0, "s.upper": 1.0}, serial="KNEE-4", started="2026-11-21T13:05:00Z")
    del plain["metadata"]  # a results file older than the metadata: its trace stays empty
    version_1_database(db, [old, plain])
    for call in (lambda: results_db.summary(db), lambda: results_db.append(db, make_results({"s.a": 9.0}))):
        with pytest.raises(SchemaVersionError, match=re.escape(
                f"{db}: results database schema version 1, this jointkit uses 2: take it forward with "
                f"`jointkit results migrate {db}`")):
            call()
    assert results_db.migrate(db) == {"db": str(db), "migrated_to": 2, "steps": [2], "runs": 2}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT application, version FROM schema_version").fetchall() == [("jointkit.results", 2)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        # the checks were re-derived from the stored results in their order: 1 of the first run, 2 of the second
        assert conn.execute("SELECT run_id, position, name FROM checks ORDER BY run_id, position").fetchall() == [
            (1, 0, "s.a"), (2, 0, "s.a"), (2, 1, "s.upper")]
    conn.close()
    [h] = results_db.history(db, "KNEE-3")
    assert (h["rig_id"], h["gains_sha256"], [c["id"] for c in h["certificates"]]) == (
        "RIG-7", "ab" * 32, ["CAL-00000000000000A1", "CAL-00000000000000A2"])
    [p] = results_db.history(db, "KNEE-4")
    assert (p["rig_id"], p["preset_sha256"], p["certificates"]) == (None, None, [])
    # the figures are those of the two runs: s.a = 10, 12 -> mean 11
    assert next(c for c in results_db.summary(db)["sequences"][0]["checks"] if c["name"] == "s.a")["mean"] == 11.0
    results_db.append(db, make_results({"s.a": 9.0}, serial="KNEE-5"))  # usable again
    assert results_db.migrate(db)["migrated_to"] is None  # at the current version: nothing to do


def test_a_migration_that_cannot_read_a_stored_run_changes_nothing(tmp_path):
    db = tmp_path / "line.db"
    bad = traced("KNEE-3", "2026-11-21T13:00:00Z")
    version_1_database(db, [bad])
    with sqlite3.connect(db) as conn:  # a run whose stored JSON has a trace field the new schema cannot take
        stored = json.loads(conn.execute("SELECT results FROM runs").fetchone()[0])
        stored["metadata"]["gains_sha256"] = "not a hash"
        conn.execute("UPDATE runs SET results = ?", (json.dumps(stored),))
    conn.close()
    with pytest.raises(ConfigError, match=r"run 1: its stored results cannot be migrated: .*metadata.gains_sha256"):
        results_db.migrate(db)
    with sqlite3.connect(db) as conn:  # all or nothing: still version 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'").fetchone()[0] == 0
    conn.close()


def test_migrate_through_argv(tmp_path, capsys):
    from firmware_iface.cli import main

    db = tmp_path / "line.db"
    version_1_database(db, [make_results({"s.a": 10.0}), make_results({"s.a": 11.0}, serial="SIM-0002")])
    assert main(["results", "list", str(db)]) == 2
    assert "take it forward with `jointkit results migrate" in capsys.readouterr().err
    assert main(["results", "migrate", str(db)]) == 0
    assert capsys.readouterr().out.strip() == f"{db}: migrated from schema version 1 to 2, 2 run(s)"
    assert main(["results", "migrate", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"db": str(db), "migrated_to": None, "steps": [], "runs": 2}


def test_the_bench_stations_store_eol_records_exactly_once(new_db):
    # jointkit bench results at 2 stations x 5 runs: its records are real EOL results (validated on the way in) and
    # its own count of what was stored is exact
    from firmware_iface.bench.results import measure

    figures = measure(new_db, 2, 5)
    assert (figures["runs"], figures["stored"], figures["distinct_ids"]) == (10, 10, 10)
    assert (figures["lost"], figures["duplicates"]) == (0, 0)
    assert figures["runs_per_s"] == pytest.approx(10 / figures["wall_s"])
    [run] = results_db.list_runs(new_db, last=1)
    checks = next(g for g in results_db.summary(new_db)["sequences"])["checks"]
    assert run["verdict"] == "pass" and len(checks) == 15  # the EOL sequence's 15 limits, every value inside
    assert all(c["fails"] == 0 and c["n"] == 10 for c in checks)
