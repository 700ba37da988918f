"""Every kernel equals its plain-Python path (NUMBA_DISABLE_JIT=1) on a short case.

Numba reads NUMBA_DISABLE_JIT at import, so the Python path runs in a child interpreter that saves its
traces; this process runs the same cases compiled. Both use the same IEEE operations in the same order,
so the traces agree to rounding (rtol 1e-9); an encoder reading may differ by one count where an angle
sits on a count boundary to within rounding, so encoders are compared to one LSB.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from actuator.model import layout as L

CASES = textwrap.dedent("""
    import sys
    import numpy as np
    from actuator.simulation import Injection, simulate, simulate_batch

    def cases():
        out = {}
        out["knee"] = simulate("knee", torque_nm=30.0, duration_s=0.004, seed=1,
                               injections=[Injection(0.002, "external_wrench", (5, -3, 40, 0.1, 0.2, 0.3))]).data
        out["wrist"] = simulate("wrist", current_a=-4.0, duration_s=0.004, seed=2, position_rad=0.3,
                                injections=[Injection(0.003, "encoder_dropout", 1)]).data
        for j, t in enumerate(simulate_batch(["knee", "wrist"], current_a=2.0, duration_s=0.002, seed=5)):
            out[f"batch{j}"] = t.data
        return out

    if __name__ == "__main__":
        np.savez(sys.argv[1], **cases())
""")

ENCODERS = [L.TRACE_FIELDS.index("motor_encoder_rad"), L.TRACE_FIELDS.index("output_encoder_rad")]


@pytest.mark.slow
def test_compiled_kernels_equal_the_python_path(tmp_path: Path) -> None:
    script = tmp_path / "cases.py"
    script.write_text(CASES)
    saved = tmp_path / "python_path.npz"
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, str(script), str(saved)], env=env, check=True, timeout=600,
                   cwd=Path(__file__).resolve().parents[2])
    python_path = np.load(saved)
    sys.path.insert(0, str(tmp_path))
    try:
        import cases  # the same source, compiled in this process
    finally:
        sys.path.remove(str(tmp_path))
    compiled = cases.cases()
    assert set(compiled) == set(python_path.files)
    lsb = 2 * math.pi / 2**14
    for name, jit in compiled.items():
        py = python_path[name]
        assert jit.shape == py.shape
        others = [c for c in range(jit.shape[1]) if c not in ENCODERS]
        np.testing.assert_allclose(jit[:, others], py[:, others], rtol=1e-9, atol=1e-12, err_msg=name)
        assert np.max(np.abs(jit[:, ENCODERS] - py[:, ENCODERS])) <= lsb * 1.0000001, name
        assert np.ptp(jit[:, L.TRACE_FIELDS.index("iq_a")]) > 0.5  # the case did something
