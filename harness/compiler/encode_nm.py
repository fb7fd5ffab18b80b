"""The N:M weight format: at most N nonzeros in every group of M = 4 consecutive inputs (input channels).

This is what the pruning engine's N:M patterns ("2:4", "1:4", harness/prune/masks.n_of_m_mask) leave
along the input channels. Each row (output channel) is cut into units that hold exactly 2 stored
weights and one 4-bit slot naming the 2 inputs they multiply, so every unit is one SMLAD on Arm's
DSP extension:

- N = 2: a unit is one group of 4 inputs; its slot is one of the 6 pairs of positions (PAIRS[2]);
- N = 1: a unit is two groups (8 inputs); its slot is p + 4 q, the kept position p of the first
  group and q of the second.

Either way the slot takes 2 bits per stored weight. A group with fewer nonzeros than N stores zeros
(in slots the encoder picks), and a row's units are padded with a zero unit to an even count, so a
row's values fill whole words: unit pairs (u, u + 1) store their values as a, a', b, b' (SXTB16 then
widens a word into the pairs (a, b) and (a', b')), and their slots share a byte, u in the low nibble.
N and M are recorded in the struct. A layer that is not N:M along the input channels, or whose
groups of 4 are not 4 consecutive input bytes, is refused with the reason (FormatRefused), and the
compiler runs it dense unless it was asked for N:M by name.

On DSP cores the kernels gather nothing in their inner loops: per batch row (FULLY_CONNECTED) or per
tile of 4 output pixels (CONV_2D) they first write, for every unit, the input pairs of all its slots as
packed halfwords into a table in the scratch buffer (nn_*_nm_s8_get_buffer_size), then a unit is a slot
extraction, a table load and an SMLAD per pixel (docs/kernels.md, "N:M format").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.compiler.encode import (
    CArray,
    CStruct,
    FormatRefused,
    _column_index,
    _matrix,
    _SparseWeights,
)

M = 4  # inputs per group
GROUPS_PER_UNIT = {2: 1, 1: 2}
# The 2 inputs (positions within the unit) that each slot multiplies.
PAIRS = {2: ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)), 1: tuple((p, M + q) for q in range(M) for p in range(M))}
SLOT_OF_PAIR = np.zeros((M, M), np.uint8)
for _slot, (_low, _high) in enumerate(PAIRS[2]):
    SLOT_OF_PAIR[_low, _high] = _slot


@dataclass(frozen=True, eq=False)
class NmWeights(_SparseWeights):
    """Two stored weights and a 4-bit slot per unit, rows one after the other (see the module)."""

    values: CArray  # int8, 2 per unit
    slots: CArray  # uint8, 2 units per byte, low nibble first
    n: int  # N of N:M (M is 4)
    units: int  # units per row, padded to an even count
    format = "nm"

    @property
    def arrays(self) -> tuple[CArray, ...]:
        return self.values, self.slots

    def struct(self, name: str) -> CStruct:
        return CStruct(name, "nn_nm_s8", {"values": self.values.ref, "slots": self.slots.ref, "n": self.n, "m": M})

    def table_bytes(self, pixels: int) -> int:
        """The kernels' scratch: the slot table, a packed input pair (a word) per slot, unit and pixel; a
        CONV_2D kernel (pixels > 1) also keeps where each group of its windows starts, a word per group."""
        offsets = self.units * GROUPS_PER_UNIT[self.n] if pixels > 1 else 0
        return (self.units * len(PAIRS[self.n]) * pixels + offsets) * 4


def row_units(inputs: int, n: int) -> int:
    """Units in a row of `inputs` inputs (a multiple of M), padded to an even count.

    >>> row_units(256, 2), row_units(256, 1), row_units(20, 2), row_units(20, 1)
    (64, 32, 6, 4)
    """
    units = -(-(inputs // M) // GROUPS_PER_UNIT[n])
    return units + units % 2


def encode_nm(
    matrix: np.ndarray, name: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> NmWeights:
    """Encode an N:M matrix (N = 1 or 2, the smallest that holds every group of 4); see the module.

    column_index and row_step say where each column's input sits (CONV_2D): every group of 4 columns
    must be 4 consecutive input bytes inside one kernel row, as the kernels read them.
    """
    matrix = _matrix(matrix)
    rows, cols = matrix.shape
    if cols % M:
        raise FormatRefused(f"{name}: {cols} inputs per output are not a multiple of {M}, so there are no N:{M} groups")
    _check_groups(name, _column_index(matrix, column_index), row_step)
    groups = matrix.reshape(rows, cols // M, M)
    most = int(np.count_nonzero(groups, axis=-1).max(initial=0))
    if most > 2:
        raise FormatRefused(
            f"{name}: not N:{M} along the input channels with N <= 2: a group of {M} inputs holds {most} nonzeros"
        )
    n = 1 if most <= 1 else 2
    units = row_units(cols, n)
    padded = np.zeros((rows, units * GROUPS_PER_UNIT[n], M), np.int8)
    padded[:, : groups.shape[1]] = groups
    value, slot = (_pairs_of_two if n == 2 else _pairs_of_one)(padded)
    # Unit pairs share a word of values (a, a', b, b') and a byte of slots (u low, u + 1 high).
    words = value.reshape(rows, units // 2, 2, 2).transpose(0, 1, 3, 2).reshape(-1)
    slot_bytes = (slot[:, 0::2] | slot[:, 1::2] << 4).astype(np.uint8).reshape(-1)
    return NmWeights(
        values=CArray(f"{name}_values", words.astype(np.int8)),
        slots=CArray(f"{name}_slots", slot_bytes),
        n=n,
        units=units,
    )


def _check_groups(name: str, column_index: np.ndarray, row_step: int | None) -> None:
    """Every group of M columns reads M consecutive input bytes within one kernel row."""
    starts = column_index[0::M]
    consecutive = np.all(column_index.reshape(-1, M) == starts[:, None] + np.arange(M))
    same_row = row_step is None or np.all(starts // row_step == (starts + M - 1) // row_step)
    if not (consecutive and same_row):
        raise FormatRefused(
            f"{name}: its groups of {M} weights do not read {M} consecutive input channels "
            f"(input channels not a multiple of {M}?), so it has no N:{M} kernel"
        )


def _pairs_of_two(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2:4 units (one group each): the 2 values and the slot of the pair holding the group's nonzeros.

    A group with one nonzero at p pairs it with the next position (the one before, at p = 3); an
    empty group takes slot 0.
    """
    nonzero = groups != 0
    count = nonzero.sum(axis=-1)
    first = np.argmax(nonzero, axis=-1)
    last = M - 1 - np.argmax(nonzero[..., ::-1], axis=-1)
    low = np.where(count == 2, first, np.minimum(first, M - 2))
    high = np.where(count == 2, last, low + 1)
    slot = SLOT_OF_PAIR[low, high]
    value = np.stack(
        [
            np.take_along_axis(groups, low[..., None], -1)[..., 0],
            np.take_along_axis(groups, high[..., None], -1)[..., 0],
        ],
        axis=-1,
    )
    return value, slot


def _pairs_of_one(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1:4 units (two groups each): each group's nonzero (position 0 when empty) and slot p + 4 q."""
    position = np.argmax(groups != 0, axis=-1)
    kept = np.take_along_axis(groups, position[..., None], -1)[..., 0]
    rows = groups.shape[0]
    position, kept = position.reshape(rows, -1, 2), kept.reshape(rows, -1, 2)
    return kept, position[..., 0] + M * position[..., 1]
