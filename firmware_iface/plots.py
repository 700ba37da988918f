"""PNG plots of simulation traces for people (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

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
    return _save(fig, path)


def plot_step(signals: dict, loop: str, path: str | Path, title: str, metrics: dict) -> Path:
    """A step response (the step protocol's signals, ``experiments.protocols.Signals``): output against the
    set-point, with the metrics in the title; drive torque and current below."""
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(8, 7), constrained_layout=True)
    t = signals["t_s"]
    out, unit = (signals["velocity_rad_s"], "rad/s") if loop == "velocity" else (signals["position_rad"], "rad")
    axes[0].plot(t, signals["reference"], "k--", lw=1.0, label="set-point")
    text = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    axes[0].plot(t, out, lw=1.4, label=f"{loop} output")
    axes[0].set_title(text, fontsize=7)
    axes[0].set_ylabel(f"{loop} [{unit}]")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[1].plot(t, signals["torque_nm"], lw=1.0)
    axes[1].set_ylabel("drive torque [N·m]")
    axes[2].plot(t, signals["iq_a"], lw=1.0)
    axes[2].set_ylabel("i_q [A]")
    axes[2].set_xlabel("time from the hold before the step [s]")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_bode(fr, band, path: str | Path, title: str, bandwidth_hz: float, model_h=None) -> Path:
    """Magnitude and phase of the measured response ``fr`` (bins ``band``) against log frequency, the -3 dB
    bandwidth marked, and the linear model's response ``model_h`` on the same bins as a dashed overlay."""
    f = fr.freq_hz[band]
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(8, 6), constrained_layout=True)
    axes[0].semilogx(f, fr.magnitude_db[band], lw=1.4, label="measured (simulation)")
    axes[1].semilogx(f, fr.phase_deg[band], lw=1.4)
    if model_h is not None:
        axes[0].semilogx(f, 20 * np.log10(np.abs(model_h)), "k--", lw=1.0, label="linear model")
        axes[1].semilogx(f, np.degrees(np.unwrap(np.angle(model_h))), "k--", lw=1.0)
    axes[0].axhline(-3.0, color="r", lw=0.8, ls=":")
    if bandwidth_hz == bandwidth_hz:
        axes[0].axvline(bandwidth_hz, color="r", lw=0.8, ls=":", label=f"-3 dB at {bandwidth_hz:.3g} Hz")
    axes[0].set_ylabel("magnitude [dB]")
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel("phase [deg]")
    axes[1].set_xlabel("frequency [Hz]")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_twist_curve(curve: dict, points: list[dict], path: str | Path, title: str) -> Path:
    """The catalogue's twist curve (``curve``: torque_nm, twist_rad) against the simulated static twists
    (``points``: torque_nm, simulated_rad), both signs, with the ±5 % band of the check."""
    fig, ax = plt.subplots(figsize=(8, 5.5), constrained_layout=True)
    t, phi = np.asarray(curve["torque_nm"]), np.asarray(curve["twist_rad"])
    ax.plot(t, phi * 1e3, "k-", lw=1.2, label="catalogue (T1, T2, K1-K3)")
    ax.fill_between(t, phi * 0.95e3, phi * 1.05e3, color="k", alpha=0.08, lw=0, label="±5 %")
    ax.plot([p["torque_nm"] for p in points], [p["simulated_rad"] * 1e3 for p in points], "o", color="C3",
            label="simulated, motor held, from rest")
    ax.set_xlabel("output torque [N·m]")
    ax.set_ylabel("twist [mrad]")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_efficiency_map(emap: dict, path: str | Path, title: str, catalogue: list[dict] | None = None) -> Path:
    """Simulated efficiency against input speed, one line per load (``efficiency_map`` of
    ``actuator.analysis.catalogue``), with the catalogue's points where the preset gives them."""
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for frac, row in zip(emap["load_fractions"], emap["efficiency_pct"], strict=True):
        ax.plot(emap["speeds_rpm"], row, "o-", lw=1.2, label=f"simulated, {frac:g} x rated torque")
    for pt in catalogue or []:
        ax.plot(pt["input_speed_rpm"], pt["efficiency_pct"], "kx", ms=8)
    if catalogue:
        ax.plot([], [], "kx", label="catalogue")
    ax.set_xlabel("input speed [rpm]")
    ax.set_ylabel("efficiency [%]")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep_yield(path: str | Path, title: str, curves: dict[str, tuple[list[float], list[float], str]]) -> Path:
    """Yield (%) against each varied parameter: ``curves[name] = (x, yield_pct, x label)``, one panel each."""
    fig, axes = plt.subplots(len(curves), 1, figsize=(7, 2.8 * len(curves)), squeeze=False)
    for ax, (name, (x, y, label)) in zip(axes[:, 0], curves.items(), strict=True):
        ax.plot(x, y, "o-")
        ax.set_xlabel(f"{name}: {label}")
        ax.set_ylabel("yield [%]")
        ax.set_ylim(-5, 105)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
