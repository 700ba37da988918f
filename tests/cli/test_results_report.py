"""`jointkit results report DB --out DIR` (the SPC report with anomaly detection) and `jointkit run --anomaly-model`:
the HTML parsed for its charts and flags, spc.json's figures, and the anomaly entry a simulated unit's results carry."""

from __future__ import annotations

import base64
import json
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from cliutil import run_cli, run_json

from firmware_iface.rig import anomaly
from firmware_iface.rig.report import PNG_SIGNATURE
from firmware_iface.rig.results_db import append_many

CHECKS = (("friction.friction_torque_nm", "N·m", 15.5, 23.5), ("backdrive.backdrive_torque_nm", "N·m", None, 22.0),
          ("stiffness.stiffness_nm_per_rad", "N·m/rad", 3.1e4, 4.6e4))


def record(i: int, values: tuple[float, float, float], rig: str) -> dict:
    checks = [{"name": n, "figure": n.split(".")[1], "value": v, "min": lo, "max": hi, "unit": u, "verdict": "pass"}
              for (n, u, lo, hi), v in zip(CHECKS, values, strict=True)]
    return {"schema": "jointkit.results/1", "sequence": {"name": "eol", "path": "eol.toml", "sha256": "ab" * 32},
            "serial": f"SN-{i:04d}", "started_utc": f"2026-12-01T{i // 60:02d}:{i % 60:02d}:00Z", "finished_utc": None,
            "rig": {"sim": True, "rig_id": rig}, "verdict": "pass", "failed_checks": [], "error": None,
            "steps": [{"index": 0, "name": "eol", "status": "pass", "checks": checks}], "outputs": {}}


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and (a.get("src") or "").startswith("data:image/png;base64,"):
            self.images[a.get("alt") or ""] = base64.b64decode(a["src"].split(",", 1)[1])


@pytest.fixture(scope="module")
def line_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 units from two rigs: friction and back-drive correlated 0.9 (one lubricant), stiffness apart. Unit 80 is
    within every limit and 1.8 sd out on friction and back-drive each, opposite ways; from unit 100 friction reads
    2 sd high (a drift)."""
    rng = np.random.default_rng(21)
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z = rng.multivariate_normal(np.zeros(3), cov, 120)
    z[80, :2] = [1.8, -1.8]
    z[100:, 0] += 2.0
    x = np.array([19.6, 16.9, 3.82e4]) + z * np.array([1.1, 1.0, 1.8e3])
    db = tmp_path_factory.mktemp("line") / "line.db"
    append_many(db, [record(i, tuple(x[i]), "R1" if i % 2 else "R2") for i in range(120)])
    return db


def test_report_html_holds_every_chart_and_the_flags(capsys: pytest.CaptureFixture[str], line_db: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "spc"
    brief = run_json(capsys, "results", "report", str(line_db), "--out", str(out))
    seq = brief["sequences"][0]
    # run ids start at 1: unit 80 is run 81. The drifted units (from run 101) break the friction-back-drive
    # correlation as unit 80 does (2 sd on friction alone is 4.6 sd given back-drive): some are flagged too
    flagged = seq["anomaly_flagged"]
    assert seq["runs"] == 120 and flagged[0] == 81 and all(r > 100 for r in flagged[1:]), flagged
    # the friction drift from run 101: CUSUM alarm within 10 runs (ARL 4 at 2 sigma), none before the shift
    alarms = seq["checks"]["friction.friction_torque_nm"]["drift_alarms"]
    assert alarms and 101 <= alarms[0] <= 111, alarms
    assert seq["checks"]["stiffness.stiffness_nm_per_rad"]["drift_alarms"] == []
    parser = Images()
    page = (out / "report.html").read_text(encoding="utf-8")
    parser.feed(page)
    assert set(parser.images) == {"anomaly T2 chart", *(f"control charts of {n}" for n, *_ in CHECKS)}
    for alt, png in parser.images.items():
        assert png.startswith(PNG_SIGNATURE), alt
        width, height = struct.unpack(">II", png[16:24])  # IHDR
        assert (width, height) == ((720, 800) if alt.startswith("control") else (720, 208)), alt
    figures = json.loads((out / "spc.json").read_text())
    checks = {c["name"]: c for c in figures["sequences"][0]["checks"]}
    cap = checks["friction.friction_torque_nm"]["capability"]
    assert cap["cpk_ci"][0] < cap["cpk"] < cap["cpk_ci"][1]
    assert f"{cap['cpk']:.3g} [{cap['cpk_ci'][0]:.3g}, {cap['cpk_ci'][1]:.3g}]" in page
    flagged = [s for s in figures["sequences"][0]["anomaly"]["scores"] if s["flagged"]]
    assert flagged[0]["serial"] == "SN-0080" and "SN-0080" in page
    assert set(flagged[0]["drivers"][:2]) == {"friction.friction_torque_nm", "backdrive.backdrive_torque_nm"}
    assert all("friction.friction_torque_nm" in s["drivers"][:2] for s in flagged[1:])
    assert checks["friction.friction_torque_nm"]["xbar_r"]["grouping"] == "consecutive groups of 5 runs"
    assert set(checks["friction.friction_torque_nm"]["by_rig"]) == {"R1", "R2"}
    assert (out / "anomaly_model-eol.json").is_file()


@pytest.mark.parametrize(("extra", "message"), [
    (("--subgroup", "1"), "subgroup = 1: allowed an integer >= 2"),
    (("--alpha", "0.7"), "alpha = 0.7: allowed 0 < alpha < 0.5"),
    (("--anomaly-model", "{db}"), "not an anomaly model JSON file"),
])
def test_bad_report_options_are_refused_naming_the_value(capsys: pytest.CaptureFixture[str], line_db: Path,
                                                         tmp_path: Path, extra: tuple[str, str], message: str) -> None:
    argv = [a.format(db=line_db) for a in extra]
    code, _, err = run_cli(capsys, "results", "report", str(line_db), "--out", str(tmp_path / "r"), *argv)
    assert code == 2 and message in err, err


def test_run_refuses_a_model_of_another_sequence_before_anything_moves(capsys: pytest.CaptureFixture[str],
                                                                      tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "m.json"
    anomaly.save(anomaly.fit([{"a.x": v, "a.y": w} for v, w in rng.standard_normal((20, 2))], "other"), path)
    code, _, err = run_cli(capsys, "run", "seeds/sequences/eol.toml", "--sim", "--anomaly-model", str(path),
                           "--out", str(tmp_path / "run"), "--no-db")
    assert code == 2 and "a model of sequence 'other', this is 'eol'" in err, err
    assert not (tmp_path / "run").exists()


TINY = """[sequence]
name = "tiny"
node = 1
preset = "knee"
ratio = 100.0

