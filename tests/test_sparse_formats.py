"""Sparse weight formats: every encoder decodes back to its matrix, with an exact byte account.

Each decoder here reads the arrays the way the C kernels do (kernels.h);
that the kernels compute the same bytes as TFLite Micro with every format
is tests/test_compiler.py's job.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from harness.compiler.encode import (
    CSR_TILE_WINDOW_MAX,
    FORMATS,
    encode_bitmask,
    encode_block4,
    encode_csr,
    encode_delta4,
    encode_dense,
)
from harness.compiler.lower import _conv_offsets, _sparse_conv_layout

SPARSE = tuple(fmt for fmt in FORMATS if fmt not in ("dense", "nm"))  # nm takes N:M layers only: test_nm_kernels.py


def _place(shape, column_index, entries) -> np.ndarray:
    """The matrix holding value at (row, stored index) for each entry; column_index maps columns to indices."""
    column_of = {int(stored): col for col, stored in enumerate(column_index)}
    matrix = np.zeros(shape, dtype=np.int8)
    for row, stored, value in entries:
        if value:
            assert matrix[row, column_of[stored]] == 0, "a weight stored twice"
            matrix[row, column_of[stored]] = value
    return matrix


def _layout(shape, column_index, row_step):
    """(kernel rows per matrix row, row step) as the relative formats split rows."""
    step = row_step or int(max(column_index)) + 1
    return int(max(column_index)) // step + 1, step


def decode(encoded, shape, column_index=None, row_step=None) -> np.ndarray:
    column_index = np.arange(shape[1]) if column_index is None else np.asarray(column_index)
    kernel_rows, step = _layout(shape, column_index, row_step)
    if encoded.format == "csr" and shape[1] <= CSR_TILE_WINDOW_MAX:
        column_index = np.arange(shape[1])  # a window the CONV_2D kernel gathers: indexed by position
    entries = []
    if encoded.format in ("csr", "block4"):
        width = 1 if encoded.format == "csr" else 4
        starts, index, values = encoded.row_start.values, encoded.index.values, encoded.values.values
        for row in range(shape[0]):
            for k in range(starts[row], starts[row + 1]):
                entries += [(row, int(index[k]) + j, int(values[width * k + j])) for j in range(width)]
    elif encoded.format == "delta4":
        nibbles = np.stack([encoded.deltas.values & 15, encoded.deltas.values >> 4], axis=1).reshape(-1)
        values, k = encoded.values.values, 0
        for segment, count in enumerate(encoded.count.values):
            at = -1
            for _ in range(count):
                assert 1 <= nibbles[k] <= 15
                at += int(nibbles[k])
                entries.append((segment // kernel_rows, (segment % kernel_rows) * step + at, int(values[k])))
                k += 1
        assert k == values.size and encoded.deltas.values.size == (k + 1) // 2
    elif encoded.format == "bitmask":
        length = int((column_index % step).max()) + 1
        words = -(-length // 32)
        bits = np.unpackbits(encoded.mask.values.astype(">u4").view(np.uint8)).reshape(-1, words * 32)
        values = iter(encoded.values.values)
        for segment, row_bits in enumerate(bits):
            assert not row_bits[length:].any()
            entries += [
                (segment // kernel_rows, (segment % kernel_rows) * step + int(at), int(next(values)))
                for at in np.flatnonzero(row_bits)
            ]
        assert next(values, None) is None
    return _place(shape, column_index, entries)


def random_matrix(shape, density, seed=0, empty_rows=(0,)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(-128, 127, shape, endpoint=True)
    values[values == 0] = 1
    matrix = (values * (rng.random(shape) < density)).astype(np.int8)
    matrix[list(empty_rows)] = 0
    return matrix


def conv_window(h, w, c, oc, k, stride=1, dilation=1, pad=1) -> dict:
    out = (h + 2 * pad - (k - 1) * dilation - 1) // stride + 1
    return {
        "input": {"h": h, "w": w, "c": c},
        "output": {"h": out, "w": out, "c": oc},
        "kernel_h": k,
        "kernel_w": k,
        "stride_h": stride,
        "stride_w": stride,
        "dilation_h": dilation,
        "dilation_w": dilation,
        "pad_top": pad,
        "pad_left": pad,
    }


CASES = [  # (shape, density, conv window or None)
    ((16, 64), 0.3, None),
    ((10, 256), 0.5, None),
    ((10, 300), 0.5, None),  # 16-bit indices
    ((12, 300), 0.02, None),  # long gaps: delta4 fillers
    ((300, 300), 0.9, None),  # more than 65535 nonzeros
    ((5, 7), 0.0, None),  # all zero
    ((6, 3), 1.0, None),  # rows shorter than a block
    ((8, 1), 0.5, None),
    ((32, 144), 0.1, conv_window(16, 16, 16, 32, 3)),  # padded band
    ((8, 27), 0.6, conv_window(9, 9, 3, 8, 3, pad=0)),  # in place, C_IN < 4
    ((6, 45), 0.4, conv_window(11, 11, 5, 6, 3, dilation=2)),  # dilation: gaps inside kernel rows
    ((4, 9), 0.5, conv_window(3, 3, 1, 4, 3)),
    ((4, 288), 0.1, conv_window(8, 8, 32, 4, 3)),  # csr: past the tile window, offsets
]


@pytest.mark.parametrize("fmt", SPARSE)
@pytest.mark.parametrize("shape, density, window", CASES)
def test_round_trip(fmt, shape, density, window):
    matrix = random_matrix(shape, density)
    column_index = row_step = None
    if window is not None:
        _, row_step, _ = _sparse_conv_layout(window)
        column_index = _conv_offsets(window, row_step)
    encoded = FORMATS[fmt](matrix, "w", column_index, row_step)
    assert encoded.format == fmt
    assert np.array_equal(decode(encoded, shape, column_index, row_step), matrix)
    assert encoded.nonzeros == np.count_nonzero(matrix)
    assert encoded.bytes.total == sum(a.nbytes for a in encoded.arrays)
    struct = encoded.struct("s")
    assert struct.ctype == f"nn_{fmt}_s8" and all(a.ref in struct.fields.values() for a in encoded.arrays)


def test_csr_byte_account_and_index_widths():
    matrix = random_matrix((300, 300), 0.9)
    encoded = encode_csr(matrix, "w")
    nonzeros = np.count_nonzero(matrix)
    assert encoded.bytes == type(encoded.bytes)(values=nonzeros, indices=2 * nonzeros, pointers=301 * 4)
    small = encode_csr(matrix[:10, :256], "w")
    assert small.index.values.dtype == np.uint8 and small.row_start.values.dtype == np.uint16


def test_delta4_bridges_long_gaps_with_fillers():
    row = np.zeros((1, 64), dtype=np.int8)
    row[0, [14, 30, 31, 63]] = [1, 2, 3, 4]  # gaps 15 (one nibble), 16 (a filler), 1, 32 (two fillers)
    encoded = encode_delta4(row, "w")
    assert encoded.values.values.tolist() == [1, 0, 2, 3, 0, 0, 4]
    assert encoded.count.values.tolist() == [7]
    assert encoded.deltas.values.tolist() == [15 | 15 << 4, 1 | 1 << 4, 15 | 15 << 4, 2]  # last nibble pads
    assert encoded.nonzeros == 4
    assert encoded.bytes == type(encoded.bytes)(values=7, indices=4, pointers=1)


def test_delta4_rows_share_the_nibble_stream_and_counts_widen():
    matrix = np.zeros((3, 600), dtype=np.int8)
    matrix[0, 0] = 5
    matrix[2, :] = 1  # 600 entries: more than a uint8 count holds; the row starts in a high nibble
    encoded = encode_delta4(matrix, "w")
    assert encoded.count.values.dtype == np.uint16 and encoded.count.values.tolist() == [1, 0, 600]
    assert encoded.deltas.values.size == 301 and encoded.deltas.values[0] == 1 | 1 << 4
    assert encoded.bytes.pointers == 6
    assert np.array_equal(decode(encoded, matrix.shape), matrix)


def test_delta4_at_90_percent_stores_under_two_bytes_per_nonzero():
    matrix = random_matrix((256, 256), 0.1, empty_rows=())
    encoded = encode_delta4(matrix, "w")
    assert encoded.bytes.total < 0.2 * matrix.size


def test_bitmask_words_and_bit_order():
    matrix = np.zeros((2, 40), dtype=np.int8)
    matrix[0, [0, 31, 32]] = [7, 8, 9]
    encoded = encode_bitmask(matrix, "w")
    assert encoded.mask.values.tolist() == [0x80000001, 0x80000000, 0, 0]
    assert encoded.bytes == type(encoded.bytes)(values=3, indices=16, pointers=0)


def test_bitmask_conv_rows_cover_one_kernel_row():
    window = conv_window(16, 16, 16, 32, 3)
    _, row_step, _ = _sparse_conv_layout(window)
    encoded = encode_bitmask(random_matrix((32, 144), 0.1), "w", _conv_offsets(window, row_step), row_step)
    assert encoded.bytes.indices == 32 * 3 * 2 * 4  # 48 bytes per kernel row: 2 words


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4)])
def test_block4_serves_n_of_m_patterns(n, m):
    rng = np.random.default_rng(1)
    matrix = np.zeros((16, 64), dtype=np.int8)
    for row in range(16):
        for group in range(0, 64, m):
            matrix[row, group + rng.choice(m, n, replace=False)] = rng.integers(1, 127, n)
    encoded = encode_block4(matrix, "w")
    assert np.array_equal(decode(encoded, matrix.shape), matrix)
    # Blocks start at the first uncovered nonzero, the fewest 4-wide blocks that cover a row:
    # never more than one per group.
    blocks = encoded.index.values.size
    assert blocks <= 16 * 64 // 4
    assert encoded.bytes == type(encoded.bytes)(values=4 * blocks, indices=blocks, pointers=17 * 2)


def test_block4_keeps_blocks_inside_the_row():
    matrix = np.zeros((2, 10), dtype=np.int8)
    matrix[0, [1, 8, 9]] = [1, 2, 3]
    matrix[1, [6, 9]] = [4, 5]
    encoded = encode_block4(matrix, "w")
    assert encoded.index.values.tolist() == [1, 6, 6]  # the block for column 8 starts at 10 - 4
    assert encoded.values.values.tolist() == [1, 0, 0, 0, 0, 0, 2, 3, 4, 0, 0, 5]
    assert encoded.row_start.values.tolist() == [0, 2, 3]
    assert np.array_equal(decode(encoded, matrix.shape), matrix)
    tiny = encode_block4(np.array([[3, 0, -2]], dtype=np.int8), "w")
    assert tiny.index.values.tolist() == [0] and tiny.values.values.tolist() == [3, 0, -2, 0]


def test_dense_takes_the_sparse_arguments():
    matrix = random_matrix((4, 8), 0.5)
    assert encode_dense(matrix, "w", np.arange(8), 8).bytes.values == 32


# ---- the sparse CONV_2D kernels on the host: tiles, and 1-pixel-wide maps against TFLite Micro ----------------

TILES_DRIVER = r"""
#include <stdio.h>
#include "kernel_util.h"
/* Reads a window (input h w c, output h w c, kernel, stride, dilation, padding), prints its tiles:
   the pixel count, then each corner's offset from the input (or the band), a line per tile. */
