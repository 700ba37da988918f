"""Virtual joints served to other processes: nodes on a python-can ``virtual`` channel, and a python-can-remote
server on that channel, bound to 127.0.0.1 unless the caller asks otherwise.

Other processes connect with ``--interface remote --channel ws://127.0.0.1:PORT/``; each connection gets its own
bus on the channel in this process, so every client sees the joints' frames and the joints see every client's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import can

from actuator.errors import BusError, ConfigError
from firmware_iface.defaults import DEFAULT_PORT, LOOPBACK
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile
from firmware_iface.virtual_joint.emulation import joint_node, node_runner
from firmware_iface.virtual_joint.node import VirtualJointNode


class JointServer:
    """Virtual joints ``node_ids`` on a virtual channel, optionally served over python-can-remote on ``port``."""

    def __init__(self, node_ids: Sequence[int], *, preset: str = "knee", port: int | None = DEFAULT_PORT,
                 host: str = LOOPBACK, paced: bool = True, flash_dir: str | Path | None = None,
                 watchdog_timeout_s: float = 0.1, profile: Profile | None = None, seed: int = 0) -> None:
        self.profile = profile or load_native()
        self.channel = f"jointkit-serve-{port or id(self)}"
        self.port, self.host = port, host
        # the joints stamp their frames with their own time (see VirtualJointNode.time_origin)
        self.bus = can.Bus(interface="virtual", channel=self.channel, preserve_timestamps=True)
        flash = Path(flash_dir) if flash_dir else None
        try:
            if flash is not None and flash.exists() and not flash.is_dir():
                raise ConfigError(f"flash_dir = {str(flash)!r} is not a directory: allowed a directory (created "
                                  "if missing) that holds the joints' nodeN.toml")
            self.nodes = [joint_node(self.bus, n, self.profile, preset=preset, seed=seed + n,
                                     watchdog_timeout_s=watchdog_timeout_s,
                                     flash_path=flash / f"node{n}.toml" if flash else None) for n in node_ids]
        except BaseException:
            self.bus.shutdown()  # a bad preset or watchdog must not leave the channel open behind the error
            raise
        self.runner = node_runner(self.bus, self.nodes, self.profile, paced=paced)
        self._server = None
        self._server_thread: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        return f"ws://{self.host}:{self.port}/" if self.port else None

    def node(self, node_id: int) -> VirtualJointNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self) -> JointServer:
        self.runner.start()  # compiles (or loads) the kernels before the first heartbeat
        if self.port:
            self._start_remote()
        return self

    def _start_remote(self) -> None:
        try:
            from can_remote import RemoteServer
        except ImportError as e:
            raise BusError("python-can-remote is not installed (pip install python-can-remote)") from e
        logging.getLogger("can_remote").setLevel(logging.WARNING)
        try:
            self._server = RemoteServer(self.host, self.port, interface="virtual", channel=self.channel)
        except OSError as e:
            self.runner.stop()
            raise BusError(f"cannot serve on {self.host}:{self.port}: {e}") from e
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="can-remote", daemon=True)
        self._server_thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.runner.stop()
        self.bus.shutdown()

    def __enter__(self) -> JointServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
