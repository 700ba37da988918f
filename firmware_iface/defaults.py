"""Defaults that both the command line and the modules behind it need: kept here, with the standard library only,
so that building the ``jointkit`` parser (which shows them in its help) imports no bus, codec or model."""

from __future__ import annotations

# sim serve: python-can-remote's port, and the loopback address it binds to unless --allow-remote
DEFAULT_PORT = 54701
LOOPBACK = "127.0.0.1"

# Heartbeats come at 10 Hz by default (the native sidecar's rates_hz.heartbeat): 0.35 s spans 3.5 periods, so the
# heartbeat of every live node lands at least 3 times whatever its phase, and a node is still found when two of
# its three beats are lost. Slower heartbeats (rate_heartbeat_hz) need a longer listen.
LISTEN_S = 0.35

# raw frame recordings: suffix -> python-can writer format
FRAME_FORMATS = {".blf": "Vector BLF", ".log": "candump -L log", ".asc": "Vector ASC"}
DEFAULT_FRAME_SUFFIX = ".blf"

# the control modes a host enables a joint in (the controller's modes but relay, a tuning experiment, and admittance,
# which needs the F/T sensor calibrated on the joint first)
ENABLE_MODES = ("position", "velocity", "torque", "impedance")

# the protocol profiles shipped in dbc/, by the name --profile takes (firmware_iface.protocol.load.SHIPPED has their
# files; tests/cli/test_cli_imports.py checks the two agree)
SHIPPED_PROFILES = ("native", "odrive", "odrive-0.6", "mit", "cia402")

# end-of-line anomaly detection (firmware_iface.rig.anomaly): the false-alarm rate of a fitted model, one good unit
# in 100 sent for review; and the runs per X-bar/R subgroup of the SPC report when runs carry no batch
ANOMALY_ALPHA = 0.01
SPC_SUBGROUP = 5

# the step test where a caller gives no value (experiments.protocols.step_config, the bus and in-process executors,
# `jointkit step`'s options and the GUI's tests panel): its size, rad (position, impedance) or rad/s (velocity), the
# hold after it, s, and the hold before it, s. Where it starts is where the joint is (experiments.bus.step_test)
STEP_AMPLITUDE = 0.1
STEP_DURATION_S = 1.0
STEP_AT_S = 0.05

# heartbeat periods without a heartbeat before a client counts its joint as lost (JointClient, the CLI's
# --missed-heartbeats)
MISSED_HEARTBEATS = 3
