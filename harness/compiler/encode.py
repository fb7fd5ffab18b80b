"""Weight encoders: how a layer's int8 weights are laid out in flash.

Each encoder returns the C arrays to emit and an exact byte account, so the
benchmark can attribute flash to values, indices and row pointers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.compiler.ir import CompileError

_CTYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.uint16): "uint16_t",
           np.dtype(np.int32): "int32_t", np.dtype(np.uint32): "uint32_t"}


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

    @property
    def arrays(self) -> tuple[CArray, ...]:
        return (self.values,)

    @property
    def bytes(self) -> WeightBytes:
        return WeightBytes(values=self.values.nbytes)


@dataclass(frozen=True, eq=False)
class CsrWeights:
    """Compressed sparse rows: row r's values are values[row_start[r]:row_start[r + 1]]."""
    values: CArray      # int8 nonzeros, row by row
    index: CArray       # uint8 or uint16: where each value's input sits
    row_start: CArray   # uint16 or uint32, rows + 1 entries

    @property
    def nonzeros(self) -> int:
        return self.values.values.size

    @property
    def arrays(self) -> tuple[CArray, ...]:
        return (self.values, self.index, self.row_start)

    @property
    def bytes(self) -> WeightBytes:
        return WeightBytes(values=self.values.nbytes, indices=self.index.nbytes, pointers=self.row_start.nbytes)


def encode_dense(weights: np.ndarray, name: str) -> DenseWeights:
    """Weights as they are, flattened in their (row-major) layout."""
    flat = np.ascontiguousarray(weights, dtype=np.int8).reshape(-1)
    return DenseWeights(values=CArray(name, flat), nonzeros=int(np.count_nonzero(flat)))


def encode_csr(matrix: np.ndarray, name: str, column_index: np.ndarray | None = None) -> CsrWeights:
    """Encode a 2-D int8 matrix row by row, keeping only nonzeros.

    column_index[j] is what is stored for a nonzero in column j (the column
    itself by default; CONV_2D stores an input offset instead). Indices are
    uint8 when every stored index fits, else uint16; row starts are uint16
    when the nonzero count fits, else uint32.
    """
    matrix = np.asarray(matrix, dtype=np.int8)
    if matrix.ndim != 2:
        raise ValueError(f"CSR encodes 2-D matrices, got shape {matrix.shape}")
    if column_index is None:
        column_index = np.arange(matrix.shape[1])
    rows, cols = np.nonzero(matrix)  # row-major order, as CSR needs
    stored = np.asarray(column_index, dtype=np.int64)[cols]
    largest = int(stored.max()) if stored.size else 0
    if largest > np.iinfo(np.uint16).max:
        raise CompileError(f"{name}: sparse index {largest} does not fit in 16 bits")
    index_dtype = np.uint8 if largest <= np.iinfo(np.uint8).max else np.uint16
    row_start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=matrix.shape[0]))])
    start_dtype = np.uint16 if row_start[-1] <= np.iinfo(np.uint16).max else np.uint32
    return CsrWeights(values=CArray(f"{name}_values", matrix[rows, cols]),
                      index=CArray(f"{name}_index", stored.astype(index_dtype)),
                      row_start=CArray(f"{name}_row_start", row_start.astype(start_dtype)))
