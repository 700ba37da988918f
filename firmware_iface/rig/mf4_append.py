"""An append-only MF4 writer: each flush adds its samples at the end of the file and links them in with one 8-byte
write, so a flush costs what it adds, whatever the file already holds, and the writer keeps nothing of what it wrote.

This module owns the file layout of ``SignalRecorder``'s signals (the blocks themselves are asammdf's, serialised with
its own block classes). The file is one *unsorted* data group (MDF 4.10): every channel group (one per node and
message, float64 channels, time master first) has a 2-byte record id, and the data is a chain of DL blocks, one per
flush, each pointing to one DT block holding that flush's records. A flush writes, at the end of the file, the blocks
of the channel groups first seen since the last flush, the DT and the DL, then links them: the new channel groups
into the chain of channel groups, then the new DL into the chain of DLs (the DG's data link for the first). A file
cut anywhere (SIGKILL) therefore reads as it was after the last flush that wrote its DL link: what follows is not
linked. The channel groups' cycle counts are not rewritten at each flush: while recording, the identification block
marks the file *unfinalised* (``UnFinMF``, "update of cycle counters required", MDF 4.10 section 5.1), which
asammdf's ``MDF()`` handles by counting the records; ``close`` writes the counts and marks the file finalised.

The header's comment (metadata) is a block of its own: ``set_comment`` appends a new one and relinks the header.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from asammdf.blocks import v4_constants as v4c
from asammdf.blocks.conversion_utils import from_dict
from asammdf.blocks.v4_blocks import (
    Channel,
    ChannelGroup,
    DataBlock,
    DataGroup,
    DataList,
    FileHistory,
    FileIdentificationBlock,
    HeaderBlock,
)

VERSION = "4.10"
HD_ADDR = 0x40  # the header block's place, fixed by the standard
_RECORD_ID = np.dtype("<u2")
# link offsets inside blocks (24-byte block header, then the links in the order of asammdf's KEYS_*)
_DG_FIRST_CG, _DG_DATA = 32, 40
_CG_NEXT, _CG_CYCLES = 24, 80
_DL_NEXT = 24


class ChannelSpec:
    """One channel group's layout: acquisition name, comment and its value channels as
    (name, unit, asammdf conversion dict or None, comment)."""

    def __init__(self, acq_name: str, comment: str, channels: list[tuple[str, str, dict | None, str]]) -> None:
        self.acq_name, self.comment, self.channels = acq_name, comment, channels
        self.dtype = np.dtype([("id", _RECORD_ID), ("t", "<f8")] + [(f"c{j}", "<f8") for j in range(len(channels))])


class Mf4Appender:
    """The open file: ``add_group`` declares a channel group, ``append`` writes the records of one flush,
    ``set_comment`` replaces the header's comment; ``close`` finalises. Not thread-safe: the caller serialises."""

    def __init__(self, path: str | os.PathLike, start_time: float, comment: str, fields: dict[str, str]) -> None:
        self.path = Path(path)
        self._file = open(self.path, "wb")  # noqa: SIM115 (held open for the recording's life)
        self._header = HeaderBlock()
        self._header.start_time = dt.datetime.fromtimestamp(start_time, dt.UTC)
        self._groups: list[tuple[ChannelSpec, int]] = []  # (spec, CG address)
        self._cycles: list[int] = []
        self._pending: list[ChannelSpec] = []  # declared, not yet written
        self._last_cg = 0
        self._last_dl = 0
        self._data_len = 0  # bytes of records written: the next DT's offset in the data
        ident = FileIdentificationBlock(version=VERSION)
        ident.file_identification = b"UnFinMF "
        ident.unfinalized_standard_flags = v4c.FLAG_UNFIN_UPDATE_CG_COUNTER
        history = FileHistory()
        history_blocks: list[Any] = []
        self._end = HD_ADDR + v4c.HEADER_BLOCK_SIZE
        self._end = history.to_blocks(self._end, history_blocks, {})
        self._header.file_history_addr = history.address
        self._dg = DataGroup(record_id_len=_RECORD_ID.itemsize)
        dg_blocks: list[Any] = []
        self._end = self._dg.to_blocks(self._end, dg_blocks, {})
        self._header.first_dg_addr = self._dg.address
        self._write(0, bytes(ident))
        self._write(HD_ADDR, b"\0" * v4c.HEADER_BLOCK_SIZE)  # the header comes with its comment, just below
        self._write_blocks(HD_ADDR + v4c.HEADER_BLOCK_SIZE, history_blocks + dg_blocks)
        self._ident = ident
        self.set_comment(comment, fields)

    def _write(self, address: int, data: bytes) -> None:
        self._file.seek(address)
        self._file.write(data)

    def _write_blocks(self, address: int, blocks: list[Any]) -> None:
        self._write(address, b"".join(bytes(b) for b in blocks))

    def _link(self, address: int, target: int) -> None:
        self._write(address, struct.pack("<Q", target))

    def set_comment(self, comment: str, fields: dict[str, str]) -> None:
        """A new header comment (plain text plus asammdf's common properties: author, department, project, subject)
        at the end of the file, then the header rewritten in place to point at it."""
        header = self._header
        header.comment = comment
        for key, value in fields.items():
            setattr(header, key, value)
        blocks: list[Any] = []
        header.to_blocks(self._end - v4c.HEADER_BLOCK_SIZE, blocks)  # lays the comment out at self._end
        self._write_blocks(self._end, blocks[1:])
        self._end = self._file.tell()
        header.address = HD_ADDR
        self._file.flush()
        self._write(HD_ADDR, bytes(header))
        self._file.flush()

    def add_group(self, spec: ChannelSpec) -> int:
        """Declare a channel group; its index (for ``append``), written with the next ``append``."""
        self._pending.append(spec)
        self._cycles.append(0)
        return len(self._groups) + len(self._pending) - 1

    def _group_blocks(self, spec: ChannelSpec, record_id: int, address: int) -> tuple[list[Any], int, ChannelGroup]:
        blocks: list[Any] = []
        texts: dict[Any, int] = {}
        cg = ChannelGroup(cycles_nr=0, samples_byte_nr=8 * (1 + len(spec.channels)), record_id=record_id)
        cg.acq_name, cg.comment, cg.acq_source = spec.acq_name, spec.comment, None
        address = cg.to_blocks(address, blocks, texts, {})
        channels = [self._channel(v4c.CHANNEL_TYPE_MASTER, v4c.SYNC_TYPE_TIME, 0, "time", "s", None, "")]
        channels += [self._channel(v4c.CHANNEL_TYPE_VALUE, v4c.SYNC_TYPE_NONE, 8 * j, *meta)
                     for j, meta in enumerate(spec.channels, 1)]
        for ch in channels:
            address = ch.to_blocks(address, blocks, texts, {}, {})
        for ch, nxt in zip(channels, [*channels[1:], None], strict=True):
            ch.next_ch_addr = nxt.address if nxt is not None else 0
        cg.first_ch_addr = channels[0].address
        return blocks, address, cg

    @staticmethod
    def _channel(kind: int, sync: int, offset: int, name: str, unit: str, conversion: dict | None,
                 comment: str) -> Channel:
        ch = Channel(channel_type=kind, sync_type=sync, data_type=v4c.DATA_TYPE_REAL_INTEL, byte_offset=offset,
                     bit_offset=0, bit_count=64)
        ch.name, ch.unit, ch.comment, ch.source = name, unit, comment, None
        ch.conversion = from_dict(conversion) if conversion else None
        return ch

    def append(self, records: list[tuple[int, np.ndarray, list[np.ndarray]]]) -> None:
        """Write one flush: for each (group index, times, value columns) its records, then link them in."""
        address = self._end
        new_cgs: list[tuple[ChannelGroup, list[Any]]] = []
        for spec in self._pending:
            record_id = len(self._groups) + 1
            blocks, nxt, cg = self._group_blocks(spec, record_id, address)
            self._write_blocks(address, blocks)
            address = nxt
            new_cgs.append((cg, blocks))
            self._groups.append((spec, cg.address))
        self._pending = []
        chunks = []
        for index, t, cols in records:
            spec = self._groups[index][0]
            rows = np.empty(t.size, spec.dtype)
            rows["id"], rows["t"] = index + 1, t
            for j, col in enumerate(cols):
                rows[f"c{j}"] = col
            chunks.append(rows.tobytes())
            self._cycles[index] += t.size
        data = DataBlock(data=b"".join(chunks))
        data_addr = address
        self._write(data_addr, bytes(data))
        address += data.block_len
        dl = DataList(links_nr=2, data_block_addr0=data_addr, flags=0, data_block_nr=1, offset_0=self._data_len)
        self._write(address, bytes(dl))
        self._end = address + dl.block_len
        self._data_len += len(data.data)
        self._file.flush()
        # link the new channel groups, then the data: a kill before the last link leaves the previous flush's file
        for cg, _ in new_cgs:
            self._link((self._last_cg + _CG_NEXT) if self._last_cg else (self._dg.address + _DG_FIRST_CG),
                       cg.address)
            self._last_cg = cg.address
        self._file.flush()
        self._link((self._last_dl + _DL_NEXT) if self._last_dl else (self._dg.address + _DG_DATA), address)
        self._last_dl = address
        self._file.flush()

    def close(self) -> None:
        """Write the cycle counts and mark the file finalised (idempotent)."""
        if self._file.closed:
            return
        for (_, cg_addr), cycles in zip(self._groups, self._cycles, strict=True):
            self._write(cg_addr + _CG_CYCLES, struct.pack("<Q", cycles))
        self._file.flush()
        self._ident.file_identification = b"MDF     "
        self._ident.unfinalized_standard_flags = 0
        self._write(0, bytes(self._ident))
        self._file.close()

