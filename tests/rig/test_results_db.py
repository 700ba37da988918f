"""The production results database, on SQLite and on PostgreSQL (a real server: tests/conftest.py): appends (schema,
validation, transactions, concurrency) and the figures read back (yield, mean, std, Cp, Cpk) checked against
hand-computed values and a known normal population."""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import signal
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actuator.errors import ConfigError
from firmware_iface.rig import results_db

# check name -> (LSL, USL) of the small known data set
LIMITS: dict[str, tuple[float | None, float | None]] = {
    "s.a": (7.0, 12.0),
    "s.upper": (None, 5.0),
    "s.lower": (2.0, None),
    "s.flat": (0.0, 10.0),
    "s.once": (0.0, 10.0),
    "s.free": (None, None),
}


def make_results(values: dict[str, float | None], *, verdict: str = "pass", serial: str | None = "SIM-0001",
                 started: str = "2026-11-21T13:00:00Z", sequence: str = "eol",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> dict[str, Any]:
    """A results dict of schema jointkit.results/1 with one step holding a check per entry of ``values``."""
    limits = limits or LIMITS
    checks = []
    for name, value in values.items():
        lo, hi = limits[name]
        inside = value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)
        checks.append({"name": name, "figure": name.split(".")[1], "value": value, "min": lo, "max": hi,
                       "unit": "N·m", "verdict": "pass" if inside else "fail"})
    return {
        "schema": "jointkit.results/1",
        "metadata": {"jointkit_version": "0.1.0", "rig_id": "RIG-A", "serial": serial,
                     "profile": {"name": "native", "sha256": "11" * 32},
                     "preset": {"name": "knee", "sha256": "22" * 32}, "gains_sha256": None},
        "sequence": {"name": sequence, "path": f"seeds/sequences/{sequence}.toml", "sha256": "ab" * 32},
        "serial": serial, "started_utc": started, "finished_utc": None if verdict == "incomplete" else started,
        "rig": {"sim": True, "interface": "virtual", "channel": "t", "preset": "knee", "injections": {}},
        "verdict": verdict,
        "failed_checks": [c["name"] for c in checks if c["verdict"] != "pass"],
        "error": "bus went quiet" if verdict == "error" else None,
        "steps": [{"index": 0, "name": "s", "type": "friction", "node": 1,
                   "status": "pass" if verdict == "pass" else "fail", "started_s": 0.0, "duration_s": 1.0,
                   "figures": {}, "checks": checks, "error": None, "plot": None, "certificates": []}],
        "outputs": {"results": "results.json"},
    }


# The small data set: six runs of one sequence.
KNOWN_RUNS = [
    ("pass", {"s.a": 9.0, "s.upper": 1.0, "s.lower": 4.0, "s.flat": 5.0, "s.once": 3.0, "s.free": 1.0}),
    ("pass", {"s.a": 10.0, "s.upper": 2.0, "s.lower": 6.0, "s.flat": 5.0, "s.free": 2.0}),
    ("pass", {"s.a": 11.0, "s.upper": 3.0, "s.flat": 5.0}),
    ("fail", {"s.a": 14.0, "s.upper": 4.0, "s.flat": 5.0}),
    ("error", {"s.a": None}),  # the rig failed before s.a could be measured
    ("incomplete", {}),  # aborted before the step
]


@pytest.fixture
def known_db(new_db: str | Path) -> str | Path:
    db = new_db  # SQLite: the parent directory does not exist yet; PostgreSQL: no table yet
    for i, (verdict, values) in enumerate(KNOWN_RUNS):
        results_db.append(db, make_results(values, verdict=verdict, serial=f"SIM-{i:04d}",
                                           started=f"2026-11-21T13:{i:02d}:00Z"))
    return db


def _check(summary: dict, name: str, group: int = 0) -> dict:
    return next(c for c in summary["sequences"][group]["checks"] if c["name"] == name)


def test_known_yield_and_verdicts(known_db):
    s = results_db.summary(known_db)
    assert s["runs"] == 6
    g = s["sequences"][0]
    assert g["verdicts"] == {"pass": 3, "fail": 1, "error": 1, "incomplete": 1}
    # yield = pass / (pass + fail) = 3 / (3 + 1); the error and incomplete runs judged no joint
    assert g["yield"] == pytest.approx(0.75)
    assert g["yield_reason"] is None


