"""How far below an input an op's output may start when it overlaps that input.

An op whose input dies with it can write its output over the input bytes it
has finished reading: a convolution that writes output pixel p has no more
use for input rows well above p's window. The memory plan lets the output
start `distance` bytes below the input's start (offset(input) -
offset(output) >= distance) instead of keeping the two apart, which is what
keeps MobileNet's widening pointwise layers at the size of their output.

The distances rest on the kernel contract in firmware/kernels/kernels.h
("Writing over the input"), which every kernel variant must keep:
- window ops (CONV_2D, DEPTHWISE_CONV_2D, pooling) write output pixels in
  raster order, and once they write any byte of output pixel q + 1 they no
  longer read input that only windows 0..q cover;
- elementwise ops compute output element i from input element i only.
"""

from __future__ import annotations

import numpy as np

ELEMENTWISE = 0  # output element i overwrites input element i only after reading it


def window_distance(window: dict) -> int:
    """The least distance for a window op whose output pixels are window["output"]["c"] bytes wide.

    Input byte k is safe to overwrite once every window that covers it is
    done. If q is the last such window, the contract allows pixels 0..q to be
    written while k may still be read, so output byte (q + 1) * C_out must
    not land below k: distance >= (q + 1) * C_out - k for every input byte
    k, the largest value coming from each pixel's first byte.
    >>> window_distance({"input": {"h": 1, "w": 4, "c": 2}, "output": {"h": 1, "w": 4, "c": 2},
    ...     "kernel_h": 1, "kernel_w": 1, "stride_h": 1, "stride_w": 1, "dilation_h": 1, "dilation_w": 1,
    ...     "pad_top": 0, "pad_left": 0})
    2
    """
    inp, out = window["input"], window["output"]
    last = _last_window(window)
    read = last >= 0  # pixels that no window reads (skipped by a stride) put no limit
    first_byte = np.arange(inp["h"] * inp["w"]) * inp["c"]
    nothing_read = -inp["h"] * inp["w"] * inp["c"]  # then the output may lie anywhere over the input
    return int(np.max((last[read] + 1) * out["c"] - first_byte[read], initial=nothing_read))


def _last_window(window: dict) -> np.ndarray:
    """For each input pixel (row-major), the raster index of the last output pixel whose window covers it, or -1."""
    inp, out = window["input"], window["output"]
    out_y, out_x, ky, kx = np.meshgrid(
        np.arange(out["h"]),
        np.arange(out["w"]),
        np.arange(window["kernel_h"]),
        np.arange(window["kernel_w"]),
        indexing="ij",
    )
    in_y = out_y * window["stride_h"] - window["pad_top"] + ky * window["dilation_h"]
    in_x = out_x * window["stride_w"] - window["pad_left"] + kx * window["dilation_w"]
    inside = (in_y >= 0) & (in_y < inp["h"]) & (in_x >= 0) & (in_x < inp["w"])
    last = np.full(inp["h"] * inp["w"], -1, dtype=np.int64)
    np.maximum.at(last, (in_y * inp["w"] + in_x)[inside], (out_y * out["w"] + out_x)[inside])
    return last