int main(void)
{
    nn_window w;
    static int8_t input[1 << 16], band[1 << 16];
    while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d", &w.input.h, &w.input.w, &w.input.c,
                 &w.output.h, &w.output.w, &w.output.c, &w.kernel_h, &w.kernel_w, &w.stride_h,
                 &w.stride_w, &w.dilation_h, &w.dilation_w, &w.pad_top, &w.pad_left) == 14) {
        nn_sparse_conv_walk walk = nn_sparse_conv_begin(&w, input, 0, band);
        const int8_t *corner[NN_CONV_TILE];
        for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0;) {
            const int8_t *base = walk.band ? band : input;
            printf("%d", (int)pixels);
            for (int k = 0; k < NN_CONV_TILE; ++k) {
                printf(" %d", (int)(corner[k] - base));
            }
            printf("\n");
        }
        printf("end\n");
    }
    return 0;
}
"""


def _tiles(tmp_path, window: dict) -> list[list[int]]:
    from test_compiler import CFLAGS, REPO

    source, exe = tmp_path / "tiles.c", tmp_path / "tiles"
    source.write_text(TILES_DRIVER)
    kernels = REPO / "firmware" / "kernels"
    build = subprocess.run(
        ["gcc", *CFLAGS, f"-I{kernels}", str(source), str(kernels / "conv2d_csr_s8.c"), "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    fields = (
        [window["input"][k] for k in "hwc"]
        + [window["output"][k] for k in "hwc"]
        + [
            window[k]
            for k in ("kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left")
        ]
    )
    out = subprocess.run([str(exe)], input=" ".join(map(str, fields)), capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    return [[int(v) for v in line.split()] for line in lines[: lines.index("end")]]


def test_tiles_run_across_rows_when_windows_are_read_in_place(tmp_path):
    # A [13, 1, 12] map, 1x1: 13 pixels in tiles of 4, 4, 4 and 1 (repeated), not 13 tiles of one pixel.
    window = conv_window(13, 1, 12, 10, 1, pad=0)
    window["output"]["w"] = 1
    assert _tiles(tmp_path, window) == [
        [4, 0, 12, 24, 36],
        [4, 48, 60, 72, 84],
        [4, 96, 108, 120, 132],
        [1, 144, 144, 144, 144],
    ]
    # Stride 2 on a 3-wide map: raster order across rows, each corner two input pixels on.
    strided = {**conv_window(6, 3, 2, 4, 1, stride=2, pad=0), "output": {"h": 3, "w": 2, "c": 4}}
    strided["kernel_w"], strided["stride_w"] = 2, 1
    assert _tiles(tmp_path, strided) == [[4, 0, 2, 12, 14], [2, 24, 26, 26, 26]]


def test_tiles_stay_in_the_band_row_when_windows_pad(tmp_path):
    # SAME 3x3 on 3x3: each output row is its own band, 3 pixels a tile, the last repeated.
    window = conv_window(3, 3, 2, 4, 3)
    assert _tiles(tmp_path, window) == [[3, 0, 2, 4, 4]] * 3
