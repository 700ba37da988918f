"""The error hierarchy: one base for everything jointkit raises, and a timeout that is also the builtin one."""

from __future__ import annotations

import builtins

import pytest

from actuator.errors import ConfigError, JointkitError, TimeoutError


def test_a_jointkit_timeout_is_caught_as_the_builtin_and_as_jointkits():
    with pytest.raises(builtins.TimeoutError, match="no reply"):
        raise TimeoutError("node 1: no reply to gain.position_kp within 0.5 s")
    with pytest.raises(JointkitError):
        raise TimeoutError("node 1: no heartbeat within 1 s")
    assert TimeoutError is not builtins.TimeoutError  # jointkit's own type, for ``except JointkitError`` callers
    assert str(TimeoutError("no heartbeat")) == "no heartbeat"  # OSError's (errno, strerror) form is not used
    assert not issubclass(ConfigError, builtins.TimeoutError)
