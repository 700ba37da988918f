"""Frequency-response identification from input/output records, excitation signals and loop margins.

This module owns how jointkit estimates a frequency response and what it calls bandwidth and margins:

* ``frequency_response``: the H1 estimate ``H = S_uy / S_uu`` with Welch averaging (Hann window, 50 %
  overlap, constant detrend, the same settings for both spectra). SciPy's ``csd(u, y)`` is
  ``conj(U) * Y``, so the phase has the usual sign (a lag is negative). The coherence is
  ``scipy.signal.coherence`` with the same settings. The DC bin is dropped (detrending removes it).
* (the excitation signals, ``chirp`` and ``prbs``, are ``actuator.signals``)
* ``bandwidth_hz``: the first frequency where the magnitude falls 3 dB below its low-frequency gain (the
  gain of the lowest coherent bin, standing in for the DC gain), interpolated linearly in log-frequency.
* ``margins``: gain margin at the phase crossover (phase = -180 deg modulo 360) and phase margin at the gain
  crossover (|L| = 0 dB) of a loop-gain measurement L(jw), each interpolated linearly in log-frequency.

Only bins whose coherence exceeds ``min_coherence`` are used by ``bandwidth_hz`` and ``margins``; a value
that cannot be measured from those bins is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal

from actuator.errors import ConfigError
from actuator.signals import _positive

#: averages the default Welch segment length aims at (Hann window, 50 % overlap)
TARGET_AVERAGES = 8
MIN_SAMPLES = 64
WINDOW = "hann"


@dataclass(frozen=True)
class FrequencyResponse:
    """An estimated frequency response: one entry per frequency bin (DC excluded)."""

    freq_hz: NDArray[np.float64]
    h: NDArray[np.complex128]
    magnitude_db: NDArray[np.float64]
    phase_deg: NDArray[np.float64]  # unwrapped over all bins
    coherence: NDArray[np.float64]


def _signal(name: str, values: ArrayLike) -> NDArray[np.float64]:
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a 1-D array of numbers, got {values!r:.80}") from exc
    if a.ndim != 1 or a.size < MIN_SAMPLES:
        raise ConfigError(f"{name} has shape {a.shape}; it must be 1-D with at least {MIN_SAMPLES} samples")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name} contains NaN or inf; only finite values are allowed")
    return a


def default_nperseg(n_samples: int) -> int:
    """The largest power of two giving at least ~8 Hann-windowed, 50 %-overlapped averages of n samples."""
    return max(16, 2 ** math.floor(math.log2(2 * n_samples / (TARGET_AVERAGES + 1))))


def frequency_response(u: ArrayLike, y: ArrayLike, fs_hz: float, *, nperseg: int | None = None) -> FrequencyResponse:
    """H1 estimate of the response from ``u`` to ``y`` sampled at ``fs_hz``; see the module docstring."""
    uv = _signal("u", u)
    yv = _signal("y", y)
    if uv.size != yv.size:
        raise ConfigError(f"u has {uv.size} samples and y has {yv.size}; they must have the same length")
    fs = _positive("fs_hz", fs_hz)
    if nperseg is None:
        nperseg = default_nperseg(uv.size)
    elif isinstance(nperseg, bool) or not isinstance(nperseg, int | np.integer) or not 8 <= nperseg <= uv.size:
        raise ConfigError(f"nperseg={nperseg!r} is not allowed; it must be an integer in [8, {uv.size}]")
    nperseg = int(nperseg)
    if np.ptp(uv) == 0.0:
        raise ConfigError("u is constant; the input must excite the system")
    opts = dict(fs=fs, window=WINDOW, nperseg=nperseg, detrend="constant")
    f, s_uu = signal.welch(uv, **opts)
    _, s_uy = signal.csd(uv, yv, **opts)
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant y has zero power: coherence NaN -> 0
        _, coh = signal.coherence(uv, yv, **opts)
    keep = f > 0
    f, s_uu, s_uy, coh = f[keep], s_uu[keep], s_uy[keep], coh[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(s_uu > 0, s_uy / np.where(s_uu > 0, s_uu, 1.0), np.nan + 0j)
        mag_db = 20.0 * np.log10(np.abs(h))
    phase = np.angle(h)
    finite = np.isfinite(phase)
    phase[finite] = np.unwrap(phase[finite])
    return FrequencyResponse(freq_hz=f, h=h, magnitude_db=mag_db, phase_deg=np.degrees(phase),
                             coherence=np.nan_to_num(coh))


def _coherent(fr: FrequencyResponse, min_coherence: float) -> tuple[NDArray, NDArray, NDArray]:
    if not isinstance(fr, FrequencyResponse):
        raise ConfigError(f"expected a FrequencyResponse, got {type(fr).__name__}")
    if isinstance(min_coherence, bool) or not isinstance(min_coherence, int | float) or not 0 <= min_coherence < 1:
        raise ConfigError(f"min_coherence={min_coherence!r} is not allowed; it must be in [0, 1)")
    ok = (fr.coherence > min_coherence) & np.isfinite(fr.magnitude_db) & (fr.freq_hz > 0)
    phase = np.degrees(np.unwrap(np.radians(fr.phase_deg[ok]))) if ok.any() else fr.phase_deg[ok]
    return np.log10(fr.freq_hz[ok]), fr.magnitude_db[ok], phase


def _crossing(logf: NDArray, x: NDArray, level: float, i: int) -> float:
    """Log10-frequency where ``x`` crosses ``level`` between points i-1 and i (linear in log-frequency)."""
    frac = (level - x[i - 1]) / (x[i] - x[i - 1])
    return float(logf[i - 1] + frac * (logf[i] - logf[i - 1]))


def bandwidth_hz(fr: FrequencyResponse, min_coherence: float = 0.9) -> float:
    """The first frequency (Hz) 3 dB below the low-frequency gain; NaN if not reached in coherent bins."""
    logf, mag, _ = _coherent(fr, min_coherence)
    if logf.size < 2:
        return math.nan
    level = mag[0] - 3.0
    below = np.flatnonzero(mag < level)
    if below.size == 0:
        return math.nan
    return 10.0 ** _crossing(logf, mag, level, int(below[0]))


def margins(fr_loop: FrequencyResponse, min_coherence: float = 0.9) -> tuple[float, float, float, float]:
    """``(gain_margin_db, phase_margin_deg, crossover_hz, phase_crossover_hz)`` of a loop gain L(jw).

    The phase margin is ``180 + phase`` at the first |L| = 0 dB crossing (wrapped into (-180, 180]); the
    gain margin is ``-|L|_dB`` at the first crossing of -180 deg (modulo 360). NaN where not measurable.
    """
    logf, mag, phase = _coherent(fr_loop, min_coherence)
    pm = wc = gm = wpc = math.nan
    if logf.size >= 2:
        down = np.flatnonzero((mag[:-1] >= 0.0) & (mag[1:] < 0.0))
        if down.size:
            i = int(down[0]) + 1
            lf = _crossing(logf, mag, 0.0, i)
            wc = 10.0**lf
            ph = float(np.interp(lf, logf[i - 1:i + 1], phase[i - 1:i + 1]))
            pm = 180.0 - ((-ph) % 360.0)  # 180 + ph wrapped into (-180, 180]
        turns = np.floor((phase + 180.0) / 360.0)  # changes where the phase crosses -180 + 360 m
        cross = np.flatnonzero(np.diff(turns) != 0)
        if cross.size:
            i = int(cross[0]) + 1
            level = -180.0 + 360.0 * max(turns[i - 1], turns[i])
            lf = _crossing(logf, phase, level, i)
            wpc = 10.0**lf
            gm = -float(np.interp(lf, logf[i - 1:i + 1], mag[i - 1:i + 1]))
    return gm, pm, wc, wpc


def _sub(fr: FrequencyResponse, keep: slice | np.ndarray) -> FrequencyResponse:
    return FrequencyResponse(fr.freq_hz[keep], fr.h[keep], fr.magnitude_db[keep], fr.phase_deg[keep],
                             fr.coherence[keep])


def in_band(fr: FrequencyResponse, f0_hz: float, f1_hz: float) -> FrequencyResponse:
    """The bins of ``fr`` from ``f0_hz`` to ``f1_hz``: those an excitation over that band reached. Outside it the
    estimate is noise that can pass for a crossing, however coherent it looks."""
    return _sub(fr, (fr.freq_hz >= f0_hz) & (fr.freq_hz <= f1_hz))


def margins_above_crossover(fr_loop: FrequencyResponse, min_coherence: float = 0.9) -> tuple[float, float]:
    """``(gain_margin_db, phase_margin_deg)`` of a conditionally stable loop such as a position cascade,
    whose phase passes -180 deg at low frequency where |L| >> 1 (there a lower gain, not a higher one,
    would destabilise it). The phase margin is taken at the last 0 dB crossing going down, the gain
    margin at the first -180 deg crossing after it."""
    ok = fr_loop.coherence > min_coherence
    above = np.flatnonzero(ok & (fr_loop.magnitude_db >= 0.0))
    if above.size == 0:
        return math.nan, math.nan
    _, pm, _, _ = margins(_sub(fr_loop, slice(int(above[-1]), None)), min_coherence)
    crossover = int(above[-1]) + 1
    above_crossover = _sub(fr_loop, slice(crossover, None))
    gm, _, _, _ = margins(above_crossover, min_coherence) if crossover < fr_loop.freq_hz.size else (math.nan, 0, 0, 0)
    return gm, pm
