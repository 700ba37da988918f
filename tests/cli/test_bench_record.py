"""`jointkit bench record`: a long soak's signal recording, appended to (issue 13, item 10). Run short here; the
verdict is what was written and read back, not a time (speed is the bench's own report)."""

from __future__ import annotations

from tests.cli.cliutil import run_cli, run_json


def test_bench_record_feeds_reads_back_every_sample_and_reports_the_figures(capsys):
    out = run_json(capsys, "bench", "record", "--minutes", "3")
    assert out["frames"] == 3 * 60 * 2111  # one knee at the native default rates
    assert out["frames_read_back"] == out["frames"]  # every frame fed is in the one MF4 file
    assert out["positions_read_back"] == out["positions_fed"] == 180_000
    for key in ("flush_ms_at_1_min", "flush_ms_at_3_min", "flush_ratio", "peak_rss_mb_at_1_min",
                "peak_rss_mb_at_3_min", "mf4_mb", "wall_s"):
        assert out[key] > 0, key
    assert "peak_rss_growth_mb" in out and out["target"] == {"flush_ratio_max": 1.5, "peak_rss_growth_mb_max": 50.0}


def test_bench_minutes_is_only_for_record(capsys):
    code, _, err = run_cli(capsys, "bench", "sim", "--minutes", "3")
    assert code == 2 and "--minutes 3: only for bench record" in err
