"""Weight formats: how a layer's int8 weights are laid out in flash.

A format is an encoder registered in FORMATS under its name (the name users
give as a kernel, e.g. "csr"). An encoder takes the weights as a 2-D matrix,
one row per output channel, and returns an Encoded: the C arrays to emit,
the struct the kernel reads them through (none for dense), and an exact
byte account, so the benchmark can attribute flash to values, indices and
row pointers. Its kernels are nn_<op>_<format>_s8 (nn_<op>_s8 for dense).

Sparse encoders also take column_index, what to store for a nonzero in
column j (CONV_2D stores the offset of its input from the window's corner,
see lower._conv_offsets), and row_step, the bytes from one kernel row of a
window to the next: formats with relative indices (delta4, bitmask) encode
each kernel row of each output channel as a row of its own, so their
indices never have to jump the gap between kernel rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from harness.compiler.ir import CompileError

_CTYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.uint16): "uint16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.uint32): "uint32_t",
}


@dataclass(frozen=True, eq=False)
class CArray:
    """A const C array; an empty one is emitted as a NULL pointer (C has no empty arrays)."""

    name: str
    values: np.ndarray  # 1-D; its dtype picks the C type

    @property
    def ctype(self) -> str:
        return _CTYPES[self.values.dtype]

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    @property
    def ref(self) -> str:
        """How C code names it: the array, or NULL when it is empty and not emitted."""
        return self.name if self.values.size else "NULL"


@dataclass(frozen=True, eq=False)
class CStruct:
    """A const C struct; field values are ints, C expressions (str), lists or nested dicts."""

    name: str
    ctype: str
    fields: dict


@dataclass(frozen=True)
class WeightBytes:
    """Flash taken by one layer's weights, by kind."""

    values: int = 0
    indices: int = 0
    pointers: int = 0

    @property
    def total(self) -> int:
        return self.values + self.indices + self.pointers


@dataclass(frozen=True, eq=False)
class DenseWeights:
    values: CArray
    nonzeros: int
    format = "dense"

    def struct(self, name: str) -> None:
        """Dense kernels take the values array itself."""
        return None

    @property
    def arrays(self) -> tuple[CArray, ...]:
        return (self.values,)

    @property
    def bytes(self) -> WeightBytes:
        return WeightBytes(values=self.values.nbytes)

    def table_bytes(self, pixels: int) -> int:
        return 0


class FormatRefused(CompileError):
    """A format that has no encoding for this layer's weights (e.g. nm for a layer that is not N:M): the
    compiler runs such a layer dense unless the format was asked for that layer by name."""


class _SparseWeights:
    """What a sparse format derives from its arrays: its dataclass fields, in the order values, the index
    array, then the pointer array (none for bitmask). Stored zeros (delta4's fillers, block4's padding)
    are not nonzeros."""

    @property
    def arrays(self) -> tuple[CArray, ...]:
        return tuple(getattr(self, field.name) for field in fields(self))

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.arrays[0].values))

    @property
    def bytes(self) -> WeightBytes:
        values, indices, *pointers = self.arrays
        return WeightBytes(values=values.nbytes, indices=indices.nbytes, pointers=sum(p.nbytes for p in pointers))

    def table_bytes(self, pixels: int) -> int:
        """Scratch the kernels need beside a CONV_2D's band, for `pixels` pixels at a time: none here."""
        return 0


def _indexed_fields(values: CArray, index: CArray, row_start: CArray) -> dict:
    """The fields of a struct with an index and row starts, each in the width the encoder chose."""
    index_field = "index_u8" if index.values.dtype == np.uint8 else "index_u16"
    start_field = "row_start_u16" if row_start.values.dtype == np.uint16 else "row_start_u32"
    return {"values": values.ref, index_field: index.ref, start_field: row_start.ref}


@dataclass(frozen=True, eq=False)
class CsrWeights(_SparseWeights):
    """Compressed sparse rows: row r's values are values[row_start[r]:row_start[r + 1]]."""

    values: CArray  # int8 nonzeros, row by row
    index: CArray  # uint8 or uint16: where each value's input sits
    row_start: CArray  # uint16 or uint32, rows + 1 entries
    format = "csr"

    def struct(self, name: str) -> CStruct:
        return CStruct(name, "nn_csr_s8", _indexed_fields(self.values, self.index, self.row_start))


DELTA4_MAX = 15  # the longest gap one delta4 entry spans
CSR_TILE_WINDOW_MAX = 288  # NN_CSR_TILE_WINDOW_MAX in kernels.h: rows csr indexes by column
BLOCK = 4  # inputs per block4 block


