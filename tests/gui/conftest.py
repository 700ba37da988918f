"""The GUI tests run on Qt's offscreen platform (no display needed); set before anything imports Qt."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
