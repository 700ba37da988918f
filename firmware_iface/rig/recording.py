"""Recordings of CAN traffic for the headless rig: raw frames with python-can's writers, decoded signals to MF4.

This module owns the two recorders a ``BusHub`` feeds (``hub.add_listener``) and the readers of what they write:

* ``FrameRecorder``: every frame, raw, with python-can's own writer chosen by the extension: ``.blf`` (Vector BLF,
  ``can.BLFWriter``, the default the CLI documents: 7 bytes a telemetry frame, against 49 in .log and 62 in ASC),
  ``.log`` (candump -L, ``can.CanutilsLogWriter``) or ``.asc`` (Vector ASCII, ``can.ASCWriter``). All three keep
  the direction (``is_rx``); timestamps come back to 1 us (BLF stores ns, but epoch floats step by 0.24 us; .log
  prints us) and, for ASC, to 1 us relative to a start time kept to 1 ms.
* ``SignalRecorder``: the decoded signals, one MF4 channel group per node and message (``n1.joint_state``), channels
  ``n1.joint_state.position`` with the DBC's units, time = frame timestamp minus the first frame's. Signals with a
  value table are stored as their raw numbers with an asammdf value-to-text conversion (and the table in the
  channel comment).
* ``read_frames`` / ``read_signals``: what a recording holds, also a recording cut short by a crash.

A recording killed mid-way (SIGKILL: no cleanup, no ``stop()``) is readable up to its last flush. Each recorder
flushes from a timer thread of its own every ``flush_interval_s``, also when the bus goes quiet. What python-can's
writers leave after a SIGKILL without that (python-can 4.6.1, observed with a child process writing ~2000 frames/s
and killed after 2.3 s):

* BLF: ``BLFWriter`` keeps objects in memory until 128 KiB of them (about 2700 classic frames) fill a zlib
  container, and writes the file header (start time, object count) only in ``stop()``. The killed file held the
  complete containers only (2730 frames, where the .log of the same run held 3340) and ``BLFReader`` read them, but
  with timestamps counted from 0 instead of the epoch: the header's start time was still zero. The recorder
  therefore closes the current container at each flush (``BLFWriter._flush``) and rewrites the header
  (``BLFWriter._write_header``), both private methods of python-can's writer that ``stop()`` itself uses (checked
  when the recorder opens). A killed BLF then reads with absolute timestamps up to its last flush. ``BLFReader``
  tolerates a container cut short (zlib gives back the complete part) but raises ``struct.error`` on an object
  header cut short: ``read_frames`` accepts that at the end of the file only.
* candump .log and ASC: the text writers go through Python's 8 KiB file buffer, so a kill leaves what the buffer
  last wrote. In the kill runs both files ended on a whole line, but nothing guarantees it, and a line cut short is
  worse than a lost one: cutting a .log at each of its last 120 bytes, ``CanutilsLogReader`` raised ``ValueError``
  on some cuts and, on the cuts inside the hex data, silently returned the frame with fewer data bytes. The recorder
  flushes whole lines; ``read_frames`` ignores an unterminated last line (a kill during the flush's write).
* ASC dates: ``ASCWriter`` writes the milliseconds of its start date without zero padding (42 ms as ".42"),
  which ``ASCReader`` reads as 420 ms: in one kill run of three, every absolute ASC timestamp was 0.5 s late. The
  recorder's ASC writer pads them (``_ASCWriter``).

Frames that reach the hub from two threads (received ones from its reader, sent ones from the sender) may be a
little out of time order. Both text writers mishandle a frame older than the first one recorded (.log writes it at
the first frame's time, ASC writes its absolute time as if it were relative), and BLF clamps it to the start; the
recorder writes such a frame at the first frame's time in every format. Later frames keep their timestamps.
Channels: ``BLFWriter`` stores the number at the end of a channel's name in 16 bits and raised ``struct.error`` on
a virtual channel named with a uuid that happened to end in digits; frames of a channel a format cannot write (that,
or blanks in a .log) are written with the writer's default channel.

A flush hands the data to the operating system (``flush``, no ``fsync``): it survives the process being killed,
not the machine losing power.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can
import numpy as np
from asammdf import MDF, Signal
from can.io.blf import BLFParseError

from actuator.errors import ConfigError
from firmware_iface.protocol.profile import Decoded, Profile

FRAME_FORMATS = {".blf": "Vector BLF", ".log": "candump -L log", ".asc": "Vector ASC"}
DEFAULT_FRAME_SUFFIX = ".blf"
SIGNAL_SUFFIX = ".mf4"
# a flush that takes longer than 1/ADAPT of the interval stretches the next wait to ADAPT times its duration, so
# rewriting a long MF4 never takes more than about 1/ADAPT of the time (and of the GIL the bus reader needs)
ADAPT = 5.0
_INITIAL_ROWS = 1024


def frame_path(path: str | os.PathLike) -> Path:
    """``path`` if its extension names a raw frame format, else ``ConfigError`` naming it and the allowed ones."""
    path = Path(path)
    if path.suffix.lower() not in FRAME_FORMATS:
        allowed = ", ".join(f"{s} ({name})" for s, name in FRAME_FORMATS.items())
        raise ConfigError(f"{path}: unknown recording format {path.suffix or '(no extension)'!r}; allowed: {allowed}")
    return path


def signal_path(path: str | os.PathLike) -> Path:
    """``path`` if it ends with ``.mf4``, else ``ConfigError``."""
    path = Path(path)
    if path.suffix.lower() != SIGNAL_SUFFIX:
        raise ConfigError(f"{path}: decoded signals are written to MF4: the file must end with {SIGNAL_SUFFIX}")
    return path


def _check_interval(flush_interval_s: float) -> float:
    if isinstance(flush_interval_s, bool) or not isinstance(flush_interval_s, int | float) \
            or not (math.isfinite(flush_interval_s) and flush_interval_s > 0):
        raise ConfigError(f"flush_interval_s = {flush_interval_s!r}: must be a positive number of seconds")
    return float(flush_interval_s)


class _Periodic:
    """A daemon thread calling ``fn()`` every ``interval_s`` (stretched when ``fn`` is slow, see ``ADAPT``) until
    ``stop()``; the first error it raises ends the thread and is kept in ``error``."""

    def __init__(self, name: str, interval_s: float, fn: Callable[[], Any]) -> None:
        self.interval_s = interval_s
        self.error: BaseException | None = None
        self._fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.interval_s
        while not self._stop.wait(wait):
            t = time.perf_counter()
            try:
                self._fn()
            except Exception as e:  # kept for the recorder to raise in the bus thread (the hub then drops it)
                self.error = e
                return
            wait = max(self.interval_s, ADAPT * (time.perf_counter() - t))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


class _ASCWriter(can.ASCWriter):
    """python-can's ASC writer with the milliseconds of its dates zero-padded: 4.6.1 writes 42 ms as ".42", which
    its own reader (and any other) takes for 420 ms, moving every absolute timestamp by up to 0.9 s."""

    def _format_header_datetime(self, when: dt.datetime) -> str:
        return when.strftime(f"%a %b %d %H:%M:%S.{when.microsecond // 1000:03d} %Y")


def _writer(path: Path) -> can.io.generic.MessageWriter:
    suffix = path.suffix.lower()
    try:
        if suffix == ".blf":
            writer = can.BLFWriter(path)
            if not all(callable(getattr(writer, m, None)) for m in ("_flush", "_write_header")):
                writer.stop()
                raise ConfigError(f"{path}: this python-can's BLFWriter cannot be flushed (no _flush/_write_header): "
                                  "a killed recording would lose its last 128 KiB; record to .log or .asc instead")
            return writer
        return can.CanutilsLogWriter(path) if suffix == ".log" else _ASCWriter(path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the recording: {e}") from e


class FrameRecorder(can.Listener):
    """Raw frames to a BLF, candump .log or ASC file (by ``path``'s extension), on disk at most ``flush_interval_s``
    after they arrive. Thread-safe: the hub calls it from its reader thread and from every thread that sends.

    ``counts`` holds the frames recorded per arbitration id, ``error_frames`` the error frames.
    """

    def __init__(self, path: str | os.PathLike, *, flush_interval_s: float = 0.5) -> None:
        self.path = frame_path(path)
        self.flush_interval_s = _check_interval(flush_interval_s)
        self.counts: Counter[int] = Counter()
        self.error_frames = 0
        self._lock = threading.Lock()
        self._first_t: float | None = None
        self._channel_ok: dict[Any, bool] = {}  # per channel value seen: can the format write it as it is?
        self._dirty = False
        self._stopped = False
        self._writer = _writer(self.path)
        self._writer.file.flush()  # the header on disk now: a recording killed before its first frame reads as empty
        self._flusher = _Periodic(f"flush-{self.path.name}", self.flush_interval_s, self.flush)

    @property
    def frames(self) -> int:
        return sum(self.counts.values()) + self.error_frames

    def on_message_received(self, msg: can.Message) -> None:
        if self._flusher.error is not None:
            raise self._flusher.error
        with self._lock:
            if self._stopped:
                return
            if self._first_t is None:
                self._first_t = msg.timestamp
            ok = self._channel_ok.get(msg.channel)
            if ok is None:
                ok = self._channel_ok[msg.channel] = _channel_writable(self.path.suffix.lower(), msg.channel)
            if msg.timestamp < self._first_t or not ok:  # see the module docstring: the writers mishandle these
                msg = _copy(msg, max(msg.timestamp, self._first_t), msg.channel if ok else None)
            self._writer.on_message_received(msg)
            if msg.is_error_frame:
                self.error_frames += 1
            else:
                self.counts[msg.arbitration_id] += 1
            self._dirty = True

    def flush(self) -> None:
        """Put every frame received so far on disk as a readable file (the OS's cache: see the module docstring)."""
        with self._lock:
            if self._stopped or not self._dirty:
                return
            self._dirty = False
            try:
                if isinstance(self._writer, can.BLFWriter):
                    _flush_blf(self._writer)
                else:
                    self._writer.file.flush()
            except OSError as e:
                raise ConfigError(f"{self.path}: cannot write the recording: {e}") from e

    def stop(self) -> None:
        """Flush and close the file (idempotent); raises the error that stopped the timer's flushing, if any."""
        self._flusher.stop()
        with self._lock:
            if not self._stopped:
                self._stopped = True
                try:
                    self._writer.stop()
                except OSError as e:
                    raise ConfigError(f"{self.path}: cannot finish the recording: {e}") from e
        if self._flusher.error is not None:
            raise self._flusher.error


def _channel_writable(suffix: str, channel: Any) -> bool:
    """Whether the format's writer can write ``channel`` as it is. BLF stores the number python-can reads off the
    end of a channel name (``channel2int``) plus one in 16 bits: a virtual channel named with a uuid ends in far more
    digits (``struct.error``). candump splits its lines on blanks."""
    if channel is None:
        return True
    if suffix == ".blf":
        number = can.util.channel2int(channel)
        return number is None or 0 <= number < 0xFFFF
    if suffix == ".log":
        return not any(c.isspace() for c in str(channel))
    return True


def _copy(msg: can.Message, timestamp: float, channel: Any) -> can.Message:
    """``msg`` with another timestamp and channel (the hub hands the same object to every listener: never edit it)."""
    return can.Message(timestamp=timestamp, arbitration_id=msg.arbitration_id, data=msg.data, dlc=msg.dlc,
                       is_extended_id=msg.is_extended_id, is_remote_frame=msg.is_remote_frame,
                       is_error_frame=msg.is_error_frame, is_fd=msg.is_fd, is_rx=msg.is_rx, channel=channel,
                       bitrate_switch=msg.bitrate_switch, error_state_indicator=msg.error_state_indicator)


def _flush_blf(writer: can.BLFWriter) -> None:
    """Write the buffered objects as containers and rewrite the header (start time, size, object count), as
    ``BLFWriter.stop`` does but leaving the file open."""
    while writer._buffer_size > 0 and not writer.file.closed:  # one call writes at most max_container_size
        writer._flush()
    end = writer.file.tell()
    writer.file.seek(0)
    writer._write_header(end)
    writer.file.seek(end)
    writer.file.flush()


# --- decoded signals to MF4 ---------------------------------------------------------------------------------------
class _Group:
    """The growing column buffers of one (node, message): time first, then one column per signal."""

    __slots__ = ("cols", "meta", "n", "name", "spec")

    def __init__(self, node_id: int, message: Any) -> None:
        self.name = f"n{node_id}.{message.name}"
        # (column, signal name, value-table name -> raw number or None), fixed for the group's life
        self.spec = tuple((j, s.name, {str(v): k for k, v in s.choices.items()} if s.choices else None)
                          for j, s in enumerate(message.signals, 1))
        self.meta = tuple(_channel_meta(s) for s in message.signals)
        self.cols = [np.empty(_INITIAL_ROWS) for _ in range(len(self.spec) + 1)]
        self.n = 0

    def grow(self) -> None:
        # a new array per column: views of the old ones handed to a flush stay valid and unchanged
        for j, col in enumerate(self.cols):
            bigger = np.empty(2 * col.size)
            bigger[: self.n] = col[: self.n]
            self.cols[j] = bigger


def _channel_meta(signal: Any) -> tuple[str, str, dict | None, str]:
    """(name, unit, asammdf conversion, comment) of a signal's channel."""
    comment = signal.comment or ""
    conversion = None
    if signal.choices:
        conversion = {"default": b""}
        for i, (raw, name) in enumerate(signal.choices.items()):
            conversion[f"val_{i}"] = float(raw)
            conversion[f"text_{i}"] = str(name).encode()
        table = ", ".join(f"{raw} {name}" for raw, name in signal.choices.items())
        comment = f"{comment}; value table: {table}" if comment else f"value table: {table}"
    return signal.name, signal.unit or "", conversion, comment


class SignalRecorder(can.Listener):
    """Decoded signals (``on_decoded`` from a ``BusHub``) to an MF4 file, rewritten whole every ``flush_interval_s``
    to a temporary file next to it and moved over it (``os.replace``), so the file on disk is always a complete MF4
    up to the last flush. The timer thread does the flushing (the hub's reader only appends floats: 1.3 us a frame
    measured); a flush that fails is raised from the next ``on_decoded`` (the hub then drops the recorder) and from
    ``stop()``. A rewrite grows with the recording (one knee at the native rates: 51 MB and 0.18 s after 10 minutes,
    measured), so past a few minutes the interval stretches to ``ADAPT`` times the rewrite's duration; hours-long
    soaks would want an append-only writer instead.
    """

    def __init__(self, path: str | os.PathLike, profile: Profile, *, flush_interval_s: float = 1.0) -> None:
        self.path = signal_path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(f"{self.path}: cannot write the signals: no directory {self.path.parent}")
        self.profile = profile
        self.flush_interval_s = _check_interval(flush_interval_s)
        # asammdf's save swaps any other suffix for .mf4; a kill during a rewrite may leave this file behind
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{SIGNAL_SUFFIX}")
        self._groups: dict[tuple[int, str], _Group] = {}
        self._t0: float | None = None
        self._rows = 0
        self._flushed_rows = -1
        self._lock = threading.Lock()  # the buffers
        self._write_lock = threading.Lock()  # one flush at a time
        self._stopped = False
        self._flusher = _Periodic(f"flush-{self.path.name}", self.flush_interval_s, self.flush)

    @property
    def rows(self) -> int:
        """Decoded frames recorded so far."""
        return self._rows

    def on_message_received(self, msg: can.Message) -> None:
        """Raw frames are the FrameRecorder's business; this recorder works on ``on_decoded``."""

    def on_decoded(self, decoded: Decoded, timestamp: float) -> None:
        if self._flusher.error is not None:
            raise self._flusher.error
        with self._lock:
            if self._stopped:
                return
            group = self._groups.get((decoded.node_id, decoded.name))
            if group is None:
                group = self._groups[decoded.node_id, decoded.name] = _Group(
                    decoded.node_id, self.profile.message(decoded.name))
                if self._t0 is None:
                    self._t0 = timestamp
            n = group.n
            if n == group.cols[0].size:
                group.grow()
            cols, signals = group.cols, decoded.signals
            cols[0][n] = timestamp
            for j, name, choices in group.spec:
                value = signals[name]
                cols[j][n] = value if choices is None else choices.get(value, value)
            group.n = n + 1
            self._rows += 1

    def _snapshot(self) -> tuple[int, float | None, list[tuple[_Group, int, list[np.ndarray]]]]:
        """(rows, t0, [(group, its rows, its columns)]): views only; rows written later go past them or, after a
        growth, into new arrays."""
        with self._lock:
            return self._rows, self._t0, [(g, g.n, list(g.cols)) for g in self._groups.values() if g.n]

    def flush(self) -> None:
        """Rewrite the MF4 with everything recorded so far (skipped when nothing new arrived since the last one)."""
        with self._write_lock:
            rows, t0, groups = self._snapshot()
            if rows == self._flushed_rows:
                return
            mdf = MDF(version="4.10")
            try:
                if t0 is not None:
                    mdf.header.start_time = dt.datetime.fromtimestamp(t0, dt.UTC)
                for group, n, cols in groups:
                    t = cols[0][:n] - t0
                    signals = [Signal(cols[j][:n], t, name=f"{group.name}.{name}", unit=unit, conversion=conversion,
                                      comment=comment)
                               for j, (name, unit, conversion, comment) in enumerate(group.meta, 1)]
                    if signals:
                        mdf.append(signals, acq_name=group.name, comment=f"{group.name} frames")
                mdf.save(self._tmp, overwrite=True)
                os.replace(self._tmp, self.path)
            except OSError as e:
                raise ConfigError(f"{self.path}: cannot write the signals: {e}") from e
            finally:
                mdf.close()
            self._flushed_rows = rows

    def stop(self) -> None:
        """Stop the timer, flush a last time (idempotent); raises the error that stopped the timer, if any."""
        self._flusher.stop()
        with self._lock:
            already, self._stopped = self._stopped, True
        if not already:
            self.flush()
        if self._flusher.error is not None:
            raise self._flusher.error


# --- reading -------------------------------------------------------------------------------------------------------
def read_frames(path: str | os.PathLike) -> list[can.Message]:
    """The frames of a recording (BLF, candump .log or ASC, absolute timestamps), also of one cut short by a crash:
    an unterminated last line (text) or an object header cut at the end of the file (BLF) is left out."""
    path = frame_path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recording")
    if path.suffix.lower() == ".blf":
        return _read_blf(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the recording: {e}") from e
    whole = io.StringIO(text[: text.rfind("\n") + 1])
    # the ASC reader's default (relative_timestamp=True) would count from the start of the measurement
    reader = can.CanutilsLogReader(whole) if path.suffix.lower() == ".log" else can.ASCReader(
        whole, relative_timestamp=False)
    try:
        return list(reader)
    except (ValueError, IndexError) as e:
        raise ConfigError(f"{path}: not a readable {FRAME_FORMATS[path.suffix.lower()]} file: {e}") from e


def _read_blf(path: Path) -> list[can.Message]:
    size = path.stat().st_size
    try:
        reader = can.BLFReader(path)
    except (BLFParseError, struct.error, OSError) as e:
        raise ConfigError(f"{path}: not a readable BLF file: {e or 'bad header'}") from e
    frames: list[can.Message] = []
    try:
        frames.extend(reader)
    except (BLFParseError, struct.error) as e:
        if reader.file.tell() < size:  # an object header cut short can only be the last thing in the file
            raise ConfigError(f"{path}: BLF damaged at byte {reader.file.tell()}: {e or 'bad object'}") from e
    finally:
        reader.stop()
    return frames


def read_signals(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Channel name -> (time s, values) of an MF4 written by ``SignalRecorder``; value-table signals as their raw
    numbers."""
    path = signal_path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such MF4 file")
    try:
        mdf = MDF(path)
    except Exception as e:  # asammdf raises many kinds on a damaged file
        raise ConfigError(f"{path}: not a readable MF4 file: {e}") from e
    try:
        out = {}
        for gi, group in enumerate(mdf.groups):
            master = mdf.masters_db.get(gi)
            for ci, channel in enumerate(group.channels):
                if ci != master:
                    s = mdf.get(channel.name, group=gi, index=ci, raw=True)
                    out[channel.name] = (np.asarray(s.timestamps, float), np.asarray(s.samples, float))
        return out
    finally:
        mdf.close()
