"""The production results database: rig runs (``results.json``, schema ``jointkit.results/1``) in one SQLite file
(a path) or in PostgreSQL (a ``postgresql://`` URL, for many rigs writing to one server).

This module owns the validation of a results dict before it is stored, the appends (one transaction per call, safe
from several processes or rigs at once), the explicit migration of an older database, and what is read back out of
it: the production figures (:func:`summary`: yield and per-check process capability), the runs (:func:`list_runs`)
and a unit's traceable history (:func:`history`). Where the database lives and how its schema version is checked is
``results_store``; every SQL text, the tables and their migrations are ``results_sql``.

Tables:

- ``runs``: one row per rig run: id, serial, started_utc, finished_utc, sequence_name, sequence_sha256, verdict,
  error, rig (JSON), results (the whole results dict, JSON), plus ``started_ts`` (Unix seconds, for ordering:
  ISO texts with and without fractional seconds do not sort as text), ``failed_checks`` (JSON list), ``digest``
  (sha256 of the canonical results JSON, unique: importing the same results.json twice adds it once) and the
  trace: ``rig_id``, ``jointkit_version``, ``profile_sha256``, ``preset_sha256``, ``gains_sha256`` (from the
  results' ``metadata``; null where a results file predates them).
- ``checks``: one row per check of a step: run_id, position (in the run), step (the step's index), name, value,
  min, max, unit, verdict.
- ``certificates``: one row per calibration certificate of a step: run_id, position, step, id, quantity, verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from actuator.errors import ConfigError
from firmware_iface.rig import results_sql as sql
from firmware_iface.rig.results_store import (  # noqa: F401  (re-exported: the database's public names)
    APPLICATION_ID,
    BUSY_TIMEOUT_S,
    Conn,
    SchemaVersionError,
    display,
    open_store,
)

SCHEMA = "jointkit.results/1"
DB_VERSION = sql.SCHEMA_VERSION  # the version of the tables (results_sql)

RUN_VERDICTS = ("pass", "fail", "error", "incomplete")
STEP_STATUSES = ("pass", "fail", "error", "skipped", "running", "pending")  # pending: a killed run's
CHECK_VERDICTS = ("pass", "fail", "error")


class Appended(NamedTuple):
    run_id: int
    added: bool  # False: the same results were already in the database (run_id is theirs)


# ---------------------------------------------------------------------------------------------------- validation


def _fail(field: str, value: Any, allowed: str) -> ConfigError:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return ConfigError(f"results field {field} = {text}: allowed {allowed}")


def _str(d: dict, key: str, path: str, *, nullable: bool = False, nonempty: bool = False) -> str | None:
    value = d.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or (nonempty and not value):
        raise _fail(path + key, value, ("a non-empty string" if nonempty else "a string")
                    + (" or null" if nullable else ""))
    return value


def _number(d: dict, key: str, path: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    # bool is an int to Python but never a measurement; NaN/inf would poison every mean they enter
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path + key, value, "a finite number or null")
    return float(value)


def _choice(d: dict, key: str, path: str, allowed: tuple[str, ...]) -> str:
    value = d.get(key)
    if value not in allowed:
        raise _fail(path + key, value, "one of " + ", ".join(allowed))
    return value


def _time(d: dict, key: str, path: str, *, nullable: bool = False) -> datetime | None:
    text = _str(d, key, path, nullable=nullable)
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(path + key, text, "an ISO-8601 UTC time such as 2026-11-21T13:00:00Z"
                    + (" or null" if nullable else "")) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)  # the field is UTC by name


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def _sha256(d: dict, path: str) -> str:
    value = d.get("sha256")
    if not isinstance(value, str) or re.fullmatch(r"[0-9a-fA-F]{64}", value) is None:
        raise _fail(path + "sha256", value, "the sequence file's sha256 as 64 hex digits")
    return value.lower()


def _dict(d: dict, key: str, path: str) -> dict:
    value = d.get(key)
    if not isinstance(value, dict):
        raise _fail(path + key, value, "an object")
    return value


def _list(d: dict, key: str, path: str) -> list:
    value = d.get(key)
    if not isinstance(value, list):
        raise _fail(path + key, value, "a list")
    return value


def _check_row(check: Any, step_index: int, path: str) -> tuple:
    if not isinstance(check, dict):
        raise _fail(path.rstrip("."), check, "an object")
    name = _str(check, "name", path, nonempty=True)
    value = _number(check, "value", path)
    lo, hi = _number(check, "min", path), _number(check, "max", path)
    unit = _str(check, "unit", path, nullable=True)
    verdict = _choice(check, "verdict", path, CHECK_VERDICTS)
    if value is None and verdict == "pass":
        raise _fail(path + "verdict", verdict, "fail or error when value is null (nothing was measured)")
    if lo is not None and hi is not None and lo > hi:
        raise _fail(path + "min", lo, f"a lower limit <= max ({hi:g})")
    return step_index, name, value, lo, hi, unit, verdict


def _step_rows(steps: list) -> list[tuple]:
    rows: list[tuple] = []
    for i, step in enumerate(steps):
        path = f"steps[{i}]."
        if not isinstance(step, dict):
            raise _fail(path.rstrip("."), step, "an object")
        index = step.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise _fail(path + "index", index, "an integer >= 0")
        _str(step, "name", path, nonempty=True)
        _choice(step, "status", path, STEP_STATUSES)
        for j, check in enumerate(_list(step, "checks", path)):
            rows.append(_check_row(check, index, f"{path}checks[{j}]."))
    return rows


def _hex64(d: dict, key: str, path: str) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or re.fullmatch(r"[0-9a-fA-F]{64}", value) is None:
        raise _fail(path + key, value, "a sha256 as 64 hex digits or null")
    return value.lower()


def _optional_dict(d: dict, key: str, path: str) -> dict:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path + key, value, "an object or null")
    return value


def _trace(results: dict) -> dict[str, str | None]:
    """The trace columns from the results' ``metadata`` (absent in files older than these fields: all null)."""
    meta = _optional_dict(results, "metadata", "")
    return {"rig_id": _str(meta, "rig_id", "metadata.", nullable=True),
            "jointkit_version": _str(meta, "jointkit_version", "metadata.", nullable=True),
            "profile_sha256": _hex64(_optional_dict(meta, "profile", "metadata."), "sha256", "metadata.profile."),
            "preset_sha256": _hex64(_optional_dict(meta, "preset", "metadata."), "sha256", "metadata.preset."),
            "gains_sha256": _hex64(meta, "gains_sha256", "metadata.")}


