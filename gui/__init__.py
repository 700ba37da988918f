"""gui: the PySide6 + pyqtgraph tuning app (talks to joints only through firmware_iface.client)."""
