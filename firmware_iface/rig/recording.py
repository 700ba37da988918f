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
  channel comment). The file is appended to at each flush (``firmware_iface.rig.mf4_append``), never rewritten.
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

Frames reach the hub from two threads (received ones from its reader, sent ones from the senders), with two clocks
(a received frame carries the bus's timestamp, the joint's own on virtual and remote buses; a sent one the host's).
The recorder holds frames back and writes them sorted by time once ``REORDER_S`` of newer traffic has arrived (all
at ``stop``); a frame later than that is written at the newest time already written, so the file never steps back
(python-can's text writers mishandle a frame older than the first, and BLF clamps it). A recording is one bus: every
frame is written on one channel number, ``channel`` (1 unless the caller says otherwise), whatever the adapter or
the virtual channel's name says.

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
from asammdf import MDF
from can.io.blf import BLFParseError

from actuator.errors import ConfigError
from firmware_iface.defaults import FRAME_FORMATS
from firmware_iface.protocol.frame import copy_frame
from firmware_iface.protocol.profile import Decoded, Profile
from firmware_iface.rig.mf4_append import ChannelSpec, Mf4Appender

REORDER_S = 0.1  # frames are written in time order once this much newer traffic has arrived
SIGNAL_SUFFIX = ".mf4"
# a flush that takes longer than 1/ADAPT of the interval stretches the next wait to ADAPT times its duration, so a
# slow disk never takes more than about 1/ADAPT of the time (and of the GIL the bus reader needs)
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

    def __init__(self, path: str | os.PathLike, *, flush_interval_s: float = 0.5, channel: int = 1) -> None:
        self.path = frame_path(path)
        self.flush_interval_s = _check_interval(flush_interval_s)
        if not (isinstance(channel, int) and 1 <= channel < 0xFFFF):
            raise ConfigError(f"channel = {channel!r}: a recording's bus channel is a number in 1..65534")
        self.channel = channel
        self.counts: Counter[int] = Counter()
        self.error_frames = 0
        self._lock = threading.Lock()
        self._first_t: float | None = None
        self._last_t = -math.inf  # the newest timestamp written: the file never steps back
        self._pending: list[tuple[float, can.Message]] = []  # (arrival, frame) held back to be written in order
        self._dirty = False
        self._stopped = False
        self._writer = _writer(self.path)
        self._writer.file.flush()  # the header on disk now: a recording killed before its first frame reads as empty
        self._flusher = _Periodic(f"flush-{self.path.name}", self.flush_interval_s,
                                  lambda: self.flush(everything=False))

    @property
    def frames(self) -> int:
        return sum(self.counts.values()) + self.error_frames

    def on_message_received(self, msg: can.Message) -> None:
        if self._flusher.error is not None:
            raise self._flusher.error
        with self._lock:
            if self._stopped:
                return
            self._pending.append((time.monotonic(), _copy(msg, msg.timestamp, self.channel)))
            if msg.is_error_frame:
                self.error_frames += 1
            else:
                self.counts[msg.arbitration_id] += 1
            self._dirty = True

    def _write_pending(self, everything: bool) -> None:
        """Write the held frames in time order: those that arrived ``REORDER_S`` ago or earlier (a frame from the
        other thread may still be on its way for the younger ones) and any younger one they do not precede, or all
        with ``everything``. A frame older than the newest written one is written at that time: the file never steps
        back."""
        if not self._pending:
            return
        self._pending.sort(key=lambda pm: pm[1].timestamp)
        cut = len(self._pending)
        if not everything:
            settled = time.monotonic() - REORDER_S
            old = [m.timestamp for arrived, m in self._pending if arrived <= settled]
            if not old:
                return
            newest_old = max(old)
            cut = next((i for i, (_, m) in enumerate(self._pending) if m.timestamp > newest_old), cut)
        for _, msg in self._pending[:cut]:
            if self._first_t is None:
                self._first_t = msg.timestamp
            if msg.timestamp < self._last_t:
                msg.timestamp = self._last_t
            self._last_t = msg.timestamp
            self._writer.on_message_received(msg)
        del self._pending[:cut]

    def flush(self, *, everything: bool = True) -> None:
        """Put every frame received so far on disk as a readable file (the OS's cache: see the module docstring);
        the timer's flushes (``everything=False``) keep back the frames younger than ``REORDER_S``."""
        with self._lock:
            if self._stopped or not self._dirty:
                return
            try:
                self._write_pending(everything=everything)
                self._dirty = bool(self._pending)
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
                    self._write_pending(everything=True)
                    self._writer.stop()
                except OSError as e:
                    raise ConfigError(f"{self.path}: cannot finish the recording: {e}") from e
        if self._flusher.error is not None:
            raise self._flusher.error


def _copy(msg: can.Message, timestamp: float, channel: Any) -> can.Message:
    """``msg`` with another timestamp and channel (the hub hands the same object to every listener: never edit it)."""
    copy = copy_frame(msg)  # its slots, without Message.__init__: one a frame
    copy.timestamp, copy.channel = timestamp, channel
    return copy


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
    """The column buffers of one (node, message) since the last flush: time first, then one column per signal."""

    __slots__ = ("cols", "index", "meta", "n", "name", "spec")

    def __init__(self, node_id: int, name: str, profile: Profile) -> None:
        message = profile.message(name)
        self.name = f"n{node_id}.{name}"  # the profile's name (a per-axis DBC's without the axis prefix)
        # (column, signal name, value name -> raw number or None), fixed for the group's life; names are the DBC's
        # and the profile's own (an ODrive's "closed_loop" is its CLOSED_LOOP_CONTROL, 8)
        self.spec = tuple((j, s.name, profile.value_numbers(name, s.name)) for j, s in enumerate(message.signals, 1))
        self.meta = [(f"{self.name}.{name}", unit, conversion, comment)
                     for name, unit, conversion, comment in (_channel_meta(s) for s in message.signals)]
        self.cols = [np.empty(_INITIAL_ROWS) for _ in range(len(self.spec) + 1)]
        self.n = 0
        self.index: int | None = None  # its channel group in the file, once declared

    def grow(self) -> None:
        for j, col in enumerate(self.cols):
            bigger = np.empty(2 * col.size)
            bigger[: self.n] = col[: self.n]
            self.cols[j] = bigger

    def take(self) -> list[np.ndarray]:
        """The rows since the last flush (copies), emptying the buffers (which keep their size: one flush's worth)."""
        rows = [col[: self.n].copy() for col in self.cols]
        self.n = 0
        return rows


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
    """Decoded signals (``on_decoded`` from a ``BusHub``) to one MF4 file, appended to: the timer thread writes the
    rows since the last flush every ``flush_interval_s`` at the end of the file and links them in
    (``firmware_iface.rig.mf4_append``), so a flush costs what it adds and the recorder holds one flush's rows,
    however long the soak (rewriting the whole file at every flush took 0.77 s after an hour and held 1.2 GB after
    two). The file reads to its last flush after a kill. The hub's reader only appends floats (1.3 us a frame
    measured); a flush that fails is raised from the next ``on_decoded`` (the hub then drops the recorder) and from
    ``stop()``. ``metadata`` (and ``set_metadata``) is the header's comment as ``key = value`` lines (tool, profile,
    serial, verdict, ...), with the header's author, project, subject and department taken from it.
    """

    def __init__(self, path: str | os.PathLike, profile: Profile, *, flush_interval_s: float = 1.0,
                 metadata: dict[str, Any] | None = None) -> None:
        self.path = signal_path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(f"{self.path}: cannot write the signals: no directory {self.path.parent}")
        self.profile = profile
        self.flush_interval_s = _check_interval(flush_interval_s)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._groups: dict[tuple[int, str], _Group] = {}
        self._t0: float | None = None  # the first frame's time: the file's start time, its time axis counts from it
        self._rows = 0
        self._metadata_dirty = True
        self._file: Mf4Appender | None = None
        self._lock = threading.Lock()  # the buffers
        self._write_lock = threading.Lock()  # one flush at a time
        self._stopped = False
        self._flusher = _Periodic(f"flush-{self.path.name}", self.flush_interval_s, self.flush)

    @property
    def rows(self) -> int:
        """Decoded frames recorded so far."""
        return self._rows

    @property
    def buffered_rows(self) -> int:
        """Decoded frames held for the next flush: all the recorder keeps of the recording."""
        return sum(g.n for g in self._groups.values())

    def set_metadata(self, **values: Any) -> None:
        """Add to the header comment (written with the next flush, and the last one at ``stop``)."""
        with self._lock:
            self.metadata.update(values)
            self._metadata_dirty = True

    def on_message_received(self, msg: can.Message) -> None:
        """Raw frames are the FrameRecorder's business; this recorder works on ``on_decoded``."""

    def on_decoded(self, decoded: Decoded, timestamp: float) -> None:
        if self._flusher.error is not None:
            raise self._flusher.error
        with self._lock:
            if self._stopped:
                return
            group = self._groups.get((decoded.node_id, decoded.name))
            if group is None and not decoded.signals:
                return  # a special frame (MIT's enable) or a signal-less command: nothing to record but the raw frame
            if group is None:
                group = self._groups[decoded.node_id, decoded.name] = _Group(decoded.node_id, decoded.name,
                                                                             self.profile)
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

    def flush(self) -> None:
        """Append the rows since the last flush (and a changed header comment) to the file."""
        with self._write_lock:
            with self._lock:
                t0 = self._t0
                taken = [(g, g.take()) for g in self._groups.values() if g.n]
                metadata = dict(self.metadata) if self._metadata_dirty else None
                self._metadata_dirty = False
            if t0 is None or (not taken and metadata is None):
                return
            try:
                self._append(t0, taken, metadata)
            except OSError as e:
                raise ConfigError(f"{self.path}: cannot write the signals: {e}") from e

    def _append(self, t0: float, taken: list[tuple[_Group, list[np.ndarray]]], metadata: dict | None) -> None:
        if self._file is None:
            comment, fields = _describe(metadata if metadata is not None else self.metadata)
            self._file = Mf4Appender(self.path, t0, comment, fields)
        elif metadata is not None:
            self._file.set_comment(*_describe(metadata))
        records = []
        for group, cols in taken:
            if group.index is None:
                group.index = self._file.add_group(ChannelSpec(group.name, f"{group.name} frames", group.meta))
            records.append((group.index, cols[0] - t0, cols[1:]))
        if records:
            self._file.append(records)

    def stop(self) -> None:
        """Stop the timer, flush a last time and finalise the file (idempotent); raises the error that stopped the
        timer, if any."""
        self._flusher.stop()
        with self._lock:
            already, self._stopped = self._stopped, True
        if not already:
            try:
                self.flush()
            finally:
                with self._write_lock:
                    if self._file is not None:
                        try:
                            self._file.close()
                        except OSError as e:
                            raise ConfigError(f"{self.path}: cannot finish the signals: {e}") from e
        if self._flusher.error is not None:
            raise self._flusher.error


def _describe(metadata: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The header's comment (``key = value`` lines) and its author, project, subject and department fields."""
    comment = "\n".join(f"{k} = {v}" for k, v in metadata.items()) or "jointkit recording"
    fields = {"author": f"jointkit {metadata.get('jointkit_version', '')}".strip(),
              "project": str(metadata.get("sequence", "jointkit")), "subject": str(metadata.get("serial", "")),
              "department": str(metadata.get("profile", ""))}
    return comment, fields


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
    """Channel name -> (time s, values) of a recording written by ``SignalRecorder``, also of one cut short by a kill
    (read to its last flush); value-table signals as their raw numbers."""
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