[[steps]]
type = "connect"

[[steps]]
type = "enable"
mode = "position"

[[steps]]
type = "ft_zero"
duration_s = 0.5
expected_force_n = [9.81, 0.0, 0.0]
expected_moment_nm = [0.0, 0.0, 0.0]
limits.ft_force_offset_n = { max = 1.0 }
limits.ft_moment_offset_nm = { max = 0.1 }
limits.ft_force_noise_n = { max = 0.3 }
limits.ft_moment_noise_nm = { max = 0.008 }

[[steps]]
type = "disable"
"""


@pytest.mark.slow
def test_a_model_from_the_report_scores_new_units_in_their_results(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    """A batch of 24 simulated knees (their F/T zero step) trains the model in the report; a second batch and one
    unit over the bus carry its score in their results: T^2 as the model computes it from their own figures."""
    seq = tmp_path / "tiny.toml"
    seq.write_text(TINY)
    db = tmp_path / "line.db"
    code, _, err = run_cli(capsys, "run", str(seq), "--sim", "--population", "24", "--seed", "1", "--db", str(db),
                           "--out", str(tmp_path / "train"), "--json")
    assert code == 0, err
    run_json(capsys, "results", "report", str(db), "--out", str(tmp_path / "spc"))
    path = tmp_path / "spc" / "anomaly_model-tiny.json"
    model = anomaly.load(path)
    assert model.variables == [f"ft_zero.{f}" for f in ("ft_force_offset_n", "ft_moment_offset_nm",
                                                        "ft_force_noise_n", "ft_moment_noise_nm")]
    code, _, err = run_cli(capsys, "run", str(seq), "--sim", "--population", "3", "--seed", "2", "--db", str(db),
                           "--out", str(tmp_path / "new"), "--anomaly-model", str(path), "--json")
    assert code == 0, err
    joints = json.loads((tmp_path / "new" / "population.json").read_text())["joints"]
    code, _, err = run_cli(capsys, "run", str(seq), "--sim", "--serial", "ONE", "--db", str(db),
                           "--out", str(tmp_path / "one"), "--anomaly-model", str(path))
    assert code == 0, err
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    for results in (*joints, one):
        a = results["anomaly"]
        assert a["t2"] == pytest.approx(float(anomaly.t2(model, [anomaly.figures_of(results)[v]
                                                                 for v in model.variables])[0]), rel=1e-12)
        assert a["threshold"] == pytest.approx(model.threshold()) and a["flagged"] == (a["t2"] > a["threshold"])
        assert a["model_sha256"] == anomaly.file_sha256(path) and len(a["drivers"]) == 3


def test_the_report_of_a_postgresql_database_is_the_sqlite_ones(capsys: pytest.CaptureFixture[str], line_db: Path,
                                                                pg_url: str, tmp_path: Path) -> None:
    """The same 120 runs in PostgreSQL (read through the same store and SQL) give the same figures, to the digit."""
    from firmware_iface.rig.results_db import check_table

    append_many(pg_url, [record(i, tuple(r["value"] for r in run["checks"].values()), run["rig"]["rig_id"])
                         for i, run in enumerate(check_table(line_db))])
    assert check_table(pg_url) == check_table(line_db)
    lite = run_json(capsys, "results", "report", str(line_db), "--out", str(tmp_path / "lite"))
    pg = run_json(capsys, "results", "report", pg_url, "--out", str(tmp_path / "pg"))
    for brief in (lite, pg):  # the one difference: where each model file was written
        for seq in brief["sequences"]:
            seq.pop("anomaly_model")
    assert pg["sequences"] == lite["sequences"] and lite["sequences"][0]["anomaly_flagged"][0] == 81
    figures = [json.loads((tmp_path / side / "spc.json").read_text())["sequences"] for side in ("lite", "pg")]
    for sequences in figures:
        for seq in sequences:
            seq["anomaly"].pop("model")
    assert figures[0] == figures[1]
