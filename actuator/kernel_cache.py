"""Where Numba keeps the compiled kernels: one cache folder per version of the kernels' sources.

Numba checks a cached function against the time stamp of the file that defines it, not of the files it inlines:
``joint.run_joint`` inlines the mechanics, electrics and sensor kernels, so after an edit of ``mechanics.py`` (or a
``git pull`` that brings one) its cache would load the old physics without a word. ``configure`` points
``numba.config.CACHE_DIR`` at ``<base>/<digest>``, the digest over every kernel module's source, before any kernel
is decorated: new sources, new folder, a cold compile. The base is ``NUMBA_CACHE_DIR`` when the user sets it, else
the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``jointkit/numba``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
# every module that compiles with cache=True (and so everything they inline)
KERNEL_SOURCES = (*sorted((_ROOT / "actuator" / "model").glob("*.py")),
                  *sorted((_ROOT / "actuator" / "control").glob("*.py")),
                  _ROOT / "firmware_iface" / "protocol" / "batch_codec.py")

_configured: str | None = None


def sources_digest(paths: tuple[Path, ...] = KERNEL_SOURCES) -> str:
    """A short digest of the sources' names and bytes (a missing file counts as empty)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()[:16]


def configure() -> str:
    """Set Numba's cache folder for this version of the kernels (once per process); returns it."""
    global _configured
    if _configured is None:
        from numba import config

        user = os.environ.get("NUMBA_CACHE_DIR")
        cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = user or os.path.join(cache_home, "jointkit", "numba")
        _configured = os.path.join(base, sources_digest())
        config.CACHE_DIR = _configured
        if not user:
            _prune(Path(base), keep=Path(_configured))
    return _configured


def _prune(base: Path, keep: Path, versions: int = 3) -> None:
    """Drop the folders of all but the ``versions`` most recently used kernel versions (each is tens of MB)."""
    import shutil

    try:
        others = sorted((d for d in base.iterdir() if d.is_dir() and d != keep), key=lambda d: d.stat().st_mtime)
    except OSError:
        return
    for old in others[:max(0, len(others) - (versions - 1))]:
        shutil.rmtree(old, ignore_errors=True)