def test_known_two_sided_cpk_and_cp(known_db):
    c = _check(results_db.summary(known_db), "s.a")
    # values 9, 10, 11, 14 (the error run has none): mean = 44 / 4 = 11
    # deviations -2, -1, 0, 3 -> squares 4 + 1 + 0 + 9 = 14; s^2 = 14 / (4 - 1); s = sqrt(14/3) = 2.16025
    s = math.sqrt(14 / 3)
    assert c["n"] == 4
    assert c["mean"] == pytest.approx(11.0)
    assert c["std"] == pytest.approx(2.160247, rel=1e-6)
    # Cpu = (12 - 11) / (3 s) = 1 / 6.48074 = 0.154303; Cpl = (11 - 7) / (3 s) = 0.617213; Cpk = the smaller
    assert c["cpk"] == pytest.approx(1 / (3 * s)) == pytest.approx(0.154303, rel=1e-5)
    # Cp = (12 - 7) / (6 s) = 5 / 12.96148 = 0.385758
    assert c["cp"] == pytest.approx(0.385758, rel=1e-5)
    assert (c["lsl"], c["usl"], c["min"], c["max"]) == (7.0, 12.0, 9.0, 14.0)
    # fails: the 14 (out of limits) and the unmeasured one of the error run
    assert (c["fails"], c["missing"]) == (2, 1)
    assert c["cpk_reason"] is None and c["cp_reason"] is None


def test_known_one_sided_limits(known_db):
    s = results_db.summary(known_db)
    upper = _check(s, "s.upper")
    # values 1, 2, 3, 4: mean 2.5, s = sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = sqrt(5/3) = 1.290994
    # upper limit only: Cpk = Cpu = (5 - 2.5) / (3 * 1.290994) = 2.5 / 3.872983 = 0.645497
    assert upper["cpk"] == pytest.approx(0.645497, rel=1e-5)
    assert upper["cp"] is None and upper["cp_reason"] == "one-sided limit"
    lower = _check(s, "s.lower")
    # values 4, 6: mean 5, s = sqrt((1 + 1) / 1) = 1.414214
    # lower limit only: Cpk = Cpl = (5 - 2) / (3 * 1.414214) = 3 / 4.242641 = 0.707107
    assert lower["cpk"] == pytest.approx(0.707107, rel=1e-5)
    assert lower["lsl"] == 2.0 and lower["usl"] is None


def test_known_degenerate_checks(known_db):
    s = results_db.summary(known_db)
    flat = _check(s, "s.flat")  # 5, 5, 5, 5
    assert (flat["n"], flat["std"], flat["cpk"], flat["cp"]) == (4, 0.0, None, None)
    assert flat["cpk_reason"] == flat["cp_reason"] == "std = 0"
    once = _check(s, "s.once")  # a single value: no sample std
    assert (once["n"], once["mean"], once["std"], once["cpk"]) == (1, 3.0, None, None)
    assert once["cpk_reason"] == "n < 2"
    free = _check(s, "s.free")  # 1, 2 and no limits: std = sqrt(0.5) but nothing to compare it with
    assert free["std"] == pytest.approx(math.sqrt(0.5))
    assert free["cpk"] is None and free["cpk_reason"] == free["cp_reason"] == "no limits"


def test_incomplete_runs_are_out_of_the_yield_and_of_every_checks_figures(known_db):
    before = results_db.summary(known_db)["sequences"][0]
    # a run stopped after measuring s.a far out of limits (a failed check its verdict never judged) and s.once
    stopped = make_results({"s.a": 100.0, "s.once": 7.0}, verdict="incomplete", serial="SIM-0100",
                           started="2026-11-21T14:00:00Z")
    stopped["steps"][0]["status"], stopped["steps"][0]["error"] = "running", None
    results_db.append(known_db, stopped)
    after = results_db.summary(known_db)["sequences"][0]
    assert after["verdicts"]["incomplete"] == before["verdicts"]["incomplete"] + 1 == 2
    assert after["yield"] == pytest.approx(0.75)  # still 3 / (3 + 1)
    # s.a as in test_known_two_sided_cpk_and_cp: 9, 10, 11, 14; the 100 would make n = 5, mean 28.8 and a fail more
    assert after["checks"] == before["checks"]
    a = _check({"sequences": [after]}, "s.a")
    assert (a["n"], a["mean"], a["fails"]) == (4, pytest.approx(11.0), 2)
    assert _check({"sequences": [after]}, "s.once")["n"] == 1  # the 7.0 is not a second value


