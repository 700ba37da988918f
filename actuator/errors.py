"""The one error hierarchy of jointkit, rooted at JointkitError.

It lives in the lowest layer so that every layer (actuator, firmware_iface, gui) raises and catches
the same types. Foreign errors are wrapped with ``raise ... from``.
"""

from __future__ import annotations

import builtins


class JointkitError(Exception):
    """Base of every error jointkit raises on purpose."""


class ConfigError(JointkitError):
    """Bad TOML, DBC or parameter: the message names the file, field, value and allowed range."""


class ProtocolError(JointkitError):
    """A frame that cannot be encoded or decoded, or an unknown frame."""


class BusError(JointkitError):
    """A CAN bus that cannot be opened, read or written."""


class TimeoutError(JointkitError, builtins.TimeoutError):
    """A reply or a telemetry frame did not arrive in time. Also a builtin ``TimeoutError`` (as python-can's
    ``CanTimeoutError`` is), so code that catches the builtin catches this one too."""


class IdentityError(TimeoutError):
    """A node was not confirmed as a joint of the selected profile (its heartbeat's signature), so nothing was
    written to it. A ``TimeoutError``: the confirmation did not arrive in time."""


class FaultError(JointkitError):
    """A joint reported a fault; ``faults`` holds the decoded fault names."""

    def __init__(self, message: str, faults: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.faults = faults


class SimulationError(JointkitError):
    """A simulation that cannot run as asked (bad duration, step, input or injection)."""


class CalibrationError(JointkitError):
    """A calibration routine that cannot give a trustworthy result (poses too close together for the fit, a sensor
    that saturated, a joint that did not reach a pose): it stops and says which, never returns a made-up value.
    ``reason`` names the case (``ill_conditioned``, ``saturated``, ``not_reached``, ...)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
