"""The gains panel: read the joint's gains, edit them, apply live, undo, save to flash, and load or save a gains
file (the TOML of ``actuator.control.config``, the same files ``jointkit tune --out`` writes).

The table has the value read from the joint and the value to apply; Apply writes only the rows that differ and
remembers the values they replaced, so Undo puts them back. Loading a file fills the values to apply (nothing is
written until Apply); only the gains the file sets are taken. A bad file shows in a dialog naming the file, key
and value, and the panel keeps what it had.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtWidgets

from actuator.control.config import GAINS, config_from_dict, gain_of, load_gains
from actuator.errors import ConfigError
from actuator.params import read_toml
from firmware_iface.client.gain_check import check_gains
from firmware_iface.files import save_gains

if TYPE_CHECKING:
    from firmware_iface.client import JointClient
    from gui.context import PanelContext

NAMES = tuple(GAINS)
COL_JOINT, COL_EDIT = 1, 2


def read_all(client: JointClient) -> dict[str, float]:
    """The gains the joint's profile has (``Profile.gain_names``) that this table shows."""
    return {name: client.read_gain(name) for name in NAMES if name in client.profile.gain_names}


def write_some(client: JointClient, values: dict[str, float]) -> dict[str, float]:
    foreign = [name for name in values if name not in client.profile.gain_names]
    if foreign:
        raise ConfigError(f"node {client.node_id}: profile {client.profile.name} has no gain(s) "
                          f"{', '.join(foreign)}: its gains are {', '.join(client.profile.gain_names) or 'none'}")
    for name, value in values.items():
        client.write_gain(name, value)
    return read_all(client)


def gains_from_file(path: Path) -> dict[str, float]:
    """The gains a file sets (validated as a whole gains file); ConfigError naming the file, key and value."""
    raw = read_toml(path, "gains file")
    cfg = load_gains(path)
    out = {}
    for name, (section, key) in GAINS.items():
        holder = raw.get(section, {}) if section else raw
        if isinstance(holder, dict) and key in holder:
            out[name] = gain_of(cfg, name)
    if not out:
        raise ConfigError(f"gains file {path}: sets none of the joint's gains; expected some of "
                          + ", ".join(f"{s}.{k}" if s else k for s, k in GAINS.values()))
    return out


def gains_to_file(values: dict[str, float], path: Path) -> None:
    nested: dict = {}
    for name, value in values.items():
        section, key = GAINS[name]
        (nested.setdefault(section, {}) if section else nested)[key] = value
    save_gains(config_from_dict(nested, str(path)), path)


