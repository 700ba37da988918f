"""The connection dialog's protocol profile (issue 19, item 5): the shipped profiles by name or a DBC's path, as
``--profile`` takes, refused with the reason when it is neither, and simulated joints that speak the chosen one."""

from __future__ import annotations

from PySide6 import QtWidgets

from firmware_iface.protocol.load import SHIPPED, load_named
from gui.connect import ConnectDialog, profile_text
from gui.session import Connection
from gui.window import MainWindow

CONNECT_MS = 60_000  # a cold kernel cache compiles the joint's kernels first


def test_the_dialog_offers_every_shipped_profile_and_returns_the_chosen_one(qtbot) -> None:
    dialog = ConnectDialog(Connection(sim=True, nodes=(1,)))
    qtbot.addWidget(dialog)
    assert [dialog.profile.itemText(i) for i in range(dialog.profile.count())] == list(SHIPPED)
    assert dialog.profile.currentText() == "native" and dialog.connection().profile is None
    dialog.profile.setCurrentText("cia402")
    dialog.nodes.setText("1-3")
    conn = dialog.connection()
    assert conn.profile.name == "cia402" and conn.nodes == (1, 2, 3) and conn.sim
    # a connection made with a profile shows it again, and keeps the loaded one when it is not changed
    again = ConnectDialog(conn)
    qtbot.addWidget(again)
    assert again.profile.currentText() == "cia402" and again.connection().profile is conn.profile
    assert profile_text(load_named("odrive-0.6")) == "odrive-0.6"


def test_a_profile_that_is_neither_a_name_nor_a_dbc_is_refused_naming_it(qtbot, tmp_path) -> None:
    dialog = ConnectDialog(Connection(sim=True, nodes=(1,)))
    qtbot.addWidget(dialog)
    missing = tmp_path / "none.dbc"
    dialog.profile.setCurrentText(str(missing))
    dialog._accept()
    assert f"{missing}: no such DBC file" in dialog.error.text()
    assert dialog.result() != QtWidgets.QDialog.DialogCode.Accepted
    dialog.profile.setCurrentText("canopen")
    dialog._accept()
    assert "'canopen': no shipped profile of that name" in dialog.error.text()


def test_simulated_joints_speak_the_profile_chosen(qtbot) -> None:
    dialog = ConnectDialog(Connection(sim=True, nodes=(1,), in_process=True))
    qtbot.addWidget(dialog)
    dialog.profile.setCurrentText("cia402")
    conn = dialog.connection()
    w = MainWindow(Connection(**{**conn.__dict__, "missed_heartbeats": 30}))
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.session is not None and w.session.clients[1].alive, timeout=CONNECT_MS)
        # alive: its heartbeats (NMT, 0x701) decoded through the CiA 402 profile, which the simulated node speaks
        assert w.session.rig.hub.profile.name == "cia402"
        assert w.session.rig.nodes[1].profile.name == "cia402"
    finally:
        w.close()
