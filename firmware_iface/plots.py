"""PNG plots of simulation traces for people (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from actuator.simulation import Trace

PANELS = (
    ("position_rad", "position [rad]"),
    ("velocity_rad_s", "velocity [rad/s]"),
    ("current_a", "|i_dq| [A]"),
    ("winding_temp_c", "winding [°C]"),
)


def plot_trace(trace: Trace, path: str | Path, title: str) -> Path:
    """Position, velocity, current and winding temperature against time, one panel each."""
    fig, axes = plt.subplots(len(PANELS), 1, sharex=True, figsize=(8, 8), constrained_layout=True)
    t = trace.t_s
    for ax, (name, label) in zip(axes, PANELS, strict=True):
        ax.plot(t, trace[name], lw=1.2)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("time [s]")
    fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
