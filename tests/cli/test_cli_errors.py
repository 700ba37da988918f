"""Bad input gets an ``error:`` line naming the file, key or option, the value and what is allowed, exit 2, and
never a traceback (issue 13, items 7 and 16). Each case crashed with a traceback or passed silently before."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_iface.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return code, err


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "binary.toml"
    path.write_bytes(bytes([0x9F, 0x92, 0x96, 0x00, 0xFF]) * 60)  # what a copied image or a corrupt file looks like
    return path


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path


@pytest.mark.parametrize("argv", [
    ("sim", "--preset", "{f}", "--torque-nm", "1", "--duration-s", "0.01"),
    ("step", "--gains", "{f}"),
    ("run", "seeds/sequences/eol.toml", "--sim", "--population", "2", "--spread", "{f}", "--no-db"),
], ids=["preset", "gains", "spread"])
def test_a_binary_file_is_named_not_a_traceback(capsys, binary, argv):
    code, err = run(capsys, *(a.replace("{f}", str(binary)) for a in argv))
    assert code == 2
    assert err.startswith(f"error: {binary}: not a ") and "byte 0x9f at offset 0 is not UTF-8" in err


def test_an_empty_gains_file_is_refused(capsys, empty):
    code, err = run(capsys, "step", "--gains", str(empty))
    assert code == 2 and f"{empty}: empty gains file: it sets no key" in err and "velocity" in err


def test_an_empty_spread_file_is_refused(capsys, empty, tmp_path):
    code, err = run(capsys, "run", "seeds/sequences/eol.toml", "--sim", "--population", "2", "--spread", str(empty),
                    "--out", str(tmp_path / "out"), "--no-db")
    assert code == 2 and f"{empty}: empty spread file" in err


def test_a_spread_of_100_percent_is_refused(capsys, tmp_path):
    spread = tmp_path / "wide.toml"
    spread.write_text('preset = "knee"\n[motor]\nphase_resistance_ohm = { sd_pct = 100 }\n')
    code, err = run(capsys, "run", "seeds/sequences/eol.toml", "--sim", "--population", "2", "--spread", str(spread),
                    "--out", str(tmp_path / "out"), "--no-db")
    assert code == 2 and "motor.phase_resistance_ohm.sd_pct = 100.0 is out of range: allowed [0, 30]" in err


def test_an_unstable_gains_file_names_the_file_the_key_and_the_reason(capsys, tmp_path):
    gains = tmp_path / "vkp.toml"
    gains.write_text("[velocity]\nkp = 0.001\n")  # printed only "y contains NaN or inf" before
    code, err = run(capsys, "step", "--preset", "knee", "--gains", str(gains))
    assert code == 2
    assert f"gains file {gains}: velocity_kp = 0.001: the cascade is unstable on knee's linear model" in err


def test_a_simulation_too_long_for_memory_is_refused_naming_the_limit(capsys):
    code, err = run(capsys, "sim", "--torque-nm", "1", "--duration-s", "1e7")  # MemoryError before
    # 2 GiB / 8 bytes x (3 inputs + 3 references + 39 trace + 6 controller columns) per 25 us step
    assert code == 2 and "duration_s = 1e+07 needs" in err and "allowed up to 131.586 s (2 GiB)" in err


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_sim_serve_refuses_a_port_tcp_cannot_bind(capsys, port):
    code, err = run(capsys, "sim", "serve", "--port", port)  # OverflowError from bind() before
    assert code == 2 and err == f"error: --port {port}: allowed 1-65535\n"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_sim_serve_refuses_a_network_bind_without_allow_remote(capsys, host):
    code, err = run(capsys, "sim", "serve", "--host", host, "--port", "54999")
    assert code == 2 and f"--host {host}: not a loopback address" in err and "--allow-remote" in err


def test_loopback_names_need_no_flag():
    from firmware_iface.cli.sim import _check_bind

    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        _check_bind(host, 54999, allow_remote=False)


def test_allow_remote_serves_with_a_warning(capsys):
    from firmware_iface.cli.sim import _check_bind

    _check_bind("0.0.0.0", 54999, allow_remote=True)
    assert "warning: serving on 0.0.0.0:54999 without authentication" in capsys.readouterr().err


# --- the sweep: other options with bad numbers ---------------------------------------------------------------------

@pytest.mark.parametrize(("option", "value"), [("--torque-nm", "nan"), ("--current-a", "inf"), ("--torque-nm", "-inf")])
def test_sim_names_a_non_finite_step(capsys, option, value):
    # "inputs contain NaN or infinity" before
    code, err = run(capsys, "sim", f"{option}={value}", "--duration-s", "0.01")
    assert code == 2 and err == f"error: {option} {float(value)}: must be a finite number\n"


def test_sim_refuses_a_negative_seed(capsys):
    code, err = run(capsys, "sim", "--torque-nm", "1", "--duration-s", "0.01", "--seed", "-1")  # internal error before
    assert code == 2 and err.startswith("error: --seed -1: must be an integer >= 0")


@pytest.mark.parametrize("duration", ["-1", "0", "nan", "inf"])
def test_sim_serve_refuses_a_duration_that_is_not_positive(capsys, duration):
    code, err = run(capsys, "sim", "serve", "--port", "54999", "--duration-s", duration)  # served 0 s, exit 0 before
    assert code == 2 and err.startswith(f"error: --duration-s {float(duration)}: must be a finite number of seconds")


def test_sim_serve_refuses_an_injection_on_a_node_it_does_not_serve(capsys):
    code, err = run(capsys, "sim", "serve", "--nodes", "1,2", "--port", "54999", "--duration-s", "1",
                    "--inject", "drop_frames=0.5@9")  # silently injected nothing before
    assert code == 2 and "--inject 'drop_frames=0.5@9': node 9 is not served: allowed the served nodes 1,2" in err


def test_sim_serve_refuses_a_flash_dir_that_is_a_file(capsys, tmp_path):
    flash = tmp_path / "flash"
    flash.write_text("")
    code, err = run(capsys, "sim", "serve", "--port", "54999", "--duration-s", "1", "--flash-dir", str(flash))
    assert code == 2 and f"flash_dir = '{flash}' is not a directory" in err


@pytest.mark.parametrize("kwargs", [{"watchdog_timeout_s": -1.0}, {"preset": "no-such-preset"}],
                         ids=["watchdog", "preset"])
def test_a_joint_server_that_cannot_build_its_nodes_closes_its_channel(kwargs):
    import can.interfaces.virtual as virtual

    from actuator.errors import JointkitError
    from firmware_iface.virtual_joint.serve import JointServer

    with pytest.raises(JointkitError):
        JointServer([1], port=54996, **kwargs)
    assert "jointkit-serve-54996" not in virtual.channels  # "VirtualBus was not properly shut down" before


def test_sim_serve_names_a_port_in_use(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run(capsys, "sim", "serve", "--port", str(port), "--free-running", "--duration-s", "5")
    assert code == 2 and err.startswith(f"error: cannot serve on 127.0.0.1:{port}: ") and "in use" in err


def test_tune_refuses_a_zero_bandwidth(capsys):
    code, err = run(capsys, "tune", "--bandwidth-hz", "0")  # silently tuned for the default 5 Hz before
    assert code == 2 and err.startswith("error: bandwidth_hz = 0.0 is out of range: allowed (0, ")


@pytest.mark.parametrize(("target", "joints", "message"), [
    ("sim", "6", "--joints 6: only for bench gui"),
    ("gui", "0", "--joints 0: allowed 1 to 63 (the node ids of one bus)"),
    ("gui", "64", "--joints 64: allowed 1 to 63 (the node ids of one bus)")])
def test_bench_joints_is_for_the_gui_and_one_bus(capsys, target, joints, message):
    code, err = run(capsys, "bench", target, "--joints", joints, "--quick")  # refused before anything runs
    assert code == 2 and message in err
