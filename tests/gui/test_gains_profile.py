"""The GUI's gains table asks a joint only for the gains its profile has: a joint of another vendor does not inherit
the native firmware's gain table."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from actuator.errors import ConfigError
from firmware_iface.protocol.load import load_native
from firmware_iface.protocol.profile import Profile
from gui.gains import read_all, write_some


def test_a_profile_without_gains_gets_no_gain_request():
    native = load_native()
    sidecar = replace(native.sidecar, params={k: v for k, v in native.sidecar.params.items()
                                              if not k.startswith("gain.")})
    foreign = Profile(native.db, sidecar, native.dbc_path)
    client = SimpleNamespace(profile=foreign, node_id=3, read_gain=lambda name: pytest.fail(f"read {name}"),
                             write_gain=lambda name, value: pytest.fail(f"wrote {name}"))
    assert read_all(client) == {}
    with pytest.raises(ConfigError, match=r"node 3: profile jointkit_native has no gain\(s\) position_kp: its gains "
                                          r"are none"):
        write_some(client, {"position_kp": 10.0})
    # the native profile: every gain of the table is asked for, by its name
    asked = []
    native_client = SimpleNamespace(profile=native, node_id=1, read_gain=lambda name: asked.append(name) or 1.0)
    assert set(read_all(native_client)) == set(native.gain_names) == set(asked)
