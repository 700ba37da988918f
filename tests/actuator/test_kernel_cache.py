"""The kernels' cache folder follows their sources (actuator.kernel_cache): Numba alone would load a stale
``run_joint`` after an edit of a module it inlines (found in issue 16: the mechanics changed, the twist did not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba

from actuator import kernel_cache


def test_digest_changes_with_any_kernel_source(tmp_path: Path) -> None:
    files = [tmp_path / "joint.py", tmp_path / "mechanics.py"]
    for f in files:
        f.write_text("x = 1\n", encoding="utf-8")
    before = kernel_cache.sources_digest(tuple(files))
    assert kernel_cache.sources_digest(tuple(files)) == before
    files[1].write_text("x = 2\n", encoding="utf-8")  # the inlined module, not the one that owns the cache
    assert kernel_cache.sources_digest(tuple(files)) != before


def test_kernels_compile_into_the_folder_of_their_sources_digest(tmp_path: Path) -> None:
    import actuator.model.joint  # noqa: F401  (decorates the kernels)

    assert kernel_cache.configure() == numba.config.CACHE_DIR
    assert Path(numba.config.CACHE_DIR).name == kernel_cache.sources_digest()
    assert any(p.name == "mechanics.py" for p in kernel_cache.KERNEL_SOURCES)
    # a process with its own NUMBA_CACHE_DIR gets the digest folder under it
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "base")}
    out = subprocess.run([sys.executable, "-c", "import actuator.model.joint, numba; print(numba.config.CACHE_DIR)"],
                         capture_output=True, text=True, env=env, check=True, timeout=120)
    assert Path(out.stdout.strip()) == tmp_path / "base" / kernel_cache.sources_digest()


def test_old_versions_are_pruned(tmp_path: Path) -> None:
    for i, name in enumerate(("a", "b", "c", "d")):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    keep = tmp_path / "current"
    keep.mkdir()
    kernel_cache._prune(tmp_path, keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "current", "d"]
