"""Vectorised parsers of raw Arrow binary columns (the Criteo fields; TaobaoAd reuses some).

Each takes one ``pa.Array`` of raw bytes and returns numpy arrays, with no per-row Python. The
integer and hex parsers work on 8-byte words (SWAR: one uint64 holds 8 characters, and a handful
of whole-array integer operations check and convert all of them), which takes a fraction of the
time of a per-character ``[rows, width]`` byte matrix.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided

from ctrbench.data.schema import MISSING_ID

FLOAT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
MAX_INT_DIGITS = 18  # always fits int64
_SWAR_DIGITS = 8  # integers up to this many digits take the one-word path

_LANES = 0x0101010101010101  # a byte value times this = that byte in every lane
_HIGH = np.uint64(0x80 * _LANES)
_U64 = np.uint64


def binary_views(arr: pa.Array, front: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[n + 1], data) of a binary array, data copied behind ``front`` zero bytes and
    followed by 24: fixed-width windows may then start a little before or after any value."""
    if len(arr) == 0:
        return np.zeros(1, np.int32), np.zeros(front + 24, np.uint8)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    padded = np.empty(front + len(data) + 24, np.uint8)  # (np.zeros would clear it all first)
    padded[:front] = 0
    padded[front : front + len(data)] = data
    padded[front + len(data) :] = 0
    return offsets, padded


