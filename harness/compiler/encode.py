"""Weight formats: how a layer's int8 weights are laid out in flash.

A format is an encoder registered in FORMATS under its name (the name users
give as a kernel, e.g. "csr"). An encoder takes the weights as a 2-D matrix,
one row per output channel, and returns an Encoded: the C arrays to emit,
the struct the kernel reads them through (none for dense), and an exact
byte account, so the benchmark can attribute flash to values, indices and
row pointers. Its kernels are nn_<op>_<format>_s8 (nn_<op>_s8 for dense).
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


@dataclass(frozen=True, eq=False)
class CsrWeights:
    """Compressed sparse rows: row r's values are values[row_start[r]:row_start[r + 1]]."""
    values: CArray      # int8 nonzeros, row by row
    index: CArray       # uint8 or uint16: where each value's input sits
    row_start: CArray   # uint16 or uint32, rows + 1 entries
    format = "csr"

    def struct(self, name: str) -> CStruct:
        index_field = "index_u8" if self.index.values.dtype == np.uint8 else "index_u16"
        start_field = "row_start_u16" if self.row_start.values.dtype == np.uint16 else "row_start_u32"
        return CStruct(name, "nn_csr_s8", {"values": self.values.ref, index_field: self.index.ref,
                                           start_field: self.row_start.ref})

    @property
    def nonzeros(self) -> int:
        return self.values.values.size

    @property
    def arrays(self) -> tuple[CArray, ...]:
        return (self.values, self.index, self.row_start)

    @property
    def bytes(self) -> WeightBytes:
        return WeightBytes(values=self.values.nbytes, indices=self.index.nbytes, pointers=self.row_start.nbytes)


def encode_dense(weights: np.ndarray, name: str, column_index: np.ndarray | None = None) -> DenseWeights:
    """Weights as they are, flattened in their (row-major) layout; column_index only matters to sparse formats."""
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


Encoded = DenseWeights | CsrWeights
FORMATS = {"dense": encode_dense, "csr": encode_csr}
