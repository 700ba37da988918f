"""Shared helpers of the actuator tests: parameter variants built from the presets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from actuator.params import JointParams, load_preset


def variant(p: JointParams, **sections: dict) -> JointParams:
    """A copy of ``p`` with fields of some sections replaced: variant(p, load={"mass_kg": 0.0})."""
    changes = {name: replace(getattr(p, name), **fields) for name, fields in sections.items()}
    return replace(p, **changes)


def ideal_reducer(p: JointParams, **extra: float) -> dict:
    """Reducer fields that remove every loss: no friction, hysteresis, damping or mesh loss."""
    fields = dict(coulomb_friction_nm=0.0, static_friction_nm=0.0, viscous_friction_nm_s_per_rad=0.0,
                  presliding_damping_nm_s_per_rad=0.0, hysteresis_torque_nm=0.0,
                  flexspline_damping_nm_s_per_rad=0.0, efficiency=1.0)
    fields.update(extra)
    return fields


@pytest.fixture(scope="session")
def knee() -> JointParams:
    return load_preset("knee")


@pytest.fixture(scope="session")
def wrist() -> JointParams:
    return load_preset("wrist")


@pytest.fixture(scope="session")
def qdd() -> JointParams:
    return load_preset("qdd")
