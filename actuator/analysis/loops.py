"""The loops a step or Bode test can close (standard library only: the command line lists them in its help)."""

from __future__ import annotations

LOOPS = ("position", "velocity", "impedance")