def test_equal_values_are_std_zero_despite_rounding():
    # the mean of seven 0.1s is 0.09999999999999999 in floats, so np.std comes out 1.5e-17, not 0,
    # and (1 - 0.1) / (3 * 1.5e-17) would report a Cpk of 2e16
    values = np.full(7, 0.1)
    assert 0.0 < np.std(values, ddof=1) < 1e-16
    c = results_db.capability(values, 0.0, 1.0)
    assert c["cpk"] is None and c["cpk_reason"] == "std = 0"


def test_no_judged_run_has_no_yield(new_db):
    db = new_db
    results_db.append(db, make_results({"s.a": None}, verdict="error"))
    g = results_db.summary(db)["sequences"][0]
    assert g["yield"] is None and g["yield_reason"] == "no run finished with pass or fail"


def test_limits_are_the_most_recent_runs(new_db):
    db = new_db
    # appended out of time order: the "most recent" is by start time, not by insertion
    results_db.append(db, make_results({"s.a": 10.0}, started="2026-11-21T14:00:00Z",
                                       limits={"s.a": (8.0, 11.0)}))
    results_db.append(db, make_results({"s.a": 9.0}, started="2026-11-21T13:00:00Z"))
    c = _check(results_db.summary(db), "s.a")
    assert (c["lsl"], c["usl"], c["limits_changed"]) == (8.0, 11.0, True)


def test_sequences_are_grouped_and_filtered(new_db):
    db = new_db
    for i in range(3):
        results_db.append(db, make_results({"s.a": 9.0 + i}, serial=f"KNEE-{i}", started=f"2026-11-21T13:0{i}:00Z"))
    results_db.append(db, make_results({"s.a": 20.0}, verdict="fail", sequence="wrist", serial="WRIST-0",
                                       started="2026-11-21T13:05:00Z"))
    s = results_db.summary(db)
    assert [g["sequence"] for g in s["sequences"]] == ["eol", "wrist"]
    assert s["verdicts"] == {"pass": 3, "fail": 1, "error": 0, "incomplete": 0}
    assert _check(s, "s.a", 0)["n"] == 3  # the wrist's 20.0 is not mixed into the knee's figures
    only = results_db.summary(db, sequence="wrist")
    assert [g["sequence"] for g in only["sequences"]] == ["wrist"] and only["runs"] == 1
    knees = results_db.summary(db, serial_prefix="KNEE-", last=2)  # the two most recent knees: 10 and 11
    assert _check(knees, "s.a")["mean"] == pytest.approx(10.5)
    assert [r["serial"] for r in results_db.list_runs(db, last=2)] == ["KNEE-2", "WRIST-0"]


def test_normal_population_cpk_within_sampling_error(new_db):
    mu, sigma, lsl, usl, n = 10.0, 0.5, 8.0, 12.5, 200
    # true Cpu = (12.5 - 10) / 1.5 = 1.667, Cpl = (10 - 8) / 1.5 = 1.333 -> Cpk = 1.333; Cp = 4.5 / 3 = 1.5
    cpk_true, cp_true = (mu - lsl) / (3 * sigma), (usl - lsl) / (6 * sigma)
    values = np.random.default_rng(20261121).normal(mu, sigma, n)
    db = new_db
    results_db.append_many(db, [make_results({"s.a": float(v)}, serial=f"SIM-{i:04d}",
                                             limits={"s.a": (lsl, usl)}) for i, v in enumerate(values)])
    c = _check(results_db.summary(db), "s.a")
    # the database reproduces the statistics of the sample exactly ...
    s = np.std(values, ddof=1)
    assert c["cpk"] == pytest.approx(min(usl - values.mean(), values.mean() - lsl) / (3 * s), rel=1e-12)
    # ... and the sample estimates the process: SE(Cpk) ~ sqrt(1/(9n) + Cpk^2/(2(n-1))) (Bissell 1990)
    # = sqrt(1/1800 + 1.778/398) = sqrt(0.000556 + 0.004467) = 0.0709; SE(Cp) ~ Cp / sqrt(2(n-1)) = 0.0752.
    # 3 SE: a seed drawn at random would miss with probability 0.3 %; the seed is fixed, so the test is stable.
    se_cpk = math.sqrt(1 / (9 * n) + cpk_true**2 / (2 * (n - 1)))
    assert se_cpk == pytest.approx(0.0709, abs=1e-4)
    assert abs(c["cpk"] - cpk_true) < 3 * se_cpk
    assert abs(c["cp"] - cp_true) < 3 * cp_true / math.sqrt(2 * (n - 1))
    assert abs(c["mean"] - mu) < 3 * sigma / math.sqrt(n)


