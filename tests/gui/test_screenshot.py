"""``jointkit gui --screenshot FILE --after-step --json`` through argv in its own process (its own QApplication,
offscreen, a 1280 x 720 screen): the scripted step test of the Tests panel, its figures under the step protocol's
names, and a PNG of the window fitted to the screen. The joint runs in lock-step with the window (``--lockstep``): a
joint served by a child process is paced to the wall clock, and on a saturated machine its set-point stream stalled
past the 100 ms watchdog (a trip, not what this test is about); served joints have tests/gui/test_limb.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_screenshot_after_a_step(tmp_path) -> None:
    png = tmp_path / "window.png"
    # the offscreen platform with one 1280 x 720 screen, as tests/gui/conftest.py gives this process
    # and its remembered layout (QSettings: $XDG_CONFIG_HOME/jointkit/gui.ini) in this test's directory, not the user's
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ["QT_QPA_PLATFORM"], "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "firmware_iface.cli", "gui", "--lockstep", "--screenshot", str(png),
                           "--after-step", "--amplitude", "0.05", "--json"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # the window prefers 1680 x 1000 and is fitted to the screen with its frame (the offscreen platform's: 2 px a
    # side), so the PNG of its inside is the screen less the frame
    assert png.read_bytes()[:8] == PNG_MAGIC and (out["width"], out["height"]) == (1276, 716)
    assert (tmp_path / "jointkit" / "gui.ini").is_file()  # the layout it saved on closing
    m = out["metrics"]
    assert set(m) == {"rise_time_s", "overshoot_pct", "settling_time_s", "steady_state_error_rad", "peak_torque_nm",
                      "peak_current_a"}
    # the knee's position loop (about 3.4 Hz): rise about 0.35 / 3.4 s; the error inside 2 % of the 0.05 rad step
    assert 0.02 < m["rise_time_s"] < 0.25 and abs(m["steady_state_error_rad"]) < 0.001
