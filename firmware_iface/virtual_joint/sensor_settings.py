"""The drive's sensor settings on one simulated joint: its torque constant and the F/T sensor's compensation, which
the calibrations write (issue 17: ``jointkit calibrate kt|ft|ft-crosstalk --write``) as the joint's parameters
(native profile ids 43 and 48-99), the firmware applies to what it reports and its flash keeps (``[sensor]``).

* ``motor.torque_constant_nm_per_a``: the drive's Kt, per peak amp, motor side (the preset's nominal until written).
  The drive converts with it both ways, as a real drive's Kt setting does: a torque set-point into its q current
  (the controller's torque per amp, ``cascade.C_TORQUE_PER_A`` = Kt N) and its q current into the torque it reports
  (``telemetry.torque_nm`` = Kt N iq). The motor's physics keeps its own, true Kt.
* ``ft.bias_*`` (6) and ``ft.compensation_IJ`` (36, row I column J, 1-based; the identity until written): the
  reported wrench is ``K (raw - bias)``, raw the sensor's reading in its frame (N, N·m), so a sensor whose raw
  reading is S w + b reports w once K = S^-1 and bias = b (``experiments.ft_crosstalk`` fits S, ``ft_calibration``
  the bias).

Ranges the joint owns (a write outside is refused ``out_of_range``): Kt within [0.5, 2] of the nominal (a magnet
or a winding far outside is a different motor), a bias within the sensor's range per axis, the compensation's
diagonal within [0.5, 2] and its off-diagonal within +-0.5 (a sensor's crosstalk is percents: a larger one is a
broken sensor, not a calibration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KT_PARAM = "motor.torque_constant_nm_per_a"
FT_AXES = ("fx_n", "fy_n", "fz_n", "mx_nm", "my_nm", "mz_nm")
BIAS_PARAMS = tuple(f"ft.bias_{a}" for a in FT_AXES)
COMPENSATION_PARAMS = tuple(f"ft.compensation_{i + 1}{j + 1}" for i in range(6) for j in range(6))
PARAMS = (KT_PARAM, *BIAS_PARAMS, *COMPENSATION_PARAMS)
KT_RANGE = (0.5, 2.0)          # of the nominal
DIAGONAL_RANGE = (0.5, 2.0)
OFF_DIAGONAL_MAX = 0.5


class SensorSettings:
    """Kt and the F/T compensation of one joint: its parameters, what it reports through them, its flash."""

    def __init__(self, kt_nominal_nm_per_a: float, ft_range: Sequence[float]) -> None:
        self.kt_nominal = float(kt_nominal_nm_per_a)
        self.ft_range = np.asarray(ft_range, dtype=float)
        self.kt_nm_per_a = self.kt_nominal
        self.bias = np.zeros(6)
        self.compensation = np.eye(6)

    def allowed(self, name: str) -> tuple[float, float]:
        if name == KT_PARAM:
            return KT_RANGE[0] * self.kt_nominal, KT_RANGE[1] * self.kt_nominal
        if name in BIAS_PARAMS:
            r = float(self.ft_range[BIAS_PARAMS.index(name)])
            return -r, r
        i, j = divmod(COMPENSATION_PARAMS.index(name), 6)
        return DIAGONAL_RANGE if i == j else (-OFF_DIAGONAL_MAX, OFF_DIAGONAL_MAX)

    def read(self, name: str) -> float:
        if name == KT_PARAM:
            return self.kt_nm_per_a
        if name in BIAS_PARAMS:
            return float(self.bias[BIAS_PARAMS.index(name)])
        i, j = divmod(COMPENSATION_PARAMS.index(name), 6)
        return float(self.compensation[i, j])

    def write(self, name: str, value: float) -> str | None:
        """Apply a setting; returns the refusal's reason (``out_of_range``) or None."""
        lo, hi = self.allowed(name)
        if not (math.isfinite(value) and lo <= value <= hi):
            return "out_of_range"
        if name == KT_PARAM:
            self.kt_nm_per_a = float(value)
        elif name in BIAS_PARAMS:
            self.bias[BIAS_PARAMS.index(name)] = value
        else:
            i, j = divmod(COMPENSATION_PARAMS.index(name), 6)
            self.compensation[i, j] = value
        return None

    def wrench(self, raw: np.ndarray) -> np.ndarray:
        """The wrench the joint reports from the sensor's raw reading: K (raw - bias)."""
        return self.compensation @ (np.asarray(raw, dtype=float) - self.bias)

    # --- flash ------------------------------------------------------------------------------------------------------
    def to_flash(self) -> dict[str, float | list[float]]:
        return {"torque_constant_nm_per_a": self.kt_nm_per_a, "ft_bias": [float(v) for v in self.bias],
                "ft_compensation": [float(v) for v in self.compensation.ravel()]}

    def from_flash(self, doc: dict, where: str) -> None:
        from actuator.errors import ConfigError

        allowed = {"torque_constant_nm_per_a": (KT_PARAM,), "ft_bias": BIAS_PARAMS,
                   "ft_compensation": COMPENSATION_PARAMS}
        unknown = sorted(set(doc) - set(allowed))
        if unknown:
            raise ConfigError(f"{where} [sensor]: keys allowed {', '.join(allowed)}; got {', '.join(unknown)}")
        for key, names in allowed.items():
            if key not in doc:
                continue
            values = doc[key] if isinstance(doc[key], list) else [doc[key]]
            if len(values) != len(names):
                raise ConfigError(f"{where} [sensor] {key}: {len(names)} numbers expected, got {values!r}")
            for name, value in zip(names, values, strict=True):
                if not isinstance(value, int | float) or self.write(name, float(value)):
                    raise ConfigError(f"{where} [sensor] {key}: {name} = {value!r} is out of range: allowed "
                                      "[{:g}, {:g}]".format(*self.allowed(name)))
