"""The rig's plots (PNG files of the right size, robust to empty and NaN data) and its HTML report."""

from __future__ import annotations

import base64
import copy
import threading
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from firmware_iface.rig.report import (
    DPI,
    PNG_SIGNATURE,
    Panel,
    Series,
    figure_size,
    format_duration,
    format_value,
    save_bode_plot,
    save_plot,
    save_xy_plot,
    write_report,
)

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """The parsed report: all text, the start tags, the img sources, and the text inside each element with an id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.by_id: dict[str, list[str]] = {}
        self._open: list[tuple[str, int]] = []  # (id, depth) of the elements with an id we are inside
        self._depth = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "a":
            self.links.append(a.get("href") or "")
        if tag in VOID:
            return
        self._depth += 1
        if a.get("id"):
            self.by_id[a["id"]] = []
            self._open.append((a["id"], self._depth))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        while self._open and self._open[-1][1] >= self._depth:
            self._open.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for ident, _ in self._open:
            self.by_id[ident].append(data)

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def section(self, ident: str) -> str:
        return " ".join(" ".join(self.by_id[ident]).split())


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels."""
    h, w = mpimg.imread(path).shape[:2]
    return w, h


def _expected_size(n_panels: int) -> tuple[float, float]:
    w, h = figure_size(n_panels)
    return w * DPI, h * DPI


# ----------------------------------------------------------------------------------------------------------- plots


def test_save_plot_writes_a_png_of_figsize_times_dpi(tmp_path: Path) -> None:
    t = np.linspace(0.0, 2.0, 401)
    panels = [
        Panel("position (rad)", [Series("measured", t, np.sin(t)), Series("reference", t, np.sin(t) + 0.1, "--")]),
        Panel("torque (N·m)", [Series("torque", t, np.cos(t))], hlines=[(0.9, "max"), (-0.9, "min")]),
    ]
    out = save_plot(tmp_path / "sub" / "p.png", "two panels", panels)
    assert out == tmp_path / "sub" / "p.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    w, h = _png_size(out)
    assert figure_size(2) == (8.0, 4.4)
    ew, eh = _expected_size(2)
    assert (ew, eh) == pytest.approx((880, 484))
    assert abs(w - ew) <= 3 and abs(h - eh) <= 3


def test_save_plot_one_panel_size(tmp_path: Path) -> None:
    out = save_plot(tmp_path / "one.png", "one", [Panel("y", [Series("y", [0, 1, 2], [1, 2, 3])])])
    w, h = _png_size(out)
    assert abs(w - 880) <= 3 and abs(h - 242) <= 3


def test_save_plot_survives_empty_nan_and_inf(tmp_path: Path) -> None:
    t = np.linspace(0.0, 1.0, 11)
    gappy = np.where(t > 0.5, np.nan, t)
    gappy[2] = np.inf
    panels = [
        Panel("empty", [Series("nothing", np.array([]), np.array([]))]),
        Panel("all NaN", [Series("nan", t, np.full_like(t, np.nan))], hlines=[(float("nan"), "bad limit")]),
        Panel("gappy", [Series("gappy", t, gappy), Series("none from JSON", [0.0, 0.5, 1.0], [1.0, None, 2.0])]),
        Panel("no series", []),
    ]
    out = save_plot(tmp_path / "nan.png", "robust", panels)
    w, h = _png_size(out)
    assert abs(w - 880) <= 3 and abs(h - 4 * 242) <= 3


def test_save_plot_log_x(tmp_path: Path) -> None:
    f = np.array([0.0, 1.0, 10.0, 100.0])
    out = save_plot(tmp_path / "logx.png", "log", [Panel("dB", [Series("m", f, -f / 10)], [(-3.0, "-3 dB")])],
                    xlabel="frequency (Hz)", logx=True)
    assert out.read_bytes()[:8] == PNG_SIGNATURE


def test_save_plot_with_no_panels_still_draws_one(tmp_path: Path) -> None:
    w, h = _png_size(save_plot(tmp_path / "none.png", "", []))
    assert abs(w - 880) <= 3 and abs(h - 242) <= 3


def test_series_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        Series("bad", [0, 1, 2], [0, 1])


def test_series_is_frozen_and_converts_to_float_arrays() -> None:
    s = Series("s", [0, 1], [2, None])
    assert s.t_s.dtype == float and np.isnan(s.values[1])
    with pytest.raises(AttributeError):
        s.label = "other"  # type: ignore[misc]


def test_save_xy_plot_with_log_x_and_non_positive_x(tmp_path: Path) -> None:
    x = np.array([-1.0, 0.0, 1.0, 10.0, 100.0])
    out = save_xy_plot(tmp_path / "xy.png", "xy", x, {"a": x * 2, "b": x**3}, "x", "y", logx=True)
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    w, h = _png_size(out)
    assert abs(w - 880) <= 3 and abs(h - 242) <= 3
    single = save_xy_plot(tmp_path / "single.png", "single", [1, 2, 3], [3, 2, 1], "x", "y")
    assert single.read_bytes()[:8] == PNG_SIGNATURE


