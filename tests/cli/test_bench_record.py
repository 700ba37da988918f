"""`jointkit bench record`: a long soak's signal recording in parts (issue 13, item 10). Run short here; the verdict is
what was written and read back, not a time (speed is the bench's own report)."""

from __future__ import annotations

from tests.cli.cliutil import run_json


def test_bench_record_feeds_reads_back_every_sample_and_reports_the_figures(capsys):
    out = run_json(capsys, "bench", "record", "--minutes", "3")
    assert out["frames"] == 3 * 60 * 2111  # one knee at the native default rates
    assert out["positions_read_back"] == out["positions_fed"] == 180_000
    assert out["mf4_files"] == 2  # 180 s of recording in parts of 120 s
    for key in ("flush_ms_at_1_min", "flush_ms_at_3_min", "flush_ratio", "peak_rss_mb_at_1_min",
                "peak_rss_mb_at_3_min", "peak_rss_growth_mb"):
        assert out[key] > 0 or key == "peak_rss_growth_mb", key


def test_bench_minutes_is_only_for_record(capsys):
    from tests.cli.cliutil import run_cli

    code, _, err = run_cli(capsys, "bench", "sim", "--minutes", "3")
    assert code == 2 and "--minutes 3: only for bench record" in err
