"""``Frame``: the python-can ``Message`` this toolkit sends, identical to one but cheap to copy.

python-can's ``virtual`` bus hands every receiver its own ``copy.deepcopy`` of each frame sent. ``Message.__deepcopy__``
deep-copies the data through ``copy``'s generic reduce protocol and builds the copy through ``Message.__init__``: about
40 us of Python per frame, the largest single cost of a lock-step simulated rig (4 frames a 1 ms tick). A ``Frame``
copies its slots directly: the data as a new object of its own type (a ``bytearray`` stays a new ``bytearray``), a
channel name (``str``, ``int``, None: immutable) as it is, any other channel deep-copied as python-can would. The
copy is a ``Frame`` with the same fields, so a frame copied again (a second receiver, a recorder) is as cheap.

Everything else is python-can's ``Message``: the same fields, ``__init__`` and checks; a bus, writer or reader sees
a ``Message``.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import can

_IMMUTABLE_CHANNELS = (str, int, type(None))


class Frame(can.Message):
    """A ``can.Message`` whose ``copy.deepcopy`` (what the ``virtual`` bus makes per receiver) copies its slots."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any] | None) -> Frame:
        return copy_frame(self, memo)


def copy_frame(msg: can.Message, memo: dict[int, Any] | None = None) -> Frame:
    """A ``Frame`` with the fields of ``msg`` (any ``can.Message``) and a copy of its data: what ``deepcopy`` makes."""
    new = Frame.__new__(Frame)
    new.timestamp = msg.timestamp
    new.arbitration_id = msg.arbitration_id
    new.is_extended_id = msg.is_extended_id
    new.is_remote_frame = msg.is_remote_frame
    new.is_error_frame = msg.is_error_frame
    channel = msg.channel
    new.channel = channel if isinstance(channel, _IMMUTABLE_CHANNELS) else deepcopy(channel, memo)
    new.dlc = msg.dlc
    data = msg.data
    new.data = data[:] if isinstance(data, bytearray | bytes) else deepcopy(data, memo)
    new.is_fd = msg.is_fd
    new.is_rx = msg.is_rx
    new.bitrate_switch = msg.bitrate_switch
    new.error_state_indicator = msg.error_state_indicator
    return new