def encode_dense(
    weights: np.ndarray, name: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> DenseWeights:
    """Weights as they are, flattened in their (row-major) layout; column_index only matters to sparse formats."""
    flat = np.ascontiguousarray(weights, dtype=np.int8).reshape(-1)
    return DenseWeights(values=CArray(name, flat), nonzeros=int(np.count_nonzero(flat)))


def encode_csr(
    matrix: np.ndarray, name: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> CsrWeights:
    """Encode a 2-D int8 matrix row by row, keeping only nonzeros.

    A nonzero in column j stores j when a row has at most
    CSR_TILE_WINDOW_MAX columns: CONV_2D kernels gather such windows into a
    buffer in column order (kernels.h), FULLY_CONNECTED and depthwise rows
    are indexed by column anyway. Longer rows store column_index[j] (the
    column by default; CONV_2D passes the input's offset from the window's
    corner). Indices are uint8 when every stored index fits, else uint16;
    row starts are uint16 when the nonzero count fits, else uint32.
    row_step does not matter: the index says where the input is.
    """
    matrix = _matrix(matrix)
    column_index = _column_index(matrix, column_index if matrix.shape[1] > CSR_TILE_WINDOW_MAX else None)
    rows, cols = np.nonzero(matrix)  # row-major order, as CSR needs
    return CsrWeights(
        values=CArray(f"{name}_values", matrix[rows, cols]),
        index=_index_array(f"{name}_index", column_index[cols]),
        row_start=_row_start(f"{name}_row_start", rows, matrix.shape[0]),
    )


@dataclass(frozen=True, eq=False)
class Delta4Weights(_SparseWeights):
    """4-bit relative indices (as dCSR): an entry's input sits delta inputs after the previous entry's.

    A row's first entry counts from one before the row's first input, so
    every delta is 1 to 15; a gap longer than 15 is bridged by filler
    entries of value 0. Rows are output channels, or for CONV_2D (output
    channel, kernel row) pairs; deltas pack two per byte, low nibble first,
    one row straight after the other.
    """

    values: CArray  # int8, one per entry (nonzeros and fillers), row after row
    deltas: CArray  # uint8, two entries per byte
    count: CArray  # uint8 or uint16: entries per row
    format = "delta4"

    def struct(self, name: str) -> CStruct:
        count_field = "count_u8" if self.count.values.dtype == np.uint8 else "count_u16"
        return CStruct(
            name, "nn_delta4_s8", {"values": self.values.ref, "deltas": self.deltas.ref, count_field: self.count.ref}
        )


@dataclass(frozen=True, eq=False)
class BitmaskWeights(_SparseWeights):
    """One bit per input position, then the nonzero values in order.

    Rows are output channels, or for CONV_2D (output channel, kernel row)
    pairs, each covering the span of inputs a kernel row reads; every row's
    bits fill whole 32-bit words, the first input in the most significant
    bit (so a count of leading zeros finds the next nonzero). The kernel
    knows every row's length from the layer's geometry: no pointers.
    """

    values: CArray  # int8 nonzeros, row after row
    mask: CArray  # uint32
    format = "bitmask"

    def struct(self, name: str) -> CStruct:
        return CStruct(name, "nn_bitmask_s8", {"values": self.values.ref, "mask": self.mask.ref})


@dataclass(frozen=True, eq=False)
class Block4Weights(_SparseWeights):
    """Blocks of 4 consecutive inputs: one index per block, all 4 values stored, in CSR order.

    A block starts at its first nonzero, or earlier where it would reach
    past the last input a row reads (blocks may then overlap; a weight is
    stored in the first block that covers it, 0 in the others). Rows
    shorter than 4 inputs start their one block at 0.
    """

    values: CArray  # int8, 4 per block
    index: CArray  # uint8 or uint16: where each block's first input sits
    row_start: CArray  # uint16 or uint32: blocks before each row, rows + 1 entries
    format = "block4"

    def struct(self, name: str) -> CStruct:
        return CStruct(name, "nn_block4_s8", _indexed_fields(self.values, self.index, self.row_start))


def encode_delta4(
    matrix: np.ndarray, name: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> Delta4Weights:
    """Encode row by row (see Delta4Weights); counts are uint8 when every row's fit, else uint16."""
    rows, position, values, row_count, _ = _kernel_rows(matrix, column_index, row_step)
    previous = np.full(position.shape, -1)
    same_row = np.flatnonzero(rows[1:] == rows[:-1]) + 1
    previous[same_row] = position[same_row - 1]
    gap = position - previous
    fillers = (gap - 1) // DELTA4_MAX
    # Each nonzero becomes its fillers (delta 15, value 0) then itself (the rest of its gap).
    entries = fillers + 1
    last = np.cumsum(entries) - 1
    delta = np.full(int(entries.sum()), DELTA4_MAX)
    delta[last] = gap - fillers * DELTA4_MAX
    value = np.zeros(delta.size, dtype=np.int8)
    value[last] = values
    entry_row = np.repeat(rows, entries)
    count = np.bincount(entry_row, minlength=row_count)
    if count.max(initial=0) > np.iinfo(np.uint16).max:
        raise CompileError(f"{name}: a row of {count.max()} delta4 entries does not fit a 16-bit count")
    nibbles = np.zeros(delta.size + delta.size % 2, dtype=np.uint8)  # the last byte may have a spare nibble
    nibbles[: delta.size] = delta
    packed = (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)
    count_dtype = np.uint8 if count.max(initial=0) <= np.iinfo(np.uint8).max else np.uint16
    return Delta4Weights(
        values=CArray(f"{name}_values", value),
        deltas=CArray(f"{name}_deltas", packed),
        count=CArray(f"{name}_count", count.astype(count_dtype)),
    )


def encode_bitmask(
    matrix: np.ndarray, name: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> BitmaskWeights:
    """Encode row by row (see BitmaskWeights)."""
    rows, position, values, row_count, row_length = _kernel_rows(matrix, column_index, row_step)
    words = -(-row_length // 32)
    bits = np.zeros((row_count, words * 32), dtype=np.uint8)
    bits[rows, position] = 1
    mask = np.packbits(bits.reshape(-1, 4, 8), axis=-1, bitorder="big").reshape(-1, 4)
    mask = (mask.astype(np.uint32) << np.array([24, 16, 8, 0], dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    return BitmaskWeights(values=CArray(f"{name}_values", values), mask=CArray(f"{name}_mask", mask))


def encode_block4(
    matrix: np.ndarray, name: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> Block4Weights:
    """Encode row by row (see Block4Weights); index and row start widths as CSR's."""
    matrix = _matrix(matrix)
    column_index = _column_index(matrix, column_index)
    extent = int(column_index.max()) + 1 if column_index.size else 0
    latest_start = max(extent - BLOCK, 0)  # blocks read 4 inputs: none may reach past the row
    weight_at = np.full(max(extent, BLOCK), -1)
    weight_at[column_index] = np.arange(column_index.size)
    values, starts, block_rows = [], [], []
    for row in range(matrix.shape[0]):
        covered_to = 0
        for position in np.sort(column_index[np.flatnonzero(matrix[row])]):
            if position < covered_to:
                continue
            start = min(int(position), latest_start)
            block = np.zeros(BLOCK, dtype=np.int8)
            for k in range(max(start, covered_to), start + BLOCK):
                if weight_at[k] >= 0:
                    block[k - start] = matrix[row, weight_at[k]]
            values.append(block)
            starts.append(start)
            block_rows.append(row)
            covered_to = start + BLOCK
    return Block4Weights(
        values=CArray(f"{name}_values", np.concatenate(values) if values else np.zeros(0, dtype=np.int8)),
        index=_index_array(f"{name}_index", np.array(starts, dtype=np.int64)),
        row_start=_row_start(f"{name}_row_start", np.array(block_rows, dtype=np.int64), matrix.shape[0]),
    )


def _matrix(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.int8)
    if matrix.ndim != 2:
        raise ValueError(f"weights must be a 2-D matrix, got shape {matrix.shape}")
    return matrix


def _column_index(matrix: np.ndarray, column_index: np.ndarray | None) -> np.ndarray:
    if column_index is None:
        return np.arange(matrix.shape[1], dtype=np.int64)
    return np.asarray(column_index, dtype=np.int64)


def _index_array(name: str, stored: np.ndarray) -> CArray:
    """uint8 when every index fits, else uint16."""
    largest = int(stored.max()) if stored.size else 0
    if largest > np.iinfo(np.uint16).max:
        raise CompileError(f"{name}: sparse index {largest} does not fit in 16 bits")
    return CArray(name, stored.astype(np.uint8 if largest <= np.iinfo(np.uint8).max else np.uint16))


def _row_start(name: str, rows: np.ndarray, row_count: int) -> CArray:
    """Where each row's entries start, given each entry's row (sorted); uint16 when the total fits."""
    start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=row_count))])
    return CArray(name, start.astype(np.uint16 if start[-1] <= np.iinfo(np.uint16).max else np.uint32))


def _kernel_rows(
    matrix: np.ndarray, column_index: np.ndarray | None, row_step: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The nonzeros as rows of their own per kernel row: (row, position in it, value), row-major.

    Stored index i lies i // row_step kernel rows down, at i % row_step
    within its kernel row; without a row_step every matrix row is one row.
    Also returns the row count and the longest row's length in inputs.
    """
    matrix = _matrix(matrix)
    column_index = _column_index(matrix, column_index)
    step = row_step or (int(column_index.max()) + 1 if column_index.size else 1)
    kernel_rows = int(column_index.max()) // step + 1 if column_index.size else 1
    length = int((column_index % step).max()) + 1 if column_index.size else 0
    rows, cols = np.nonzero(matrix)
    rows = rows * kernel_rows + column_index[cols] // step
    position = column_index[cols] % step
    order = np.lexsort((position, rows))
    return rows[order], position[order], matrix[np.nonzero(matrix)][order], matrix.shape[0] * kernel_rows, length


# At the end: encode_nm builds on the classes above.
from harness.compiler.encode_nm import NmWeights, encode_nm  # noqa: E402

Encoded = DenseWeights | CsrWeights | Delta4Weights | BitmaskWeights | Block4Weights | NmWeights
FORMATS = {
    "dense": encode_dense,
    "csr": encode_csr,
    "delta4": encode_delta4,
    "bitmask": encode_bitmask,
    "block4": encode_block4,
    "nm": encode_nm,
}