def windows(padded: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """[n, width] bytes starting at each offset (one gather, no per-row Python)."""
    view = as_strided(padded, shape=(len(padded) - width + 1, width), strides=(1, 1))
    return view[starts]


def _words(padded: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The unaligned little-endian uint64 at each offset: one gather through a 1-byte-stride view."""
    return np.take(np.ndarray((len(padded) - 7,), dtype=np.uint64, buffer=padded, strides=(1,)), starts)


def _lanes_in(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """0x80 in each byte lane of ``x`` that lies in [lo, hi], else 0; lanes must be < 0x80 (no
    carry crosses a lane then)."""
    return (x + _U64((0x80 - lo) * _LANES)) & ~(x + _U64((0x7F - hi) * _LANES)) & _HIGH


def parse_label(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``0`` / ``1`` -> (float32 label, bad)."""
    offsets, padded = binary_views(arr)
    lens = np.diff(offsets)
    first = padded[offsets[:-1]]
    ok = (lens == 1) & ((first == ord("0")) | (first == ord("1")))
    return (first == ord("1")).astype(np.float32), ~ok


def _parse_int_long(padded: np.ndarray, starts: np.ndarray, lens: np.ndarray, neg: np.ndarray):
    """(int64 magnitudes, ok) of the few integers too long for one word: a Horner pass over bytes."""
    n_digits = lens - neg
    width = int(min(lens.max(initial=0), MAX_INT_DIGITS + 2))
    b = windows(padded, starts, width)
    pos = np.arange(width)
    inside = pos < lens[:, None]
    digit = b - np.uint8(ord("0"))  # non-digits wrap to >= 10
    is_digit = digit < 10
    ok = (is_digit | ~inside | ((pos == 0) & neg[:, None])).all(axis=1)
    ok &= (n_digits >= 1) & (n_digits <= MAX_INT_DIGITS)
    use = inside & is_digit & ok[:, None]
    digit = digit.astype(np.int64)
    values = np.zeros(len(starts), np.int64)
    for j in range(width):  # vectorised over rows
        values = np.where(use[:, j], values * 10 + digit[:, j], values)
    return values, ok


def _swar_digits(w: np.ndarray, n_digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values, ok) of the ``n_digits`` (0..8) ASCII digits at the top of each little-endian word ``w`` (the
    word ends with the last digit); lanes below them are ignored. 0 digits read as 0, ok."""
    n = n_digits.astype(np.uint64)
    # a shift by 64 is undefined: no lane kept is spelt out with a zero mask
    keep = np.where(n > 0, _U64(2**64 - 1) << ((_U64(8) - np.maximum(n, _U64(1))) * _U64(8)), _U64(0))
    d = (w ^ _U64(0x30 * _LANES)) & keep
    # a lane is a digit iff it is now 0..9: no high nibble, and adding 6 does not carry into one
    ok = ((d | (d + _U64(0x06 * _LANES))) & _U64(0xF0 * _LANES)) == 0
    # 8 digit lanes (most significant first) -> one integer in three multiply-shift steps
    d = ((d * _U64(10 * 256 + 1)) >> _U64(8)) & _U64(0x00FF00FF00FF00FF)
    d = ((d * _U64(100 * 65536 + 1)) >> _U64(16)) & _U64(0x0000FFFF0000FFFF)
    return ((d * _U64(10000 * 2**32 + 1)) >> _U64(32)).view(np.int64), ok


def parse_int64(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optional-minus decimal integers of at most 18 digits -> (int64 values, missing, bad); 0 where not valid.

    A column with no bad or missing value (the common case) is one Arrow cast (same grammar: Arrow takes an optional
    ``-`` and digits; more than 18 digits are refused here by length). Otherwise, to find which values fail, up to 16
    digits take two words (the last 8 digits and the 8 before them: millisecond timestamps are 13), longer ones a
    per-byte pass."""
    if len(arr):
        lens = np.diff(np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=arr.offset * 4))
        with contextlib.suppress(pa.ArrowInvalid):
            # writable: callers overwrite values in place (missing codes)
            values = pc.cast(arr.view(pa.string()), pa.int64()).to_numpy(zero_copy_only=False, writable=True)
            if lens.max() <= MAX_INT_DIGITS:  # (a sign adds a byte: such values are checked below)
                return values, np.zeros(len(arr), bool), np.zeros(len(arr), bool)
    offsets, padded = binary_views(arr, front=16)
    lens = np.diff(offsets)
    missing = lens == 0
    neg = (padded[offsets[:-1] + 16] == ord("-")) & ~missing  # first byte (a zero pad byte when empty)
    n_digits = lens - neg
    ends = offsets[1:] + 8  # word index whose 8 bytes end with the value's last byte (16 front bytes)
    low, ok = _swar_digits(_words(padded, ends), np.clip(n_digits, 0, _SWAR_DIGITS))
    high, ok_high = _swar_digits(_words(padded, ends - 8), np.clip(n_digits - _SWAR_DIGITS, 0, _SWAR_DIGITS))
    ok &= ok_high & (n_digits >= 1) & (n_digits <= 2 * _SWAR_DIGITS)
    values = high * 10**_SWAR_DIGITS + low
    values[~ok] = 0
    long = np.flatnonzero(n_digits > 2 * _SWAR_DIGITS)
    if len(long):
        starts = offsets[long] + 16
        values[long], ok[long] = _parse_int_long(padded, starts, lens[long], neg[long])
    np.negative(values, out=values, where=neg)
    return values, missing, ~missing & ~ok


def parse_int(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optional-minus decimal integers of at most 18 digits -> (float64 values, missing, bad)."""
    values, missing, bad = parse_int64(arr)
    return values.astype(np.float64), missing, bad


def parse_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decimal / scientific numbers (the DeepCTR sample writes ``260.0``) -> (values, missing, bad)."""
    lens = np.diff(binary_views(arr)[0])
    missing = lens == 0
    ok = pc.match_substring_regex(arr, FLOAT_PATTERN).to_numpy(zero_copy_only=False)
    safe = pc.if_else(pa.array(ok), arr, pa.scalar(b"0", pa.binary()))
    values = pc.cast(safe.cast(pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    ok &= np.isfinite(values)
    return np.where(ok, values, 0.0), missing, ~missing & ~ok


def _hex_words(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 values, ok) of uint64 words holding 8 ASCII hex digits, the first most significant."""
    is_hex = _lanes_in(x, ord("0"), ord("9")) | _lanes_in(x | _U64(0x20 * _LANES), ord("a"), ord("f"))
    ok = ((x & _HIGH) == 0) & (is_hex == _HIGH)  # (x | 0x20 folds only A-F onto a-f)
    # nibble: low 4 bits, + 9 for letters (bit 6 set)
    x = (x & _U64(0x0F * _LANES)) + ((x >> _U64(6)) & _U64(_LANES)) * _U64(9)
    # pack neighbouring lanes, first one high: nibbles -> bytes -> 16-bit -> 32-bit, one multiply each
    x = ((x * _U64(16 * 256 + 1)) >> _U64(8)) & _U64(0x00FF00FF00FF00FF)
    x = ((x * _U64(256 * 65536 + 1)) >> _U64(16)) & _U64(0x0000FFFF0000FFFF)
    x = (x * _U64(65536 * 2**32 + 1)) >> _U64(32)
    return x.astype(np.uint32), ok


def parse_hex8(arr: pa.Array, hash_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """8 hex digits (either case) -> (int32 ``1 + value % (hash_bins - 1)``, bad); empty -> MISSING_ID."""
    if len(arr) == 0:
        return np.zeros(0, np.int32), np.zeros(0, bool)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    lens = np.diff(offsets)
    present = lens == 8
    n_present = int(np.count_nonzero(present))
    if n_present == 0:
        x = np.empty(0, np.uint64)
    elif n_present * 8 == offsets[-1] - offsets[0]:
        # every value is empty or 8 bytes (the usual case): the data buffer is the words, back to back
        x = np.frombuffer(data_buf, np.uint64, count=n_present, offset=int(offsets[0]))
    else:
        offsets, padded = binary_views(arr)
        x = _words(padded, offsets[:-1][present])
    value, ok = _hex_words(x)
    ids = np.full(len(arr), MISSING_ID, np.int32)
    ids[present] = np.where(ok, (np.uint32(1) + value % np.uint32(hash_bins - 1)).astype(np.int32), MISSING_ID)
    bad = (lens != 0) & ~present
    bad[present] |= ~ok
    return ids, bad


def per_chunk(column: pa.ChunkedArray, parse) -> list[np.ndarray]:
    """Apply a parser to each Arrow chunk (no combine_chunks copy) and join its outputs."""
    parts = [parse(chunk) for chunk in column.chunks or [pa.array([], pa.binary())]]
    return [np.concatenate(p) for p in zip(*parts)]