class GainsPanel(QtWidgets.QGroupBox):
    def __init__(self, ctx: PanelContext) -> None:
        super().__init__("Gains")
        self.ctx = ctx
        self.undo_stack: list[dict[str, float]] = []
        layout = QtWidgets.QVBoxLayout(self)
        self.table = QtWidgets.QTableWidget(len(NAMES), 3, objectName="gains_table")
        self.table.setHorizontalHeaderLabels(["gain", "joint", "apply"])
        self.table.verticalHeader().setVisible(False)
        for i, name in enumerate(NAMES):
            item = QtWidgets.QTableWidgetItem(name)
            item.setFlags(item.flags() & ~item.flags().ItemIsEditable)
            self.table.setItem(i, 0, item)
            joint = QtWidgets.QTableWidgetItem("")
            joint.setFlags(joint.flags() & ~joint.flags().ItemIsEditable)
            self.table.setItem(i, COL_JOINT, joint)
            self.table.setItem(i, COL_EDIT, QtWidgets.QTableWidgetItem(""))
        self.table.resizeColumnsToContents()
        layout.addWidget(self.table)
        grid = QtWidgets.QGridLayout()
        buttons = [("Read", "read_gains", self.read), ("Apply", "apply_gains", self.apply),
                   ("Undo", "undo_gains", self.undo), ("Save to flash", "save_flash", self.save_flash),
                   ("Load file…", "load_gains_file", self._ask_load), ("Save file…", "save_gains_file", self._ask_save)]
        for i, (text, name, slot) in enumerate(buttons):
            b = QtWidgets.QPushButton(text, objectName=name)
            b.clicked.connect(slot)
            grid.addWidget(b, i // 3, i % 3)
        layout.addLayout(grid)

    # --- table ----------------------------------------------------------------------------------------------
    def values(self, column: int = COL_EDIT) -> dict[str, float]:
        """The column's numbers; ConfigError naming the gain and the text when one is not a finite number."""
        out = {}
        for i, name in enumerate(NAMES):
            text = self.table.item(i, column).text().strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"gain {name} = {text!r} is not a number") from None
            if not math.isfinite(value):
                raise ConfigError(f"gain {name} = {text!r} is not allowed: a finite number")
            out[name] = value
        return out

    def show_values(self, values: dict[str, float], column: int) -> None:
        for i, name in enumerate(NAMES):
            if name in values:
                self.table.item(i, column).setText(f"{values[name]:.6g}")

    def _joint_read(self, values: dict[str, float]) -> None:
        self.show_values(values, COL_JOINT)
        self.show_values(values, COL_EDIT)

    # --- actions --------------------------------------------------------------------------------------------
    def read(self) -> None:
        client = self.ctx.current_client()
        if client is not None:
            self.ctx.jobs.run("read gains", read_all, client, on_done=self._joint_read)

    def apply(self) -> None:
        client = self.ctx.current_client()
        if client is None:
            return
        try:
            edit, joint = self.values(COL_EDIT), self.values(COL_JOINT)
        except ConfigError as e:
            self.ctx.show_error("apply gains", e)
            return
        changed = {n: v for n, v in edit.items() if joint.get(n) != v}
        if not changed:
            self.ctx.status("gains: nothing to apply")
            return
        try:  # on the preset's linear model, before anything is sent: unstable is refused, a low margin warned
            check = check_gains(self.ctx.preset(), changed, present=joint, where="gains")
        except ConfigError as e:
            self.ctx.show_error("apply gains", e)
            return
        if check.warnings:
            self.ctx.status("; ".join(check.warnings))
        self.undo_stack.append({n: joint[n] for n in changed if n in joint})
        self.ctx.jobs.run("apply gains", write_some, client, changed, on_done=self._applied)

    def _applied(self, values: dict[str, float]) -> None:
        self._joint_read(values)
        self.ctx.status("gains applied")

    def undo(self) -> None:
        client = self.ctx.current_client()
        if client is None or not self.undo_stack:
            self.ctx.status("gains: nothing to undo")
            return
        previous = self.undo_stack.pop()
        self.ctx.jobs.run("undo gains", write_some, client, previous, on_done=self._applied)

    def save_flash(self) -> None:
        client = self.ctx.current_client()
        if client is not None:
            self.ctx.jobs.run("save to flash", client.save,
                                 on_done=lambda n: self.ctx.status(f"saved to flash (save {n})"))

    def load_file(self, path: Path) -> bool:
        """Fill the values to apply from a gains file; a bad file shows in a dialog and changes nothing."""
        try:
            values = gains_from_file(Path(path))
        except ConfigError as e:
            self.ctx.show_error("load gains file", e, dialog=True)
            return False
        self.show_values(values, COL_EDIT)
        self.ctx.status(f"loaded {len(values)} gains from {path}: Apply writes them")
        return True

    def save_file(self, path: Path) -> bool:
        try:
            gains_to_file(self.values(COL_EDIT), Path(path))
        except (ConfigError, OSError) as e:
            self.ctx.show_error("save gains file", e, dialog=True)
            return False
        self.ctx.status(f"gains saved to {path}")
        return True

    def _ask_load(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load gains", "", "Gains (*.toml)")
        if path:
            self.load_file(Path(path))

    def _ask_save(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save gains", "gains.toml", "Gains (*.toml)")
        if path:
            self.save_file(Path(path))
