"""The connection dialog: built-in simulated joints (preset, nodes; in their own process, or in the GUI's with a
fixture) or a python-can bus (interface, channel, bitrate), the same choices as the command line's options."""

from __future__ import annotations

from PySide6 import QtWidgets

from actuator.errors import ConfigError
from actuator.params import PRESETS_DIR
from firmware_iface.protocol.load import parse_nodes
from gui.session import Connection


class ConnectDialog(QtWidgets.QDialog):
    def __init__(self, conn: Connection, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect")
        form = QtWidgets.QFormLayout(self)
        self.sim = QtWidgets.QCheckBox("built-in simulated joints", checked=conn.sim)
        self.in_process = QtWidgets.QCheckBox("in this process (with a fixture on each output, for the calibrations "
                                              "that load it)", checked=conn.in_process, objectName="in_process")
        self.preset = QtWidgets.QComboBox()
        self.preset.addItems(sorted(p.stem for p in PRESETS_DIR.glob("*.toml")))
        self.preset.setCurrentText(conn.preset)
        self.nodes = QtWidgets.QLineEdit(",".join(map(str, conn.nodes)))
        self.interface = QtWidgets.QLineEdit(conn.interface or "")
        self.interface.setPlaceholderText("socketcan, pcan, kvaser, remote, … (empty: python-can config)")
        self.channel = QtWidgets.QLineEdit(conn.channel or "")
        self.bitrate = QtWidgets.QSpinBox(minimum=0, maximum=8_000_000, value=conn.bitrate or 1_000_000,
                                          singleStep=125_000)
        for label, w in (("", self.sim), ("", self.in_process), ("preset", self.preset), ("nodes", self.nodes),
                         ("interface", self.interface), ("channel", self.channel), ("bitrate", self.bitrate)):
            form.addRow(label, w)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.error = QtWidgets.QLabel("")
        self.error.setStyleSheet("color: #c62828")
        form.addRow(self.error)

    def connection(self) -> Connection:
        text = self.nodes.text().strip()
        if self.sim.isChecked() and not text:
            raise ConfigError("simulated joints need node ids, e.g. 1,2")
        nodes = tuple(parse_nodes(text)) if text else ()  # empty on a bus: the joints heard there
        return Connection(sim=self.sim.isChecked(), in_process=self.in_process.isChecked(),
                          preset=self.preset.currentText(), nodes=nodes,
                          interface=self.interface.text().strip() or None,
                          channel=self.channel.text().strip() or None, bitrate=self.bitrate.value() or None)

    def _accept(self) -> None:
        try:
            self.connection()
        except ConfigError as e:
            self.error.setText(str(e))
            return
        self.accept()