def test_save_bode_plot_two_panels(tmp_path: Path) -> None:
    f = np.logspace(0, 3, 200)
    h = 1.0 / (1.0 + 1j * f / 50.0)
    out = save_bode_plot(tmp_path / "bode.png", "bode", f, 20 * np.log10(np.abs(h)), np.degrees(np.angle(h)), 50.0)
    w, hh = _png_size(out)
    assert abs(w - 880) <= 3 and abs(hh - 484) <= 3
    # No data and a NaN bandwidth: still a figure, saying "no data".
    empty = save_bode_plot(tmp_path / "empty.png", "empty", [], [], [], float("nan"))
    assert empty.read_bytes()[:8] == PNG_SIGNATURE


def test_plots_render_from_several_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            t = np.linspace(0, 1, 200)
            save_plot(tmp_path / f"t{i}.png", f"thread {i}", [Panel("y", [Series("y", t, t * i)])])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all((tmp_path / f"t{i}.png").read_bytes()[:8] == PNG_SIGNATURE for i in range(4))


# ------------------------------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(("value", "text"), [
    (None, "—"), (10.23456, "10.23"), (0.000123456, "0.0001235"), (12345.678, "1.235e+04"), (3, "3"),
    (True, "yes"), (float("nan"), "NaN"), (float("inf"), "∞"), ("a<b", "a<b"), ([1.0, None, 2.5], "[1, —, 2.5]"),
    (list(range(10)), "[0, 1, 2, 3, 4, 5, 6, 7, … (10 values)]"), ({"a": 1.5}, "a = 1.5"),
])
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (1.2, "1.2 s"), (59.99, "59.99 s"), (245.0, "4 min 05 s"), (7380.0, "2 h 03 min"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


# ---------------------------------------------------------------------------------------------------------- report


def _results() -> dict:
    return {
        "schema": "jointkit.results/1",
        "sequence": {"name": "eol", "path": "seeds/sequences/eol.toml", "sha256": "ab" * 32},
        "serial": "<script>alert(1)</script>",
        "started_utc": "2026-11-21T13:00:00Z", "finished_utc": "2026-11-21T13:01:05Z",
        "rig": {"sim": True, "interface": "virtual", "channel": "rig-test", "preset": "knee",
                "injections": {"friction_scale": 1.3}},
        "verdict": "fail",
        "failed_checks": ["backlash.backlash_rad"],
        "error": None,
        "steps": [
            {"index": 0, "name": "friction", "type": "friction", "node": 1, "status": "pass",
             "started_s": 0.0, "duration_s": 1.2,
             "figures": {"friction_torque_nm": 10.23456, "breakaway_torque_nm": 12.9, "samples": [1.0, 2.0]},
             "checks": [{"name": "friction.friction_torque_nm", "figure": "friction_torque_nm", "value": 10.23456,
                         "min": 8.0, "max": 12.0, "unit": "N·m", "verdict": "pass"}],
             "error": None, "plot": "plots/00-friction.png"},
            {"index": 1, "name": "backlash", "type": "backlash", "node": 1, "status": "fail",
             "started_s": 1.2, "duration_s": 2.5, "figures": {"backlash_rad": 0.0123},
             "checks": [{"name": "backlash.backlash_rad", "figure": "backlash_rad", "value": 0.0123,
                         "min": None, "max": 0.005, "unit": "rad", "verdict": "fail"}],
             "error": None, "plot": None},
            {"index": 2, "name": "bandwidth", "type": "bandwidth", "node": 1, "status": "error",
             "started_s": 3.7, "duration_s": 0.4, "figures": {},
             "checks": [{"name": "bandwidth.bandwidth_hz", "figure": "bandwidth_hz", "value": None,
                         "min": 40.0, "max": None, "unit": "Hz", "verdict": "error"}],
             "error": "node 1 stopped answering <timeout>", "plot": None},
        ],
        "outputs": {"results": "results.json", "report": "report.html", "frames": "frames.blf",
                    "signals": "signals.mf4"},
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    t = np.linspace(0.0, 1.0, 50)
    save_plot(tmp_path / "plots" / "00-friction.png", "friction", [Panel("torque", [Series("torque", t, t)])])
    (tmp_path / "results.json").write_text("{}")
    return tmp_path


def test_report_shows_verdict_checks_and_failed_section(run_dir: Path) -> None:
    path = write_report(_results(), run_dir)
    assert path == run_dir / "report.html"
    page = Page(path.read_text(encoding="utf-8"))
    assert page.section("verdict") == "fail"
    text = page.all_text()
    assert "Rig report: eol" in text
    checks = page.section("checks")
    for name, value in [("friction.friction_torque_nm", "10.23 N·m"), ("backlash.backlash_rad", "0.0123 rad"),
                        ("bandwidth.bandwidth_hz", "—")]:
        assert name in checks
        assert value in checks
    failed = page.section("failed")
    assert "backlash.backlash_rad" in failed and "0.0123 rad" in failed and "0.005" in failed
    assert "friction.friction_torque_nm" not in failed
    # The step's error is shown in the failed section and in its step, escaped.
    assert "node 1 stopped answering <timeout>" in failed
    assert "node 1 stopped answering <timeout>" in page.section("step-2")
    # Step sections with type, status and figures.
    assert "friction" in page.section("step-0") and "12.9" in page.section("step-0")
    assert "[1, 2]" in page.section("step-0")
    assert "backlash" in page.section("step-1") and "fail" in page.section("step-1")
    # When and where.
    run = page.section("run")
    for piece in ["2026-11-21T13:00:00Z", "1 min 05 s", "simulation (virtual / rig-test)", "knee",
                  "friction_scale = 1.3", "3 of 3 finished"]:
        assert piece in run


def test_report_embeds_the_plot_as_data_uri(run_dir: Path) -> None:
    page = Page(write_report(_results(), run_dir).read_text(encoding="utf-8"))
    assert len(page.imgs) == 1
    prefix = "data:image/png;base64,"
    assert page.imgs[0].startswith(prefix)
    assert base64.b64decode(page.imgs[0][len(prefix):]) == (run_dir / "plots" / "00-friction.png").read_bytes()


def test_report_escapes_text_from_results(run_dir: Path) -> None:
    raw = write_report(_results(), run_dir).read_text(encoding="utf-8")
    page = Page(raw)
    assert "script" not in page.tags
    assert "<script" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "<script>alert(1)</script>" in page.all_text()


def test_report_is_self_contained_with_relative_output_links(run_dir: Path) -> None:
    raw = write_report(_results(), run_dir).read_text(encoding="utf-8")
    page = Page(raw)
    assert page.links == ["results.json", "report.html", "frames.blf", "signals.mf4"]
    outputs = page.section("outputs")
    assert "frames.blf (missing)" in outputs
    assert "results.json (missing)" not in outputs and "report.html (missing)" not in outputs
    assert "http://" not in raw and "https://" not in raw and "src=\"/" not in raw


def test_report_colours_the_verdicts(run_dir: Path) -> None:
    raw = write_report(_results(), run_dir).read_text(encoding="utf-8")
    assert '<span class="badge fail verdict">fail</span>' in raw
    assert '<span class="badge pass">pass</span>' in raw
    assert '<span class="badge error">error</span>' in raw
    assert ".pass{background:#1a7f37}" in raw and ".fail{background:#cf222e}" in raw


def test_incomplete_results_render(tmp_path: Path) -> None:
    results = _results()
    results.update(verdict="incomplete", finished_utc=None, failed_checks=[])
    del results["outputs"]
    running = {"index": 1, "name": "backlash", "type": "backlash", "node": 1, "status": "running", "started_s": 1.2}
    results["steps"] = [results["steps"][0], running]
    # No plot file written in tmp_path: the step names one that is missing.
    page = Page(write_report(results, tmp_path).read_text(encoding="utf-8"))
    assert page.section("verdict").startswith("incomplete")
    assert "did not finish" in page.section("verdict")
    assert page.imgs == []
    assert "plots/00-friction.png: file missing" in page.section("step-0")
    assert "running" in page.section("step-1")
    assert "— (not finished)" in page.section("run")
    assert "1 of 2 finished" in page.section("run")
    assert "No failed checks." in page.section("failed")
    assert "No outputs recorded." in page.section("outputs")


@pytest.mark.parametrize("results", [
    {},
    {"steps": None, "rig": None, "sequence": "eol", "outputs": ["x"], "failed_checks": "x"},
    {"verdict": "weird\"class", "steps": [{}, "not a step", {"checks": [{}], "figures": None, "plot": 3}]},
])
def test_malformed_results_do_not_crash(tmp_path: Path, results: dict) -> None:
    raw = write_report(copy.deepcopy(results), tmp_path).read_text(encoding="utf-8")
    assert Page(raw).all_text().startswith("Rig report")
    assert 'class="badge weird' not in raw


def test_plot_paths_outside_the_run_folder_are_not_read(tmp_path: Path) -> None:
    outside = save_plot(tmp_path / "secret.png", "x", [])
    run = tmp_path / "run"
    results = _results()
    results["steps"][0]["plot"] = "../secret.png"
    results["steps"][1]["plot"] = str(outside)
    results["outputs"] = {"evil": "javascript:alert(1)", "up": "../secret.png"}
    page = Page(write_report(results, run).read_text(encoding="utf-8"))
    assert page.imgs == [] and page.links == []
    assert "not a path inside the run folder" in page.section("step-0")
    assert "not a path inside the run folder" in page.section("step-1")
