"""Compiled batch codec for high-rate telemetry, built from the same DBC signal layouts as cantools.

This module owns the layout arrays (frame id, length, and per signal: bit shift, length, byte order, kind, scale,
offset, allowed range) compiled from a profile's cantools messages, and the Numba kernels that decode a frame array
``(n, 8) uint8`` with its ids ``(n,)`` into float64 signals ``(n, width)`` and encode them back. Kernels take
arrays only and never raise: each row gets a status (the message index, or a negative ``ROW_*`` code) and the
Python API turns bad rows into ``ProtocolError`` when asked to be strict.

Decoding gives what ``cantools`` ``decode_message(..., decode_choices=False, scaling=True)`` gives (tested with
hypothesis) but checks neither ranges nor value tables: ``Profile.decode`` is the checking frame-by-frame path.
Encoding checks the allowed ranges and rounds as cantools does (half to even). Classic frames of up to 8 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import FunctionType

import numpy as np
from cantools.database.can import Signal
from numba import njit, prange

from actuator.errors import ProtocolError
from actuator.kernel_cache import configure
from firmware_iface.protocol.profile import Profile, allowed_range

configure()  # before the kernels below are decorated (actuator.kernel_cache)

KIND_UNSIGNED, KIND_SIGNED, KIND_FLOAT32, KIND_FLOAT64 = 0, 1, 2, 3
ROW_UNKNOWN_ID, ROW_BAD_NODE, ROW_BAD_LENGTH, ROW_OUT_OF_RANGE = -1, -2, -3, -4
ROW_TEXT = {ROW_UNKNOWN_ID: "unknown frame id", ROW_BAD_NODE: "node id outside the profile's range",
            ROW_BAD_LENGTH: "wrong data length", ROW_OUT_OF_RANGE: "value outside the allowed range or not finite"}
CHUNK_ROWS = 4096  # rows per prange task, each with its own buffers (sized to stay in L2; 4096 measured best)
ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
MAX_LUT = 1 << 11  # command ids of a profile without node addressing: standard ids


@dataclass(frozen=True)
class CodecLayout:
    """Signal layouts of ``m`` messages as arrays; per-signal tables are ``(m + 1, width)``: row ``k`` holds the
    signals of message ``k`` padded to ``width``, row ``m`` is all padding (the row bad frames use).

    Padding decodes to NaN without a branch (mask 0, scale 1, offset NaN) and encodes to nothing (mask 0).
    """

    messages: tuple[str, ...]
    signals: tuple[tuple[str, ...], ...]
    lut: np.ndarray  # int64 (2**node_shift, or 2048 without addressing): command id -> message index, -1 if none
    frame_id: np.ndarray  # int64 (m + 1,)
    length: np.ndarray  # int64 (m + 1,) bytes
    count: np.ndarray  # int64 (m + 1,) signals
    slow: np.ndarray  # bool (m + 1,) has a float or 64-bit unsigned signal (the bit-cast path)
    shift: np.ndarray  # uint64 (m + 1, w): LSB position in the little-endian word, or in the big-endian word if BE
    mask: np.ndarray  # uint64 (m + 1, w)
    sext: np.ndarray  # uint64 (m + 1, w): 64 - length for signed signals (shift up, arithmetic shift down), else 0
    big_endian: np.ndarray  # bool (m + 1, w)
    kind: np.ndarray  # int64 (m + 1, w) KIND_*
    bits: np.ndarray  # int64 (m + 1, w) length
    scale: np.ndarray  # float64 (m + 1, w)
    offset: np.ndarray  # float64 (m + 1, w)
    lo: np.ndarray  # float64 (m + 1, w) allowed range widened by the rounding tolerance (encoding)
    hi: np.ndarray  # float64 (m + 1, w)
    raw_lo: np.ndarray  # float64 (m + 1, w) raw integer range (clamp after rounding)
    raw_hi: np.ndarray  # float64 (m + 1, w)
    pad: np.ndarray  # bool (m + 1, w)
    node_shift: int
    node_min: int
    node_max: int

    @property
    def width(self) -> int:
        return self.shift.shape[1]


PAD = {"shift": 0, "mask": 0, "sext": 0, "big_endian": False, "kind": KIND_UNSIGNED, "bits": 1, "scale": 1.0,
       "offset": np.nan, "lo": -np.inf, "hi": np.inf, "raw_lo": 0.0, "raw_hi": 0.0, "pad": True}
SIGNAL_DTYPES = {"shift": np.uint64, "mask": np.uint64, "sext": np.uint64, "big_endian": np.bool_, "kind": np.int64,
                 "bits": np.int64, "scale": np.float64, "offset": np.float64, "lo": np.float64, "hi": np.float64,
                 "raw_lo": np.float64, "raw_hi": np.float64, "pad": np.bool_}


def _signal_entry(message_name: str, signal: Signal) -> dict[str, float | int | bool]:
    """The layout entries of one cantools signal."""
    n = signal.length
    if signal.byte_order == "little_endian":
        shift = signal.start
    else:  # Motorola start bit = MSB; its position in the big-endian 64-bit word of bytes 0..7
        shift = (7 - signal.start // 8) * 8 + signal.start % 8 - n + 1
    if shift < 0 or shift + n > 64 or n < 1:
        raise ProtocolError(f"{message_name}.{signal.name}: {signal.start}|{n} does not fit in 8 bytes")
    if signal.is_float and n not in (32, 64):
        raise ProtocolError(f"{message_name}.{signal.name}: a float signal of {n} bits")
    kind = (KIND_FLOAT32 if n == 32 else KIND_FLOAT64) if signal.is_float else \
        (KIND_SIGNED if signal.is_signed else KIND_UNSIGNED)
    lo, hi = allowed_range(signal)
    tol = 1e-9 * max(1.0, abs(lo), abs(hi)) + (0.0 if signal.is_float else 1e-6 * abs(signal.scale))
    signed = kind == KIND_SIGNED
    return {"shift": shift, "mask": (1 << n) - 1, "sext": 64 - n if signed else 0,
            "big_endian": signal.byte_order == "big_endian", "kind": kind, "bits": n, "scale": float(signal.scale),
            "offset": float(signal.offset), "lo": lo - tol, "hi": hi + tol,
            "raw_lo": -float(1 << (n - 1)) if signed else 0.0,
            "raw_hi": float((1 << (n - 1)) - 1) if signed else float((1 << n) - 1), "pad": False}


def _is_slow(signal: Signal) -> bool:
    return bool(signal.is_float or (signal.length == 64 and not signal.is_signed))


def compile_layout(profile: Profile, messages: Sequence[str] | None = None) -> CodecLayout:
    """Layout arrays of ``messages`` (default: the profile's telemetry, the messages with a rate in the sidecar)."""
    names = tuple(messages) if messages is not None else tuple(profile.telemetry)
    if not names:
        raise ProtocolError(f"profile {profile.name}: no messages to compile (the sidecar lists no rates)")
    sc = profile.sidecar
    lut = np.full(1 << sc.node_shift if sc.node_shift else MAX_LUT, -1, np.int64)
    msgs = [profile.message(name) for name in names]
    width = max(1, *(len(m.signals) for m in msgs))
    table = {key: np.full((len(msgs) + 1, width), PAD[key], dtype) for key, dtype in SIGNAL_DTYPES.items()}
    for k, m in enumerate(msgs):
        if m.length > 8 or m.is_extended_frame or m.frame_id >= lut.size or lut[m.frame_id] >= 0:
            raise ProtocolError(f"{m.name}: the batch codec handles distinct standard frames of up to 8 bytes with "
                                f"command ids < {lut.size}")
        lut[m.frame_id] = k
        for j, s in enumerate(m.signals):
            for key, value in _signal_entry(m.name, s).items():
                table[key][k, j] = value
    return CodecLayout(
        messages=names, signals=tuple(tuple(s.name for s in m.signals) for m in msgs), lut=lut,
        frame_id=np.array([m.frame_id for m in msgs] + [-1], np.int64),
        length=np.array([m.length for m in msgs] + [-1], np.int64),
        count=np.array([len(m.signals) for m in msgs] + [0], np.int64),
        slow=np.array([any(_is_slow(s) for s in m.signals) for m in msgs] + [False], np.bool_),
        **table, node_shift=sc.node_shift, node_min=sc.node_min, node_max=sc.node_max)


@njit(cache=True, nogil=True, inline="always")
def _bswap64(x):
    out = np.uint64(0)
    for b in range(8):
        out = (out << np.uint64(8)) | ((x >> np.uint64(8 * b)) & np.uint64(0xFF))
    return out


@njit(cache=True, nogil=True, inline="always")
def _raw_to_value(raw, kind, bits, scale, offset, s32, f32, s64, f64):
    """Physical value of a raw field: sign-extended or bit-cast, then ``raw * scale + offset`` as cantools does."""
    if kind == KIND_FLOAT32:
        s32[0] = np.uint32(raw)
        return np.float64(f32[0]) * scale + offset
    if kind == KIND_FLOAT64:
        s64[0] = raw
        return f64[0] * scale + offset
    if kind == KIND_UNSIGNED:
        return np.float64(raw) * scale + offset
    iv = np.int64(raw)
    if bits < 64 and (raw >> np.uint64(bits - 1)) & np.uint64(1):
        iv -= np.int64(1) << np.int64(bits)
    return np.float64(iv) * scale + offset


@njit(cache=True, nogil=True, inline="always")
def _value_to_raw(x, kind, raw_lo, raw_hi, mask, s32, f32, s64, f64):
    """Raw field of ``x = (value - offset) / scale``: rounded half to even as cantools does, or bit-cast."""
    if kind == KIND_FLOAT32:
        f32[0] = x
        return np.uint64(s32[0])
    if kind == KIND_FLOAT64:
        f64[0] = x
        return s64[0]
    r = min(max(np.rint(x), raw_lo), raw_hi)
    return np.uint64(np.int64(r)) & mask


@njit(cache=True, nogil=True, inline="always")
def _group_rows(ids, dlc, lut, length, node_shift, node_min, node_max, rows, nodes, order, slots, starts):
    """Status and node of the rows of one chunk, and the rows grouped by message (stable counting sort): the rows
    of message ``k`` (``k = m``: bad rows) are ``order[starts[k]:starts[k + 1]]``, and row ``i`` went to slot
    ``slots[i]``. Returns (bad rows, whether the chunk holds one message only; then order is not filled).

    Every index here is a loop counter from 0 or unsigned, so Numba adds no negative-index wraparound (which
    would cost more than the decoding itself).
    """
    pad_row = length.shape[0] - 1
    counts = np.zeros(pad_row + 2, np.int64)
    cmd_mask = (1 << node_shift) - 1 if node_shift else -1
    has_dlc = dlc.shape[0] > 0
    bad = 0
    for i in range(ids.shape[0]):  # selects rather than early exits
        arb = ids[i]
        node = arb >> node_shift if node_shift else 0
        cmd = arb & cmd_mask
        k = lut[np.uint64(cmd)] if 0 <= cmd < lut.shape[0] else -1
        wrong_length = has_dlc and dlc[i] != length[np.uint64(k if k >= 0 else pad_row)]
        st = ROW_UNKNOWN_ID if k < 0 else (ROW_BAD_NODE if (node < node_min) | (node > node_max) else
                                           (ROW_BAD_LENGTH if wrong_length else k))
        rows[i] = st
        nodes[i] = node
        bad += st < 0
        counts[np.uint64(st + 1 if st >= 0 else pad_row + 1)] += 1
    starts[0] = 0
    single = False
    for k in range(pad_row + 1):
        starts[k + 1] = starts[k] + counts[k + 1]
        single |= counts[k + 1] == ids.shape[0]
        counts[k + 1] = starts[k]  # from here on: the next free slot of message k
    if not single:
        for i in range(ids.shape[0]):
            k1 = np.uint64(rows[i] + 1 if rows[i] >= 0 else pad_row + 1)
            slot = np.uint64(counts[k1])
            order[slot] = i
            slots[i] = slot
            counts[k1] += 1
    return bad, single


@njit(cache=True, nogil=True, inline="always")
def _decode_column(src, be, sh, mk, sx, sc, of, out):
    """One signal of the words ``src`` (all of one message) into ``out``: the layout is loop-invariant and the loop
    contiguous from 0, so it vectorises. Signed fields: shift up, arithmetic shift down."""
    sxi = np.int64(sx)
    if be:
        for t in range(src.shape[0]):
            raw = (_bswap64(src[t]) >> sh) & mk
            out[t] = np.float64(np.int64(raw << sx) >> sxi) * sc + of
    else:
        for t in range(src.shape[0]):
            raw = (src[t] >> sh) & mk
            out[t] = np.float64(np.int64(raw << sx) >> sxi) * sc + of


@njit(cache=True, nogil=True, inline="always")
def _decode_slow_column(src, be, sh, mk, kind, bits, sc, of, out, s32, f32, s64, f64):
    for t in range(src.shape[0]):
        w = _bswap64(src[t]) if be else src[t]
        out[t] = _raw_to_value((w >> sh) & mk, kind, bits, sc, of, s32, f32, s64, f64)


def _decode_rows(ids, words, dlc, lut, length, slow, shift, mask, sext, big_endian, kind, bits, scale, offset,
                 node_shift, node_min, node_max, values, rows, nodes):
    """Decode ``words`` (the 8 data bytes of each frame as a little-endian uint64) into ``values`` ``(n, width)``.

    Columns past a message's signals, and whole bad rows, are NaN. Rows are taken in chunks; inside a chunk they
    are grouped by message (gathered into a buffer unless the chunk holds one message only), decoded a signal
    column at a time with the column's layout in registers, and written back in frame order. Returns the number of
    bad rows.
    """
    n, width = values.shape
    n_rows = length.shape[0]  # messages + the padding row of bad frames
    n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        s32 = np.zeros(1, np.uint32)
        f32 = s32.view(np.float32)
        s64 = np.zeros(1, np.uint64)
        f64 = s64.view(np.float64)
        order = np.empty(CHUNK_ROWS, np.uint64)
        slots = np.empty(CHUNK_ROWS, np.uint64)
        starts = np.empty(n_rows + 1, np.int64)
        gw = np.empty(CHUNK_ROWS, np.uint64)
        ob = np.empty((width, CHUNK_ROWS))
        lo, hi = c * CHUNK_ROWS, min(n, (c + 1) * CHUNK_ROWS)
        m = hi - lo
        out = values[lo:hi]
        bad[c], single = _group_rows(ids[lo:hi], dlc[lo:hi] if dlc.shape[0] else dlc, lut, length, node_shift,
                                     node_min, node_max, rows[lo:hi], nodes[lo:hi], order, slots, starts)
        src = words[lo:hi]
        if not single:
            for t in range(m):
                gw[t] = src[order[t]]
            src = gw[:m]
        for k in range(n_rows):
            a, b = starts[k], starts[k + 1]
            if a == b:
                continue
            for j in range(width):
                if slow[k]:
                    _decode_slow_column(src[a:b], big_endian[k, j], shift[k, j], mask[k, j], kind[k, j], bits[k, j],
                                        scale[k, j], offset[k, j], ob[j, a:b], s32, f32, s64, f64)
                else:
                    _decode_column(src[a:b], big_endian[k, j], shift[k, j], mask[k, j], sext[k, j], scale[k, j],
                                   offset[k, j], ob[j, a:b])
        for i in range(m):  # frame order: sequential writes of the output, reads from the chunk buffer
            t = np.uint64(i) if single else slots[i]
            for j in range(width):
                out[i, j] = ob[j, t]
    return bad.sum()


def _encode_rows(msg, nodes, values, frame_id, shift, mask, big_endian, kind, scale, offset, lo, hi, raw_lo, raw_hi,
                 pad, node_shift, node_min, node_max, ids, words, status):
    """Encode row ``i`` (message ``msg[i]``, node ``nodes[i]``, signals ``values[i, :]``) into ``ids`` and ``words``
    (little-endian uint64 of the data bytes); rows with an unknown message, a bad node, or a value outside [lo, hi]
    or not finite get a ROW_* status, id -1 and zero data. Returns the number of bad rows."""
    n, width = values.shape
    n_msg = frame_id.shape[0] - 1
    n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        s32 = np.zeros(1, np.uint32)
        f32 = s32.view(np.float32)
        s64 = np.zeros(1, np.uint64)
        f64 = s64.view(np.float64)
        lo_i, hi_i = c * CHUNK_ROWS, min(n, (c + 1) * CHUNK_ROWS)
        msg_c, nodes_c, values_c = msg[lo_i:hi_i], nodes[lo_i:hi_i], values[lo_i:hi_i]
        ids_c, words_c, status_c = ids[lo_i:hi_i], words[lo_i:hi_i], status[lo_i:hi_i]
        for i in range(hi_i - lo_i):  # indices from 0 or unsigned: no negative-index wraparound code
            k, node = msg_c[i], nodes_c[i]
            st = k if 0 <= k < n_msg else ROW_UNKNOWN_ID
            if st >= 0 and (node < node_min or node > node_max):
                st = ROW_BAD_NODE
            r = np.uint64(k if st >= 0 else n_msg)
            le = np.uint64(0)
            be = np.uint64(0)
            for j in range(width):
                v = values_c[i, j]
                p = pad[r, j]
                ok = p or (lo[r, j] <= v <= hi[r, j])  # NaN fails
                if not ok:
                    st = ROW_OUT_OF_RANGE
                x = (v - offset[r, j]) / scale[r, j] if ok and not p else 0.0
                raw = _value_to_raw(x, kind[r, j], raw_lo[r, j], raw_hi[r, j], mask[r, j], s32, f32, s64,
                                    f64) << shift[r, j]
                sel = ALL_ONES if big_endian[r, j] else np.uint64(0)
                be |= raw & sel
                le |= raw & ~sel
            status_c[i] = st
            if st < 0:
                bad[c] += 1
                ids_c[i] = -1
                words_c[i] = 0
            else:
                ids_c[i] = (node << node_shift) | frame_id[r]
                words_c[i] = le | _bswap64(be)
    return bad.sum()


def _twin(fn: FunctionType, suffix: str) -> FunctionType:
    """A copy of ``fn`` under another qualified name. Numba's on-disk cache is keyed by qualified name, first line
    and bytecode, not by compile flags: a serial and a parallel compilation of one Python function would share one
    cache entry, and whichever ran first would be loaded for both."""
    twin = FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + suffix
    return twin


decode_rows = njit(cache=True, nogil=True)(_decode_rows)
decode_rows_parallel = njit(cache=True, nogil=True, parallel=True)(_twin(_decode_rows, "_parallel"))
encode_rows = njit(cache=True, nogil=True)(_encode_rows)
encode_rows_parallel = njit(cache=True, nogil=True, parallel=True)(_twin(_encode_rows, "_parallel"))


@dataclass(frozen=True)
class DecodedFrames:
    """Decoded rows: ``values[i, j]`` is signal ``j`` of message ``layout.messages[rows[i]]`` (NaN past its
    signals); ``rows[i] < 0`` marks a bad frame (``ROW_*``), ``nodes[i]`` the node id of the frame."""

    layout: CodecLayout
    values: np.ndarray
    rows: np.ndarray
    nodes: np.ndarray
    bad: int

    def mask(self, message: str) -> np.ndarray:
        return self.rows == _index(self.layout, message)

    def column(self, message: str, signal: str) -> np.ndarray:
        """Values of one signal over the rows of its message, in frame order."""
        k = _index(self.layout, message)
        if signal not in self.layout.signals[k]:
            raise ProtocolError(f"{message} has no signal {signal!r} ({', '.join(self.layout.signals[k])})")
        return self.values[self.rows == k, self.layout.signals[k].index(signal)]


def _index(layout: CodecLayout, message: str) -> int:
    try:
        return layout.messages.index(message)
    except ValueError:
        raise ProtocolError(f"the codec was compiled for {', '.join(layout.messages)}, not {message!r}") from None


class BatchCodec:
    """Decode and encode many frames of some messages of a profile at once (default: its telemetry messages)."""

    def __init__(self, profile: Profile, messages: Sequence[str] | None = None, *, parallel: bool = False) -> None:
        self.profile = profile
        self.layout = compile_layout(profile, messages)
        self.parallel = parallel

    @property
    def messages(self) -> tuple[str, ...]:
        return self.layout.messages

    @property
    def width(self) -> int:
        return self.layout.width

    def signals(self, message: str) -> tuple[str, ...]:
        return self.layout.signals[_index(self.layout, message)]

    def decode(self, ids: np.ndarray, frames: np.ndarray, dlc: np.ndarray | None = None, *,
               strict: bool = False, out: DecodedFrames | None = None) -> DecodedFrames:
        """Decode ``frames`` ``(n, 8) uint8`` with arbitration ``ids`` ``(n,)`` (and data lengths ``dlc`` if known).

        With ``strict`` any bad row (unknown id, node out of range, wrong length) raises ``ProtocolError``. ``out``,
        an earlier result of the same size, has its arrays reused (no allocation: the output is most of the work).
        """
        ids = np.ascontiguousarray(ids, np.int64)
        frames = np.ascontiguousarray(frames, np.uint8)
        if frames.ndim != 2 or frames.shape[1] != 8 or ids.shape != (frames.shape[0],):
            raise ProtocolError(f"frames must be (n, 8) uint8 with ids (n,): got {frames.shape} and {ids.shape}")
        dlc_arr = np.empty(0, np.int64) if dlc is None else np.ascontiguousarray(dlc, np.int64)
        if dlc_arr.size and dlc_arr.shape != ids.shape:
            raise ProtocolError(f"dlc must be (n,) like ids: got {dlc_arr.shape} and {ids.shape}")
        n, L = ids.shape[0], self.layout
        if out is None:
            out = DecodedFrames(L, np.empty((n, L.width)), np.empty(n, np.int32), np.empty(n, np.int32), 0)
        elif out.values.shape != (n, L.width) or out.layout is not L:
            raise ProtocolError(f"out holds {out.values.shape[0]} rows of another codec or size, not {n}")
        kernel = decode_rows_parallel if self.parallel else decode_rows
        bad = kernel(ids, frames.view("<u8").reshape(n), dlc_arr, L.lut, L.length, L.slow, L.shift, L.mask, L.sext,
                     L.big_endian, L.kind, L.bits, L.scale, L.offset, L.node_shift, L.node_min, L.node_max,
                     out.values, out.rows, out.nodes)
        if strict and bad:
            i = int(np.flatnonzero(out.rows < 0)[0])
            raise ProtocolError(f"{bad} bad frame(s) of {n}; the first, row {i} id 0x{int(ids[i]):03x}: "
                                f"{ROW_TEXT[int(out.rows[i])]}")
        return DecodedFrames(L, out.values, out.rows, out.nodes, int(bad))

    def encode(self, message: str | np.ndarray, nodes: int | np.ndarray, values: np.ndarray, *,
               strict: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids ``(n,)``, frames ``(n, 8) uint8``, status ``(n,)``) of the rows of ``values`` ``(n, k)``.

        ``message`` is a name (every row) or an array of message indices (``DecodedFrames.rows``); ``nodes`` an id or
        one per row; columns past a message's signals are ignored. With ``strict`` a bad row (value out of range or
        not finite, unknown message, bad node) raises ``ProtocolError``, else its status is negative and its id -1.
        """
        L = self.layout
        values = np.atleast_2d(np.asarray(values, np.float64))
        n = values.shape[0]
        if values.ndim != 2 or values.shape[1] > L.width:
            raise ProtocolError(f"values must be (n, k) with k <= {L.width}, got {values.shape}")
        padded = np.full((n, L.width), np.nan)
        padded[:, :values.shape[1]] = values
        msg = np.full(n, _index(L, message), np.int64) if isinstance(message, str) else \
            np.ascontiguousarray(message, np.int64)
        node_arr = np.ascontiguousarray(np.broadcast_to(np.asarray(nodes, np.int64), (n,)))
        if msg.shape != (n,):
            raise ProtocolError(f"{msg.shape[0]} message indices for {n} rows")
        ids, words, status = np.empty(n, np.int64), np.empty(n, np.uint64), np.empty(n, np.int64)
        kernel = encode_rows_parallel if self.parallel else encode_rows
        bad = kernel(msg, node_arr, padded, L.frame_id, L.shift, L.mask, L.big_endian, L.kind, L.scale, L.offset,
                     L.lo, L.hi, L.raw_lo, L.raw_hi, L.pad, L.node_shift, L.node_min, L.node_max, ids, words, status)
        if strict and bad:
            raise ProtocolError(self._encode_error(msg, node_arr, padded, status, int(bad)))
        return ids, words.view("<u1").reshape(n, 8), status

    def _encode_error(self, msg: np.ndarray, nodes: np.ndarray, values: np.ndarray, status: np.ndarray,
                      bad: int) -> str:
        L, i = self.layout, int(np.flatnonzero(status < 0)[0])
        head = f"{bad} bad row(s) of {len(status)}; the first, row {i}"
        if status[i] == ROW_UNKNOWN_ID:
            return f"{head}: message index {int(msg[i])} is not one of 0..{len(L.messages) - 1} " \
                   f"({', '.join(L.messages)})"
        if status[i] == ROW_BAD_NODE:
            return f"{head}: node id {int(nodes[i])} is outside {L.node_min}..{L.node_max}"
        k = int(msg[i])
        for j, name in enumerate(L.signals[k]):
            v = values[i, j]
            if not L.lo[k, j] <= v <= L.hi[k, j]:
                lo, hi = allowed_range(self.profile.signal(L.messages[k], name))
                return f"{head}: {L.messages[k]}.{name} = {v:.12g} is outside the allowed range [{lo:.12g}, {hi:.12g}]"
        return f"{head}: {ROW_TEXT[int(status[i])]}"
