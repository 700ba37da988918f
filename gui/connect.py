"""The connection dialog: built-in simulated joints (preset, nodes; in their own process, or in the GUI's with a
fixture) or a python-can bus (interface, channel, bitrate), and the joints' protocol profile (a shipped one by name
or a DBC's path, as ``--profile`` takes; simulated joints speak it too): the same choices as the command line's
options."""

from __future__ import annotations

from PySide6 import QtWidgets

from actuator.errors import ConfigError
from actuator.params import PRESETS_DIR
from firmware_iface.protocol.load import SHIPPED, load_named, parse_nodes
from firmware_iface.protocol.profile import Profile
from gui.session import Connection


def profile_text(profile: Profile | None) -> str:
    """What the dialog shows for ``profile``: a shipped profile's name, else its DBC's path (None: native)."""
    if profile is None:
        return "native"
    for name, (dbc, _) in SHIPPED.items():
        if profile.dbc_path is not None and profile.dbc_path.resolve() == dbc.resolve():
            return name
    return str(profile.dbc_path)


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
        self._given = conn.profile
        self.profile = QtWidgets.QComboBox(editable=True, objectName="profile")
        self.profile.addItems(list(SHIPPED))
        self.profile.setCurrentText(profile_text(conn.profile))
        self.profile.setToolTip("the joints' protocol: a shipped profile, or the path of a DBC (its sidecar beside "
                                "it, same name .toml)")
        for label, w in (("", self.sim), ("", self.in_process), ("profile", self.profile), ("preset", self.preset),
                         ("nodes", self.nodes), ("interface", self.interface), ("channel", self.channel),
                         ("bitrate", self.bitrate)):
            form.addRow(label, w)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.error = QtWidgets.QLabel("")
        self.error.setStyleSheet("color: #c62828")
        form.addRow(self.error)

    def chosen_profile(self) -> Profile | None:
        """The profile chosen (None: native), loaded; ``ConfigError`` naming a name or DBC that is not one."""
        text = self.profile.currentText().strip()
        if text == profile_text(self._given):
            return self._given  # unchanged: not loaded again
        return None if text == "native" else load_named(text)

    def connection(self) -> Connection:
        profile = self.chosen_profile()
        text = self.nodes.text().strip()
        if self.sim.isChecked() and not text:
            raise ConfigError("simulated joints need node ids, e.g. 1,2")
        nodes = tuple(parse_nodes(text, profile)) if text else ()  # empty on a bus: the joints heard there
        return Connection(sim=self.sim.isChecked(), in_process=self.in_process.isChecked(),
                          preset=self.preset.currentText(), nodes=nodes, profile=profile,
                          interface=self.interface.text().strip() or None,
                          channel=self.channel.text().strip() or None, bitrate=self.bitrate.value() or None)

    def _accept(self) -> None:
        try:
            self.connection()
        except ConfigError as e:
            self.error.setText(str(e))
            return
        self.accept()