def test_bissell_standard_error_matches_the_spread_of_cpk():
    # the tolerance above rests on the SE formula: 2000 samples of n = 200 show the spread it predicts.
    # The sample std of 2000 estimates is itself within ~1/sqrt(2 * 2000) = 1.6 % of the truth, so 10 % is ample.
    rng = np.random.default_rng(7)
    n, cpk_true = 200, 4 / 3
    estimates = [results_db.capability(rng.normal(10.0, 0.5, n), 8.0, 12.5)["cpk"] for _ in range(2000)]
    se = math.sqrt(1 / (9 * n) + cpk_true**2 / (2 * (n - 1)))
    assert np.std(estimates, ddof=1) == pytest.approx(se, rel=0.10)
    assert np.mean(estimates) == pytest.approx(cpk_true, abs=3 * se / math.sqrt(2000) + 0.01)  # bias ~ O(1/n)


# ------------------------------------------------------------------------------------------- appends and files


def _append_after(barrier: Any, db: str, tag: str, count: int) -> None:
    barrier.wait()  # every process starts at once, on a database none has created yet
    for i in range(count):
        results_db.append(db, make_results({"s.a": 10.0}, serial=f"{tag}-{i}", started=f"2026-11-21T13:{i:02d}:00Z"))


def test_eight_processes_append_at_once(new_db):
    # 8 stations x 50 runs, one transaction per run as a rig appends: the schema is built by whichever comes first
    # (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), then the appends interleave
    ctx = multiprocessing.get_context("fork")  # fork: the children need not re-import this test module
    db, stations, count = str(new_db), 8, 50
    barrier = ctx.Barrier(stations)
    procs = [ctx.Process(target=_append_after, args=(barrier, db, f"R{k}", count)) for k in range(stations)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * stations
    runs = results_db.list_runs(db)
    # nothing lost, nothing twice: exactly 400 runs, 400 distinct ids, every (station, index) once
    assert len(runs) == stations * count
    assert len({r["id"] for r in runs}) == stations * count
    assert sorted(r["serial"] for r in runs) == sorted(f"R{k}-{i}" for k in range(stations) for i in range(count))
    assert _check(results_db.summary(db), "s.a")["n"] == stations * count


def _append_then_die(db: str) -> None:
    insert = results_db._insert

    def insert_and_die(conn: Any, run: dict, rows: list, certificates: list) -> Any:
        insert(conn, run, rows, certificates)  # the run row and its checks are written, not yet committed
        os.kill(os.getpid(), signal.SIGKILL)

    results_db._insert = insert_and_die
    results_db.append(db, make_results({"s.a": 11.0}, serial="KILLED"))


def _count_checks(db: str | Path) -> int:
    with results_db.open_store(db).transaction(write=False) as conn:
        return conn.execute("SELECT count(*) FROM checks").fetchone()[0]


def test_a_killed_append_leaves_no_half_run(new_db):
    db = str(new_db)
    results_db.append(db, make_results({"s.a": 10.0}, serial="BEFORE"))
    proc = multiprocessing.get_context("fork").Process(target=_append_then_die, args=(db,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert [r["serial"] for r in results_db.list_runs(db)] == ["BEFORE"]
    # SQLite: the hot journal is rolled back; PostgreSQL: the server aborts the dead client's transaction
    results_db.append(db, make_results({"s.a": 12.0}, serial="AFTER"))
    assert _check(results_db.summary(db), "s.a")["n"] == 2
    assert _count_checks(db) == 2


def test_the_same_results_are_stored_once(new_db):
    db = new_db
    results = make_results({"s.a": 10.0})
    first = results_db.append(db, results)
    assert results_db.append(db, results) == first
    assert results_db.append_many(db, [results]) == [results_db.Appended(first, False)]
    assert len(results_db.list_runs(db)) == 1


def _mutate(results: dict, path: str, value: Any) -> dict:
    node: Any = results
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return results


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("schema", "jointkit.results/0", "'jointkit.results/1'"),
    ("verdict", "ok", "pass, fail, error, incomplete"),
    ("started_utc", "yesterday", "ISO-8601"),
    ("serial", 1234, "a string or null"),
    ("sequence.name", "", "a non-empty string"),
    ("sequence.sha256", "abc", "64 hex digits"),
    ("steps", None, "a list"),
    ("steps[0].status", "done", "pass, fail, error, skipped, running"),
    ("steps[0].index", -1, "an integer >= 0"),
    ("steps[0].checks[0].value", "10.2", "a finite number or null"),
    ("steps[0].checks[0].value", float("nan"), "a finite number or null"),
    ("steps[0].checks[0].value", True, "a finite number or null"),
    ("steps[0].checks[0].min", 13.0, "a lower limit <= max"),
    ("steps[0].checks[0].verdict", "ok", "pass, fail, error"),
    ("metadata.rig_id", 7, "a string or null"),
    ("metadata.preset", "knee", "an object or null"),
    ("metadata.gains_sha256", "beef", "a sha256 as 64 hex digits or null"),
    ("steps[0].certificates", {}, "a list or null"),
])
def test_malformed_results_are_rejected_naming_the_field(new_db, db_exists, field, value, allowed):
    db = new_db
    with pytest.raises(ConfigError) as exc:
        results_db.append(db, _mutate(make_results({"s.a": 10.0}), field, value))
    message = str(exc.value)
    assert f"field {field} = {value!r}" in message
    assert allowed in message
    assert not db_exists(db)  # validated before the database is touched


def test_an_unmeasured_value_cannot_pass(tmp_path):
    results = _mutate(make_results({"s.a": None}), "steps[0].checks[0].verdict", "pass")
    with pytest.raises(ConfigError, match=r"steps\[0\].checks\[0\].verdict = 'pass': allowed fail or error"):
        results_db.append(tmp_path / "r.sqlite", results)


def test_a_bad_run_in_a_batch_adds_none(new_db):
    db = new_db
    results_db.append(db, make_results({"s.a": 10.0}, serial="FIRST"))
    bad = _mutate(make_results({"s.a": 10.0}), "verdict", "maybe")
    with pytest.raises(ConfigError):
        results_db.append_many(db, [make_results({"s.a": 11.0}, serial="OK"), bad])
    assert [r["serial"] for r in results_db.list_runs(db)] == ["FIRST"]


def test_times_are_normalised_to_utc(new_db):
    db = new_db
    results_db.append(db, make_results({"s.a": 10.0}, serial="LATE", started="2026-11-21T13:30:00Z"))
    results_db.append(db, make_results({"s.a": 10.0}, serial="EARLY", started="2026-11-21T14:00:00.5+01:00"))
    runs = results_db.list_runs(db)
    assert [(r["serial"], r["started_utc"]) for r in runs] == [
        ("EARLY", "2026-11-21T13:00:00.500000Z"), ("LATE", "2026-11-21T13:30:00Z")]


def test_files_that_are_not_results_databases(tmp_path):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(ConfigError, match=r"nope\.sqlite: no such results database"):
        results_db.summary(missing)
    assert not missing.exists()  # reading never creates the file
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database, " * 100)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE parts (x)")
    conn.close()
    for path in (junk, foreign):
        for call in (lambda p: results_db.summary(p), lambda p: results_db.append(p, make_results({"s.a": 1.0}))):
            with pytest.raises(ConfigError, match=re.escape(f"{path.name}: not a jointkit results database")):
                call(path)
    with sqlite3.connect(foreign) as conn:  # nothing of ours was written into somebody else's database
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["parts"]
    conn.close()


def test_last_must_be_positive(known_db):
    with pytest.raises(ConfigError, match="last = 0: allowed an integer >= 1"):
        results_db.summary(known_db, last=0)


def test_a_schema_built_between_two_looks_is_found_not_refused(pg_url):
    """The race the eight processes hit on PostgreSQL, made to happen every time: between this rig's look for
    schema_version (absent) and its look for the other tables, another rig builds the schema and commits. The
    second look sees the tables; a third finds schema_version, committed with them: the append goes on."""
    from firmware_iface.rig.results_store import PostgresStore

    class LateLooker(PostgresStore):
        looks = 0

        def _has_table(self, conn, name):
            found = super()._has_table(conn, name)
            LateLooker.looks += 1
            if LateLooker.looks == 1:  # the first look saw no schema_version: another rig builds it now
                assert not found
                results_db.append(pg_url, make_results({"s.a": 1.0}, serial="OTHER"))
            return found

    with LateLooker(pg_url).transaction(write=True):
        pass
    assert LateLooker.looks >= 3  # schema_version absent, a table present, schema_version present
    assert [r["serial"] for r in results_db.list_runs(pg_url)] == ["OTHER"]