def _certificate_rows(steps: list) -> list[tuple]:
    """(step, id, quantity, verdict) of every step's certificates (``steps[i].certificates``, when present)."""
    rows = []
    for i, step in enumerate(steps):
        certificates = step.get("certificates")
        if certificates is None:
            continue
        if not isinstance(certificates, list):
            raise _fail(f"steps[{i}].certificates", certificates, "a list or null")
        for j, cert in enumerate(certificates):
            path = f"steps[{i}].certificates[{j}]."
            if not isinstance(cert, dict):
                raise _fail(path.rstrip("."), cert, "an object")
            rows.append((step["index"], _str(cert, "id", path, nullable=True),
                         _str(cert, "quantity", path, nonempty=True), _str(cert, "verdict", path, nonempty=True)))
    return rows


def _validated(results: Any) -> tuple[dict, list[tuple], list[tuple]]:
    """The runs row (a dict of columns), the checks rows and the certificates rows of ``results``."""
    if not isinstance(results, dict):
        raise _fail("(top level)", results, "an object of schema " + SCHEMA)
    if results.get("schema") != SCHEMA:
        raise _fail("schema", results.get("schema"), repr(SCHEMA))
    sequence = _dict(results, "sequence", "")
    started = _time(results, "started_utc", "")
    failed = _list(results, "failed_checks", "")
    for i, name in enumerate(failed):
        if not isinstance(name, str):
            raise _fail(f"failed_checks[{i}]", name, "a string")
    run = {
        "serial": _str(results, "serial", "", nullable=True),
        "started_utc": _iso(started),
        "started_ts": started.timestamp(),
        "finished_utc": _iso(_time(results, "finished_utc", "", nullable=True)),
        "sequence_name": _str(sequence, "name", "sequence.", nonempty=True),
        "sequence_sha256": _sha256(sequence, "sequence."),
        "verdict": _choice(results, "verdict", "", RUN_VERDICTS),
        "error": _str(results, "error", "", nullable=True),
        "failed_checks": json.dumps(failed),
        "rig": json.dumps(_dict(results, "rig", "")),
    }
    steps = _list(results, "steps", "")
    rows = _step_rows(steps)
    certificates = _certificate_rows(steps)
    canonical = json.dumps(results, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    run["results"] = canonical
    run["digest"] = hashlib.sha256(canonical.encode()).hexdigest()
    run.update(_trace(results))
    return run, rows, certificates


def validate(results: Any) -> tuple[dict, list[tuple]]:
    """The runs row (as a dict of columns) and the checks rows of ``results``, or ConfigError naming the field."""
    run, rows, _ = _validated(results)
    return run, rows


# ---------------------------------------------------------------------------------------------------- writing


def _insert_rows(conn: Conn, run_id: int, rows: list[tuple], certificates: list[tuple]) -> None:
    conn.executemany(sql.INSERT_CHECK, [(run_id, i, *row) for i, row in enumerate(rows)])
    conn.executemany(sql.INSERT_CERTIFICATE, [(run_id, i, *row) for i, row in enumerate(certificates)])


def _insert(conn: Conn, run: dict, rows: list[tuple], certificates: list[tuple] = ()) -> Appended:
    found = conn.execute(sql.FIND_DIGEST, (run["digest"],)).fetchone()
    if found is not None:
        return Appended(found[0], False)
    inserted = conn.execute(sql.INSERT_RUN, tuple(run[c] for c in sql.RUN_COLUMNS)).fetchone()
    if inserted is None:  # another rig stored the same results between the look-up and the insert
        return Appended(conn.execute(sql.FIND_DIGEST, (run["digest"],)).fetchone()[0], False)
    _insert_rows(conn, int(inserted[0]), rows, list(certificates))
    return Appended(int(inserted[0]), True)


def ensure(db_path: str | Path) -> None:
    """Create the database if it does not exist, or check that it is one at this jointkit's schema version
    (ConfigError naming it otherwise): before a run, so that a wrong ``--db`` is refused before anything moves,
    not after the run."""
    with open_store(db_path).transaction(write=True):
        pass


def append(db_path: str | Path, results: dict) -> int:
    """Append one run (a results dict of schema ``jointkit.results/1``) and return its id.

    ``db_path``: an SQLite file (created, with its parent directories, on first use) or a ``postgresql://`` URL
    (the tables are created in the first write). The run, its checks and its certificates are written in one
    transaction: a process killed mid-way leaves the database without the run, never with half of it. Results
    identical to a run already stored (same canonical JSON) are not stored twice: the stored run's id is returned.
    A dict that does not follow the schema raises ConfigError naming the field, value and what is allowed, and
    nothing is written.
    """
    return append_many(db_path, [results])[0].run_id


def append_many(db_path: str | Path, runs: Iterable[dict]) -> list[Appended]:
    """Append several runs in one transaction: all are validated first, then all or none are stored."""
    validated = [_validated(r) for r in runs]
    with open_store(db_path).transaction(write=True) as conn:
        return [_insert(conn, run, rows, certificates) for run, rows, certificates in validated]


def _rederive(conn: Conn, version: int) -> None:
    """Migration step: fill what ``version`` added from each run's stored results JSON (see results_sql)."""
    for run_id, text in conn.execute(sql.ALL_RESULTS).fetchall():
        try:
            run, rows, certificates = _validated(json.loads(text))
        except (ConfigError, ValueError) as e:
            raise ConfigError(f"run {run_id}: its stored results cannot be migrated: {e}") from e
        conn.execute(sql.SET_TRACE, (*(run[c] for c in sql.TRACE_COLUMNS), run_id))
        _insert_rows(conn, run_id, rows, certificates)


def migrate(db_path: str | Path) -> dict[str, Any]:
    """Take an older results database forward to this jointkit's schema version, in one transaction (all or
    nothing); a database already there is left as it is. Returns the versions before and after and the runs."""
    store = open_store(db_path)
    before: list[int] = []

    def step(conn: Conn, version: int) -> None:
        before.append(version)
        _rederive(conn, version)

    with store.transaction(write=True, migrate=step) as conn:
        runs = conn.execute(sql.COUNT_RUNS).fetchone()[0]
    return {"db": store.name, "migrated_to": sql.SCHEMA_VERSION if before else None, "steps": before, "runs": runs}


# ---------------------------------------------------------------------------------------------------- reading


def _selection(sequence: str | None, serial_prefix: str | None, last: int | None) -> tuple[str, list]:
    if last is not None and last < 1:
        raise ConfigError(f"last = {last}: allowed an integer >= 1 (or none for every run)")
    return sql.selection(sequence, serial_prefix, last)


def list_runs(db_path: str | Path, *, sequence: str | None = None, serial_prefix: str | None = None,
              last: int | None = None) -> list[dict]:
    """The chosen runs, oldest first: id, serial, started/finished time, sequence, verdict, failed checks, error."""
    sel, params = _selection(sequence, serial_prefix, last)
    with open_store(db_path).transaction(write=False) as conn:
        rows = conn.execute(sql.list_runs(sel), params).fetchall()
    keys = ("id", "serial", "started_utc", "finished_utc", "sequence", "verdict", "failed_checks", "error")
    return [dict(zip(keys, (*row[:6], json.loads(row[6]), row[7]), strict=True)) for row in rows]


def history(db_path: str | Path, serial: str) -> list[dict]:
    """Every run of the unit ``serial``, oldest first: times, sequence and its sha256, verdict, failed checks, error,
    the trace (rig id, jointkit version, profile, preset and gains sha256) and its calibration certificates."""
    with open_store(db_path).transaction(write=False) as conn:
        runs = conn.execute(sql.HISTORY_RUNS, (serial,)).fetchall()
        certs = conn.execute(sql.HISTORY_CERTIFICATES, (serial,)).fetchall()
    keys = ("id", "started_utc", "finished_utc", "sequence", "sequence_sha256", "verdict", "failed_checks", "error",
            *sql.TRACE_COLUMNS)
    out = []
    for row in runs:
        run = dict(zip(keys, row, strict=True))
        run["failed_checks"] = json.loads(run["failed_checks"])
        run["certificates"] = [{"step": step, "id": cid, "quantity": quantity, "verdict": verdict}
                               for run_id, step, cid, quantity, verdict in certs if run_id == run["id"]]
        out.append(run)
    return out


# ---------------------------------------------------------------------------------------------------- statistics


def capability(values: np.ndarray, lsl: float | None, usl: float | None) -> dict[str, Any]:
    """Mean, sample std and the capability indices of one check's measured values against its limits.

    - Cp  = (USL - LSL) / (6 s), only where both limits exist (it ignores where the mean sits).
    - Cpk = min(USL - mean, mean - LSL) / (3 s); with a one-sided limit, the side that exists
      (Cpu = (USL - mean) / 3 s or Cpl = (mean - LSL) / 3 s), as in NIST/SEMATECH e-Handbook 6.1.6.
    - s is the sample standard deviation (ddof = 1) of every value. Runs are single units, not rational
      subgroups, so this is the overall sigma: in AIAG's SPC manual's terms these are Pp/Ppk (performance);
      they equal Cp/Cpk for a process in statistical control.

    An index that cannot be computed is None and its reason is in ``cpk_reason`` / ``cp_reason``: n < 2 (no
    sample std), no limits, or every value equal (std = 0: the index is infinite or undefined, and a gauge
    that returns one value says nothing of the process spread).
    """
    n = int(values.size)
    out: dict[str, Any] = {"n": n, "mean": None, "std": None, "min": None, "max": None,
                           "cpk": None, "cpk_reason": None, "cp": None, "cp_reason": None}
    if n:
        out.update(mean=float(np.mean(values)), min=float(np.min(values)), max=float(np.max(values)))
    if n >= 2:
        out["std"] = float(np.std(values, ddof=1))
    # std = 0 is judged on the values, not on the float: the std of equal floats can come out 1e-16 by rounding
    spread = "n < 2" if n < 2 else "std = 0" if out["min"] == out["max"] else None
    limits = "no limits" if lsl is None and usl is None else None
    out["cpk_reason"] = limits or spread
    out["cp_reason"] = limits or ("one-sided limit" if lsl is None or usl is None else None) or spread
    if out["cpk_reason"] is not None:
        return out
    mean, std = out["mean"], out["std"]
    sides = [(usl - mean) / (3 * std)] if usl is not None else []
    sides += [(mean - lsl) / (3 * std)] if lsl is not None else []
    out["cpk"] = float(min(sides))
    if lsl is not None and usl is not None:
        out["cp"] = float((usl - lsl) / (6 * std))
    return out


def _check_summary(name: str, rows: list[tuple]) -> dict[str, Any]:
    """One check's figures from its rows (value, min, max, unit, verdict), ordered oldest run first."""
    values = np.array([r[0] for r in rows if r[0] is not None], dtype=float)
    _, lsl, usl, unit, _ = rows[-1]  # the limits in force are the most recent run's
    stats = capability(values, lsl, usl)
    return {"name": name, "unit": unit, **stats, "lsl": lsl, "usl": usl,
            "limits_changed": len({(r[1], r[2]) for r in rows}) > 1,
            "missing": sum(r[0] is None for r in rows),
            "fails": sum(r[4] != "pass" for r in rows)}


def _yield(verdicts: dict[str, int]) -> tuple[float | None, str | None]:
    judged = verdicts["pass"] + verdicts["fail"]
    if judged == 0:
        return None, "no run finished with pass or fail"
    return verdicts["pass"] / judged, None


def _group_summary(name: str, runs: list[tuple], checks: list[tuple]) -> dict[str, Any]:
    verdicts = dict.fromkeys(RUN_VERDICTS, 0)
    for _, verdict, _ in runs:
        verdicts[verdict] += 1
    y, reason = _yield(verdicts)
    by_check: dict[str, list[tuple]] = {}
    for row in checks:
        by_check.setdefault(row[0], []).append(row[1:])
    return {"sequence": name, "sequence_sha256": sorted({sha for _, _, sha in runs}),
            "runs": len(runs), "verdicts": verdicts, "yield": y, "yield_reason": reason,
            "checks": [_check_summary(check, rows) for check, rows in by_check.items()]}


def summary(db_path: str | Path, *, sequence: str | None = None, serial_prefix: str | None = None,
            last: int | None = None) -> dict[str, Any]:
    """The production figures of the chosen runs, per sequence name.

    Runs are chosen by ``sequence`` (name), ``serial_prefix`` and then the ``last`` N most recent (by start
    time) of those. The result holds the totals (``runs``, ``verdicts``) and a list ``sequences``, one entry per
    sequence name (different sequences have different checks, so their figures are never mixed):

    - ``verdicts``: runs per verdict (pass, fail, error, incomplete).
    - ``yield`` = pass / (pass + fail). Runs ending in ``error`` (the rig or the bus failed) or ``incomplete``
      (aborted) are left out of both terms: they did not judge the joint, so counting them as fails would blame
      the joints for rig trouble and counting them as passes would ship untested joints. Their counts stand
      next to the yield so rig trouble stays visible. None, with ``yield_reason``, when no run passed or failed.
      Each run counts once: a joint re-tested after a fail counts once per run.
    - per check (in the order first met), over the runs that ran to their end (pass, fail and error: an ``error``
      run's checks were measured before the rig's trouble, and its unmeasured ones count in ``fails``): ``n``
      measured values, ``mean``, ``std`` (sample, ddof = 1), ``min``, ``max``, ``lsl``/``usl`` (the most
      recent run's limits; ``limits_changed`` says older runs had others), ``fails`` (checks judged fail or
      error, including the unmeasured), ``missing`` (null values, which cannot enter the statistics), ``cpk``,
      ``cp`` and the reason either is None (see :func:`capability`). The checks of ``incomplete`` runs (stopped or
      killed) are left out of every one of these figures, as they are of the yield: such a unit is tested again,
      so its figures would count it twice, and a run stopped part-way may hold a failed check that its verdict
      never judged.
    """
    sel, params = _selection(sequence, serial_prefix, last)
    with open_store(db_path).transaction(write=False) as conn:
        runs = conn.execute(sql.summary_runs(sel), params).fetchall()
        checks = conn.execute(sql.summary_checks(sel), params).fetchall()
    groups: dict[str, tuple[list, list]] = {}
    for name, verdict, sha in runs:
        groups.setdefault(name, ([], []))[0].append((name, verdict, sha))
    for row in checks:
        groups[row[0]][1].append(row[1:])
    verdicts = dict.fromkeys(RUN_VERDICTS, 0)
    for _, verdict, _ in runs:
        verdicts[verdict] += 1
    return {"db": display(db_path), "filters": {"sequence": sequence, "serial_prefix": serial_prefix, "last": last},
            "runs": len(runs), "verdicts": verdicts,
            "sequences": [_group_summary(name, g_runs, g_checks) for name, (g_runs, g_checks) in groups.items()]}


def check_table(db_path: str | Path, *, sequence: str | None = None, serial_prefix: str | None = None,
                last: int | None = None) -> list[dict[str, Any]]:
    """The chosen runs with their checks, oldest first, for process control (``rig.spc``, ``rig.anomaly``): per run
    id, serial, started_utc, sequence, verdict, rig (dict), rig_id (the station's) and ``checks``
    {name: {value, min, max, unit, verdict}}.
    ``incomplete`` runs are left out, as in :func:`summary`."""
    sel, params = _selection(sequence, serial_prefix, last)
    with open_store(db_path).transaction(write=False) as conn:
        runs = conn.execute(sql.table_runs(sel), params).fetchall()
        checks = conn.execute(sql.table_checks(sel), params).fetchall()
    by_run: dict[int, dict[str, dict]] = {}
    for run_id, name, value, lo, hi, unit, verdict in checks:
        by_run.setdefault(run_id, {})[name] = {"value": value, "min": lo, "max": hi, "unit": unit, "verdict": verdict}
    keys = ("id", "serial", "started_utc", "sequence", "verdict")
    return [{**dict(zip(keys, row[:5], strict=True)), "rig": json.loads(row[5]), "rig_id": row[6],
             "checks": by_run.get(row[0], {})} for row in runs]
